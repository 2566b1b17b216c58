// Package local is the [gitops.Repo] backend for a git repository on disk,
// bare or not (SPEC §6.5, the embedded default). Objects are read and written
// with go-git (https://pkg.go.dev/github.com/go-git/go-git/v5); branches are
// moved with git's own ref-locking protocol, so that a move is a true
// compare-and-swap even against another process, such as a `git push` into the
// same repository, updating the same branch.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/retry"
)

// cacheSize bounds the memory go-git's object cache may hold: a reconcile
// reads a few kilobytes (the tip, the trees down to the overlays, their
// files), and a larger cache only fills with old tips over a long run.
const cacheSize = 2 * cache.MiByte

// Repo is a git repository on disk. It implements [gitops.Repo] and is safe for
// concurrent use by multiple goroutines, and by other processes that follow
// git's locking rules (git itself, go-git excepted).
//
// Moving the checked-out branch of a non-bare repository also updates its
// index and work tree, as a push does with receive.denyCurrentBranch=
// updateInstead, when nobody has local changes to the files that changed;
// otherwise they are left alone and `git status` there shows the difference.
type Repo struct {
	gitDir   string
	workTree string       // "" for a bare repository
	log      *slog.Logger // where work-tree updates that did not happen are told

	// mu serialises go-git's object storage, which is not safe for concurrent
	// use: it builds its pack index lazily and rebuilds it on demand.
	mu sync.Mutex
	st *filesystem.Storage
	// put lists the objects it wrote or found here, r.mu held, for
	// WriteCommit to sync before it returns.
	written []plumbing.Hash

	// refMu serialises this process's own moves, so that they compete on
	// their values rather than on each other's lock files.
	refMu sync.Mutex

	now      func() time.Time // the clock: commit and reflog times
	lockWait time.Duration    // how long a move waits for another process's ref lock

	// lockedHook, when a test sets it, runs while casRef holds the lock on
	// a ref.
	lockedHook func(ref string)
	// syncedHook, when a test sets it, runs after each file or directory
	// syncLoose synced, with its path, and after each syncfs of the object
	// store, with "syncfs " and the objects directory.
	syncedHook func(path string)
	// noSyncfs, when a test sets it, makes syncObjects answer as a kernel
	// without syncfs(2) does.
	noSyncfs bool
}

// defaultLockWait is how long a move waits for a ref lock another process
// holds before it reports the lock. git itself waits 100 ms
// (core.filesRefLockTimeout); a push holds its lock for milliseconds, so a
// lock still there after this long is most likely left by a crash.
const defaultLockWait = 250 * time.Millisecond

var _ gitops.Repo = (*Repo)(nil)

// Open opens the git repository at repo, a filesystem path or a file:// URL.
// For a non-bare repository repo is its work tree and the git directory is
// repo/.git (a .git file pointing elsewhere, as in a linked worktree, is
// followed); otherwise repo is the git directory itself.
func Open(repo string) (*Repo, error) {
	path, err := localPath(repo)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", repo, err)
	}
	gitDir, err := findGitDir(path)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", repo, err)
	}
	// Default options: ExclusiveAccess off, so that go-git lists the pack
	// directory and loose objects afresh instead of trusting a cached view.
	st := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRU(cacheSize), filesystem.Options{})
	r := &Repo{gitDir: gitDir, st: st, log: slog.New(slog.DiscardHandler), now: time.Now, lockWait: defaultLockWait}
	if gitDir == filepath.Join(path, ".git") {
		r.workTree = path // a plain non-bare repository (not a linked worktree)
	}
	return r, nil
}

// WithLogger makes r tell log when it could not bring a non-bare
// repository's work tree up to date after a move, and returns r.
func (r *Repo) WithLogger(log *slog.Logger) *Repo {
	if log != nil {
		r.log = log
	}
	return r
}

// WithClock makes r date commits whose signatures have no time, and its
// reflog entries, by now instead of time.Now, and returns r.
func (r *Repo) WithClock(now func() time.Time) *Repo {
	if now != nil {
		r.now = now
	}
	return r
}

// localPath returns the absolute filesystem path that repo names.
func localPath(repo string) (string, error) {
	p := repo
	if strings.HasPrefix(repo, "file:") {
		u, err := url.Parse(repo)
		if err != nil {
			return "", err
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("file URL with host %q: only local paths are supported", u.Host)
		}
		p = filepath.FromSlash(u.Path)
	}
	if p == "" {
		return "", errors.New("empty path")
	}
	return filepath.Abs(p)
}

// findGitDir returns the git directory of the repository at path: path/.git
// for a non-bare repository, path itself for a bare one.
func findGitDir(path string) (string, error) {
	dotGit := filepath.Join(path, ".git")
	fi, err := os.Stat(dotGit)
	switch {
	case err == nil && fi.IsDir():
		if isGitDir(dotGit) {
			return dotGit, nil
		}
	case err == nil:
		return gitFile(path, dotGit)
	}
	if isGitDir(path) {
		return path, nil
	}
	return "", fmt.Errorf("not a git repository: %w", gitops.ErrNotFound)
}

// gitFile follows a .git file ("gitdir: <dir>") to the directory holding the
// repository's branches and objects: the linked worktree's common directory
// when there is one.
func gitFile(path, dotGit string) (string, error) {
	b, err := os.ReadFile(dotGit)
	if err != nil {
		return "", err
	}
	dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return "", fmt.Errorf("%s: not a gitdir file", dotGit)
	}
	dir = filepath.FromSlash(strings.TrimSpace(dir))
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(path, dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "commondir")); err == nil {
		common := filepath.FromSlash(strings.TrimSpace(string(b)))
		if !filepath.IsAbs(common) {
			common = filepath.Join(dir, common)
		}
		dir = common
	}
	if !isGitDir(dir) {
		return "", fmt.Errorf("%s points at %s: not a git directory", dotGit, dir)
	}
	return filepath.Clean(dir), nil
}

// isGitDir reports whether dir looks like a git directory.
func isGitDir(dir string) bool {
	for _, name := range []string{"objects", "refs"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || !fi.IsDir() {
			return false
		}
	}
	_, err := os.Stat(filepath.Join(dir, "HEAD"))
	return err == nil
}

// Read returns the tip of branch and the content of paths at that tip, as
// [gitops.Repo] describes. The tip is read from the ref file, or from
// packed-refs when there is no loose ref, on every call. A path naming a
// directory, a symbolic link or a submodule is absent from the Files.
func (r *Repo) Read(ctx context.Context, branch string, paths ...string) (gitops.Snapshot, error) {
	ref := "refs/heads/" + branch
	snap, err := r.read(ctx, branch, paths)
	if err != nil {
		return gitops.Snapshot{}, fmt.Errorf("local: read %s: %w", ref, err)
	}
	return snap, nil
}

func (r *Repo) read(ctx context.Context, branch string, paths []string) (gitops.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return gitops.Snapshot{}, err
	}
	if err := checkBranch(branch); err != nil {
		return gitops.Snapshot{}, err
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return gitops.Snapshot{}, err
		}
	}
	tip, err := r.readRef("refs/heads/" + branch)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	if tip == "" {
		if _, err := os.Stat(filepath.Join(r.gitDir, "HEAD")); err != nil {
			// The repository itself is gone (an unmounted volume, a
			// moved directory): an outage, not a missing branch.
			return gitops.Snapshot{}, fmt.Errorf("repository unavailable: %w", err)
		}
		return gitops.Snapshot{}, fmt.Errorf("no such branch: %w", gitops.ErrNotFound)
	}

	var snap gitops.Snapshot
	err = r.withObjects(ctx, func() error {
		var err error
		snap, err = r.snapshot(plumbing.NewHash(tip), paths)
		return err
	})
	return snap, err
}

// snapshot reads commit tip and the files at paths in it; r.mu must be held.
func (r *Repo) snapshot(tip plumbing.Hash, paths []string) (gitops.Snapshot, error) {
	c, err := r.commit(tip)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	snap := gitops.Snapshot{Commit: toCommit(c), Files: make(map[string][]byte, len(paths))}
	trees := map[string]*object.Tree{} // directory path → tree, shared by the paths
	for _, p := range paths {
		b, ok, err := r.file(c.TreeHash, trees, p)
		if err != nil {
			return gitops.Snapshot{}, fmt.Errorf("%s: %w", p, err)
		}
		if ok {
			snap.Files[p] = b
		}
	}
	return snap, nil
}

// file returns the content of the regular file at path in the tree root, or
// false when there is none. trees caches the trees read so far by directory.
func (r *Repo) file(root plumbing.Hash, trees map[string]*object.Tree, path string) ([]byte, bool, error) {
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	t, err := r.dirTree(root, trees, dir)
	if t == nil || err != nil {
		return nil, false, err
	}
	e := entry(t, name)
	if e == nil || !e.Mode.IsFile() || e.Mode == filemode.Symlink {
		return nil, false, nil
	}
	b, err := r.blob(e.Hash)
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// blob reads the content of blob h; r.mu must be held.
func (r *Repo) blob(h plumbing.Hash) ([]byte, error) {
	o, err := r.object(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return b, nil
}

// dirTree returns the tree at directory dir ("" for the root), or nil when
// there is no such directory.
func (r *Repo) dirTree(root plumbing.Hash, trees map[string]*object.Tree, dir string) (*object.Tree, error) {
	if t, ok := trees[dir]; ok {
		return t, nil
	}
	h := root
	if dir != "" {
		parentDir, name := "", dir
		if i := strings.LastIndexByte(dir, '/'); i >= 0 {
			parentDir, name = dir[:i], dir[i+1:]
		}
		parent, err := r.dirTree(root, trees, parentDir)
		if parent == nil || err != nil {
			trees[dir] = nil
			return nil, err
		}
		e := entry(parent, name)
		if e == nil || e.Mode != filemode.Dir {
			trees[dir] = nil
			return nil, nil
		}
		h = e.Hash
	}
	t, err := r.tree(h)
	if err != nil {
		return nil, err
	}
	trees[dir] = t
	return t, nil
}

// entry returns the entry called name in t, or nil.
func entry(t *object.Tree, name string) *object.TreeEntry {
	for i := range t.Entries {
		if t.Entries[i].Name == name {
			return &t.Entries[i]
		}
	}
	return nil
}

// WriteCommit writes the blobs, trees and commit of c as loose objects and
// returns the commit's SHA, as [gitops.Repo] describes; only the trees along
// the changed paths are rebuilt. An empty BaseTree starts from the empty tree,
// a zero Committer is the Author, and a zero When is the current time.
func (r *Repo) WriteCommit(ctx context.Context, c gitops.NewCommit) (string, error) {
	sha, _, err := r.WriteCommitTree(ctx, c)
	return sha, err
}

// WriteCommitTree implements [gitops.TreeWriter]: [Repo.WriteCommit], which
// also returns the new commit's root tree.
func (r *Repo) WriteCommitTree(ctx context.Context, c gitops.NewCommit) (commit, tree string, err error) {
	h, root, err := r.writeCommit(ctx, c)
	if err != nil {
		return "", "", fmt.Errorf("local: write commit: %w", err)
	}
	return h.String(), root.String(), nil
}

// writeCommit returns the new commit and its root tree.
func (r *Repo) writeCommit(ctx context.Context, c gitops.NewCommit) (plumbing.Hash, plumbing.Hash, error) {
	if err := ctx.Err(); err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, err
	}
	edit, err := newDirEdit(c.Files)
	if err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, err
	}
	var base plumbing.Hash
	if c.BaseTree != "" {
		if base, err = parseHash(c.BaseTree); err != nil {
			return plumbing.ZeroHash, plumbing.ZeroHash, fmt.Errorf("%w: base tree: %w", gitops.ErrInvalid, err)
		}
	}
	parents := make([]plumbing.Hash, 0, len(c.Parents))
	for _, p := range c.Parents {
		h, err := parseHash(p)
		if err != nil {
			return plumbing.ZeroHash, plumbing.ZeroHash, fmt.Errorf("%w: parent: %w", gitops.ErrInvalid, err)
		}
		parents = append(parents, h)
	}

	now := r.now()
	author, committer := signature(c.Author, now), signature(c.Committer, now)
	if c.Committer == (gitops.Signature{}) {
		committer = author
	}
	var h, root plumbing.Hash
	var written []plumbing.Hash
	err = r.withObjects(ctx, func() error {
		r.written = r.written[:0]
		defer func() { written = slices.Clone(r.written); r.written = r.written[:0] }()
		for _, p := range parents {
			if _, err := r.commit(p); err != nil {
				return fmt.Errorf("parent: %w", err)
			}
		}
		var baseTree *object.Tree
		if !base.IsZero() {
			var err error
			if baseTree, err = r.tree(base); err != nil {
				return fmt.Errorf("base tree: %w", err)
			}
		}
		var err error
		if root, err = r.writeTree(baseTree, edit); err != nil {
			return err
		}
		commit := &object.Commit{
			Author:       author,
			Committer:    committer,
			Message:      c.Message,
			TreeHash:     root,
			ParentHashes: parents,
		}
		o := r.st.NewEncodedObject()
		if err := commit.Encode(o); err != nil {
			return fmt.Errorf("encode commit: %w", err)
		}
		h, err = r.put(o)
		return err
	})
	if err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, err
	}
	if err := r.syncLoose(written); err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, err
	}
	return h, root, nil
}

// syncLoose makes the loose objects hs durable, with the directories that
// name them, so that a branch moved to a commit afterwards never points at
// an object a crash lost. One syncfs(2) of the file system holding them does
// it: a commit writes about eight objects in as many directories, and one
// flush costs a quarter of syncing each file and directory (about 1 ms
// against 4 ms on ext4). Where syncfs is missing, each object file, each
// objects/xx directory once, then objects/ are synced. (Linux before 5.8
// does not report a write-back error through syncfs.) An object that is not
// loose (it was in a pack) is durable already.
func (r *Repo) syncLoose(hs []plumbing.Hash) error {
	objects := filepath.Join(r.gitDir, "objects")
	var paths, dirs []string
	for _, h := range hs {
		hex := h.String()
		dir := filepath.Join(objects, hex[:2])
		if _, err := os.Lstat(filepath.Join(dir, hex[2:])); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		paths = append(paths, filepath.Join(dir, hex[2:]))
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	switch err := r.syncObjects(); {
	case err == nil:
		return nil
	case !errors.Is(err, errNoSyncfs):
		return err
	}
	for _, p := range append(append(paths, dirs...), objects) {
		if err := syncPath(p); err != nil {
			return fmt.Errorf("sync object: %w", err)
		}
		r.synced(p)
	}
	return nil
}

func (r *Repo) synced(path string) {
	if r.syncedHook != nil {
		r.syncedHook(path)
	}
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func signature(s gitops.Signature, now time.Time) object.Signature {
	if s.When.IsZero() {
		s.When = now
	}
	return object.Signature{Name: s.Name, Email: s.Email, When: s.When}
}

// MoveBranch points branch at to only if it still points at from, as
// [gitops.Repo] describes. It follows git's ref-locking protocol: it creates
// refs/heads/<branch>.lock exclusively, compares the ref's current value
// (loose, else packed) with from, writes to into the lock file, appends to
// the branch's reflog when it has one, and renames the lock file onto the
// ref. to must be a commit in the repository.
//
// A lock another process holds (git, or another pinroll) is left alone and
// waited for briefly (250 ms); a lock still there then — most likely left by
// a crashed git — is reported by its path, as a transient error that is not
// ErrConflict: reading the branch again cannot help while the lock stays.
func (r *Repo) MoveBranch(ctx context.Context, branch, from, to string) error {
	ref := "refs/heads/" + branch
	if err := r.moveBranch(ctx, ref, branch, from, to); err != nil {
		return fmt.Errorf("local: move %s: %w", ref, err)
	}
	return nil
}

func (r *Repo) moveBranch(ctx context.Context, ref, branch, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkBranch(branch); err != nil {
		return err
	}
	fromHash, err := parseHash(from)
	if err != nil {
		return fmt.Errorf("%w: from: %w", gitops.ErrInvalid, err)
	}
	toHash, err := parseHash(to)
	if err != nil {
		return fmt.Errorf("%w: to: %w", gitops.ErrInvalid, err)
	}
	var c *object.Commit
	err = r.withObjects(ctx, func() error {
		var err error
		c, err = r.commit(toHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("to: %w", err)
	}
	return r.lockRetry().Do(ctx, func(int) error {
		r.refMu.Lock()
		defer r.refMu.Unlock()
		err := r.casRef(ref, fromHash.String(), toHash.String(), c.Committer)
		if errors.Is(err, errLocked) {
			return retry.Again(err)
		}
		if err != nil {
			return err
		}
		// Best effort: the branch has moved; a work tree with local changes
		// (or a git command holding the index) is left as it is, and people
		// are told.
		if err := r.syncWorkTree(branch, fromHash, toHash); err != nil {
			r.log.Warn("work tree not updated after moving the checked-out branch", "work_tree", r.workTree, "branch", branch, "reason", err.Error())
		}
		return nil
	})
}

// lockRetry waits for another process's lock on a ref (a git push or
// update-ref: milliseconds) for at most r.lockWait.
func (r *Repo) lockRetry() retry.Policy {
	return retry.Policy{Attempts: 100, Base: 5 * time.Millisecond, Max: 50 * time.Millisecond, Within: r.lockWait}
}

// commit reads the commit h.
func (r *Repo) commit(h plumbing.Hash) (*object.Commit, error) {
	o, err := r.object(plumbing.CommitObject, h)
	if err != nil {
		return nil, err
	}
	c, err := object.DecodeCommit(r.st, o)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	return c, nil
}

// tree reads the tree h.
func (r *Repo) tree(h plumbing.Hash) (*object.Tree, error) {
	o, err := r.object(plumbing.TreeObject, h)
	if err != nil {
		return nil, err
	}
	t, err := object.DecodeTree(r.st, o)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	return t, nil
}

// objectRetry bounds the retries of an object read that failed the way a
// concurrent git gc or repack can make it fail: ~150 ms in all, as git does.
var objectRetry = retry.Policy{Attempts: 5, Base: 10 * time.Millisecond, Within: 300 * time.Millisecond}

// withObjects runs fn, which reads or writes objects, holding r.mu. When an
// object read failed in a way a concurrent repack explains (see object), it
// runs fn again a few times, waiting in between with r.mu released.
func (r *Repo) withObjects(ctx context.Context, fn func() error) error {
	return objectRetry.Do(ctx, func(int) error {
		r.mu.Lock()
		err := fn()
		r.mu.Unlock()
		if errors.Is(err, errRepack) {
			return retry.Again(err)
		}
		return err
	})
}

// errRepack marks an object read that failed otherwise than by not finding
// the object: most likely a pack a concurrent git gc or repack deleted after
// go-git listed it, which another look finds in the new pack.
var errRepack = errors.New("object unreadable, perhaps moved by a concurrent repack")

// object reads the object h of type t; r.mu must be held.
//
// go-git's object storage reads the index of every pack once and keeps it:
// loose objects written since are found (they are looked up by path), but a
// pack written since (by git receive-pack, git gc or git repack) is not, and a
// pack deleted since (by git gc) fails the lookup. So on a failure the index
// is dropped and the lookup tried once more at once. Git writes a repack's
// new pack before it deletes the objects it replaces, so an object still not
// found then does not exist: ErrNotFound, without waiting. Any other failure
// wraps errRepack, for withObjects to retry after a wait.
func (r *Repo) object(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o, err := r.st.EncodedObject(t, h)
	if err != nil {
		r.st.Reindex()
		o, err = r.st.EncodedObject(t, h)
	}
	switch {
	case err == nil:
		return o, nil
	case errors.Is(err, plumbing.ErrObjectNotFound):
		return nil, fmt.Errorf("%s %s: %w", t, h, gitops.ErrNotFound)
	default:
		return nil, fmt.Errorf("%s %s: %w: %w", t, h, errRepack, err)
	}
}

// put writes o unless the repository has it already; r.mu must be held.
func (r *Repo) put(o plumbing.EncodedObject) (plumbing.Hash, error) {
	r.written = append(r.written, o.Hash())
	if r.st.HasEncodedObject(o.Hash()) == nil {
		return o.Hash(), nil
	}
	// git prune-packed (run by git gc and git repack -d) removes empty
	// objects/xx directories; one may go between go-git creating it and
	// renaming the object into it. Git retries such a write; so do we.
	var err error
	for range 3 {
		var h plumbing.Hash
		if h, err = r.st.SetEncodedObject(o); err == nil {
			return h, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("write %s %s: %w", o.Type(), o.Hash(), err)
}

// parseHash parses a full hexadecimal object name.
func parseHash(s string) (plumbing.Hash, error) {
	if len(s) != 40 || !isHex(s) {
		return plumbing.ZeroHash, fmt.Errorf("%q is not a 40-hex object name", s)
	}
	return plumbing.NewHash(s), nil
}

func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
