package local

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pinroll/pinroll/internal/gitops"
)

// dirEdit is the part of a commit's file changes under one directory.
type dirEdit struct {
	files map[string][]byte   // name → new content
	dirs  map[string]*dirEdit // name → changes below it
}

// newDirEdit arranges files, keyed by slash-separated path, by directory.
func newDirEdit(files map[string][]byte) (*dirEdit, error) {
	root := &dirEdit{}
	for path, content := range files {
		if err := checkPath(path); err != nil {
			return nil, err
		}
		d := root
		names := strings.Split(path, "/")
		for _, name := range names[:len(names)-1] {
			if _, ok := d.files[name]; ok {
				return nil, fmt.Errorf("%w: path %q: %q is both a file and a directory", gitops.ErrInvalid, path, name)
			}
			sub := d.dirs[name]
			if sub == nil {
				sub = &dirEdit{}
				if d.dirs == nil {
					d.dirs = map[string]*dirEdit{}
				}
				d.dirs[name] = sub
			}
			d = sub
		}
		name := names[len(names)-1]
		if _, ok := d.dirs[name]; ok {
			return nil, fmt.Errorf("%w: path %q is both a file and a directory", gitops.ErrInvalid, path)
		}
		if d.files == nil {
			d.files = map[string][]byte{}
		}
		d.files[name] = content
	}
	return root, nil
}

// checkPath rejects a path that cannot name a file in a git tree; see
// [gitops.CheckPath].
func checkPath(path string) error { return gitops.CheckPath(path) }

// writeTree writes the tree base (nil for the empty tree) with the changes of
// d and returns its hash. Only the subtrees d touches are read and rewritten;
// every other entry is kept as it is. r.mu must be held.
func (r *Repo) writeTree(base *object.Tree, d *dirEdit) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	index := map[string]int{}
	if base != nil {
		entries = append(entries, base.Entries...)
		for i, e := range entries {
			index[e.Name] = i
		}
	}
	set := func(e object.TreeEntry) {
		if i, ok := index[e.Name]; ok {
			entries[i] = e
			return
		}
		index[e.Name] = len(entries)
		entries = append(entries, e)
	}

	for name, content := range d.files {
		o := r.st.NewEncodedObject()
		o.SetType(plumbing.BlobObject)
		o.SetSize(int64(len(content)))
		w, err := o.Writer()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := w.Write(content); err != nil {
			return plumbing.ZeroHash, err
		}
		if err := w.Close(); err != nil {
			return plumbing.ZeroHash, err
		}
		h, err := r.put(o)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	for name, sub := range d.dirs {
		var subBase *object.Tree
		if i, ok := index[name]; ok && entries[i].Mode == filemode.Dir {
			t, err := r.tree(entries[i].Hash)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			subBase = t
		}
		h, err := r.writeTree(subBase, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}

	// Git orders entries by name, comparing a directory's as if it ended in "/".
	sort.Sort(object.TreeEntrySorter(entries))
	t := &object.Tree{Entries: entries}
	o := r.st.NewEncodedObject()
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode tree: %w", err)
	}
	return r.put(o)
}
