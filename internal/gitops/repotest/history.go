package repotest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// squashCases are the contract of the methods the weekly squash needs.
var squashCases = []struct {
	name string
	test func(t *testing.T, r gitops.Repo)
}{
	{"HistoryFirstParentWithFiles", testHistory},
	{"HistoryKeepsDatesAndZones", testHistoryDates},
	{"ReadCommit", testReadCommit},
	{"UpdateRefsCreateAndMove", testUpdateRefs},
	{"UpdateRefsAllOrNothing", testUpdateRefsAllOrNothing},
	{"UpdateRefsDelete", testUpdateRefsDelete},
}

// chain appends n commits to the branch, commit i setting devKust to
// "v<i>", and returns their SHAs, oldest first.
func chain(t *testing.T, r gitops.Repo, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		tip := read(t, r).Commit
		c := commit(t, r, tip, fmt.Sprintf("commit %d\n", i), map[string][]byte{devKust: []byte(fmt.Sprintf("v%d\n", i))})
		move(t, r, tip.SHA, c)
		out = append(out, c)
	}
	return out
}

func testHistory(t *testing.T, r gitops.Repo) {
	root := read(t, r).Commit
	shas := chain(t, r, 5)

	all, err := r.History(t.Context(), branch, nil, devKust, "missing.yaml")
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(all) != 6 {
		t.Fatalf("History without stop: %d commits, want 6 (down to the root)", len(all))
	}
	for i, s := range all[:5] {
		want := shas[4-i]
		if s.Commit.SHA != want {
			t.Errorf("History[%d] = %s, want %s (newest first)", i, s.Commit.SHA, want)
		}
		if len(s.Commit.Parents) != 1 || s.Commit.Parents[0] != all[i+1].Commit.SHA {
			t.Errorf("History[%d] parents %q, want [%s]", i, s.Commit.Parents, all[i+1].Commit.SHA)
		}
		if got, want := string(s.Files[devKust]), fmt.Sprintf("v%d\n", 4-i); got != want {
			t.Errorf("History[%d] %s = %q, want %q", i, devKust, got, want)
		}
		if _, ok := s.Files["missing.yaml"]; ok {
			t.Errorf("History[%d] has a missing path", i)
		}
		if s.Commit.Message != fmt.Sprintf("commit %d\n", 4-i) || s.Commit.Signed {
			t.Errorf("History[%d] message %q signed %t", i, s.Commit.Message, s.Commit.Signed)
		}
	}
	if all[5].Commit.SHA != root.SHA || string(all[5].Files[devKust]) != string(seed()[devKust]) {
		t.Errorf("History[5] = %s, want the root %s with the seed's files", all[5].Commit.SHA, root.SHA)
	}

	// stop ends the walk after the first commit it accepts, included.
	var seen []string
	some, err := r.History(t.Context(), branch, func(c gitops.Commit) bool {
		seen = append(seen, c.SHA)
		return c.SHA == shas[2]
	})
	if err != nil {
		t.Fatalf("History with stop: %v", err)
	}
	if len(some) != 3 || some[2].Commit.SHA != shas[2] || len(some[0].Files) != 0 {
		t.Errorf("History with stop at %s: %d commits, want 3 ending there, without files", shas[2], len(some))
	}
	if strings.Join(seen, ",") != strings.Join([]string{shas[4], shas[3], shas[2]}, ",") {
		t.Errorf("stop saw %q, want the three newest in order", seen)
	}

	if _, err := r.History(t.Context(), "no-such-branch", nil); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("History(no-such-branch) error = %v, want ErrNotFound", err)
	}
}

func testHistoryDates(t *testing.T, r gitops.Repo) {
	tip := read(t, r).Commit
	author := gitops.Signature{Name: "Ada", Email: "ada@example.com", When: time.Date(2024, 3, 1, 9, 30, 0, 0, time.FixedZone("", 9*3600))}
	committer := gitops.Signature{Name: "Bob", Email: "bob@example.com", When: time.Date(2024, 3, 2, 18, 45, 7, 0, time.FixedZone("", -(4*3600+30*60)))}
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Tree, Parents: []string{tip.SHA},
		Message: "a person's commit\n\nwith a body\n", Author: author, Committer: committer,
	})
	if err != nil {
		t.Fatalf("WriteCommit: %v", err)
	}
	move(t, r, tip.SHA, c)
	h, err := r.History(t.Context(), branch, func(gitops.Commit) bool { return true })
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(h) != 1 || h[0].Commit.SHA != c {
		t.Fatalf("History = %d commits, want just %s", len(h), c)
	}
	got := h[0].Commit
	if got.Tree != tip.Tree {
		t.Errorf("Tree = %s, want the base tree %s (no files changed)", got.Tree, tip.Tree)
	}
	for _, s := range []struct {
		what      string
		got, want gitops.Signature
	}{{"Author", got.Author, author}, {"Committer", got.Committer, committer}} {
		_, gotOff := s.got.When.Zone()
		_, wantOff := s.want.When.Zone()
		if s.got.Name != s.want.Name || s.got.Email != s.want.Email || !s.got.When.Equal(s.want.When) || gotOff != wantOff {
			t.Errorf("%s = %s <%s> %s, want %s <%s> %s", s.what, s.got.Name, s.got.Email, s.got.When.Format(time.RFC3339),
				s.want.Name, s.want.Email, s.want.When.Format(time.RFC3339))
		}
	}
}

func testReadCommit(t *testing.T, r gitops.Repo) {
	shas := chain(t, r, 2)
	s, err := r.ReadCommit(t.Context(), shas[0], devKust, readme, "missing.yaml")
	if err != nil {
		t.Fatalf("ReadCommit: %v", err)
	}
	if s.Commit.SHA != shas[0] || s.Commit.Message != "commit 0\n" || !sha.MatchString(s.Commit.Tree) {
		t.Errorf("ReadCommit = %s %q tree %q, want %s", s.Commit.SHA, s.Commit.Message, s.Commit.Tree, shas[0])
	}
	wantFiles(t, s.Files, map[string][]byte{devKust: []byte("v0\n"), readme: seed()[readme]})
	if _, err := r.ReadCommit(t.Context(), strings.Repeat("ab", 20)); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("ReadCommit(unknown) error = %v, want ErrNotFound", err)
	}
}

const backups = "refs/pinroll/backup/main/"

func listRefs(t *testing.T, r gitops.Repo, prefix string) map[string]string {
	t.Helper()
	refs, err := r.ListRefs(t.Context(), prefix)
	if err != nil {
		t.Fatalf("ListRefs(%s): %v", prefix, err)
	}
	return refs
}

func testUpdateRefs(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	c1 := commit(t, r, t0, "squashed", map[string][]byte{readme: []byte("new\n")})
	if got := listRefs(t, r, backups); len(got) != 0 {
		t.Fatalf("ListRefs before any backup = %v, want none", got)
	}
	err := r.UpdateRefs(t.Context(), []gitops.RefUpdate{
		{Ref: backups + "100", To: t0.SHA},
		{Ref: "refs/heads/" + branch, From: t0.SHA, To: c1},
	})
	if err != nil {
		t.Fatalf("UpdateRefs: %v", err)
	}
	if got := read(t, r).Commit.SHA; got != c1 {
		t.Errorf("branch at %s, want %s", got, c1)
	}
	got := listRefs(t, r, backups)
	if len(got) != 1 || got[backups+"100"] != t0.SHA {
		t.Errorf("ListRefs = %v, want %s100 at %s", got, backups, t0.SHA)
	}
	if other := listRefs(t, r, "refs/pinroll/backup/other/"); len(other) != 0 {
		t.Errorf("ListRefs of another branch's prefix = %v, want none", other)
	}
}

func testUpdateRefsAllOrNothing(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	c1 := commit(t, r, t0, "pushed by someone", map[string][]byte{readme: []byte("theirs\n")})
	c2 := commit(t, r, t0, "squashed", map[string][]byte{readme: []byte("ours\n")})
	if err := r.UpdateRefs(t.Context(), []gitops.RefUpdate{{Ref: backups + "1", To: t0.SHA}}); err != nil {
		t.Fatalf("create a backup: %v", err)
	}
	move(t, r, t0.SHA, c1) // the concurrent push

	for _, tc := range []struct {
		name    string
		updates []gitops.RefUpdate
	}{
		{"branch moved", []gitops.RefUpdate{{Ref: backups + "2", To: t0.SHA}, {Ref: "refs/heads/" + branch, From: t0.SHA, To: c2}}},
		{"backup exists", []gitops.RefUpdate{{Ref: backups + "1", To: c1}, {Ref: "refs/heads/" + branch, From: c1, To: c2}}},
	} {
		err := r.UpdateRefs(t.Context(), tc.updates)
		if !errors.Is(err, gitops.ErrConflict) {
			t.Errorf("%s: UpdateRefs error = %v, want ErrConflict", tc.name, err)
		}
		if got := read(t, r).Commit.SHA; got != c1 {
			t.Errorf("%s: branch at %s, want it left at %s", tc.name, got, c1)
		}
		got := listRefs(t, r, backups)
		if len(got) != 1 || got[backups+"1"] != t0.SHA {
			t.Errorf("%s: backups = %v, want only %s1 at %s", tc.name, got, backups, t0.SHA)
		}
	}
}

func testUpdateRefsDelete(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	var create []gitops.RefUpdate
	for i := range 3 {
		create = append(create, gitops.RefUpdate{Ref: fmt.Sprintf("%s%d", backups, i), To: t0.SHA})
	}
	if err := r.UpdateRefs(t.Context(), create); err != nil {
		t.Fatalf("create backups: %v", err)
	}
	err := r.UpdateRefs(t.Context(), []gitops.RefUpdate{{Ref: backups + "0", From: t0.SHA}, {Ref: backups + "1", From: t0.SHA}})
	if err != nil {
		t.Fatalf("delete backups: %v", err)
	}
	got := listRefs(t, r, backups)
	if len(got) != 1 || got[backups+"2"] != t0.SHA {
		t.Errorf("after deleting 0 and 1: %v, want only %s2", got, backups)
	}
	if got := read(t, r).Commit.SHA; got != t0.SHA {
		t.Errorf("branch moved to %s", got)
	}
}
