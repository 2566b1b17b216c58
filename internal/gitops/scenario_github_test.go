package gitops_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
)

// TestSquashGitHubCalls counts the API calls of a squash on GitHub: the
// history in one query per 100 commits, one CreateTree and one CreateCommit
// per replayed commit and for the rolling commit, then a few.
func TestSquashGitHubCalls(t *testing.T) {
	t.Parallel()
	r, _ := newGitHub(t, -1)
	materialize(t, r, build(t, scenario))
	before := r.Calls()
	rep, err := squasher(r).Squash(t.Context(), branch, false)
	if err != nil || rep.Outcome != gitops.SquashSquashed {
		t.Fatalf("squash = %+v, %v", rep, err)
	}
	calls := r.Calls() - before
	// history 1, replays 2×5, rolling 2, read back 1, list backups 1, move 1.
	if want := int64(2*rep.Replayed + 6); calls != want {
		t.Errorf("%d API calls for %d replayed commits, want %d", calls, rep.Replayed, want)
	}
}

// TestSquashGitHubProtected: a branch protected against force-moves makes
// the squash skip, naming the protection, and nothing moves.
func TestSquashGitHubProtected(t *testing.T) {
	t.Parallel()
	r, f := newGitHub(t, -1)
	tip := materialize(t, r, build(t, scenario))
	f.ProtectBranch(branch)
	rep, err := squasher(r).Squash(t.Context(), branch, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != gitops.SquashSkipped || !strings.Contains(rep.Reason, "protected") {
		t.Errorf("report = %+v, want skipped: protected", rep)
	}
	if got := history(t, r)[0].Commit.SHA; got != tip {
		t.Errorf("branch moved to %s", got)
	}
	if refs, _ := r.ListRefs(t.Context(), gitops.BackupPrefix(branch)); len(refs) != 0 {
		t.Errorf("backups %v, want none (one atomic update)", refs)
	}
}

// TestSquashGitHubDeadline: with writes paced (here 4 a minute) a squash
// that cannot write its commits before the deadline aborts without
// writing anything.
func TestSquashGitHubDeadline(t *testing.T) {
	t.Parallel()
	fast, f := newGitHub(t, -1)
	tip := materialize(t, fast, build(t, "R:dev; H; O; H; R:dev"))
	r, err := github.New(github.Options{Repo: f.RepoURL(), APIURL: f.URL(), Token: f.Token(), WritesPerMinute: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	f.ResetCalls()
	rep, err := squasher(r).Squash(ctx, branch, false)
	calls := f.Calls()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != gitops.SquashAborted || !strings.Contains(rep.Reason, "deadline") {
		t.Errorf("report = %+v, want aborted: deadline", rep)
	}
	if got := history(t, r)[0].Commit.SHA; got != tip {
		t.Errorf("branch moved to %s", got)
	}
	if len(calls) != 1 || calls["graphql query"] != 1 {
		t.Errorf("API calls %v, want the history read alone, no writes (%s)", calls, rep.Reason)
	}
}

// TestSquashGitHubSignedAndMerge: the history follows first parents past a
// merge whose side branch is newer (git log's order interleaves it), and a
// signed commit stops the walk.
func TestSquashGitHubSignedAndMerge(t *testing.T) {
	t.Parallel()
	r, _ := newGitHub(t, -1)
	w := build(t, "R:dev; H; M; R:dev; H; R:dev")
	materialize(t, r, w)
	h := history(t, r)
	for i := 0; i+1 < len(h); i++ {
		if h[i].Commit.Parents[0] != h[i+1].Commit.SHA {
			t.Fatalf("history[%d] %s is followed by %s, not its first parent", i, h[i].Commit.SHA, h[i+1].Commit.SHA)
		}
	}
	if len(h) != 7 {
		t.Errorf("history has %d commits, want the seed and 6", len(h))
	}
	rep, err := squasher(r).Squash(t.Context(), branch, false)
	if err != nil || rep.Outcome != gitops.SquashSquashed || rep.Folded != 2 || rep.Replayed != 1 || rep.Base != h[3].Commit.SHA {
		t.Fatalf("squash back to a merge = %+v, %v; want 2 folded, 1 replayed on the merge", rep, err)
	}

	// Sign the tip's parent: nothing newer than it is a pin commit but the tip.
	w2 := build(t, "R:dev; H; R:dev; H; R:dev")
	r2, f2 := newGitHub(t, -1)
	materialize(t, r2, w2)
	h2 := history(t, r2)
	signed, err := f2.SetSignedCommit(h2[1].Commit.SHA)
	if err != nil {
		t.Fatal(err)
	}
	tip, err := r2.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: h2[0].Commit.Tree, Parents: []string{signed}, Message: h2[0].Commit.Message, Author: h2[0].Commit.Author, Committer: h2[0].Commit.Committer})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.MoveBranch(t.Context(), branch, h2[0].Commit.SHA, tip); err != nil {
		t.Fatal(err)
	}
	got, err := r2.History(t.Context(), branch, gitops.FoldStop(now.Add(-window)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[1].Commit.Signed || got[0].Commit.Signed {
		t.Fatalf("history stopped after %d commits, want 2 ending at the signed one", len(got))
	}
	rep, err = squasher(r2).Squash(t.Context(), branch, false)
	if err != nil || rep.Outcome != gitops.SquashNothing {
		t.Errorf("squash above a signed commit = %+v, %v; want nothing", rep, err)
	}
}
