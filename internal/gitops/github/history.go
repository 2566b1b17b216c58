package github

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// historyPage is how many commits one history query asks for (GitHub's
// maximum for a connection).
const historyPage = 100

// commitFields selects what gitops needs of a commit, with each path asked
// for as alias fN (the paths travel as variables $pN).
func commitFields(n int, indent string) string {
	var b strings.Builder
	for _, l := range []string{
		"oid", "message", "tree { oid }",
		"parents(first: 100) { totalCount nodes { oid } }",
		"author { name email date }", "committer { name email date }",
		"signature { isValid }",
	} {
		b.WriteString(indent + l + "\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "%sf%d: file(path: $p%d) { type oid object { ... on Blob { text isBinary isTruncated byteSize } } }\n", indent, i, i)
	}
	return b.String()
}

// pathVars declares the $pN variables of commitFields.
func pathVars(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ", $p%d: String!", i)
	}
	return b.String()
}

// historyQuery reads up to $first commits of history starting at the ref
// (first page) or at the commit $oid (later pages).
func historyQuery(n int, byRef bool) string {
	start, vars := "ref(qualifiedName: $ref) { target {", "$ref: String!"
	if !byRef {
		start, vars = "object(oid: $oid) { ... on Commit {", "$oid: GitObjectID!"
	}
	return "query PinrollHistory($owner: String!, $name: String!, " + vars + ", $first: Int!" + pathVars(n) + `) {
  repository(owner: $owner, name: $name) {
    id
    ` + start + `
      ... on Commit {
        history(first: $first) {
          nodes {
` + commitFields(n, "            ") + `          }
        }
      }
    } }
  }
}
`
}

type gitActor struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Date  string `json:"date"`
}

// commitNode is a commit as commitFields selects it; the file aliases stay
// raw.
type commitNode struct {
	readTarget
	Committer *gitActor `json:"committer"`
	Signature *struct {
		IsValid bool `json:"isValid"`
	} `json:"signature"`
}

// snapshot decodes a commit node selected by commitFields.
func (r *Repo) snapshot(ctx context.Context, raw json.RawMessage, paths []string) (gitops.Snapshot, error) {
	var n commitNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return gitops.Snapshot{}, fmt.Errorf("decode commit: %w", err)
	}
	if !isSHA(n.OID) || !isSHA(n.Tree.OID) {
		return gitops.Snapshot{}, fmt.Errorf("answer lacks a commit or tree oid")
	}
	if n.Parents.TotalCount > len(n.Parents.Nodes) {
		return gitops.Snapshot{}, fmt.Errorf("commit %s has %d parents, more than pinroll reads", short(n.OID), n.Parents.TotalCount)
	}
	c := gitops.Commit{SHA: n.OID, Tree: n.Tree.OID, Message: n.Message, Signed: n.Signature != nil}
	for _, p := range n.Parents.Nodes {
		c.Parents = append(c.Parents, p.OID)
	}
	var err error
	if n.Author != nil {
		if c.Author, err = actor(gitActor(*n.Author)); err != nil {
			return gitops.Snapshot{}, fmt.Errorf("commit %s: author: %w", short(n.OID), err)
		}
	}
	if n.Committer != nil {
		if c.Committer, err = actor(*n.Committer); err != nil {
			return gitops.Snapshot{}, fmt.Errorf("commit %s: committer: %w", short(n.OID), err)
		}
	}
	files, err := r.aliasedFiles(ctx, c, paths, raw)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	return gitops.Snapshot{Commit: c, Files: files}, nil
}

// actor converts a GitActor, keeping the date's time zone (a GitTimestamp is
// not converted to UTC).
func actor(a gitActor) (gitops.Signature, error) {
	s := gitops.Signature{Name: a.Name, Email: a.Email}
	if a.Date != "" {
		t, err := time.Parse(time.RFC3339, a.Date)
		if err != nil {
			return s, fmt.Errorf("date %q: %w", a.Date, err)
		}
		s.When = t
	}
	return s, nil
}

// History implements [gitops.Repo]: one GraphQL query per 100 commits,
// carrying each commit's files. GitHub's history is git log's order, which
// is first-parent order until a merge; past a merge the walk starts a new
// page at the first parent.
func (r *Repo) History(ctx context.Context, branch string, stop func(gitops.Commit) bool, paths ...string) ([]gitops.Snapshot, error) {
	out, err := r.history(ctx, branch, stop, paths)
	if err != nil {
		return nil, scrub(fmt.Errorf("github: history of %s@%s: %w", r, branch, err), r.secrets)
	}
	return out, nil
}

func (r *Repo) history(ctx context.Context, branch string, stop func(gitops.Commit) bool, paths []string) ([]gitops.Snapshot, error) {
	ref, err := refName(branch)
	if err != nil {
		return nil, err
	}
	paths, err = uniquePaths(paths)
	if err != nil {
		return nil, err
	}
	var out []gitops.Snapshot
	next := "" // the commit the next page starts at; "" for the ref
	for {
		vars := map[string]any{"owner": r.owner, "name": r.name, "first": historyPage}
		if next == "" {
			vars["ref"] = ref
		} else {
			vars["oid"] = next
		}
		for i, p := range paths {
			vars[fmt.Sprintf("p%d", i)] = p
		}
		var repo struct {
			Ref    *historyStart
			Object *historyStart
		}
		reqID, err := r.queryRepository(ctx, historyQuery(len(paths), next == ""), vars, &repo)
		if err != nil {
			return nil, err
		}
		start := repo.Object
		if next == "" {
			start = repo.Ref
		}
		if start == nil || start.commits() == nil {
			if next == "" {
				return nil, fmt.Errorf("branch %q: %w (X-GitHub-Request-Id %s)", branch, gitops.ErrNotFound, reqID)
			}
			return nil, fmt.Errorf("commit %s: %w (X-GitHub-Request-Id %s)", short(next), gitops.ErrNotFound, reqID)
		}
		nodes := start.commits()
		if len(nodes) == 0 {
			return nil, fmt.Errorf("commit %s: empty history", short(next))
		}
		want := next
		for _, raw := range nodes {
			s, err := r.snapshot(ctx, raw, paths)
			if err != nil {
				return nil, err
			}
			if want != "" && s.Commit.SHA != want {
				break // past a merge: git log's order left the first-parent chain
			}
			out = append(out, s)
			if len(s.Commit.Parents) == 0 || (stop != nil && stop(s.Commit)) {
				return out, nil
			}
			want = s.Commit.Parents[0]
		}
		next = want
	}
}

// historyStart is the ref target or object a history page starts at.
type historyStart struct {
	Target  *historyTarget `json:"target"`
	History *historyConn   `json:"history"`
}

type historyTarget struct {
	History *historyConn `json:"history"`
}

type historyConn struct {
	Nodes []json.RawMessage `json:"nodes"`
}

func (h *historyStart) commits() []json.RawMessage {
	switch {
	case h.Target != nil && h.Target.History != nil:
		return h.Target.History.Nodes
	case h.History != nil:
		return h.History.Nodes
	}
	return nil
}

// ReadCommit implements [gitops.Repo] with one GraphQL query.
func (r *Repo) ReadCommit(ctx context.Context, sha string, paths ...string) (gitops.Snapshot, error) {
	s, err := r.readCommit(ctx, sha, paths)
	if err != nil {
		return gitops.Snapshot{}, scrub(fmt.Errorf("github: read commit %s of %s: %w", short(sha), r, err), r.secrets)
	}
	return s, nil
}

func (r *Repo) readCommit(ctx context.Context, sha string, paths []string) (gitops.Snapshot, error) {
	if !isSHA(sha) {
		return gitops.Snapshot{}, fmt.Errorf("%w: %q is not a commit SHA", gitops.ErrInvalid, sha)
	}
	paths, err := uniquePaths(paths)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	q := "query PinrollCommit($owner: String!, $name: String!, $oid: GitObjectID!" + pathVars(len(paths)) + `) {
  repository(owner: $owner, name: $name) {
    object(oid: $oid) {
      __typename
      ... on Commit {
` + commitFields(len(paths), "        ") + `      }
    }
  }
}
`
	vars := map[string]any{"owner": r.owner, "name": r.name, "oid": sha}
	for i, p := range paths {
		vars[fmt.Sprintf("p%d", i)] = p
	}
	var data struct {
		Repository *struct {
			Object json.RawMessage `json:"object"`
		} `json:"repository"`
	}
	reqID, gerrs, err := r.graphql(ctx, q, vars, &data)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	if gerrs != nil {
		return gitops.Snapshot{}, gerrs
	}
	if data.Repository == nil || len(data.Repository.Object) == 0 || string(data.Repository.Object) == "null" {
		return gitops.Snapshot{}, fmt.Errorf("commit %s: %w (X-GitHub-Request-Id %s)", short(sha), gitops.ErrNotFound, reqID)
	}
	return r.snapshot(ctx, data.Repository.Object, paths)
}

// uniquePaths checks paths and drops repeats.
func uniquePaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	seen := map[string]bool{}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}
