package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// TestPushRejectsFarFutureTimes: a publish time more than MaxClockSkew ahead
// of the engine's clock is rejected before anything is recorded; seconds of
// skew are fine (issue 8.3). (Any id is fine too: see anyid_test.go.)
func TestPushRejectsFarFutureTimes(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		id      string
		at      time.Time
		outcome engine.Outcome
	}{
		{"far future", "f", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), engine.Rejected},
		{"just over the bound", "f", clock.Add(engine.MaxClockSkew + time.Second), engine.Rejected},
		{"at the bound", "f", clock.Add(engine.MaxClockSkew), engine.Pinned},
		{"seconds ahead", "f", clock.Add(5 * time.Second), engine.Pinned},
		{"no publish time", "f", time.Time{}, engine.Pinned},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, with{now: func() time.Time { return clock }})
			m := msg(c.id, 1, "latest")
			m.PublishTime = c.at
			res, err := f.eng.Push(context.Background(), m)
			if err != nil || res.Outcome != c.outcome {
				t.Fatalf("Push = %+v, %v; want %s", res, err, c.outcome)
			}
			if c.outcome != engine.Rejected {
				return
			}
			if res.Reason == "" {
				t.Error("rejected without a reason")
			}
			if n := len(gittest.Log(t, f.gitDir, "main")); n != 1 {
				t.Errorf("git moved: %d commits", n)
			}
			if _, ok, _ := f.ledger.Digest(context.Background(), "server", m.Digest); ok {
				t.Error("the digest of a rejected message was recorded")
			}
			if _, ok, _ := f.ledger.Pin(context.Background(), "dev", "server"); ok {
				t.Error("a rejected message claimed the pin")
			}
		})
	}
}

// failTagDigest makes the ledger's tag lookups fail while failing is set.
type failTagDigest struct {
	ledger.Ledger
	failing atomic.Bool
}

func (f *failTagDigest) TagDigest(ctx context.Context, image, tag string) (string, bool, error) {
	if f.failing.Load() {
		return "", false, errors.New("ledger unavailable")
	}
	return f.Ledger.TagDigest(ctx, image, tag)
}

// requireFixture is a fixture where prod takes releases once dev ran their
// digest (release.require), with release v1.0.0 pushed and blocked; wrap,
// when set, wraps the ledger.
func requireFixture(t *testing.T, wrap func(ledger.Ledger) ledger.Ledger) *fixture {
	t.Helper()
	f := newFixture(t, with{ledger: wrap, config: func(gitDir string) *config.Config {
		c, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, min_interval: 1ns}
images: [{name: server, repository: %s, source: acme/backend}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: prod, path: k8s/namespaces/backend/overlays/prod, release: {require: dev}}
`, gitDir, repo))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}})
	ctx := context.Background()
	if _, err := f.eng.Push(ctx, msg("v", 7, "v1.0.0")); err != nil {
		t.Fatal(err)
	}
	rel := engine.Release{Delivery: "d1", Action: "published", Repository: "acme/backend", Tag: "v1.0.0"}
	if res, err := f.eng.Release(ctx, rel); err != nil || res.Outcome != engine.Blocked {
		t.Fatalf("release before dev ran it: %+v %v, want blocked", res, err)
	}
	return f
}

// TestBlockedPromotionOutage: when dev pins the digest a blocked release
// waits for, and the ledger fails while pinroll re-checks that release, the
// delivery fails as transient (redelivered) rather than leaving prod
// blocked unseen; the redelivery promotes (issue 8.6).
func TestBlockedPromotionOutage(t *testing.T) {
	t.Parallel()
	var fl *failTagDigest
	f := requireFixture(t, func(l ledger.Ledger) ledger.Ledger { fl = &failTagDigest{Ledger: l}; return fl })
	ctx := context.Background()
	fl.failing.Store(true)
	if _, err := f.eng.Push(ctx, msg("l", 7, "latest")); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("dev pin with the ledger failing: %v, want a transient error (redelivered)", err)
	}
	fl.failing.Store(false)
	res, err := f.eng.Push(ctx, msg("l", 7, "latest")) // Pub/Sub redelivers
	if err != nil {
		t.Fatal(err)
	}
	var prod engine.EnvResult
	for _, e := range res.Envs {
		if e.Env == "prod" {
			prod = e
		}
	}
	if prod.Outcome != engine.Pinned {
		t.Fatalf("redelivery: %+v, want prod pinned", res)
	}
	if y := string(gittest.File(t, f.gitDir, "main", "k8s/namespaces/backend/overlays/prod/kustomization.yaml")); !strings.Contains(y, msg("", 7, "").Digest) {
		t.Fatalf("prod not pinned:\n%s", y)
	}
}
