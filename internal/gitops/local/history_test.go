package local

import (
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pinroll/pinroll/internal/gitops"
)

// TestHistorySigned reports a commit with a gpgsig header as signed, and the
// squash's walk stops there.
func TestHistorySigned(t *testing.T) {
	t.Parallel()
	dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	r := open(t, dir)
	tip := read(t, r, "main").Commit
	g, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	who := object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Unix(1700000000, 0).In(time.FixedZone("", 3600))}
	signed := &object.Commit{
		Author: who, Committer: who, Message: "signed\n",
		TreeHash:     plumbing.NewHash(tip.Tree),
		ParentHashes: []plumbing.Hash{plumbing.NewHash(tip.SHA)},
		PGPSignature: "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n",
	}
	s := storeTestObject(t, g.Storer, signed.Encode).String()
	move(t, r, "main", tip.SHA, s)
	c := commitOn(t, r, read(t, r, "main").Commit, "after", map[string][]byte{"b.txt": []byte("b")})
	move(t, r, "main", s, c)

	h, err := r.History(t.Context(), "main", gitops.FoldStop(time.Unix(0, 0)), "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Commit.SHA != c || h[1].Commit.SHA != s {
		t.Fatalf("History stopped after %d commits, want 2 ending at the signed one", len(h))
	}
	if h[0].Commit.Signed || !h[1].Commit.Signed {
		t.Errorf("Signed = %t, %t; want false, true", h[0].Commit.Signed, h[1].Commit.Signed)
	}
	if _, off := h[1].Commit.Committer.When.Zone(); off != 3600 || string(h[1].Files["a.txt"]) != "a" {
		t.Errorf("signed commit: zone offset %d, a.txt %q", off, h[1].Files["a.txt"])
	}
}
