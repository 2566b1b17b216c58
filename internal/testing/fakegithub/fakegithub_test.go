package fakegithub

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	return New(t, "acme", "gitops", "main", map[string][]byte{
		"README.md":                  []byte("# hi\n"),
		"k8s/dev/kustomization.yaml": []byte("images: []\n"),
		"bin/blob":                   []byte("a\x00b"),
	})
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return m
}

func call(t *testing.T, s *Server, method, path, auth string, body any) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func gql(t *testing.T, s *Server, query string, vars map[string]any) map[string]any {
	t.Helper()
	a := call(t, s, "POST", "/graphql", "bearer "+s.Token(), map[string]any{"query": query, "variables": vars})
	if a.status != http.StatusOK {
		t.Fatalf("GraphQL answered %d: %s", a.status, a.body)
	}
	return a.json(t)
}

// dig follows keys and indexes into a decoded JSON value.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestAuthAndHeaders(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"empty bearer", "Bearer ", 401},
		{"bearer", "Bearer " + s.Token(), 200},
		{"token scheme", "token " + s.Token(), 200},
	} {
		a := call(t, s, "GET", "/repos/acme/gitops/git/ref/heads/main", tc.auth, nil)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, a.status, tc.status)
		}
		if tc.status == 401 && a.json(t)["message"] != "Bad credentials" {
			t.Errorf("%s: body %s, want Bad credentials", tc.name, a.body)
		}
		for _, h := range []string{"X-GitHub-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Used"} {
			if a.header.Get(h) == "" {
				t.Errorf("%s: no %s header", tc.name, h)
			}
		}
	}
	a := call(t, s, "POST", "/graphql", "", map[string]any{"query": "{ viewer { login } }"})
	if a.status != 401 || a.json(t)["message"] != "Bad credentials" {
		t.Errorf("GraphQL without auth: %d %s, want 401 Bad credentials", a.status, a.body)
	}
}

func TestUnknownRepository(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	if a := call(t, s, "POST", "/repos/acme/other/git/trees", "Bearer "+s.Token(), map[string]any{"tree": []any{}}); a.status != 404 {
		t.Errorf("REST on an unknown repository: %d, want 404", a.status)
	}
	m := gql(t, s, `query { repository(owner: "acme", name: "other") { id } }`, nil)
	if dig(m, "data", "repository") != nil || dig(m, "errors", 0, "type") != "NOT_FOUND" || fmt.Sprint(dig(m, "errors", 0, "path")) != "[repository]" {
		t.Errorf("GraphQL on an unknown repository: %v, want repository null and a NOT_FOUND error", m)
	}
}

func TestGitDataAPI(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	auth := "Bearer " + s.Token()
	tip := s.Log("main")[0]

	bad := strings.Repeat("e", 40)
	for _, tc := range []struct {
		name string
		path string
		body map[string]any
		want string
	}{
		{"unknown base tree", "git/trees", map[string]any{"base_tree": bad, "tree": []any{map[string]any{"path": "a", "mode": "100644", "type": "blob", "content": "a"}}}, "base_tree"},
		{"empty tree", "git/trees", map[string]any{"tree": []any{}}, "tree"},
		{"sha and content", "git/trees", map[string]any{"tree": []any{map[string]any{"path": "a", "mode": "100644", "type": "blob", "content": "a", "sha": bad}}}, "not both"},
		{"unknown blob", "git/trees", map[string]any{"tree": []any{map[string]any{"path": "a", "mode": "100644", "type": "blob", "sha": bad}}}, "not a valid blob"},
		{"unknown tree", "git/commits", map[string]any{"message": "m", "tree": bad}, "Tree SHA does not exist"},
		{"unknown parent", "git/commits", map[string]any{"message": "m", "tree": tip.Tree, "parents": []string{bad}}, "Parent SHA"},
		{"no message", "git/commits", map[string]any{"tree": tip.Tree}, "message"},
	} {
		a := call(t, s, "POST", "/repos/acme/gitops/"+tc.path, auth, tc.body)
		if a.status != 422 || !strings.Contains(a.json(t)["message"].(string), tc.want) {
			t.Errorf("%s: %d %s, want 422 mentioning %q", tc.name, a.status, a.body, tc.want)
		}
	}

	// A tree with inline content, a nested new file and a deletion.
	a := call(t, s, "POST", "/repos/acme/gitops/git/trees", auth, map[string]any{
		"base_tree": tip.Tree,
		"tree": []any{
			map[string]any{"path": "k8s/dev/kustomization.yaml", "mode": "100644", "type": "blob", "content": "images: [x]\n"},
			map[string]any{"path": "k8s/prod/new.yaml", "mode": "100644", "type": "blob", "content": "new\n"},
			map[string]any{"path": "README.md", "mode": "100644", "type": "blob", "sha": nil},
		},
	})
	if a.status != 201 {
		t.Fatalf("create tree: %d %s", a.status, a.body)
	}
	tree := a.json(t)["sha"].(string)
	when := "2024-05-06T07:08:09+09:00"
	a = call(t, s, "POST", "/repos/acme/gitops/git/commits", auth, map[string]any{
		"message": "edit\n\nbody\n", "tree": tree, "parents": []string{tip.SHA},
		"author": map[string]any{"name": "Bot", "email": "bot@example.com", "date": when},
	})
	if a.status != 201 {
		t.Fatalf("create commit: %d %s", a.status, a.body)
	}
	sha := a.json(t)["sha"].(string)
	c, ok := s.Lookup(sha)
	if !ok || c.Tree != tree || c.Message != "edit\n\nbody\n" || c.Author.Email != "bot@example.com" || c.Committer.Email != "bot@example.com" {
		t.Fatalf("stored commit %+v, want tree %s, the message and the author as committer", c, tree)
	}
	// The SHA is git's: re-encoding the commit gives it back.
	enc := &plumbing.MemoryObject{}
	oc := &object.Commit{Author: c.Author, Committer: c.Committer, Message: c.Message, TreeHash: plumbing.NewHash(c.Tree), ParentHashes: []plumbing.Hash{plumbing.NewHash(tip.SHA)}}
	if err := oc.Encode(enc); err != nil || enc.Hash().String() != sha {
		t.Errorf("commit %s is not git's hash of its content (%s, %v)", sha, enc.Hash(), err)
	}
	if _, off := c.Author.When.Zone(); off != 9*3600 {
		t.Errorf("author date lost its offset: %s", c.Author.When)
	}
	if got := string(s.File(sha, "k8s/dev/kustomization.yaml")); got != "images: [x]\n" {
		t.Errorf("edited file = %q", got)
	}
	if got := string(s.File(sha, "k8s/prod/new.yaml")); got != "new\n" {
		t.Errorf("new file = %q", got)
	}
	if s.File(sha, "README.md") != nil {
		t.Error("README.md survived its deletion")
	}
	if s.Head("main") != tip.SHA {
		t.Error("creating objects moved the branch")
	}

	// Blobs, both ways.
	a = call(t, s, "POST", "/repos/acme/gitops/git/blobs", auth, map[string]any{"content": base64.StdEncoding.EncodeToString([]byte("\xff\x00")), "encoding": "base64"})
	if a.status != 201 {
		t.Fatalf("create blob: %d %s", a.status, a.body)
	}
	blob := a.json(t)["sha"].(string)
	a = call(t, s, "GET", "/repos/acme/gitops/git/blobs/"+blob, auth, nil)
	content, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(a.json(t)["content"].(string), "\n", ""))
	if a.status != 200 || string(content) != "\xff\x00" {
		t.Errorf("get blob: %d %q", a.status, content)
	}
}

func TestPatchRef(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	auth := "Bearer " + s.Token()
	base := s.Head("main")
	human := s.Commit("a person's commit", map[string][]byte{"x": []byte("x")})

	// A sibling of human: not a fast-forward from it.
	sibling := call(t, s, "POST", "/repos/acme/gitops/git/commits", auth, map[string]any{"message": "sib", "tree": s.Log("main")[1].Tree, "parents": []string{base}}).json(t)["sha"].(string)

	for _, tc := range []struct {
		name   string
		ref    string
		body   map[string]any
		status int
		msg    string
		head   string
	}{
		{"non fast-forward", "heads/main", map[string]any{"sha": sibling}, 422, "Update is not a fast forward", human},
		{"unknown object", "heads/main", map[string]any{"sha": strings.Repeat("f", 40)}, 422, "Object does not exist", human},
		{"missing ref", "heads/nope", map[string]any{"sha": human}, 422, "Reference does not exist", human},
		{"forced", "heads/main", map[string]any{"sha": sibling, "force": true}, 200, "", sibling},
		{"fast-forward back is not", "heads/main", map[string]any{"sha": human}, 422, "fast forward", sibling},
	} {
		a := call(t, s, "PATCH", "/repos/acme/gitops/git/refs/"+tc.ref, auth, tc.body)
		if a.status != tc.status || (tc.msg != "" && !strings.Contains(string(a.body), tc.msg)) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, a.status, a.body, tc.status, tc.msg)
		}
		if s.Head("main") != tc.head {
			t.Errorf("%s: main at %s, want %s", tc.name, s.Head("main"), tc.head)
		}
	}
	if got := s.Calls()[EndpointUpdateRef]; got != 5 {
		t.Errorf("counted %d PATCHes, want 5", got)
	}
}

func TestForeignWriters(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	auth := "Bearer " + s.Token()
	var hooked int
	s.OnBeforeRefUpdate(func() { hooked++ })
	s.ForeignCommitsBeforeUpdate(2)
	tip := s.Head("main")
	for i := range 3 {
		// A fast-forward of the tip read before: loses while foreign commits land.
		child := call(t, s, "POST", "/repos/acme/gitops/git/commits", auth, map[string]any{"message": "bot", "tree": s.Log("main")[0].Tree, "parents": []string{tip}}).json(t)["sha"].(string)
		a := call(t, s, "PATCH", "/repos/acme/gitops/git/refs/heads/main", auth, map[string]any{"sha": child})
		if i < 2 && a.status != 422 {
			t.Errorf("update %d: %d, want 422 after a foreign commit", i, a.status)
		}
		if i == 2 && a.status != 200 {
			t.Errorf("update %d: %d %s, want 200", i, a.status, a.body)
		}
		tip = s.Head("main")
	}
	if hooked != 3 {
		t.Errorf("hook ran %d times, want 3", hooked)
	}
	log := s.Log("main")
	if len(log) != 4 || log[1].Author.Email != Human.Email || log[2].Author.Email != Human.Email {
		t.Errorf("log %+v, want seed, two people's commits, the bot", log)
	}
}

func TestGraphQLRead(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	tip := s.Log("main")[0]
	m := gql(t, s, `
		# a comment
		query Read($owner: String!, $name: String!, $ref: String!, $p: String!, $n: Int = 5) {
		  repository(owner: $owner, name: $name) {
		    id
		    ref(qualifiedName: $ref) {
		      name prefix
		      skipped: name @skip(if: true)
		      included: prefix @include(if: false)
		      target {
		        __typename
		        ...commitFields
		        ... on GitObject { abbreviatedOid }
		      }
		    }
		  }
		}
		fragment commitFields on Commit {
		  oid message tree { oid }
		  parents(first: $n) { totalCount nodes { oid } }
		  author { name email date }
		  f: file(path: $p) { type object { ... on Blob { text isBinary isTruncated byteSize } } }
		  missing: file(path: "no/such") { oid }
		  dir: file(path: "k8s") { type }
		  bin: file(path: "bin/blob") { object { ... on Blob { text isBinary byteSize } } }
		}`, map[string]any{"owner": "acme", "name": "gitops", "ref": "refs/heads/main", "p": "README.md"})
	if errs := dig(m, "errors"); errs != nil {
		t.Fatalf("errors: %v", errs)
	}
	target := dig(m, "data", "repository", "ref", "target")
	for _, tc := range []struct {
		path []any
		want any
	}{
		{[]any{"data", "repository", "id"}, s.RepositoryID()},
		{[]any{"data", "repository", "ref", "name"}, "main"},
		{[]any{"data", "repository", "ref", "prefix"}, "refs/heads/"},
		{[]any{"__typename"}, "Commit"},
		{[]any{"oid"}, tip.SHA},
		{[]any{"abbreviatedOid"}, tip.SHA[:7]},
		{[]any{"message"}, tip.Message},
		{[]any{"tree", "oid"}, tip.Tree},
		{[]any{"parents", "totalCount"}, 0.0},
		{[]any{"author", "email"}, "seed@example.com"},
		{[]any{"author", "date"}, "2024-01-02T03:04:05Z"},
		{[]any{"f", "type"}, "blob"},
		{[]any{"f", "object", "text"}, "# hi\n"},
		{[]any{"f", "object", "isBinary"}, false},
		{[]any{"f", "object", "byteSize"}, 5.0},
		{[]any{"missing"}, nil},
		{[]any{"dir", "type"}, "tree"},
		{[]any{"bin", "object", "text"}, nil},
		{[]any{"bin", "object", "isBinary"}, true},
		{[]any{"data", "repository", "ref", "skipped"}, nil},
		{[]any{"data", "repository", "ref", "included"}, nil},
	} {
		var got any
		if tc.path[0] == "data" {
			got = dig(m, tc.path...)
		} else {
			got = dig(target, tc.path...)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestGraphQLErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		want        string
	}{
		{"parse error", `query { repository(owner: "a" name: "b") { id }`, nil, "Expected Name, found <EOF>"},
		{"unknown field", `{ repository(owner: "acme", name: "gitops") { idd } }`, nil, `Cannot query field "idd" on type "Repository"`},
		{"undeclared variable", `query Q { repository(owner: $o, name: "gitops") { id } }`, nil, `Variable "$o" is not defined by operation "Q"`},
		{"missing variable", `query Q($o: String!) { repository(owner: $o, name: "gitops") { id } }`, nil, "variable.o must be defined"},
		{"variable of the wrong type", `query Q($n: Int!) { repository(owner: "acme", name: "gitops") { ref(qualifiedName: "main") { target { ... on Commit { parents(first: $n) { totalCount } } } } } }`, map[string]any{"n": "x"}, "variable.n cannot use string as Int"},
		{"unknown operation", `query A { viewer { login } } query B { viewer { login } }`, nil, "An operation name is required"},
	} {
		m := gql(t, s, tc.query, tc.vars)
		msg, _ := dig(m, "errors", 0, "message").(string)
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %v, want an error %q", tc.name, m, tc.want)
		}
		if _, ok := m["data"]; ok {
			t.Errorf("%s: %v, want no data for an invalid query", tc.name, m)
		}
	}
	// A resolver's error answers data, with null where the field failed.
	m := gql(t, s, `{ viewer { login } repository(owner: "acme", name: "gitops") { ref(qualifiedName: "main") { target { ... on Commit { parents { totalCount } } } } } }`, nil)
	if msg, _ := dig(m, "errors", 0, "message").(string); !strings.Contains(msg, "You must provide a `first` or `last` value") ||
		dig(m, "data", "viewer", "login") != "fake-user" || dig(m, "data", "repository", "ref", "target") != nil {
		t.Errorf("unpaginated parents: %v, want an error, the viewer and a null target", m)
	}
}

func TestUpdateRefs(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	seed := s.Head("main")
	human := s.Commit("person", map[string][]byte{"p": []byte("p")})
	const mutation = `mutation M($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }`
	move := func(name, before, after string, force bool, repoID string) map[string]any {
		u := map[string]any{"name": name, "afterOid": after, "force": force}
		if before != "" {
			u["beforeOid"] = before
		}
		return gql(t, s, mutation, map[string]any{"input": map[string]any{"repositoryId": repoID, "refUpdates": []any{u}, "clientMutationId": "cm"}})
	}
	zero := strings.Repeat("0", 40)
	for _, tc := range []struct {
		name                 string
		ref, before, after   string
		force                bool
		repoID               string
		wantType             string // "" = success
		wantMain, wantBranch string
	}{
		{"stale beforeOid", "refs/heads/main", seed, seed, true, s.RepositoryID(), "STALE_DATA", human, ""},
		{"not a fast-forward", "refs/heads/main", human, seed, false, s.RepositoryID(), "UNPROCESSABLE", human, ""},
		{"unknown object", "refs/heads/main", human, strings.Repeat("a", 40), true, s.RepositoryID(), "UNPROCESSABLE", human, ""},
		{"wrong repository id", "refs/heads/main", human, seed, true, "R_other", "NOT_FOUND", human, ""},
		{"forced rewind with CAS", "refs/heads/main", human, seed, true, s.RepositoryID(), "", seed, ""},
		{"create", "refs/heads/feature", zero, human, false, s.RepositoryID(), "", seed, human},
		{"create existing", "refs/heads/feature", zero, human, false, s.RepositoryID(), "STALE_DATA", seed, human},
		{"delete", "refs/heads/feature", human, zero, false, s.RepositoryID(), "", seed, ""},
		{"invalid beforeOid", "refs/heads/main", "main", human, true, s.RepositoryID(), "UNPROCESSABLE", seed, ""},
	} {
		m := move(tc.ref, tc.before, tc.after, tc.force, tc.repoID)
		typ, _ := dig(m, "errors", 0, "type").(string)
		if typ != tc.wantType {
			t.Errorf("%s: %v, want error type %q", tc.name, m, tc.wantType)
		}
		if tc.wantType == "" && dig(m, "data", "updateRefs", "clientMutationId") != "cm" {
			t.Errorf("%s: %v, want the clientMutationId back", tc.name, m)
		}
		if tc.wantType != "" && dig(m, "data", "updateRefs") != nil {
			t.Errorf("%s: %v, want updateRefs null", tc.name, m)
		}
		if s.Head("main") != tc.wantMain || s.Head("feature") != tc.wantBranch {
			t.Errorf("%s: main %s feature %q, want %s %q", tc.name, s.Head("main"), s.Head("feature"), tc.wantMain, tc.wantBranch)
		}
	}
	if got := s.Calls()[EndpointGraphQLMutation]; got != 9 {
		t.Errorf("counted %d mutations, want 9", got)
	}
}

// TestUpdateRefsAtomic: several ref updates in one mutation apply all or none.
func TestUpdateRefsAtomic(t *testing.T) {
	t.Parallel()
	// An update is "name before after [force]", commits named seed, tip or zero.
	for _, tc := range []struct {
		name, wantType        string // wantType "" = success
		updates               []string
		wantMain, wantRelease string // "" = absent
	}{
		{"create one and force-move another", "", []string{"release zero tip", "main tip seed force"}, "seed", "tip"},
		{"the second is stale: none applies", "STALE_DATA", []string{"release zero tip", "main seed seed force"}, "tip", ""},
		{"the second is not a fast-forward", "UNPROCESSABLE", []string{"release zero seed", "main tip seed"}, "tip", ""},
		{"the same ref twice", "UNPROCESSABLE", []string{"release zero seed", "release zero tip"}, "tip", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			at := map[string]string{"seed": s.Head("main"), "zero": strings.Repeat("0", 40), "": ""}
			at["tip"] = s.Commit("person", map[string][]byte{"p": []byte("p")})
			var updates []any
			for _, u := range tc.updates {
				f := strings.Fields(u)
				updates = append(updates, map[string]any{"name": "refs/heads/" + f[0], "beforeOid": at[f[1]], "afterOid": at[f[2]], "force": len(f) > 3})
			}
			m := gql(t, s, `mutation($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }`,
				map[string]any{"input": map[string]any{"repositoryId": s.RepositoryID(), "refUpdates": updates}})
			if typ, _ := dig(m, "errors", 0, "type").(string); typ != tc.wantType {
				t.Errorf("%v, want error type %q", m, tc.wantType)
			}
			if s.Head("main") != at[tc.wantMain] || s.Head("release") != at[tc.wantRelease] {
				t.Errorf("main %s release %q, want %s %q", s.Head("main"), s.Head("release"), at[tc.wantMain], at[tc.wantRelease])
			}
		})
	}
}

func TestFaultsAndLimits(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	auth := "Bearer " + s.Token()
	get := func() answer { return call(t, s, "GET", "/repos/acme/gitops/git/ref/heads/main", auth, nil) }

	s.FailNext(2, 502)
	for i, want := range []int{502, 502, 200} {
		if a := get(); a.status != want {
			t.Errorf("request %d: %d, want %d", i, a.status, want)
		}
	}
	s.RetryAfterNext(403, 1500*time.Millisecond)
	if a := get(); a.status != 403 || a.header.Get("Retry-After") != "2" || !strings.Contains(string(a.body), "secondary rate limit") {
		t.Errorf("secondary limit: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	s.Inject(1, Fault{Endpoint: EndpointCreateTree, Status: 500})
	if a := get(); a.status != 200 {
		t.Errorf("a fault for another endpoint hit GET ref: %d", a.status)
	}

	s.ExhaustRateLimit(time.Second)
	a := get()
	if a.status != 403 || a.header.Get("X-RateLimit-Remaining") != "0" || !strings.Contains(string(a.body), "rate limit exceeded") {
		t.Errorf("exhausted REST: %d remaining %q %s", a.status, a.header.Get("X-RateLimit-Remaining"), a.body)
	}
	m := gql(t, s, `{ viewer { login } }`, nil)
	if dig(m, "errors", 0, "type") != "RATE_LIMITED" {
		t.Errorf("exhausted GraphQL: %v, want a RATE_LIMITED error", m)
	}
	time.Sleep(1100 * time.Millisecond)
	if a := get(); a.status != 200 || a.header.Get("X-RateLimit-Remaining") != fmt.Sprint(DefaultRateLimit-1) {
		t.Errorf("after the reset: %d remaining %q", a.status, a.header.Get("X-RateLimit-Remaining"))
	}

	s.SetLatency(100 * time.Millisecond)
	start := time.Now()
	get()
	if time.Since(start) < 100*time.Millisecond {
		t.Error("latency not applied")
	}
	if s.TotalCalls() != 9 || s.Calls()[EndpointGetRef] != 8 || s.Calls()[EndpointGraphQLQuery] != 1 {
		t.Errorf("calls %v (total %d)", s.Calls(), s.TotalCalls())
	}
}

func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, 5, sum[:]) // 5 = crypto.SHA256
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestAppTokens(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	s.RegisterApp(10, 20, &key.PublicKey)
	now := time.Now().Unix()
	good := map[string]any{"iss": "10", "iat": now - 30, "exp": now + 90}
	for _, tc := range []struct {
		name   string
		key    *rsa.PrivateKey
		claims map[string]any
		inst   int
		status int
	}{
		{"good", key, good, 20, 201},
		{"numeric iss", key, map[string]any{"iss": 10, "iat": now - 30, "exp": now + 90}, 20, 201},
		{"other key", other, good, 20, 401},
		{"wrong app", key, map[string]any{"iss": "11", "iat": now - 30, "exp": now + 90}, 20, 401},
		{"expired", key, map[string]any{"iss": "10", "iat": now - 700, "exp": now - 100}, 20, 401},
		{"too long", key, map[string]any{"iss": "10", "iat": now, "exp": now + 3600}, 20, 401},
		{"unknown installation", key, good, 21, 404},
	} {
		a := call(t, s, "POST", fmt.Sprintf("/app/installations/%d/access_tokens", tc.inst), "Bearer "+signJWT(t, tc.key, tc.claims), nil)
		if a.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, a.status, a.body, tc.status)
			continue
		}
		if tc.status != 201 {
			continue
		}
		tok, _ := a.json(t)["token"].(string)
		if r := call(t, s, "GET", "/repos/acme/gitops/git/ref/heads/main", "token "+tok, nil); r.status != 200 {
			t.Errorf("%s: the installation token is refused: %d", tc.name, r.status)
		}
	}
	// The JWT itself is not an API credential.
	if r := call(t, s, "GET", "/repos/acme/gitops/git/ref/heads/main", "Bearer "+signJWT(t, key, good), nil); r.status != 401 {
		t.Errorf("a JWT was accepted as an API token: %d", r.status)
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	if got := string(s.File("main", "k8s/dev/kustomization.yaml")); got != "images: []\n" {
		t.Errorf("File = %q", got)
	}
	if s.File("main", "k8s") != nil || s.File("main", "nope") != nil || s.File("nobranch", "README.md") != nil {
		t.Error("File returned content for a directory, a missing file or a missing branch")
	}
	c1 := s.Commit("one", map[string][]byte{"a/b.txt": []byte("b")})
	c2 := s.Commit("two", map[string][]byte{"a/b.txt": nil})
	log := s.Log("main")
	if len(log) != 3 || log[0].SHA != c2 || log[1].SHA != c1 || log[0].Parents[0] != c1 {
		t.Errorf("Log = %+v", log)
	}
	if s.File(c1, "a/b.txt") == nil || s.File(c2, "a/b.txt") != nil {
		t.Error("Commit did not add then delete a/b.txt")
	}
	if t2, _ := s.Lookup(c2); t2.Tree != log[2].Tree {
		t.Errorf("deleting the only file of a/ should give back the seed tree %s, got %s", log[2].Tree, t2.Tree)
	}
	if s.Log("nobranch") != nil || s.Head("nobranch") != "" {
		t.Error("a missing branch has a log or head")
	}
}

// TestContentLimits: content-generating requests (REST writes, GraphQL
// mutations) over a window are refused as GitHub does, reads are not, the
// refusals are counted, and the window lets requests in again once it has
// slid past; GitHub's own numbers are on by default.
func TestContentLimits(t *testing.T) {
	t.Parallel()
	if s := newServer(t); len(s.second.windows) != 2 || s.second.windows[0] != (Window{80, time.Minute}) || s.second.windows[1] != (Window{500, time.Hour}) {
		t.Fatalf("default windows %v, want GitHub's 80 a minute and 500 an hour", s.second.windows)
	}
	const mutation = `mutation M($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }`
	for _, tc := range []struct {
		name      string
		windows   []Window
		slide     bool          // sleep past a one-second window after 3 writes
		accepted  int           // writes accepted before the first refusal
		retryMin  int           // least Retry-After of the refusal, seconds
		retryMax  int           // and most
		thenSleep time.Duration // after which one more write is accepted (0: not tried)
	}{
		{"per second", []Window{{3, time.Second}}, false, 3, 1, 1, 1100 * time.Millisecond},
		{"the longer window binds", []Window{{3, time.Second}, {4, time.Hour}}, true, 4, 3599, 3600, 0},
		{"off", nil, false, 12, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			s.SetContentLimits(tc.windows...)
			auth := "Bearer " + s.Token()
			blob := func() answer {
				return call(t, s, "POST", "/repos/acme/gitops/git/blobs", auth, map[string]any{"content": "x", "encoding": "utf-8"})
			}
			accepted := 0
			var refused answer
			for i := 0; i < 12 && refused.status == 0; i++ {
				if i == 3 && tc.slide {
					time.Sleep(1100 * time.Millisecond) // the per-second window slides
				}
				switch a := blob(); a.status {
				case http.StatusCreated:
					accepted++
				default:
					refused = a
				}
			}
			if accepted != tc.accepted {
				t.Fatalf("%d writes accepted, want %d", accepted, tc.accepted)
			}
			if tc.windows == nil {
				if s.RateLimited() != 0 || s.ContentWrites() != 12 {
					t.Errorf("limits off: %d refused, %d writes", s.RateLimited(), s.ContentWrites())
				}
				return
			}
			ra, _ := strconv.Atoi(refused.header.Get("Retry-After"))
			if refused.status != http.StatusForbidden || ra < tc.retryMin || ra > tc.retryMax ||
				!strings.Contains(string(refused.body), "exceeded a secondary rate limit") || !strings.Contains(string(refused.body), refused.header.Get("X-GitHub-Request-Id")) ||
				refused.header.Get("X-RateLimit-Remaining") == "0" {
				t.Fatalf("refusal: %d Retry-After %q remaining %q %s", refused.status, refused.header.Get("Retry-After"), refused.header.Get("X-RateLimit-Remaining"), refused.body)
			}
			// A mutation is refused alike (HTTP 403, not a GraphQL error);
			// reads go through.
			m := call(t, s, "POST", "/graphql", auth, map[string]any{"query": mutation, "variables": map[string]any{"input": map[string]any{
				"repositoryId": s.RepositoryID(), "refUpdates": []any{map[string]any{"name": "refs/heads/x", "beforeOid": strings.Repeat("0", 40), "afterOid": s.Head("main")}}}}})
			if m.status != http.StatusForbidden || !strings.Contains(string(m.body), "secondary rate limit") {
				t.Errorf("mutation over the limit: %d %s", m.status, m.body)
			}
			if a := call(t, s, "GET", "/repos/acme/gitops/git/ref/heads/main", auth, nil); a.status != http.StatusOK {
				t.Errorf("a read over the write limit: %d", a.status)
			}
			if d := dig(gql(t, s, `{ viewer { login } }`, nil), "data", "viewer", "login"); d != "fake-user" {
				t.Errorf("a query over the write limit: %v", d)
			}
			if s.RateLimited() != 2 || s.ContentWrites() != tc.accepted {
				t.Errorf("%d refused, %d writes; want 2 and %d", s.RateLimited(), s.ContentWrites(), tc.accepted)
			}
			if tc.thenSleep > 0 {
				time.Sleep(tc.thenSleep)
				if a := blob(); a.status != http.StatusCreated {
					t.Errorf("after the window slid: %d %s", a.status, a.body)
				}
			}
		})
	}
}
