package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pinroll/pinroll/internal/gitops"
)

// readRef returns the object name ref points at, or "" when it does not
// exist. Like git, it reads the loose ref file first and falls back to
// packed-refs; it never caches.
func (r *Repo) readRef(ref string) (string, error) {
	b, err := os.ReadFile(r.refPath(ref))
	if err == nil {
		return parseLooseRef(ref, b)
	}
	// A directory in the way (refs/heads/a when refs/heads/a/b exists) or a
	// file in the way (refs/heads/a/b when refs/heads/a exists) means there
	// is no loose ref, as does a missing file.
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.ENOTDIR) {
		return "", fmt.Errorf("read ref: %w", err)
	}
	return r.readPackedRef(ref)
}

// parseLooseRef parses the content of a loose ref file.
func parseLooseRef(ref string, b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, "ref:") {
		return "", fmt.Errorf("%s is a symbolic ref (%s): not supported", ref, s)
	}
	h, err := parseHash(s)
	if err != nil {
		return "", fmt.Errorf("malformed ref file: %w", err)
	}
	return h.String(), nil
}

// readPackedRef looks ref up in packed-refs, git's file of refs without a
// loose file: an optional "# pack-refs with: …" header, then one
// "<sha> <refname>" line per ref, each optionally followed by a "^<sha>" line
// giving the object an annotated tag peels to.
func (r *Repo) readPackedRef(ref string) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.gitDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read packed-refs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		sha, name, ok := strings.Cut(line, " ")
		if !ok || name != ref {
			continue
		}
		h, err := parseHash(sha)
		if err != nil {
			return "", fmt.Errorf("packed-refs: %s: %w", ref, err)
		}
		return h.String(), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read packed-refs: %w", err)
	}
	return "", nil
}

// errLocked marks a ref whose lock file another process holds.
var errLocked = errors.New("ref locked")

// lockedError says that the lock file of a ref exists, and what to do about
// it. It is transient (a retry may succeed), not a compare-and-swap conflict:
// retrying the compare cannot help while the lock stays.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return e.path + " exists: another git process is writing, or one crashed; remove it if no git process is running"
}

func (e *lockedError) Unwrap() error { return errLocked }

// casRef points ref at to if it points at from, holding git's lock on it; who
// is the identity recorded in the reflog.
//
// This is git's own protocol (refs/files-backend.c): whoever creates
// <ref>.lock with O_EXCL owns the ref until the lock file is renamed onto it
// (commit) or removed (roll back). git receive-pack, update-ref and pack-refs
// all take that lock before they look at or change the ref, so holding it
// while comparing and writing makes the move atomic with respect to them.
func (r *Repo) casRef(ref, from, to string, who object.Signature) (err error) {
	path := r.refPath(ref)
	lockPath := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	lock, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		// Somebody (git, or another pinroll) is updating the ref, or
		// crashed doing so. Their lock is theirs to remove, even if it
		// looks stale: git never steals one.
		return &lockedError{path: lockPath}
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			lock.Close() // may already be closed; the error is of no interest then
			if rmErr := os.Remove(lockPath); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove lock: %w", rmErr))
			}
		}
	}()

	cur, err := r.readRef(ref)
	if err != nil {
		return err
	}
	if cur != from {
		if cur == "" {
			return fmt.Errorf("%w: the branch no longer exists, want it at %s", gitops.ErrConflict, from)
		}
		return fmt.Errorf("%w: the branch is at %s, not %s", gitops.ErrConflict, cur, from)
	}
	if r.lockedHook != nil {
		r.lockedHook(ref)
	}

	if _, err := lock.WriteString(to + "\n"); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	if err := lock.Sync(); err != nil {
		return fmt.Errorf("sync lock: %w", err)
	}
	if err := lock.Close(); err != nil {
		return fmt.Errorf("close lock: %w", err)
	}
	// Like git, log the update while still holding the lock, then commit.
	if err := r.appendReflog(ref, from, to, who); err != nil {
		return err
	}
	if err := os.Rename(lockPath, path); err != nil {
		return fmt.Errorf("commit lock: %w", err)
	}
	committed = true
	return nil
}

// appendReflog appends a line for the update of ref to its reflog, if it
// has one (git creates them in non-bare repositories by default).
func (r *Repo) appendReflog(ref, from, to string, who object.Signature) error {
	path := filepath.Join(r.gitDir, "logs", filepath.FromSlash(ref))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reflog: %w", err)
	}
	now := r.now()
	line := fmt.Sprintf("%s %s %s <%s> %d %s\tpinroll: move branch\n",
		from, to, sanitizeIdent(who.Name), sanitizeIdent(who.Email), now.Unix(), now.Format("-0700"))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("reflog: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("reflog: %w", err)
	}
	return nil
}

// sanitizeIdent drops the characters that would break a reflog line.
func sanitizeIdent(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '<', '>', '\n', '\r', '\t', 0:
			return -1
		}
		return r
	}, s)
}

// refPath is the loose file of ref.
func (r *Repo) refPath(ref string) string {
	return filepath.Join(r.gitDir, filepath.FromSlash(ref))
}

// checkBranch checks a branch name by git's rules; see [gitops.CheckBranch].
func checkBranch(b string) error { return gitops.CheckBranch(b) }
