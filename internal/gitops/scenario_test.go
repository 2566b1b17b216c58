package gitops_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
)

const branch = "main"

// backend makes an empty repository for a scenario: its branch is created by
// materialize.
type backend struct {
	name string
	new  func(t testing.TB) gitops.Repo
}

var backends = []backend{
	{"local", newLocal},
	{"github", func(t testing.TB) gitops.Repo { r, _ := newGitHub(t, -1); return r }},
}

func newLocal(t testing.TB) gitops.Repo {
	t.Helper()
	dir := t.TempDir()
	if _, err := gogit.PlainInit(dir, true); err != nil {
		t.Fatal(err)
	}
	r, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newGitHub starts a fake GitHub whose main holds a placeholder commit;
// materialize replaces the branch with the world's own history.
func newGitHub(t testing.TB, writesPerMinute int) (*github.Repo, *fakegithub.Server) {
	t.Helper()
	f := fakegithub.New(t, "acme", "gitops", branch, map[string][]byte{"placeholder": []byte("x")})
	f.SetRateLimit(1 << 30)
	f.SetContentLimits() // a world's history is set-up, written unpaced
	r, err := github.New(github.Options{Repo: f.RepoURL(), APIURL: f.URL(), Token: f.Token(), WritesPerMinute: writesPerMinute})
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

// materialize writes the world into r as the history of branch, and returns
// the tip.
func materialize(t testing.TB, r gitops.Repo, w *world) string {
	t.Helper()
	ctx := context.Background()
	seedSig := ada
	seedSig.When = now.Add(-10 * window)
	root, err := r.WriteCommit(ctx, gitops.NewCommit{Files: seedFiles(), Message: "seed\n", Author: seedSig, Committer: seedSig})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := r.ListRefs(ctx, "refs/heads/")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateRefs(ctx, []gitops.RefUpdate{{Ref: "refs/heads/" + branch, From: refs["refs/heads/"+branch], To: root}}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range w.specs {
		appendSpec(t, r, sp)
	}
	s, err := r.Read(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}
	return s.Commit.SHA
}

// appendSpec commits sp on the branch tip (or amends the tip).
func appendSpec(t testing.TB, r gitops.Repo, sp spec) {
	t.Helper()
	ctx := context.Background()
	tip, err := r.Read(ctx, branch, allPaths...)
	if err != nil {
		t.Fatal(err)
	}
	parents := []string{tip.Commit.SHA}
	if sp.amend {
		parents = tip.Commit.Parents
	}
	changed := map[string][]byte{}
	for p, b := range sp.files {
		if string(tip.Files[p]) != string(b) {
			changed[p] = b
		}
	}
	if sp.merge {
		side, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Commit.Tree, Files: map[string][]byte{"side.txt": []byte("side\n")}, Parents: parents, Message: "side\n", Author: sp.author, Committer: sp.committer})
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, side)
	}
	c, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Commit.Tree, Files: changed, Parents: parents, Message: sp.msg, Author: sp.author, Committer: sp.committer})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveBranch(ctx, branch, tip.Commit.SHA, c); err != nil {
		t.Fatal(err)
	}
}

func squasher(r gitops.Repo) *gitops.Squasher {
	return &gitops.Squasher{
		Repo: r, Author: bot, Paths: trackPaths, Reset: resetPins,
		Window: window, Rewrite: true, KeepBackups: 1,
		Now: func() time.Time { return now },
	}
}

func history(t testing.TB, r gitops.Repo) []gitops.Snapshot {
	t.Helper()
	h, err := r.History(context.Background(), branch, nil, allPaths...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// person is what must survive a squash of a commit that is not the bot's
// pin: who, when (zones included), what it says, and what it changed
// outside the track environments' pinned fields.
func person(c, parent gitops.Snapshot) string {
	sig := func(s gitops.Signature) string {
		return fmt.Sprintf("%s <%s> %s", s.Name, s.Email, s.When.Format(time.RFC3339))
	}
	return fmt.Sprintf("author %s\ncommitter %s\n%s\ndiff:\n%s", sig(c.Commit.Author), sig(c.Commit.Committer), c.Commit.Message, diffOutsidePins(parent.Files, c.Files))
}

var digestLine = regexp.MustCompile(`(?m)^\s*digest: .*$`)

func diffOutsidePins(a, b map[string][]byte) string {
	var out []string
	for _, p := range allPaths {
		x, y := string(a[p]), string(b[p])
		if p == devPath || p == webPath {
			x, y = digestLine.ReplaceAllString(x, ""), digestLine.ReplaceAllString(y, "")
		}
		if x != y {
			out = append(out, fmt.Sprintf("%s: %q -> %q", p, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// people lists person() for every non-pin commit of h (newest first).
func people(h []gitops.Snapshot) []string {
	var out []string
	for i := 0; i+1 < len(h); i++ {
		if !gitops.IsPinCommit(h[i].Commit, bot.Email) {
			out = append(out, person(h[i], h[i+1]))
		}
	}
	return out
}

// checkSquashed checks the invariants of a squash that moved the branch
// from before to after.
func checkSquashed(t *testing.T, r gitops.Repo, rep gitops.SquashReport, before, after []gitops.Snapshot) {
	t.Helper()
	if rep.Outcome != gitops.SquashSquashed || rep.NewTip == "" {
		t.Fatalf("report = %+v, want squashed", rep)
	}
	if after[0].Commit.SHA != rep.NewTip || before[0].Commit.SHA != rep.OldTip {
		t.Fatalf("tips: before %s after %s, report %s → %s", before[0].Commit.SHA, after[0].Commit.SHA, rep.OldTip, rep.NewTip)
	}
	if after[0].Commit.Tree != before[0].Commit.Tree {
		t.Errorf("tree after %s, before %s: want identical", after[0].Commit.Tree, before[0].Commit.Tree)
	}
	if !maps.EqualFunc(after[0].Files, before[0].Files, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("tip files differ after the squash")
	}
	// Below the base nothing changed.
	bi := indexOf(before, rep.Base)
	ai := indexOf(after, rep.Base)
	if bi < 0 || ai < 0 || len(before)-bi != len(after)-ai {
		t.Fatalf("base %s at %d before, %d after (lengths %d, %d)", rep.Base, bi, ai, len(before), len(after))
	}
	// Every person's commit replayed, in order, identical.
	pb, pa := people(before), people(after)
	if strings.Join(pb, "\n====\n") != strings.Join(pa, "\n====\n") {
		t.Errorf("people's commits changed:\n--- before\n%s\n--- after\n%s", strings.Join(pb, "\n====\n"), strings.Join(pa, "\n====\n"))
	}
	// Exactly one bot pin commit above the base: the tip.
	for i := range ai {
		if isPin := gitops.IsPinCommit(after[i].Commit, bot.Email); isPin != (i == 0) {
			t.Errorf("after[%d] %q: pin commit %t", i, strings.SplitN(after[i].Commit.Message, "\n", 2)[0], isPin)
		}
	}
	if rep.Replayed != ai-1 {
		t.Errorf("replayed = %d, want %d commits between the base and the tip", rep.Replayed, ai-1)
	}
	tip := after[0].Commit
	msg := gitops.ParseMessage(tip.Message)
	if msg.Kind != gitops.KindRolling || tip.Author.Email != bot.Email || len(tip.Parents) != 1 {
		t.Errorf("tip %s: kind %q author %s parents %d, want the bot's rolling commit", tip.SHA, msg.Kind, tip.Author.Email, len(tip.Parents))
	}
	if fmt.Sprint(msg.Carried()) != fmt.Sprint(rep.Pins) {
		t.Errorf("tip carries %v, report says %v", msg.Carried(), rep.Pins)
	}
	for _, p := range rep.Pins {
		if !strings.Contains(string(after[0].Files[envPath[p.Env]]), p.Digest) {
			t.Errorf("pin %s/%s=%s is not in the tip's overlay", p.Env, p.Image, p.Digest)
		}
	}
	refs, err := r.ListRefs(context.Background(), gitops.BackupPrefix(branch))
	if err != nil {
		t.Fatal(err)
	}
	if refs[rep.BackupRef] != rep.OldTip {
		t.Errorf("backup %s → %s, want the old tip %s (refs %v)", rep.BackupRef, refs[rep.BackupRef], rep.OldTip, refs)
	}
}

func indexOf(h []gitops.Snapshot, sha string) int {
	for i, s := range h {
		if s.Commit.SHA == sha {
			return i
		}
	}
	return -1
}

const scenario = "old H; old R:dev; H; R:dev; R:web; Rel; O; A:dev; H; Man:prod; R:dev; H; R:web"

// TestSquashScenario runs one week on each backend: squash, dry run first,
// a racing push, a second squash in the same second.
func TestSquashScenario(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			r := b.new(t)
			w := build(t, scenario)
			materialize(t, r, w)
			before := history(t, r)

			// A dry run reports and moves nothing.
			dry, err := squasher(r).Squash(ctx, branch, true)
			if err != nil {
				t.Fatal(err)
			}
			if dry.Outcome != gitops.SquashSquashed || !dry.DryRun || dry.NewTip != "" || dry.Folded != 4 || dry.Replayed != 5 {
				t.Errorf("dry run = %+v, want squashed 4 folded 5 replayed, nothing moved", dry)
			}
			if got := history(t, r); got[0].Commit.SHA != before[0].Commit.SHA {
				t.Fatalf("dry run moved the branch")
			}

			// A person pushes while the squash is about to move the branch:
			// the squash aborts and the push stays.
			race := &racingRepo{Repo: r, race: func() { appendSpec(t, r, humanSpec(w, "racing push")) }}
			rep, err := squasher(race).Squash(ctx, branch, false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != gitops.SquashAborted || rep.NewTip != "" || !strings.Contains(rep.Reason, "moved") {
				t.Errorf("squash racing a push = %+v, want aborted", rep)
			}
			raced := history(t, r)
			if raced[0].Commit.Message != "racing push\n" || raced[1].Commit.SHA != before[0].Commit.SHA {
				t.Fatalf("after the race the tip is %q on %s, want the push on the old tip", raced[0].Commit.Message, raced[1].Commit.SHA)
			}
			if refs, _ := r.ListRefs(ctx, gitops.BackupPrefix(branch)); len(refs) != 0 {
				t.Errorf("aborted squash left backups %v", refs)
			}

			// The next run folds, replaying the push too.
			rep, err = squasher(r).Squash(ctx, branch, false)
			if err != nil {
				t.Fatal(err)
			}
			after := history(t, r)
			checkSquashed(t, r, rep, raced, after)
			if rep.Folded != 4 || rep.Replayed != 6 || rep.BackupRef != gitops.BackupPrefix(branch)+fmt.Sprint(now.Unix()) {
				t.Errorf("report = %+v, want 4 folded, 6 replayed, backup at the unix time", rep)
			}
			for old, nu := range rep.Rewritten {
				if indexOf(raced, old) < 0 || indexOf(after, nu) < 0 {
					t.Errorf("Rewritten %s → %s: not a commit before → after", old, nu)
				}
			}

			// More pins and a second squash in the same second: backup
			// "-1", and only it is kept (KeepBackups 1).
			for _, s := range []string{"R:dev", "H", "A:web"} {
				amend := w.step(t, s)
				sp := w.specs[len(w.specs)-1]
				sp.amend = amend
				appendSpec(t, r, sp)
			}
			before2 := history(t, r)
			rep2, err := squasher(r).Squash(ctx, branch, false)
			if err != nil {
				t.Fatal(err)
			}
			checkSquashed(t, r, rep2, before2, history(t, r))
			if want := rep.BackupRef + "-1"; rep2.BackupRef != want {
				t.Errorf("second backup %s, want %s", rep2.BackupRef, want)
			}
			refs, _ := r.ListRefs(ctx, gitops.BackupPrefix(branch))
			if len(refs) != 1 || refs[rep2.BackupRef] == "" {
				t.Errorf("backups %v, want only %s", refs, rep2.BackupRef)
			}

			// Squashed again right away: nothing to do.
			rep3, err := squasher(r).Squash(ctx, branch, false)
			if err != nil || rep3.Outcome != gitops.SquashNothing {
				t.Errorf("third squash = %+v, %v; want nothing", rep3, err)
			}
		})
	}
}

// TestSquashTreeMismatchAborts: a bot pin commit that also changed another
// file cannot be folded without losing that change; the squash aborts.
func TestSquashTreeMismatchAborts(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			r := b.new(t)
			w := build(t, "R:dev; H; R:dev")
			last := &w.specs[len(w.specs)-1]
			last.files = maps.Clone(last.files)
			last.files["other.txt"] = []byte("the bot should not have\n")
			tip := materialize(t, r, w)
			rep, err := squasher(r).Squash(t.Context(), branch, false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != gitops.SquashAborted || !strings.Contains(rep.Reason, "tree") {
				t.Errorf("report = %+v, want aborted on the tree check", rep)
			}
			if got := history(t, r)[0].Commit.SHA; got != tip {
				t.Errorf("branch moved to %s", got)
			}
		})
	}
}

// humanSpec is a person's README edit on top of w's current files.
func humanSpec(w *world, msg string) spec {
	files := maps.Clone(w.files)
	files[readme] = append(append([]byte(nil), files[readme]...), msg+"\n"...)
	w.files = files
	sig := ada
	sig.When = now.Add(-time.Hour).In(tokyo)
	return spec{msg: msg + "\n", author: sig, committer: sig, files: files}
}

// racingRepo runs race once just before the first UpdateRefs.
type racingRepo struct {
	gitops.Repo
	race func()
}

func (r *racingRepo) UpdateRefs(ctx context.Context, u []gitops.RefUpdate) error {
	if r.race != nil {
		r.race()
		r.race = nil
	}
	return r.Repo.UpdateRefs(ctx, u)
}
