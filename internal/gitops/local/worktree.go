package local

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// stageNormal is the stage of an index entry outside a merge: 0 in git's
// index format (go-git's index.Merged constant says 1, but decodes entries
// with 0).
const stageNormal index.Stage = 0

// pathChange is one path that differs between two commits' trees; a zero
// hash means the path is absent on that side.
type pathChange struct {
	path             string
	from, to         plumbing.Hash
	fromMode, toMode filemode.FileMode
}

// syncWorkTree brings the index and work tree of a non-bare repository up to
// date after its checked-out branch moved from → to, as git's
// receive.denyCurrentBranch=updateInstead does for a push. Without it the
// index would still hold the old files, and the next commit a person makes
// there would silently revert the move.
//
// It changes nothing unless every changed path is, in the index and on disk,
// exactly as it was at from (content and mode) — nobody has local changes
// there — and it holds git's index.lock while it works, as git does. It only
// rewrites a version 2 index (git's default) with no assume-unchanged entries,
// whose flag go-git would not keep. It is best effort: the branch has moved
// either way. When it declines, the work tree and index are as they were and
// `git status` shows the difference, as after any push; should writing a file
// fail part way, the files written so far are new and the index is not.
func (r *Repo) syncWorkTree(branch string, from, to plumbing.Hash) error {
	if r.workTree == "" {
		return nil
	}
	head, err := os.ReadFile(filepath.Join(r.gitDir, "HEAD"))
	if err != nil || strings.TrimSpace(string(head)) != "ref: refs/heads/"+branch {
		return nil // bare, detached or another branch checked out
	}
	lockPath := filepath.Join(r.gitDir, "index.lock")
	lock, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return fmt.Errorf("lock index: %w", err) // a git command is working there
	}
	done := false
	defer func() {
		if !done {
			lock.Close()
			os.Remove(lockPath)
		}
	}()

	idx := &index.Index{Version: 2}
	if b, err := os.ReadFile(filepath.Join(r.gitDir, "index")); err == nil {
		if err := rewritable(b); err != nil {
			return err
		}
		if err := index.NewDecoder(bytes.NewReader(b)).Decode(idx); err != nil {
			return fmt.Errorf("read index: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read index: %w", err)
	}
	r.mu.Lock()
	changes, blobs, err := r.treeChanges(from, to)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for _, c := range changes {
		if !r.unchangedSince(idx, c) {
			return fmt.Errorf("%s has local changes: work tree left as it was", c.path)
		}
	}
	for _, c := range changes {
		if err := r.applyChange(idx, c, blobs[c.to]); err != nil {
			return err
		}
	}
	idx.Cache = nil // the cached tree extension no longer matches; git rebuilds it
	sort.SliceStable(idx.Entries, func(i, j int) bool {
		a, b := idx.Entries[i], idx.Entries[j]
		return a.Name < b.Name || (a.Name == b.Name && a.Stage < b.Stage)
	})
	if err := index.NewEncoder(lock).Encode(idx); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := lock.Close(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := os.Rename(lockPath, filepath.Join(r.gitDir, "index")); err != nil {
		return fmt.Errorf("commit index: %w", err)
	}
	done = true
	return nil
}

// treeChanges lists the paths that differ between the trees of commits from
// and to, with the new blobs' contents.
func (r *Repo) treeChanges(from, to plumbing.Hash) ([]pathChange, map[plumbing.Hash][]byte, error) {
	trees := make([]*object.Tree, 2)
	for i, h := range []plumbing.Hash{from, to} {
		c, err := r.commit(h)
		if err != nil {
			return nil, nil, err
		}
		if trees[i], err = r.tree(c.TreeHash); err != nil {
			return nil, nil, err
		}
	}
	diff, err := object.DiffTree(trees[0], trees[1])
	if err != nil {
		return nil, nil, fmt.Errorf("diff trees: %w", err)
	}
	blobs := map[plumbing.Hash][]byte{}
	var out []pathChange
	for _, d := range diff {
		c := pathChange{from: d.From.TreeEntry.Hash, to: d.To.TreeEntry.Hash, fromMode: d.From.TreeEntry.Mode, toMode: d.To.TreeEntry.Mode}
		c.path = d.To.Name
		if c.path == "" {
			c.path = d.From.Name
		}
		if !c.to.IsZero() {
			if c.toMode != filemode.Regular && c.toMode != filemode.Executable {
				return nil, nil, fmt.Errorf("%s: only regular files are synced", c.path)
			}
			b, err := r.blob(c.to)
			if err != nil {
				return nil, nil, err
			}
			blobs[c.to] = b
		}
		out = append(out, c)
	}
	return out, blobs, nil
}

// unchangedSince reports whether path is, in the index and on disk, as it was
// at the from side of c: same content, same mode.
func (r *Repo) unchangedSince(idx *index.Index, c pathChange) bool {
	e, _ := idx.Entry(c.path)
	if c.from.IsZero() != (e == nil) || (e != nil && (e.Hash != c.from || e.Mode != c.fromMode || e.Stage != stageNormal)) {
		return false
	}
	full := filepath.Join(r.workTree, filepath.FromSlash(c.path))
	fi, err := os.Lstat(full)
	if c.from.IsZero() {
		return errors.Is(err, fs.ErrNotExist)
	}
	if err != nil || !fi.Mode().IsRegular() || (fi.Mode().Perm()&0o100 != 0) != (c.fromMode == filemode.Executable) {
		return false
	}
	b, err := os.ReadFile(full)
	return err == nil && plumbing.ComputeHash(plumbing.BlobObject, b) == c.from
}

// rewritable says why an index file cannot be rewritten by syncWorkTree, if
// it cannot: anything but version 2, or an entry flagged assume-unchanged
// (git update-index --assume-unchanged), a flag go-git's encoder drops.
func rewritable(b []byte) error {
	if len(b) < 12 || string(b[:4]) != "DIRC" {
		return errors.New("index: not a git index")
	}
	if v := binary.BigEndian.Uint32(b[4:8]); v != 2 {
		return fmt.Errorf("index version %d: only version 2 is rewritten", v)
	}
	n := binary.BigEndian.Uint32(b[8:12])
	off := 12
	for range n {
		// ctime, mtime, dev, ino, mode, uid, gid, size (40 bytes), the
		// object name (20), then 16 bits of flags and the NUL-padded path.
		if off+62 > len(b) {
			return errors.New("index: truncated")
		}
		flags := binary.BigEndian.Uint16(b[off+60 : off+62])
		if flags&0x8000 != 0 {
			return errors.New("index has assume-unchanged entries: work tree left alone")
		}
		name := int(flags & 0xfff)
		if name == 0xfff {
			end := bytes.IndexByte(b[off+62:], 0)
			if end < 0 {
				return errors.New("index: truncated")
			}
			name = end
		}
		off += (62 + name + 8) &^ 7
	}
	return nil
}

// applyChange writes the to side of c to the work tree and the index.
func (r *Repo) applyChange(idx *index.Index, c pathChange, content []byte) error {
	full := filepath.Join(r.workTree, filepath.FromSlash(c.path))
	if c.to.IsZero() {
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", c.path, err)
		}
		_, _ = idx.Remove(c.path)
		return nil
	}
	perm := os.FileMode(0o644)
	if c.toMode == filemode.Executable {
		perm = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", c.path, err)
	}
	tmp := full + ".pinroll.tmp"
	if err := os.WriteFile(tmp, content, perm); err != nil {
		return fmt.Errorf("write %s: %w", c.path, err)
	}
	if err := os.Rename(tmp, full); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", c.path, err)
	}
	fi, err := os.Stat(full)
	if err != nil {
		return fmt.Errorf("stat %s: %w", c.path, err)
	}
	e, err := idx.Entry(c.path)
	if err != nil {
		e = idx.Add(c.path)
	}
	// Stat data beyond size and times is git's to refresh: it re-reads a
	// file whose cached stat does not match, and finds the content equal.
	e.Hash, e.Mode, e.Size = c.to, c.toMode, uint32(fi.Size())
	e.ModifiedAt, e.CreatedAt = fi.ModTime(), fi.ModTime()
	e.Dev, e.Inode, e.UID, e.GID = 0, 0, 0, 0
	return nil
}
