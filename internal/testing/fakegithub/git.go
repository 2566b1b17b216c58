package fakegithub

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitInfo is a commit as the fake stores it.
type CommitInfo struct {
	SHA       string
	Tree      string
	Parents   []string
	Message   string
	Author    object.Signature
	Committer object.Signature
}

// Human is the author of the commits made by [Server.Commit].
var Human = object.Signature{Name: "A Person", Email: "person@example.com"}

func seedSignature(when time.Time) object.Signature {
	return object.Signature{Name: "Seed", Email: "seed@example.com", When: when}
}

// Commit makes a person's commit on the default branch: its tip's tree with
// files replaced (a nil value deletes the file). It returns the new SHA.
func (s *Server) Commit(message string, files map[string][]byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := plumbing.NewBranchReferenceName(s.branch)
	ref, err := s.st.Reference(name)
	if err != nil {
		panic(fmt.Sprintf("fakegithub: Commit: branch %s: %v", s.branch, err))
	}
	tip, err := object.GetCommit(s.st, ref.Hash())
	if err != nil {
		panic(fmt.Sprintf("fakegithub: Commit: %v", err))
	}
	var edits []treeEdit
	for p, b := range files {
		if b == nil {
			edits = append(edits, treeEdit{path: p, delete: true})
			continue
		}
		edits = append(edits, treeEdit{path: p, mode: filemode.Regular, hash: s.putBlob(b)})
	}
	tree, err := s.applyEdits(tip.TreeHash, edits)
	if err != nil {
		panic(fmt.Sprintf("fakegithub: Commit: %v", err))
	}
	sig := Human
	sig.When = time.Now().Truncate(time.Second)
	c := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: tree, ParentHashes: []plumbing.Hash{tip.Hash}}
	h, err := s.putCommit(c)
	if err == nil {
		err = s.setRef(name, h)
	}
	if err != nil {
		panic(fmt.Sprintf("fakegithub: Commit: %v", err))
	}
	return h.String()
}

// Head returns the SHA branch points at, or "" if it does not exist.
func (s *Server) Head(branch string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, err := s.st.Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return ""
	}
	return ref.Hash().String()
}

// Log walks branch's first-parent history from its tip, newest first.
func (s *Server) Log(branch string) []CommitInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, err := s.st.Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return nil
	}
	var out []CommitInfo
	for h := ref.Hash(); !h.IsZero(); {
		c, err := object.GetCommit(s.st, h)
		if err != nil {
			break
		}
		out = append(out, commitInfo(c))
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	return out
}

// File returns the content of path at ref (a branch name or a commit SHA), or
// nil if there is no such file.
func (s *Server) File(ref, path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.resolveCommit(ref)
	if err != nil {
		return nil
	}
	e, err := s.entryAt(c.TreeHash, path)
	if err != nil || e.Mode == filemode.Dir {
		return nil
	}
	b, err := s.blobBytes(e.Hash)
	if err != nil {
		return nil
	}
	return b
}

// Lookup returns the commit sha, if the fake has it.
func (s *Server) Lookup(sha string) (CommitInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := object.GetCommit(s.st, plumbing.NewHash(sha))
	if err != nil || !isHex40(sha) {
		return CommitInfo{}, false
	}
	return commitInfo(c), true
}

func commitInfo(c *object.Commit) CommitInfo {
	ci := CommitInfo{SHA: c.Hash.String(), Tree: c.TreeHash.String(), Message: c.Message, Author: c.Author, Committer: c.Committer}
	for _, p := range c.ParentHashes {
		ci.Parents = append(ci.Parents, p.String())
	}
	return ci
}

// --- object storage (callers hold s.mu) ---

func (s *Server) putBlob(b []byte) plumbing.Hash {
	o := s.st.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	o.SetSize(int64(len(b)))
	w, _ := o.Writer()
	_, _ = w.Write(b)
	_ = w.Close()
	h, err := s.st.SetEncodedObject(o)
	if err != nil {
		panic(err)
	}
	return h
}

func (s *Server) putTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	sort.Sort(object.TreeEntrySorter(entries))
	o := s.st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.st.SetEncodedObject(o)
}

func (s *Server) putCommit(c *object.Commit) (plumbing.Hash, error) {
	o := s.st.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.st.SetEncodedObject(o)
}

func (s *Server) setRef(name plumbing.ReferenceName, h plumbing.Hash) error {
	return s.st.SetReference(plumbing.NewHashReference(name, h))
}

func (s *Server) objectType(h plumbing.Hash) (plumbing.ObjectType, bool) {
	o, err := s.st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return plumbing.InvalidObject, false
	}
	return o.Type(), true
}

func (s *Server) blobBytes(h plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(s.st, h)
	if err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// resolveCommit resolves a 40-hex SHA, a branch name or a full ref name.
func (s *Server) resolveCommit(rev string) (*object.Commit, error) {
	if isHex40(rev) {
		return object.GetCommit(s.st, plumbing.NewHash(rev))
	}
	for _, name := range []plumbing.ReferenceName{plumbing.ReferenceName(rev), plumbing.NewBranchReferenceName(rev), plumbing.NewTagReferenceName(rev)} {
		if ref, err := s.st.Reference(name); err == nil {
			return object.GetCommit(s.st, ref.Hash())
		}
	}
	return nil, plumbing.ErrReferenceNotFound
}

// entryAt finds path in tree root ("" is the root itself, as a Dir entry).
func (s *Server) entryAt(root plumbing.Hash, p string) (object.TreeEntry, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return object.TreeEntry{Name: "", Mode: filemode.Dir, Hash: root}, nil
	}
	t, err := object.GetTree(s.st, root)
	if err != nil {
		return object.TreeEntry{}, fmt.Errorf("tree %s: %w", root, err)
	}
	e, err := t.FindEntry(p)
	if err != nil {
		return object.TreeEntry{}, fmt.Errorf("%s: %w", p, err)
	}
	return *e, nil
}

type treeEdit struct {
	path   string
	mode   filemode.FileMode
	hash   plumbing.Hash
	delete bool
}

// applyEdits writes base (zero: the empty tree) with edits applied and
// returns the new root tree; directories left empty disappear, as in git.
func (s *Server) applyEdits(base plumbing.Hash, edits []treeEdit) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := object.GetTree(s.st, base)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("tree %s: %w", base, err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	sub := map[string][]treeEdit{}
	var order []string
	for _, e := range edits {
		first, rest, nested := strings.Cut(e.path, "/")
		if first == "" || first == "." || first == ".." {
			return plumbing.ZeroHash, fmt.Errorf("invalid path %q", e.path)
		}
		if !nested {
			if e.delete {
				delete(entries, first)
			} else {
				entries[first] = object.TreeEntry{Name: first, Mode: e.mode, Hash: e.hash}
			}
			continue
		}
		if _, ok := sub[first]; !ok {
			order = append(order, first)
		}
		e.path = rest
		sub[first] = append(sub[first], e)
	}
	for _, dir := range order {
		var childBase plumbing.Hash
		if cur, ok := entries[dir]; ok && cur.Mode == filemode.Dir {
			childBase = cur.Hash
		}
		child, err := s.applyEdits(childBase, sub[dir])
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t, err := object.GetTree(s.st, child)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if len(t.Entries) == 0 {
			delete(entries, dir)
			continue
		}
		entries[dir] = object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: child}
	}
	list := make([]object.TreeEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	return s.putTree(list)
}

// writeCommit writes a commit holding files (on no base) with parents.
func (s *Server) writeCommit(msg string, files map[string][]byte, parents []plumbing.Hash, sig object.Signature) (plumbing.Hash, error) {
	var edits []treeEdit
	for p, b := range files {
		edits = append(edits, treeEdit{path: path.Clean(p), mode: filemode.Regular, hash: s.putBlob(b)})
	}
	tree, err := s.applyEdits(plumbing.ZeroHash, edits)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return s.putCommit(&object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents})
}

// isBinary applies git's heuristic (a NUL byte early on), and also treats
// invalid UTF-8 as binary, since GraphQL's text is a UTF-8 string.
func isBinary(b []byte) bool {
	head := b
	if len(head) > 8000 {
		head = head[:8000]
	}
	return bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(b)
}

func isHex40(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
