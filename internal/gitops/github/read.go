package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// readQuery builds the one query a Read needs: the repository's node ID (for
// MoveBranch), the branch tip and, at that very commit, each path as alias
// fN. Paths travel as variables, never spliced into the query text.
func readQuery(n int) string {
	var b strings.Builder
	b.WriteString("query PinrollRead($owner: String!, $name: String!, $ref: String!")
	for i := range n {
		fmt.Fprintf(&b, ", $p%d: String!", i)
	}
	b.WriteString(`) {
  repository(owner: $owner, name: $name) {
    id
    ref(qualifiedName: $ref) {
      target {
        __typename
        ... on Commit {
          oid
          message
          tree { oid }
          parents(first: 100) { totalCount nodes { oid } }
          author { name email date }
`)
	for i := range n {
		fmt.Fprintf(&b, "          f%d: file(path: $p%d) { type oid object { ... on Blob { text isBinary isTruncated byteSize } } }\n", i, i)
	}
	b.WriteString("        }\n      }\n    }\n  }\n}\n")
	return b.String()
}

type readTarget struct {
	Typename string `json:"__typename"`
	OID      string `json:"oid"`
	Message  string `json:"message"`
	Tree     struct {
		OID string `json:"oid"`
	} `json:"tree"`
	Parents struct {
		TotalCount int `json:"totalCount"`
		Nodes      []struct {
			OID string `json:"oid"`
		} `json:"nodes"`
	} `json:"parents"`
	Author *struct {
		Name  string `json:"name"`
		Email string `json:"email"`
		Date  string `json:"date"`
	} `json:"author"`
}

type fileEntry struct {
	Type   string `json:"type"`
	OID    string `json:"oid"`
	Object *struct {
		Text        *string `json:"text"`
		IsBinary    *bool   `json:"isBinary"`
		IsTruncated bool    `json:"isTruncated"`
		ByteSize    int     `json:"byteSize"`
	} `json:"object"`
}

// Read implements [gitops.Repo]: one GraphQL query for the tip and every
// path's text at it. A binary or truncated file (rare in a GitOps repo) costs
// one more REST call each, for its blob.
func (r *Repo) Read(ctx context.Context, branch string, paths ...string) (gitops.Snapshot, error) {
	s, err := r.read(ctx, branch, paths)
	if err != nil {
		return gitops.Snapshot{}, scrub(fmt.Errorf("github: read %s@%s: %w", r, branch, err), r.secrets)
	}
	return s, nil
}

func (r *Repo) read(ctx context.Context, branch string, paths []string) (gitops.Snapshot, error) {
	ref, err := refName(branch)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	uniq := make([]string, 0, len(paths))
	seen := map[string]bool{}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return gitops.Snapshot{}, err
		}
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	vars := map[string]any{"owner": r.owner, "name": r.name, "ref": ref}
	for i, p := range uniq {
		vars[fmt.Sprintf("p%d", i)] = p
	}
	var data struct {
		Repository *struct {
			ID  string `json:"id"`
			Ref *struct {
				Target json.RawMessage `json:"target"`
			} `json:"ref"`
		} `json:"repository"`
	}
	reqID, gerrs, err := r.graphql(ctx, readQuery(len(uniq)), vars, &data)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	if gerrs != nil {
		if gerrs.has("NOT_FOUND") && data.Repository == nil {
			return gitops.Snapshot{}, fmt.Errorf("repository not found (it does not exist, or the credentials cannot see it): %w", gerrs)
		}
		return gitops.Snapshot{}, gerrs
	}
	if data.Repository == nil {
		return gitops.Snapshot{}, fmt.Errorf("repository not found (it does not exist, or the credentials cannot see it) (X-GitHub-Request-Id %s)", reqID)
	}
	r.setRepoID(data.Repository.ID)
	if data.Repository.Ref == nil || len(data.Repository.Ref.Target) == 0 || string(data.Repository.Ref.Target) == "null" {
		return gitops.Snapshot{}, fmt.Errorf("branch %q: %w (X-GitHub-Request-Id %s)", branch, gitops.ErrNotFound, reqID)
	}
	var t readTarget
	if err := json.Unmarshal(data.Repository.Ref.Target, &t); err != nil {
		return gitops.Snapshot{}, fmt.Errorf("decode branch tip: %w", err)
	}
	if t.Typename != "Commit" {
		return gitops.Snapshot{}, fmt.Errorf("branch %q points at a %s, not a commit", branch, t.Typename)
	}
	if t.Parents.TotalCount > len(t.Parents.Nodes) {
		return gitops.Snapshot{}, fmt.Errorf("commit %s has %d parents, more than pinroll reads", short(t.OID), t.Parents.TotalCount)
	}
	c := gitops.Commit{SHA: t.OID, Tree: t.Tree.OID, Message: t.Message}
	for _, p := range t.Parents.Nodes {
		c.Parents = append(c.Parents, p.OID)
	}
	if t.Author != nil {
		c.Author = gitops.Signature{Name: t.Author.Name, Email: t.Author.Email}
		if t.Author.Date != "" {
			when, err := time.Parse(time.RFC3339, t.Author.Date)
			if err != nil {
				return gitops.Snapshot{}, fmt.Errorf("commit %s: author date %q: %w", short(t.OID), t.Author.Date, err)
			}
			c.Author.When = when
		}
	}
	if !isSHA(c.SHA) || !isSHA(c.Tree) {
		return gitops.Snapshot{}, fmt.Errorf("branch %q: answer lacks the commit or tree oid", branch)
	}

	files, err := r.aliasedFiles(ctx, c, uniq, data.Repository.Ref.Target)
	if err != nil {
		return gitops.Snapshot{}, err
	}
	return gitops.Snapshot{Commit: c, Files: files}, nil
}

// aliasedFiles decodes the files a query asked for under the aliases f0, f1,
// … (one per path, in order) from raw, the object that holds them, reading
// each one's content; a path absent at commit c is left out.
func (r *Repo) aliasedFiles(ctx context.Context, c gitops.Commit, paths []string, raw json.RawMessage) (map[string][]byte, error) {
	var aliases map[string]json.RawMessage
	if err := json.Unmarshal(raw, &aliases); err != nil {
		return nil, fmt.Errorf("decode files: %w", err)
	}
	files := make(map[string][]byte, len(paths))
	for i, p := range paths {
		f := aliases[fmt.Sprintf("f%d", i)]
		if len(f) == 0 || string(f) == "null" {
			continue // absent at this commit
		}
		var e fileEntry
		if err := json.Unmarshal(f, &e); err != nil {
			return nil, fmt.Errorf("decode %s: %w", p, err)
		}
		b, err := r.fileContent(ctx, p, e)
		if err != nil {
			return nil, fmt.Errorf("%s at %s: %w", p, short(c.SHA), err)
		}
		files[p] = b
	}
	return files, nil
}

// fileContent returns a file's bytes from the read's answer, or from the
// blob API when GraphQL could not carry them exactly (binary, truncated, or
// text whose byte size does not match).
func (r *Repo) fileContent(ctx context.Context, path string, e fileEntry) ([]byte, error) {
	switch e.Type {
	case "blob":
	case "tree":
		return nil, errors.New("is a directory, not a file")
	case "commit":
		return nil, errors.New("is a submodule, not a file")
	default:
		return nil, fmt.Errorf("unexpected tree entry type %q", e.Type)
	}
	o := e.Object
	if o != nil && o.Text != nil && !o.IsTruncated && (o.IsBinary == nil || !*o.IsBinary) && len(*o.Text) == o.ByteSize {
		return []byte(*o.Text), nil
	}
	if !isSHA(e.OID) {
		return nil, errors.New("answer lacks the blob oid")
	}
	var b []byte
	err := r.restCall(ctx, func() (*ghResponse, error) {
		var resp *ghResponse
		var err error
		b, resp, err = r.rest.Git.GetBlobRaw(ctx, r.owner, r.name, e.OID)
		return resp, err
	})
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", short(e.OID), err)
	}
	return b, nil
}

func (r *Repo) setRepoID(id string) {
	if id == "" {
		return
	}
	r.mu.Lock()
	r.repoID = id
	r.mu.Unlock()
}

// repositoryID returns the repository's node ID, querying it only if no read
// has cached it yet.
func (r *Repo) repositoryID(ctx context.Context) (string, error) {
	r.mu.Lock()
	id := r.repoID
	r.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var data struct {
		Repository *struct {
			ID string `json:"id"`
		} `json:"repository"`
	}
	reqID, gerrs, err := r.graphql(ctx, `query PinrollRepositoryID($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) { id }
}`, map[string]any{"owner": r.owner, "name": r.name}, &data)
	if err != nil {
		return "", err
	}
	if data.Repository == nil || data.Repository.ID == "" {
		if gerrs != nil {
			return "", fmt.Errorf("repository not found: %w", gerrs)
		}
		return "", fmt.Errorf("repository not found (X-GitHub-Request-Id %s)", reqID)
	}
	r.setRepoID(data.Repository.ID)
	return data.Repository.ID, nil
}

// queryRepository runs query, whose answer is {"repository": {...}}, and
// decodes that object into repo; it returns GitHub's request id. It fails on
// GraphQL errors and when the repository is missing, and caches the
// repository's node ID when the query selected it.
func (r *Repo) queryRepository(ctx context.Context, query string, vars map[string]any, repo any) (string, error) {
	var data struct {
		Repository json.RawMessage `json:"repository"`
	}
	reqID, gerrs, err := r.graphql(ctx, query, vars, &data)
	if err != nil {
		return reqID, err
	}
	if gerrs != nil {
		return reqID, gerrs
	}
	if len(data.Repository) == 0 || string(data.Repository) == "null" {
		return reqID, fmt.Errorf("repository not found (X-GitHub-Request-Id %s)", reqID)
	}
	var id struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data.Repository, &id) == nil && id.ID != "" {
		r.setRepoID(id.ID)
	}
	if err := json.Unmarshal(data.Repository, repo); err != nil {
		return reqID, fmt.Errorf("decode GraphQL answer (X-GitHub-Request-Id %s): %w", reqID, err)
	}
	return reqID, nil
}

// refOID returns where branch points now ("" if it does not exist).
func (r *Repo) refOID(ctx context.Context, ref string) (string, error) {
	var repo struct {
		Ref *struct {
			Target *struct {
				OID string `json:"oid"`
			} `json:"target"`
		} `json:"ref"`
	}
	_, err := r.queryRepository(ctx, `query PinrollRef($owner: String!, $name: String!, $ref: String!) {
  repository(owner: $owner, name: $name) { id ref(qualifiedName: $ref) { target { oid } } }
}`, map[string]any{"owner": r.owner, "name": r.name, "ref": ref}, &repo)
	if err != nil {
		return "", err
	}
	if repo.Ref == nil || repo.Ref.Target == nil {
		return "", nil
	}
	return repo.Ref.Target.OID, nil
}

// refName is the fully qualified name of a branch; see [gitops.CheckBranch].
func refName(branch string) (string, error) {
	b := strings.TrimPrefix(branch, "refs/heads/")
	if err := gitops.CheckBranch(b); err != nil {
		return "", err
	}
	return "refs/heads/" + b, nil
}

// checkPath accepts clean, relative, slash-separated paths; see
// [gitops.CheckPath].
func checkPath(p string) error { return gitops.CheckPath(p) }

func isSHA(s string) bool {
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

// sortedPaths returns m's keys in order.
func sortedPaths(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
