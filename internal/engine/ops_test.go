package engine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/testing/worlds"
)

type opsWorld = worlds.World

var (
	digest            = worlds.Digest
	devKustomization  = worlds.DevKustomization
	prodKustomization = worlds.ProdKustomization
)

func push(t *testing.T, w *opsWorld, n int, tag string, want engine.Outcome) engine.Result {
	t.Helper()
	return w.Push(t, n, tag, want)
}

func kindOf(c worlds.Commit) gitops.Kind { return gitops.ParseMessage(c.Message).Kind }

func pinStatus(t *testing.T, w *opsWorld, env, image string) engine.PinStatus {
	t.Helper()
	st, err := w.Engine.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, e := range st.Environments {
		for _, p := range e.Pins {
			if e.Name == env && p.Image == image {
				return p
			}
		}
	}
	t.Fatalf("status has no pin %s/%s: %+v", env, image, st)
	return engine.PinStatus{}
}

// TestRollbackHoldResume is the incident: three dev pins, a rollback with a
// hold, a push answered held, a resume catching up, and rolling pins
// appending above the manual commit, which is never amended.
func TestRollbackHoldResume(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		for n := 1; n <= 3; n++ {
			push(t, w, n, "latest", engine.Pinned)
		}
		if log := w.Log(t); len(log) != 2 || kindOf(log[0]) != gitops.KindRolling {
			t.Fatalf("three pins: %d commits, want the seed and one rolling commit", len(log))
		}
		res, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 1, Hold: true, Reason: "incident 42"})
		if err != nil {
			t.Fatal(err)
		}
		log := w.Log(t)
		manual := log[0]
		if res.Outcome != engine.Pinned || res.Digest != digest(2) || !res.Held || res.Commit != manual.SHA {
			t.Fatalf("rollback: %+v; want digest 2 pinned, held, at the tip %s", res, manual.SHA)
		}
		if len(log) != 3 || kindOf(manual) != gitops.KindManual || !strings.Contains(manual.Message, "incident 42") {
			t.Fatalf("rollback commit: %d commits, tip %q", len(log), manual.Message)
		}
		if f := w.File(t, devKustomization); !strings.Contains(f, digest(2)) || strings.Contains(f, digest(3)) {
			t.Fatalf("dev overlay after the rollback:\n%s", f)
		}

		// Held: the push is recorded, answered held, and changes nothing.
		push(t, w, 4, "latest", engine.Held)
		if got := w.Log(t); got[0].SHA != manual.SHA || len(got) != 3 {
			t.Fatalf("a held push committed: tip %s", got[0].SHA)
		}
		if _, ok, err := w.Ledger.Digest(ctx, "server", digest(4)); err != nil || !ok {
			t.Fatalf("the held push's digest was not recorded: %v %v", ok, err)
		}
		ps := pinStatus(t, w, "dev", "server")
		if !ps.Held || ps.Hold == nil || ps.Hold.Reason != "incident 42" || ps.Hold.Since.IsZero() ||
			ps.Digest != digest(2) || ps.Commit != manual.SHA || ps.Cause != ledger.CauseManual {
			t.Fatalf("status while held: %+v %+v", ps, ps.Hold)
		}

		// Resume catches up at once with a rolling commit above the manual one.
		res, err = w.Engine.Resume(ctx, "dev", "server")
		if err != nil {
			t.Fatal(err)
		}
		log = w.Log(t)
		if res.Outcome != engine.Pinned || res.Digest != digest(4) || res.Held || res.Commit != log[0].SHA {
			t.Fatalf("resume: %+v", res)
		}
		if len(log) != 4 || kindOf(log[0]) != gitops.KindRolling || log[0].Parents[0] != manual.SHA {
			t.Fatalf("resume commit: %d commits, tip kind %s, parent %v", len(log), kindOf(log[0]), log[0].Parents)
		}
		// The next push amends the rolling commit, never the manual one.
		push(t, w, 5, "latest", engine.Pinned)
		log = w.Log(t)
		if len(log) != 4 || log[1].SHA != manual.SHA || log[0].Parents[0] != manual.SHA {
			t.Fatalf("after the resume, a push must amend the rolling commit above the manual one: %d commits", len(log))
		}
		if ps := pinStatus(t, w, "dev", "server"); ps.Held || ps.Digest != digest(5) || ps.Commit != log[0].SHA {
			t.Fatalf("status after resume: %+v, want digest 5 at %s", ps, log[0].SHA)
		}
		// Rollback 2 skips repeats: history is 5, 4, 2, 3, 2, 1 → 4, then 2.
		res, err = w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 2})
		if err != nil || res.Digest != digest(2) || res.Held {
			t.Fatalf("rollback 2: %+v, %v; want digest 2, not held", res, err)
		}
		if _, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 5}); !errors.Is(err, engine.ErrConflict) {
			t.Fatalf("rollback deeper than history: %v, want ErrConflict", err)
		}
		// Without a hold, the next newer push replaces the manual pin.
		push(t, w, 6, "latest", engine.Pinned)
		if log := w.Log(t); len(log) != 6 || kindOf(log[1]) != gitops.KindManual {
			t.Fatalf("a push after an unheld manual pin must append: %d commits", len(log))
		}
	})
}

// TestStatusCommitAfterAmend: two images share dev's rolling commit; after
// the second amends it, both pins name the amended commit.
func TestStatusCommitAfterAmend(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		push(t, w, 1, "latest", engine.Pinned)
		m := w.Message(2, worlds.WebRepo, "latest")
		if res, err := w.Engine.Push(ctx, m); err != nil || res.Outcome != engine.Pinned {
			t.Fatalf("push web: %+v, %v", res, err)
		}
		log := w.Log(t)
		if len(log) != 2 {
			t.Fatalf("%d commits, want one rolling commit on the seed", len(log))
		}
		for _, image := range []string{"server", "web"} {
			if ps := pinStatus(t, w, "dev", image); ps.Commit != log[0].SHA {
				t.Errorf("status dev/%s commit %s, want the amended tip %s", image, ps.Commit, log[0].SHA)
			}
			if p, _, err := w.Ledger.Pin(ctx, "dev", image); err != nil || p.Commit != log[0].SHA {
				t.Errorf("ledger pin dev/%s commit %s, %v; want %s", image, p.Commit, err, log[0].SHA)
			}
		}
		st, err := w.Engine.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Branches) != 1 || st.Branches[0].Tip != log[0].SHA || st.Branches[0].Rolling == nil || len(st.Branches[0].Rolling.Pins) != 2 {
			t.Fatalf("branches: %+v", st.Branches)
		}
	})
}

// TestReleaseManualLowerHoldResume: a release environment goes to a lower
// version only by hand; a release of a held pair waits as a pending
// promotion and is applied by the resume.
func TestReleaseManualLowerHoldResume(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		release := func(tag string, want engine.Outcome) {
			t.Helper()
			res, err := w.Engine.Release(ctx, engine.Release{Delivery: "d-" + tag, Action: "published", Repository: "acme/backend", Tag: tag})
			if err != nil || res.Outcome != want {
				t.Fatalf("release %s: %+v, %v; want %s", tag, res, err, want)
			}
		}
		push(t, w, 3, "v1.2.3", engine.Recorded)
		push(t, w, 4, "v1.2.4", engine.Recorded)
		release("v1.2.4", engine.Pinned)
		release("v1.2.3", engine.Ignored) // never lower automatically
		res, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "prod", Image: "server", Tag: "v1.2.3", Hold: true, Reason: "v1.2.4 breaks checkout"})
		if err != nil || res.Outcome != engine.Pinned || res.Digest != digest(3) || res.Tag != "v1.2.3" || !res.Held {
			t.Fatalf("manual deploy of a lower version: %+v, %v", res, err)
		}
		if f := w.File(t, prodKustomization); !strings.Contains(f, digest(3)) || !strings.Contains(f, "v1.2.3") {
			t.Fatalf("prod overlay:\n%s", f)
		}
		tip := w.Log(t)[0].SHA
		push(t, w, 5, "v1.2.5", engine.Recorded)
		release("v1.2.5", engine.Held)
		if w.Log(t)[0].SHA != tip {
			t.Fatal("a held release committed")
		}
		st, err := w.Engine.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Promotions) != 1 || st.Promotions[0].Tag != "v1.2.5" || st.Promotions[0].State != "pending" {
			t.Fatalf("promotions while held: %+v", st.Promotions)
		}
		res, err = w.Engine.Resume(ctx, "prod", "server")
		if err != nil || res.Outcome != engine.Pinned || res.Digest != digest(5) || res.Commit != w.Log(t)[0].SHA {
			t.Fatalf("resume prod: %+v, %v", res, err)
		}
		if st, err := w.Engine.Status(ctx); err != nil || len(st.Promotions) != 0 {
			t.Fatalf("promotions after resume: %+v, %v", st.Promotions, err)
		}
	})
}

// TestHistoryPaging pages through history in every world: newest first,
// without gaps or overlaps, filtered by env and image.
func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		for n := 1; n <= 7; n++ {
			push(t, w, n, "latest", engine.Pinned)
		}
		if _, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 3}); err != nil {
			t.Fatal(err)
		}
		all, err := w.Engine.History(ctx, engine.HistoryQuery{Env: "dev", Limit: engine.MaxHistoryLimit})
		if err != nil || len(all.Entries) != 8 || all.Next != "" {
			t.Fatalf("whole history: %d entries, next %q, %v", len(all.Entries), all.Next, err)
		}
		if all.Entries[0].Cause != ledger.CauseManual || all.Entries[0].Digest != digest(4) {
			t.Fatalf("newest entry %+v, want the manual rollback to digest 4", all.Entries[0])
		}
		for _, q := range []engine.HistoryQuery{{Limit: 3}, {Env: "dev", Limit: 3}, {Env: "dev", Image: "server", Limit: 1}, {Image: "server", Limit: 5}} {
			var got []engine.HistoryEntry
			for pages := 0; ; pages++ {
				page, err := w.Engine.History(ctx, q)
				if err != nil || pages > 10 {
					t.Fatalf("%+v: %v after %d pages", q, err, pages)
				}
				got = append(got, page.Entries...)
				if page.Next == "" {
					break
				}
				q.Before = page.Next
			}
			if !slices.Equal(got, all.Entries) {
				t.Errorf("paged %+v:\n got  %+v\n want %+v", q, got, all.Entries)
			}
		}
	})
}

// TestOpsErrors: each error an operator can get, as the engine's sentinel.
func TestOpsErrors(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	ctx := t.Context()
	push(t, w, 1, "latest", engine.Pinned)
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"unknown env", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "qa", Image: "server", Digest: digest(1)})
			return err
		}, engine.ErrNotFound},
		{"unknown image", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "db", Digest: digest(1)})
			return err
		}, engine.ErrNotFound},
		{"image not carried", func() error { _, err := w.Engine.Resume(ctx, "prod", "web"); return err }, engine.ErrNotFound},
		{"digest and tag", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Digest: digest(1), Tag: "latest"})
			return err
		}, engine.ErrBadRequest},
		{"nothing to deploy", func() error { _, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server"}); return err }, engine.ErrBadRequest},
		{"malformed digest", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Digest: "sha256:xyz"})
			return err
		}, engine.ErrBadRequest},
		{"negative rollback", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: -1})
			return err
		}, engine.ErrBadRequest},
		{"unknown digest", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Digest: digest(9)})
			return err
		}, engine.ErrUnprocessable},
		{"unknown tag", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Tag: "v9.9.9"})
			return err
		}, engine.ErrUnprocessable},
		{"rollback without history", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 1})
			return err
		}, engine.ErrConflict},
		{"rollback without pin", func() error {
			_, err := w.Engine.Deploy(ctx, engine.Deploy{Env: "prod", Image: "server", Rollback: 1})
			return err
		}, engine.ErrConflict},
		{"history: bad cursor", func() error { _, err := w.Engine.History(ctx, engine.HistoryQuery{Before: "!!"}); return err }, engine.ErrBadRequest},
		{"history: bad limit", func() error { _, err := w.Engine.History(ctx, engine.HistoryQuery{Limit: -1}); return err }, engine.ErrBadRequest},
		{"history: unknown env", func() error { _, err := w.Engine.History(ctx, engine.HistoryQuery{Env: "qa"}); return err }, engine.ErrNotFound},
	}
	for _, tc := range tests {
		if err := tc.run(); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	if log := w.Log(t); len(log) != 2 {
		t.Errorf("refused requests committed: %d commits", len(log))
	}
}

// TestDeployReasonIsOneLine: a reason cannot pose as commit trailers, and
// stays short.
func TestDeployReasonIsOneLine(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	w.Push(t, 1, "latest", engine.Pinned)
	w.Push(t, 2, "latest", engine.Pinned)
	reason := "bad\n\nPinroll-Kind: rolling\nPinroll-Pin: dev/server=sha256:x\t" + strings.Repeat("é", 400)
	if _, err := w.Engine.Deploy(t.Context(), engine.Deploy{Env: "dev", Image: "server", Rollback: 1, Hold: true, Reason: reason}); err != nil {
		t.Fatal(err)
	}
	tip := w.Log(t)[0]
	if m := gitops.ParseMessage(tip.Message); m.Kind != gitops.KindManual || len(m.Carried()) != 1 {
		t.Fatalf("the reason changed the trailers: kind %s, pins %+v\n%s", m.Kind, m.Carried(), tip.Message)
	}
	hs, err := w.Ledger.Holds(t.Context())
	if err != nil || len(hs) != 1 {
		t.Fatal(hs, err)
	}
	if r := hs[0].Reason; strings.ContainsAny(r, "\n\t") || len(r) > engine.MaxReason+len("…") || !strings.HasPrefix(r, "bad Pinroll-Kind: rolling Pinroll-Pin") {
		t.Errorf("hold reason %q", r)
	}
}

// TestUnwrittenClaim: a push claimed in the ledger whose git write failed is
// desired, not pinned. Status shows what git carries and the pending digest,
// resume catches git up to it, and a rollback counts back from what git
// carries.
func TestUnwrittenClaim(t *testing.T) {
	t.Parallel()
	worlds.Each(t, func(t *testing.T, w *opsWorld) {
		ctx := t.Context()
		push(t, w, 1, "latest", engine.Pinned)
		push(t, w, 2, "latest", engine.Pinned)
		// What a push leaves behind when its git write fails: the digest
		// recorded and claimed, no commit.
		unwritten := func(n int) {
			t.Helper()
			m := w.Message(n, worlds.ServerRepo, "latest")
			key := ledger.Key{Time: m.PublishTime, ID: m.ID}
			if err := w.Ledger.RecordDigest(ctx, "server", m.Digest, "latest", key); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := w.Ledger.ClaimPin(ctx, ledger.Pin{Env: "dev", Image: "server", Digest: m.Digest, Tag: "latest",
				Key: key, Cause: ledger.CauseGAR, Time: m.PublishTime}); err != nil || !ok {
				t.Fatalf("claim %d: %v %v", n, ok, err)
			}
		}
		unwritten(3)
		tip := w.Log(t)[0].SHA
		if ps := pinStatus(t, w, "dev", "server"); ps.Digest != digest(2) || ps.Commit != tip || ps.Pending != digest(3) {
			t.Fatalf("status with an unwritten claim: %+v; want digest 2 at %s, pending digest 3", ps, tip)
		}
		res, err := w.Engine.Resume(ctx, "dev", "server")
		if err != nil || res.Outcome != engine.Pinned || res.Digest != digest(3) {
			t.Fatalf("resume: %+v, %v; want digest 3 pinned (git did not carry it)", res, err)
		}
		if f := w.File(t, devKustomization); !strings.Contains(f, digest(3)) {
			t.Fatalf("dev overlay after the resume:\n%s", f)
		}
		if ps := pinStatus(t, w, "dev", "server"); ps.Digest != digest(3) || ps.Pending != "" {
			t.Fatalf("status after the resume: %+v", ps)
		}
		unwritten(4)
		res, err = w.Engine.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 1})
		if err != nil || res.Outcome != engine.Pinned || res.Digest != digest(2) {
			t.Fatalf("rollback 1 with digest 4 unwritten: %+v, %v; want digest 2, the one before what git carries", res, err)
		}
		if f := w.File(t, devKustomization); !strings.Contains(f, digest(2)) {
			t.Fatalf("dev overlay after the rollback:\n%s", f)
		}
	})
}

// TestOpsRequiresEnvAndImage: a request without env or image is malformed
// (400), not an unknown name (404).
func TestOpsRequiresEnvAndImage(t *testing.T) {
	t.Parallel()
	w := worlds.OpenLocal(t, worlds.OpenBolt(t))
	if _, err := w.Engine.Resume(t.Context(), "dev", ""); !errors.Is(err, engine.ErrBadRequest) {
		t.Errorf("resume without image: %v, want ErrBadRequest", err)
	}
	if _, err := w.Engine.Deploy(t.Context(), engine.Deploy{Image: "server", Rollback: 1}); !errors.Is(err, engine.ErrBadRequest) {
		t.Errorf("deploy without env: %v, want ErrBadRequest", err)
	}
}
