package fakegithub

import (
	"strings"
	"testing"
)

// TestSquashFields serves what the weekly squash reads: history in git
// log's order, signatures, refs by prefix, objects by oid.
func TestSquashFields(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	seed := s.Head("main")
	c1 := s.Commit("one", map[string][]byte{"a": []byte("1")})
	c2 := s.Commit("two", map[string][]byte{"a": []byte("2")})
	signed, err := s.SetSignedCommit(c2)
	if err != nil {
		t.Fatal(err)
	}
	m := gql(t, s, `query Q($oid: GitObjectID!) { repository(owner: "acme", name: "gitops") {
  ref(qualifiedName: "main") { target { ... on Commit { history(first: 2) { nodes { oid signature { isValid } } pageInfo { hasNextPage } } } } }
  object(oid: $oid) { ... on Commit { oid message signature { signature } } }
} }`, map[string]any{"oid": signed})
	h := dig(m, "data", "repository", "ref", "target", "history")
	if dig(h, "nodes", 0, "oid") != c2 || dig(h, "nodes", 1, "oid") != c1 || dig(h, "nodes", 0, "signature") != nil || dig(h, "pageInfo", "hasNextPage") != true {
		t.Errorf("history = %v, want %s then %s, unsigned, with a next page (seed %s)", h, c2, c1, seed)
	}
	if sig, _ := dig(m, "data", "repository", "object", "signature", "signature").(string); !strings.Contains(sig, "PGP SIGNATURE") {
		t.Errorf("signed commit's signature = %v", dig(m, "data", "repository", "object"))
	}

	const mutation = `mutation M($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }`
	zero := strings.Repeat("0", 40)
	var creates []any
	for _, n := range []string{"refs/pinroll/backup/main/1", "refs/pinroll/backup/main/2", "refs/pinroll/backup/other/1"} {
		creates = append(creates, map[string]any{"name": n, "beforeOid": zero, "afterOid": seed})
	}
	gql(t, s, mutation, map[string]any{"input": map[string]any{"repositoryId": s.RepositoryID(), "refUpdates": creates}})
	page := func(after any) map[string]any {
		return gql(t, s, `query R($after: String) { repository(owner: "acme", name: "gitops") {
  refs(refPrefix: "refs/pinroll/backup/main/", first: 1, after: $after) { nodes { name target { oid } } pageInfo { hasNextPage endCursor } }
} }`, map[string]any{"after": after})
	}
	p1 := page(nil)
	refs := dig(p1, "data", "repository", "refs")
	if dig(refs, "nodes", 0, "name") != "1" || dig(refs, "nodes", 0, "target", "oid") != seed || dig(refs, "pageInfo", "hasNextPage") != true {
		t.Errorf("refs page 1 = %v", refs)
	}
	p2 := dig(page(dig(refs, "pageInfo", "endCursor")), "data", "repository", "refs")
	if dig(p2, "nodes", 0, "name") != "2" || dig(p2, "pageInfo", "hasNextPage") != false {
		t.Errorf("refs page 2 = %v", p2)
	}
}

// TestProtectBranch: a protected branch refuses force-moves and deletes in
// updateRefs (the whole mutation fails), and still takes fast-forwards.
func TestProtectBranch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	seed := s.Head("main")
	tip := s.Commit("person", map[string][]byte{"p": []byte("p")})
	s.ProtectBranch("main")
	zero := strings.Repeat("0", 40)
	const mutation = `mutation M($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }`
	update := func(before, after string) map[string]any {
		return gql(t, s, mutation, map[string]any{"input": map[string]any{"repositoryId": s.RepositoryID(), "refUpdates": []any{
			map[string]any{"name": "refs/pinroll/backup/main/1", "beforeOid": zero, "afterOid": tip},
			map[string]any{"name": "refs/heads/main", "beforeOid": before, "afterOid": after, "force": true},
		}}})
	}
	for _, after := range []string{seed, zero} {
		m := update(tip, after)
		if msg, _ := dig(m, "errors", 0, "message").(string); !strings.Contains(msg, "Cannot force-push") {
			t.Errorf("force-move to %s: %v, want Cannot force-push", after, m)
		}
		backup := dig(gql(t, s, `{ repository(owner: "acme", name: "gitops") { ref(qualifiedName: "refs/pinroll/backup/main/1") { name } } }`, nil), "data", "repository", "ref")
		if s.Head("main") != tip || backup != nil {
			t.Errorf("after a refused update: main %s, backup %v", s.Head("main"), backup)
		}
	}
	next := s.Commit("next", map[string][]byte{"q": []byte("q")}) // moves main itself
	if m := update(next, next); dig(m, "errors") != nil {
		t.Errorf("a no-op update of a protected branch: %v", m)
	}
}
