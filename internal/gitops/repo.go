// Package gitops plans and writes pinroll's commits (SPEC §6): the rolling
// commit that is amended while it is the branch tip, release and manual
// commits, their messages and trailers, the compare-and-swap loop that
// moves a branch, and the weekly squash ([PlanSquash], [Squasher]). It works over the small [Repo] interface; gitops/local and
// gitops/github are its two backends. It never parses YAML: callers hand it
// the new file contents.
package gitops

import (
	"context"
	"errors"
	"time"
)

// ErrConflict is returned by [Repo.MoveBranch] when the branch no longer points
// at the commit the caller read: somebody else moved it first.
var ErrConflict = errors.New("branch moved concurrently")

// ErrNotFound is returned when a branch or object does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalid marks a request that can never succeed as it is — a bad path or
// branch name, credentials the host refuses, a 4xx from GitHub — so retrying
// it needs a human first. Every other backend failure is worth a retry.
var ErrInvalid = errors.New("invalid request")

// Signature is the author or committer of a commit.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// Commit is a commit as read from a backend.
type Commit struct {
	SHA     string
	Tree    string // the SHA of the commit's root tree
	Parents []string
	Message string
	Author  Signature
	// Committer and Signed are filled by [Repo.History] and [Repo.ReadCommit].
	Committer Signature
	Signed    bool // the commit carries a signature (gpgsig)
}

// Snapshot is the tip of a branch with the files asked for.
type Snapshot struct {
	Commit Commit
	// Files maps each path asked for to its content at Commit; a path that
	// does not exist there is absent from the map.
	Files map[string][]byte
}

// NewCommit describes a commit to write: BaseTree with Files replaced (paths
// are slash-separated, relative to the repository root, and the files are
// regular non-executable blobs).
type NewCommit struct {
	BaseTree  string
	Files     map[string][]byte
	Parents   []string
	Message   string
	Author    Signature
	Committer Signature
}

// Repo is what gitops needs from a git hosting backend.
type Repo interface {
	// Read returns the tip of branch and the content of paths at that tip.
	// It returns an error wrapping ErrNotFound when the branch does not exist.
	Read(ctx context.Context, branch string, paths ...string) (Snapshot, error)
	// WriteCommit writes the tree and commit object of c and returns the new
	// commit's SHA. It does not move any ref.
	WriteCommit(ctx context.Context, c NewCommit) (string, error)
	// MoveBranch points branch at to only if it still points at from
	// (compare-and-swap; to need not descend from from). It returns an error
	// wrapping ErrConflict when the branch has moved.
	MoveBranch(ctx context.Context, branch, from, to string) error

	// History returns the first-parent history of branch, newest first, each
	// commit with the content of paths at it (absent paths absent from
	// Files). It stops after the first commit for which stop returns true,
	// or after the root commit.
	History(ctx context.Context, branch string, stop func(Commit) bool, paths ...string) ([]Snapshot, error)
	// ReadCommit returns the commit sha and the content of paths at it.
	ReadCommit(ctx context.Context, sha string, paths ...string) (Snapshot, error)
	// ListRefs returns every ref whose full name starts with prefix (such as
	// "refs/pinroll/backup/main/"), mapped to the object it points at.
	ListRefs(ctx context.Context, prefix string) (map[string]string, error)
	// UpdateRefs applies every update in one atomic compare-and-swap: all of
	// them or none. It returns an error wrapping ErrConflict when any ref is
	// not where its update expects it.
	UpdateRefs(ctx context.Context, updates []RefUpdate) error
}

// RefUpdate is one ref change of [Repo.UpdateRefs].
type RefUpdate struct {
	Ref  string // full name, such as "refs/heads/main"
	From string // the value the ref must have now; "" means it must not exist
	To   string // the new value; "" deletes the ref
}
