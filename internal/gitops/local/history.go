package local

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pinroll/pinroll/internal/gitops"
)

// History returns the first-parent history of branch with the content of
// paths at each commit, as [gitops.Repo] describes.
func (r *Repo) History(ctx context.Context, branch string, stop func(gitops.Commit) bool, paths ...string) ([]gitops.Snapshot, error) {
	out, err := r.history(ctx, branch, stop, paths)
	if err != nil {
		return nil, fmt.Errorf("local: history of refs/heads/%s: %w", branch, err)
	}
	return out, nil
}

func (r *Repo) history(ctx context.Context, branch string, stop func(gitops.Commit) bool, paths []string) ([]gitops.Snapshot, error) {
	if err := checkBranch(branch); err != nil {
		return nil, err
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	tip, err := r.readRef("refs/heads/" + branch)
	if err != nil {
		return nil, err
	}
	if tip == "" {
		return nil, fmt.Errorf("no such branch: %w", gitops.ErrNotFound)
	}
	var out []gitops.Snapshot
	h := plumbing.NewHash(tip)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var s gitops.Snapshot
		err := r.withObjects(ctx, func() (err error) {
			s, err = r.snapshot(h, paths)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if len(s.Commit.Parents) == 0 || (stop != nil && stop(s.Commit)) {
			return out, nil
		}
		h = plumbing.NewHash(s.Commit.Parents[0])
	}
}

// ReadCommit returns the commit sha with the content of paths at it, as
// [gitops.Repo] describes.
func (r *Repo) ReadCommit(ctx context.Context, sha string, paths ...string) (gitops.Snapshot, error) {
	s, err := r.readCommit(ctx, sha, paths)
	if err != nil {
		return gitops.Snapshot{}, fmt.Errorf("local: read commit %s: %w", sha, err)
	}
	return s, nil
}

func (r *Repo) readCommit(ctx context.Context, sha string, paths []string) (gitops.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return gitops.Snapshot{}, err
	}
	h, err := parseHash(sha)
	if err != nil {
		return gitops.Snapshot{}, fmt.Errorf("%w: %w", gitops.ErrInvalid, err)
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return gitops.Snapshot{}, err
		}
	}
	var s gitops.Snapshot
	err = r.withObjects(ctx, func() (err error) {
		s, err = r.snapshot(h, paths)
		return err
	})
	return s, err
}

// toCommit converts a go-git commit, keeping the dates' time zones.
func toCommit(c *object.Commit) gitops.Commit {
	out := gitops.Commit{
		SHA:       c.Hash.String(),
		Tree:      c.TreeHash.String(),
		Message:   c.Message,
		Author:    gitops.Signature{Name: c.Author.Name, Email: c.Author.Email, When: c.Author.When},
		Committer: gitops.Signature{Name: c.Committer.Name, Email: c.Committer.Email, When: c.Committer.When},
		Signed:    c.PGPSignature != "",
	}
	for _, p := range c.ParentHashes {
		out.Parents = append(out.Parents, p.String())
	}
	return out
}
