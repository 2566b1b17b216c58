package github

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v62/github"

	"github.com/pinroll/pinroll/internal/gitops"
)

type ghResponse = gh.Response

// zeroOID is the "no object" oid of updateRefs: as beforeOid it means the
// ref must not exist yet.
const zeroOID = "0000000000000000000000000000000000000000"

// WriteCommit implements [gitops.Repo] with the Git Data API: one CreateTree
// carrying every file inline on c.BaseTree, then one CreateCommit. A file
// that is not valid UTF-8 cannot travel inline and costs one CreateBlob.
func (r *Repo) WriteCommit(ctx context.Context, c gitops.NewCommit) (string, error) {
	sha, _, err := r.WriteCommitTree(ctx, c)
	return sha, err
}

// WriteCommitTree implements [gitops.TreeWriter]: [Repo.WriteCommit], which
// also returns the new commit's root tree (CreateTree's answer).
func (r *Repo) WriteCommitTree(ctx context.Context, c gitops.NewCommit) (commit, tree string, err error) {
	commit, tree, err = r.writeCommit(ctx, c)
	if err != nil {
		return "", "", scrub(fmt.Errorf("github: write commit to %s: %w", r, err), r.secrets)
	}
	return commit, tree, nil
}

func (r *Repo) writeCommit(ctx context.Context, c gitops.NewCommit) (string, string, error) {
	if c.BaseTree != "" && !isSHA(c.BaseTree) {
		return "", "", fmt.Errorf("%w: base tree %q is not a SHA", gitops.ErrInvalid, c.BaseTree)
	}
	for _, p := range c.Parents {
		if !isSHA(p) {
			return "", "", fmt.Errorf("%w: parent %q is not a SHA", gitops.ErrInvalid, p)
		}
	}
	tree := c.BaseTree
	if len(c.Files) > 0 {
		var entries []*gh.TreeEntry
		for _, p := range sortedPaths(c.Files) {
			if err := checkPath(p); err != nil {
				return "", "", err
			}
			e := &gh.TreeEntry{Path: gh.String(p), Mode: gh.String("100644"), Type: gh.String("blob")}
			if b := c.Files[p]; utf8.Valid(b) {
				e.Content = gh.String(string(b))
			} else {
				sha, err := r.createBlob(ctx, b)
				if err != nil {
					return "", "", fmt.Errorf("create blob for %s: %w", p, err)
				}
				e.SHA = gh.String(sha)
			}
			entries = append(entries, e)
		}
		var t *gh.Tree
		err := r.restCall(ctx, func() (*ghResponse, error) {
			var resp *ghResponse
			var err error
			t, resp, err = r.rest.Git.CreateTree(ctx, r.owner, r.name, c.BaseTree, entries)
			return resp, err
		})
		if err != nil {
			what := "create tree"
			if c.BaseTree != "" {
				what += " on base tree " + short(c.BaseTree)
			}
			return "", "", fmt.Errorf("%s for %s: %w", what, strings.Join(sortedPaths(c.Files), ", "), err)
		}
		tree = t.GetSHA()
	}
	if !isSHA(tree) {
		return "", "", errors.New("nothing to commit: no base tree and no files")
	}

	commit := &gh.Commit{
		Message:   gh.String(c.Message),
		Tree:      &gh.Tree{SHA: gh.String(tree)},
		Author:    signature(c.Author),
		Committer: signature(c.Committer),
	}
	for _, p := range c.Parents {
		commit.Parents = append(commit.Parents, &gh.Commit{SHA: gh.String(p)})
	}
	var out *gh.Commit
	err := r.restCall(ctx, func() (*ghResponse, error) {
		var resp *ghResponse
		var err error
		out, resp, err = r.rest.Git.CreateCommit(ctx, r.owner, r.name, commit, nil)
		return resp, err
	})
	if err != nil {
		return "", "", fmt.Errorf("create commit on tree %s with parents %s: %w", short(tree), shorts(c.Parents), err)
	}
	if !isSHA(out.GetSHA()) {
		return "", "", errors.New("create commit: answer lacks the commit SHA")
	}
	return out.GetSHA(), tree, nil
}

func (r *Repo) createBlob(ctx context.Context, b []byte) (string, error) {
	var out *gh.Blob
	err := r.restCall(ctx, func() (*ghResponse, error) {
		var resp *ghResponse
		var err error
		out, resp, err = r.rest.Git.CreateBlob(ctx, r.owner, r.name, &gh.Blob{
			Content:  gh.String(base64.StdEncoding.EncodeToString(b)),
			Encoding: gh.String("base64"),
		})
		return resp, err
	})
	if err != nil {
		return "", err
	}
	return out.GetSHA(), nil
}

// signature is the commit author or committer GitHub should record; nil
// (GitHub's default: the authenticated user, now) when s is empty.
func signature(s gitops.Signature) *gh.CommitAuthor {
	if s.Name == "" && s.Email == "" && s.When.IsZero() {
		return nil
	}
	a := &gh.CommitAuthor{Name: gh.String(s.Name), Email: gh.String(s.Email)}
	if !s.When.IsZero() {
		a.Date = &gh.Timestamp{Time: s.When.Truncate(time.Second)}
	}
	return a
}

// MoveBranch implements [gitops.Repo] with one GraphQL updateRefs:
// beforeOid = from makes it a compare-and-swap, force allows an amend (not a
// fast-forward). An empty from creates the branch (it must not exist yet).
// A STALE_DATA refusal of a move this Repo never sent before, sent once, is
// a lost race (ErrConflict) at once: nothing of it can have landed, and the
// caller's next read is the only re-read. Any other refusal — a retried
// send, a repeated call — costs one more query, which tells a lost race from
// an update that had already landed (success) and from anything else.
func (r *Repo) MoveBranch(ctx context.Context, branch, from, to string) error {
	if err := r.moveBranch(ctx, branch, from, to); err != nil {
		return scrub(fmt.Errorf("github: move %s@%s from %s to %s: %w", r, branch, short(from), short(to), err), r.secrets)
	}
	return nil
}

func (r *Repo) moveBranch(ctx context.Context, branch, from, to string) error {
	ref, err := refName(branch)
	if err != nil {
		return err
	}
	before := from
	if before == "" {
		before = zeroOID
	}
	if !isSHA(before) || !isSHA(to) {
		return fmt.Errorf("%w: want 40-hex SHAs, got %q and %q", gitops.ErrInvalid, from, to)
	}
	id, err := r.repositoryID(ctx)
	if err != nil {
		return fmt.Errorf("look up repository id: %w", err)
	}
	input := map[string]any{
		"repositoryId": id,
		"refUpdates": []map[string]any{{
			"name": ref, "beforeOid": before, "afterOid": to, "force": true,
		}},
	}
	var data struct {
		UpdateRefs *struct {
			ClientMutationID *string `json:"clientMutationId"`
		} `json:"updateRefs"`
	}
	again := r.sending(ref, to)
	// Calls counts every HTTP request of this Repo: one more means this
	// mutation went out once, and nothing else ran meanwhile.
	calls := r.Calls()
	reqID, gerrs, err := r.graphql(ctx, `mutation PinrollMoveBranch($input: UpdateRefsInput!) {
  updateRefs(input: $input) { clientMutationId }
}`, map[string]any{"input": input}, &data)
	if err != nil {
		return err
	}
	sentOnce := r.Calls() == calls+1
	if gerrs == nil && data.UpdateRefs != nil {
		return nil
	}
	if gerrs == nil {
		gerrs = &gqlErrors{errs: []gqlError{{Message: "updateRefs answered null without errors"}}, requestID: reqID}
	}
	if gerrs.has("NOT_FOUND") {
		r.setRepoID("") // a stale node ID (renamed or transferred repository) is re-read next time
	}
	if sentOnce && !again && gerrs.has("STALE_DATA") {
		return fmt.Errorf("%w: %w", gitops.ErrConflict, gerrs)
	}
	// GitHub refused: see where the branch is now.
	cur, verr := r.refOID(ctx, ref)
	switch {
	case verr != nil && gerrs.has("STALE_DATA"):
		return fmt.Errorf("%w: %w", gitops.ErrConflict, gerrs)
	case verr != nil:
		return fmt.Errorf("%w (and checking the branch failed: %w)", gerrs, verr)
	case cur == to:
		r.log.InfoContext(ctx, "github branch already at the target", "branch", branch, "commit", to, "request_id", gerrs.requestID)
		return nil
	case cur != from:
		if cur == "" {
			return fmt.Errorf("%w: branch %q no longer exists: %w", gitops.ErrConflict, branch, gerrs)
		}
		return fmt.Errorf("%w: branch is now at %s: %w", gitops.ErrConflict, short(cur), gerrs)
	}
	return gerrs
}

// sending records that a move of ref to the commit to is being sent, and
// reports whether this Repo sent that very move before (whose answer may
// have been lost).
func (r *Repo) sending(ref, to string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[string]string{}
	}
	again := r.sent[ref] == to
	r.sent[ref] = to
	return again
}

// restCall runs one go-github call and turns its failure into an apiError.
// go-github refuses calls by itself while it believes the rate limit is
// spent; such a refusal is waited out once when the wait fits.
func (r *Repo) restCall(ctx context.Context, call func() (*ghResponse, error)) error {
	waits := 0
	return r.lim.policy(ctx, "REST").Do(ctx, func(int) error {
		resp, err := call()
		if err == nil {
			return nil
		}
		var rle *gh.RateLimitError
		var abuse *gh.AbuseRateLimitError
		var wait time.Duration
		switch {
		case errors.As(err, &rle):
			wait = max(rle.Rate.Reset.Time.Sub(r.lim.now())+resetSkew, 0)
		case errors.As(err, &abuse):
			wait = secondaryLimitWait
			if abuse.RetryAfter != nil {
				wait = *abuse.RetryAfter
			}
		default:
			return restError(ctx, err, resp)
		}
		err = r.lim.rateLimited(waits, wait, http.StatusForbidden, requestID(resp), "")
		waits++
		return err
	})
}

// restError classifies a go-github error.
func restError(ctx context.Context, err error, resp *ghResponse) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Message
		for _, e := range er.Errors {
			if e.Message != "" {
				msg += "; " + e.Message
			} else {
				msg += fmt.Sprintf("; %s %s", e.Field, e.Code)
			}
		}
		if msg == "" {
			msg = http.StatusText(er.Response.StatusCode)
		}
		return statusError(er.Response.StatusCode, er.Response.Header.Get("X-GitHub-Request-Id"), msg, "repository or object")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return transportError(ctx, err)
}

func requestID(resp *ghResponse) string {
	if resp == nil || resp.Response == nil {
		return ""
	}
	return resp.Header.Get("X-GitHub-Request-Id")
}

func shorts(shas []string) string {
	if len(shas) == 0 {
		return "(none)"
	}
	out := make([]string, len(shas))
	for i, s := range shas {
		out[i] = short(s)
	}
	return strings.Join(out, ", ")
}
