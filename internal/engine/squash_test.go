package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
	"github.com/pinroll/pinroll/internal/testing/worlds"
)

const (
	qaKustomization = "k8s/namespaces/backend/overlays/qa/kustomization.yaml"
	deployment      = "k8s/namespaces/backend/base/deployment.yaml"
)

var squashPaths = []string{devKustomization, qaKustomization, deployment}

// withQA is the world's config plus qa, an append environment of server
// tracking the tag qa on main.
func withQA(w *opsWorld) *engine.Engine {
	c := *w.Engine.Config()
	c.Environments = append(slices.Clone(c.Environments), config.Environment{
		Name: "qa", Path: "k8s/namespaces/backend/overlays/qa", Track: "qa",
		Images: []string{"server"}, Branch: "main", Commit: config.CommitAppend,
	})
	return engine.New(engine.Options{Config: &c, Ledger: w.Ledger, Repo: w.Repo, Backoff: time.Millisecond})
}

// human commits files (path → content, "+" prefix appends to the current
// content) on main as a person would, with their own zone.
func human(t *testing.T, r gitops.Repo, msg string, files map[string]string) gitops.Commit {
	t.Helper()
	ctx := t.Context()
	tip, err := r.Read(ctx, "main", squashPaths...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for p, c := range files {
		if rest, ok := strings.CutPrefix(c, "+"); ok {
			c = rest + string(tip.Files[p])
		}
		out[p] = []byte(c)
	}
	when := time.Now().Add(-time.Minute).Truncate(time.Second).In(time.FixedZone("JST", 9*3600))
	sig := gitops.Signature{Name: "Ada", Email: "ada@example.com", When: when}
	sha, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Commit.Tree, Files: out, Parents: []string{tip.Commit.SHA},
		Message: msg, Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveBranch(ctx, "main", tip.Commit.SHA, sha); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadCommit(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	return got.Commit
}

func pushTo(t *testing.T, w *opsWorld, e *engine.Engine, n int, tag string) {
	t.Helper()
	res, err := e.Push(t.Context(), w.Message(n, worlds.ServerRepo, tag))
	if err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("push %d %s: %+v, %v; want pinned", n, tag, res, err)
	}
}

func mainHistory(t *testing.T, r gitops.Repo) []gitops.Snapshot {
	t.Helper()
	h, err := r.History(t.Context(), "main", nil, squashPaths...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func squashOne(t *testing.T, e *engine.Engine, env string, dryRun bool) engine.SquashReport {
	t.Helper()
	reps, err := e.Squash(t.Context(), env, dryRun)
	if err != nil || len(reps) != 1 {
		t.Fatalf("squash: %+v, %v; want one report", reps, err)
	}
	return reps[0]
}

// TestSquashWeek is a week of pins, rolling across people's commits and an
// append environment, folded by the squash in each world.
func TestSquashWeek(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		e := withQA(w)
		d0 := digest(100)
		// Before the week: a person pinned dev by hand and added qa.
		human(t, w.Repo, "dev: pin server by hand\n", map[string]string{
			devKustomization: strings.Replace(w.File(t, devKustomization), "newTag: latest\n", "newTag: latest\n    digest: "+d0+"\n", 1),
		})
		base := human(t, w.Repo, "qa: add the overlay\n", map[string]string{
			qaKustomization: "resources:\n  - ../../base\nimages:\n  - name: server\n    newName: " + worlds.ServerRepo + "\n",
		})
		baseDev := w.File(t, devKustomization)
		// The week.
		pushTo(t, w, e, 1, "latest")
		pushTo(t, w, e, 2, "latest")
		h2 := human(t, w.Repo, "base: two replicas\n", map[string]string{deployment: "+# replicas: 2\n"})
		pushTo(t, w, e, 3, "qa")
		pushTo(t, w, e, 4, "latest")
		h3 := human(t, w.Repo, "dev: say who owns it\n", map[string]string{devKustomization: "+# owned by team-a\n"})
		pushTo(t, w, e, 5, "latest")
		pushTo(t, w, e, 6, "latest")

		before := mainHistory(t, w.Repo)
		oldTip := before[0]
		if n := len(before); n != 9 {
			t.Fatalf("before the squash: %d commits, want 9 (seed, 2 people, rolling, people, append, rolling, people, rolling)", n)
		}

		// A dry run reports and moves nothing.
		dry := squashOne(t, e, "", true)
		if dry.Outcome != gitops.SquashSquashed || !dry.DryRun || dry.Folded != 4 || dry.Replayed != 2 || dry.Base != base.SHA || dry.NewTip != "" {
			t.Fatalf("dry run: %+v", dry)
		}
		if got := mainHistory(t, w.Repo); got[0].Commit.SHA != oldTip.Commit.SHA {
			t.Fatal("the dry run moved main")
		}
		if st, _ := e.Status(ctx); st.Branches[0].LastSquash != nil {
			t.Fatalf("a dry run became the last squash: %s", st.Branches[0].LastSquash)
		}

		rep := squashOne(t, e, "dev", false)
		if rep.Outcome != gitops.SquashSquashed || rep.Folded != 4 || rep.Replayed != 2 || rep.OldTip != oldTip.Commit.SHA || rep.Base != base.SHA {
			t.Fatalf("squash: %+v", rep)
		}
		after := mainHistory(t, w.Repo)
		tip := after[0]
		if len(after) != 6 || tip.Commit.SHA != rep.NewTip {
			t.Fatalf("after the squash: %d commits, tip %s; want 6, tip %s", len(after), tip.Commit.SHA, rep.NewTip)
		}
		if tip.Commit.Tree != oldTip.Commit.Tree {
			t.Errorf("tree changed: %s, was %s", tip.Commit.Tree, oldTip.Commit.Tree)
		}
		if m := gitops.ParseMessage(tip.Commit.Message); m.Kind != gitops.KindRolling || tip.Commit.Author.Email != "pinroll@example.com" {
			t.Errorf("new tip is not the bot's rolling commit: %q", tip.Commit.Message)
		}
		if after[3].Commit.SHA != base.SHA {
			t.Errorf("the squash rewrote below its base: %s, want %s", after[3].Commit.SHA, base.SHA)
		}
		// People's commits replayed identical: who, when (zone included),
		// what they say and what they changed; the dev digest is the base's.
		for i, orig := range []gitops.Commit{h3, h2} {
			got := after[i+1].Commit
			if got.Message != orig.Message || sig(got.Author) != sig(orig.Author) || sig(got.Committer) != sig(orig.Committer) {
				t.Errorf("replayed %q: %+v, want %+v", orig.Message, got, orig)
			}
		}
		if got := string(after[2].Files[deployment]); got != string(before[4].Files[deployment]) || !strings.HasPrefix(got, "# replicas: 2\n") {
			t.Errorf("replayed deployment:\n%s", got)
		}
		if got := string(after[2].Files[devKustomization]); got != baseDev {
			t.Errorf("replayed dev overlay of %q:\n%s\nwant the base's:\n%s", h2.Message, got, baseDev)
		}
		if got := string(after[1].Files[devKustomization]); got != "# owned by team-a\n"+baseDev {
			t.Errorf("replayed dev overlay of %q:\n%s\nwant the person's line on the base's:\n%s", h3.Message, got, baseDev)
		}
		// The backup ref holds the old tip.
		refs, err := w.Repo.ListRefs(ctx, gitops.BackupPrefix("main"))
		if err != nil || refs[rep.BackupRef] != oldTip.Commit.SHA || len(refs) != 1 {
			t.Errorf("backup refs %v (%v); want %s at %s", refs, err, rep.BackupRef, oldTip.Commit.SHA)
		}
		// The ledger: pins at the new commit, one squash entry, the report.
		for _, env := range []string{"dev", "qa"} {
			p, ok, err := w.Ledger.Pin(ctx, env, "server")
			if err != nil || !ok || p.Commit != rep.NewTip {
				t.Errorf("ledger pin %s/server: %+v, %v; want commit %s", env, p, err, rep.NewTip)
			}
			if ps := pinStatusOf(t, e, env, "server"); ps.Commit != rep.NewTip {
				t.Errorf("status %s/server: commit %s, want %s", env, ps.Commit, rep.NewTip)
			}
		}
		page, err := e.History(ctx, engine.HistoryQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var folds []engine.HistoryEntry
		for _, h := range page.Entries {
			if h.Cause == ledger.CauseSquash {
				folds = append(folds, h)
			}
		}
		if len(folds) != 1 || folds[0].Commit != rep.NewTip {
			t.Errorf("squash history entries: %+v; want one at %s", folds, rep.NewTip)
		}
		st, err := e.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var last engine.SquashReport
		if err := json.Unmarshal(st.Branches[0].LastSquash, &last); err != nil || last.NewTip != rep.NewTip || last.Outcome != gitops.SquashSquashed || last.BackupRef != rep.BackupRef {
			t.Errorf("status last_squash: %s (%v)", st.Branches[0].LastSquash, err)
		}

		// The next pin amends the new rolling commit.
		pushTo(t, w, e, 7, "latest")
		next := mainHistory(t, w.Repo)
		if len(next) != 6 || next[0].Commit.Parents[0] != after[1].Commit.SHA {
			t.Fatalf("pin after the squash: %d commits, parent %v; want the rolling commit amended", len(next), next[0].Commit.Parents)
		}
		if p := pinStatusOf(t, e, "qa", "server"); p.Commit != next[0].Commit.SHA {
			t.Errorf("qa/server after the amend: commit %s, want %s", p.Commit, next[0].Commit.SHA)
		}
	})
}

// sig is who and when, zone included.
func sig(s gitops.Signature) string {
	return s.Name + " <" + s.Email + "> " + s.When.Format(time.RFC3339)
}

func pinStatusOf(t *testing.T, e *engine.Engine, env, image string) engine.PinStatus {
	t.Helper()
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, es := range st.Environments {
		for _, p := range es.Pins {
			if es.Name == env && p.Image == image {
				return p
			}
		}
	}
	t.Fatalf("status has no pin %s/%s", env, image)
	return engine.PinStatus{}
}

// TestSquashRequests covers what the engine answers before any squash: an
// unknown environment, a release-only branch, nothing to fold.
func TestSquashRequests(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	c := *w.Engine.Config()
	c.Environments = append(slices.Clone(c.Environments), config.Environment{
		Name: "prod-eu", Path: "k8s/namespaces/backend/overlays/prod", Release: &config.Release{}, Branch: "release", Commit: config.CommitRolling,
	})
	e := engine.New(engine.Options{Config: &c, Ledger: w.Ledger, Repo: w.Repo})
	cases := []struct {
		name    string
		env     string
		wantErr error
		want    gitops.SquashOutcome
	}{
		{"unknown env", "staging", engine.ErrNotFound, ""},
		{"release-only branch", "prod-eu", engine.ErrUnprocessable, ""},
		{"nothing to fold", "dev", nil, gitops.SquashNothing},
		{"every branch", "", nil, gitops.SquashNothing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reps, err := e.Squash(context.Background(), tc.env, false)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (len(reps) != 1 || reps[0].Outcome != tc.want || reps[0].Branch != "main") {
				t.Fatalf("reports %+v, want one %s for main", reps, tc.want)
			}
		})
	}
}

// TestSquashSkipsAPersonsPin: a person's commit that changed a pinned
// digest itself cannot be replayed with the base's digest; the squash skips,
// naming it, moves nothing, and status keeps the report.
func TestSquashSkipsAPersonsPin(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	e := w.Engine
	pushTo(t, w, e, 1, "latest")
	h := human(t, w.Repo, "dev: pin by hand\n", map[string]string{
		devKustomization: strings.Replace(w.File(t, devKustomization), digest(1), digest(99), 1),
	})
	pushTo(t, w, e, 2, "latest")
	tip := w.Log(t)[0].SHA
	rep := squashOne(t, e, "", false)
	if rep.Outcome != gitops.SquashSkipped || !strings.Contains(rep.Reason, h.SHA[:12]) || rep.NewTip != "" {
		t.Fatalf("squash: %+v; want skipped naming %s", rep, h.SHA[:12])
	}
	if got := w.Log(t)[0].SHA; got != tip {
		t.Fatalf("a skipped squash moved main to %s", got)
	}
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if last := string(st.Branches[0].LastSquash); !strings.Contains(last, `"outcome":"skipped"`) {
		t.Errorf("last_squash: %s", last)
	}
}

// TestSquashThatWouldNotFitAborts: on GitHub, writes are paced; a squash
// whose writes need more time than the request has left reports aborted and
// moves nothing.
func TestSquashThatWouldNotFitAborts(t *testing.T) {
	t.Parallel()
	gh := fakegithub.New(t, "acme", "cloud-provisioning", "main", demo.Files())
	open := func(perMinute int) gitops.Repo {
		r, err := github.New(github.Options{Repo: gh.RepoURL(), APIURL: gh.URL(), Token: gh.Token(), WritesPerMinute: perMinute})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	l := worlds.OpenBolt(t)
	cfg := worlds.Config(t, gh.RepoURL())
	w := &opsWorld{Ledger: l, Repo: open(-1)}
	w.Engine = engine.New(engine.Options{Config: cfg, Ledger: l, Repo: w.Repo, Backoff: time.Millisecond})
	pushTo(t, w, w.Engine, 1, "latest")
	human(t, w.Repo, "docs\n", map[string]string{deployment: "+# docs\n"})
	pushTo(t, w, w.Engine, 2, "latest")
	tip := gh.Log("main")[0].SHA

	slow := engine.New(engine.Options{Config: cfg, Ledger: l, Repo: open(2)}) // one write at once, then one a minute
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	reps, err := slow.Squash(ctx, "", false)
	if err != nil || len(reps) != 1 {
		t.Fatalf("squash: %+v, %v", reps, err)
	}
	if r := reps[0]; r.Outcome != gitops.SquashAborted || !strings.Contains(r.Reason, "deadline") || r.NewTip != "" {
		t.Fatalf("squash: %+v; want aborted for the deadline", r)
	}
	if got := gh.Log("main")[0].SHA; got != tip {
		t.Fatalf("an aborted squash moved main to %s", got)
	}
}
