package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sys/unix"

	"github.com/pinroll/pinroll/internal/gitops"
)

// ListRefs returns the refs whose names start with prefix, loose or packed,
// as [gitops.Repo] describes.
func (r *Repo) ListRefs(ctx context.Context, prefix string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := r.listRefs(prefix)
	if err != nil {
		return nil, fmt.Errorf("local: list refs %s: %w", prefix, err)
	}
	return out, nil
}

func (r *Repo) listRefs(prefix string) (map[string]string, error) {
	if !strings.HasPrefix(prefix, "refs/") || strings.Contains(prefix, "..") {
		return nil, fmt.Errorf("%w: prefix %q: want refs/…", gitops.ErrInvalid, prefix)
	}
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(r.gitDir, "packed-refs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read packed-refs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		if sha, name, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, prefix) {
			out[name] = sha
		}
	}
	// Loose refs override packed ones. Walk the directory holding prefix.
	dir := prefix[:strings.LastIndexByte(prefix, '/')+1]
	root := r.refPath(strings.TrimSuffix(dir, "/"))
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(path, ".lock") {
			return nil
		}
		rel, err := filepath.Rel(r.gitDir, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		sha, err := r.readRef(name)
		if err != nil {
			return err
		}
		if sha != "" {
			out[name] = sha
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateRefs applies updates as one transaction with git's own protocol
// (refs/files-backend.c), as [gitops.Repo] describes: it creates every
// <ref>.lock exclusively (an existing one is ErrConflict: git, or another
// pinroll, is updating that ref), checks every ref's current value, makes
// the new objects durable, writes the new values into the lock files, then
// renames each lock onto its ref, in order. A ref deleted that is also in
// packed-refs is removed from it under packed-refs.lock. While the locks are
// held, no git process can change these refs, so a concurrent `git push`
// either lands before (and the check fails) or waits for the locks to go
// (and then fails its own check). A moved branch that is checked out in a
// non-bare repository gets its work tree updated as [Repo.MoveBranch] does.
func (r *Repo) UpdateRefs(ctx context.Context, updates []gitops.RefUpdate) error {
	if err := r.updateRefs(ctx, updates); err != nil {
		return fmt.Errorf("local: update refs: %w", err)
	}
	return nil
}

func (r *Repo) updateRefs(ctx context.Context, updates []gitops.RefUpdate) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, u := range updates {
		name, ok := strings.CutPrefix(u.Ref, "refs/")
		if !ok {
			return fmt.Errorf("%w: ref %q: want refs/…", gitops.ErrInvalid, u.Ref)
		}
		if err := checkBranch(name); err != nil {
			return fmt.Errorf("ref %q: %w", u.Ref, err)
		}
		if seen[u.Ref] {
			return fmt.Errorf("%w: ref %q updated twice", gitops.ErrInvalid, u.Ref)
		}
		seen[u.Ref] = true
		for _, v := range []string{u.From, u.To} {
			if v != "" {
				if _, err := parseHash(v); err != nil {
					return fmt.Errorf("%w: ref %q: %w", gitops.ErrInvalid, u.Ref, err)
				}
			}
		}
	}
	// Every new value must be a commit we have.
	commits := map[string]*object.Commit{}
	err = r.withObjects(ctx, func() error {
		for _, u := range updates {
			if u.To == "" {
				continue
			}
			c, err := r.commit(plumbing.NewHash(u.To))
			if err != nil {
				return fmt.Errorf("%s to %s: %w", u.Ref, u.To, err)
			}
			commits[u.Ref] = c
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Objects durable before any ref names them: go-git writes loose
	// objects without fsync, so flush the file system holding them.
	if err := r.syncObjects(); err != nil && !errors.Is(err, errNoSyncfs) {
		return err
	}

	r.refMu.Lock()
	defer r.refMu.Unlock()
	var locks []*os.File
	defer func() {
		for _, l := range locks { // the locks not committed: roll back
			if l != nil {
				l.Close()
				os.Remove(l.Name())
			}
		}
	}()
	for _, u := range updates {
		path := r.refPath(u.Ref)
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			return fmt.Errorf("lock %s: %w", u.Ref, err)
		}
		l, err := os.OpenFile(path+".lock", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s.lock exists: another process is updating it", gitops.ErrConflict, u.Ref)
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", u.Ref, err)
		}
		locks = append(locks, l)
	}
	for _, u := range updates {
		cur, err := r.readRef(u.Ref)
		if err != nil {
			return err
		}
		if cur != u.From {
			return fmt.Errorf("%w: %s is at %q, not %q", gitops.ErrConflict, u.Ref, cur, u.From)
		}
	}
	if r.lockedHook != nil {
		for _, u := range updates {
			r.lockedHook(u.Ref)
		}
	}
	var deleted []string
	for i, u := range updates {
		if u.To == "" {
			deleted = append(deleted, u.Ref)
			continue
		}
		if _, err := locks[i].WriteString(u.To + "\n"); err != nil {
			return fmt.Errorf("write %s.lock: %w", u.Ref, err)
		}
		if err := locks[i].Sync(); err != nil {
			return fmt.Errorf("sync %s.lock: %w", u.Ref, err)
		}
	}
	if err := r.unpackRefs(deleted); err != nil {
		return err
	}
	// Commit, in order: from here on every step is a rename or a removal.
	for i, u := range updates {
		l := locks[i]
		if err := l.Close(); err != nil {
			return fmt.Errorf("close %s.lock: %w", u.Ref, err)
		}
		path := r.refPath(u.Ref)
		if u.To == "" {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("delete %s: %w", u.Ref, err)
			}
			os.Remove(filepath.Join(r.gitDir, "logs", filepath.FromSlash(u.Ref)))
			os.Remove(l.Name())
			locks[i] = nil
			continue
		}
		from := u.From
		if from == "" {
			from = plumbing.ZeroHash.String()
		}
		if err := r.appendReflog(u.Ref, from, u.To, commits[u.Ref].Committer); err != nil {
			return err
		}
		if err := os.Rename(l.Name(), path); err != nil {
			return fmt.Errorf("commit %s: %w", u.Ref, err)
		}
		locks[i] = nil
	}
	for _, u := range updates {
		if branch, ok := strings.CutPrefix(u.Ref, "refs/heads/"); ok && u.From != "" && u.To != "" {
			if err := r.syncWorkTree(branch, plumbing.NewHash(u.From), plumbing.NewHash(u.To)); err != nil {
				r.log.Warn("work tree not updated after moving the checked-out branch", "work_tree", r.workTree, "branch", branch, "reason", err.Error())
			}
		}
	}
	return nil
}

// unpackRefs removes refs from packed-refs, holding packed-refs.lock, as
// git does before it deletes their loose files.
func (r *Repo) unpackRefs(refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	path := filepath.Join(r.gitDir, "packed-refs")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read packed-refs: %w", err)
	}
	drop := map[string]bool{}
	for _, ref := range refs {
		drop[ref] = true
	}
	var out bytes.Buffer
	skipping, changed := false, false
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "^") {
			if !skipping {
				out.WriteString(line)
			}
			continue
		}
		_, name, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		skipping = !strings.HasPrefix(line, "#") && drop[name]
		if skipping {
			changed = true
			continue
		}
		out.WriteString(line)
	}
	if !changed {
		return nil
	}
	lock, err := os.OpenFile(path+".lock", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: packed-refs.lock exists: another process is packing refs", gitops.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("lock packed-refs: %w", err)
	}
	if _, err := lock.Write(out.Bytes()); err == nil {
		err = lock.Sync()
	}
	if cerr := lock.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(lock.Name(), path)
	}
	if err != nil {
		os.Remove(lock.Name())
		return fmt.Errorf("rewrite packed-refs: %w", err)
	}
	return nil
}

// errNoSyncfs says the kernel has no syncfs(2).
var errNoSyncfs = errors.New("syncfs not supported")

// syncObjects flushes the file system holding the object store (syncfs(2)),
// so that the objects written so far survive a crash before the refs that
// name them do. It fails with errNoSyncfs where the kernel lacks syncfs.
func (r *Repo) syncObjects() error {
	objects := filepath.Join(r.gitDir, "objects")
	if r.noSyncfs {
		return fmt.Errorf("sync objects: %w", errNoSyncfs)
	}
	f, err := os.Open(objects)
	if err != nil {
		return fmt.Errorf("sync objects: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		if errors.Is(err, syscall.ENOSYS) {
			err = errNoSyncfs
		}
		return fmt.Errorf("sync objects: %w", err)
	}
	r.synced("syncfs " + objects)
	return nil
}
