package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// holdBeforeClaim sets a hold on the pair of the first claim right before
// the claim reaches the ledger: an operator's `deploy --hold` landing after
// the engine could have read the hold, and before its claim.
type holdBeforeClaim struct {
	ledger.Ledger
	done atomic.Bool
}

func (h *holdBeforeClaim) ClaimPin(ctx context.Context, p ledger.Pin) (ledger.Pin, bool, error) {
	if h.done.CompareAndSwap(false, true) {
		if err := h.Ledger.SetHold(ctx, p.Env, p.Image, true); err != nil {
			return ledger.Pin{}, false, err
		}
	}
	return h.Ledger.ClaimPin(ctx, p)
}

func (h *holdBeforeClaim) RecordClaim(ctx context.Context, image, digest, tag string, key ledger.Key, pins []ledger.Pin) ([]ledger.Claimed, error) {
	if len(pins) > 0 && h.done.CompareAndSwap(false, true) {
		if err := h.Ledger.SetHold(ctx, pins[0].Env, pins[0].Image, true); err != nil {
			return nil, err
		}
	}
	return h.Ledger.RecordClaim(ctx, image, digest, tag, key, pins)
}

// TestHoldSetDuringClaimIsHonoured: a hold set between the engine's reads
// and its claim stops the automatic pin — no commit, no pin, no history —
// for a GAR push and for a release alike.
func TestHoldSetDuringClaimIsHonoured(t *testing.T) {
	t.Parallel()
	releaseConfig := func(t *testing.T) func(gitDir string) *config.Config {
		return func(gitDir string) *config.Config {
			cfg, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s}
images: [{name: server, repository: %s, source: acme/backend}]
environments: [{name: prod, path: k8s/namespaces/backend/overlays/prod, release: {}}]
`, gitDir, repo))
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
	tests := []struct {
		name   string
		config func(t *testing.T) func(gitDir string) *config.Config
		env    string
		run    func(t *testing.T, eng *engine.Engine) engine.Result
		check  func(t *testing.T, l ledger.Ledger)
	}{
		{
			name: "push",
			env:  "dev",
			run: func(t *testing.T, eng *engine.Engine) engine.Result {
				res, err := eng.Push(t.Context(), msg("h1", 1, "latest"))
				if err != nil {
					t.Fatal(err)
				}
				return res
			},
			check: func(t *testing.T, l ledger.Ledger) {
				if _, ok, err := l.Digest(t.Context(), "server", msg("", 1, "").Digest); err != nil || !ok {
					t.Errorf("a held push must still record its digest: %v, %v", ok, err)
				}
			},
		},
		{
			name:   "release",
			config: releaseConfig,
			env:    "prod",
			run: func(t *testing.T, eng *engine.Engine) engine.Result {
				ctx := t.Context()
				if _, err := eng.Push(ctx, msg("p7", 7, "v1.2.3")); err != nil {
					t.Fatal(err)
				}
				res, err := eng.Release(ctx, engine.Release{Delivery: "d1", Action: "published", Repository: "acme/backend", Tag: "v1.2.3"})
				if err != nil {
					t.Fatal(err)
				}
				return res
			},
			check: func(t *testing.T, l ledger.Ledger) {
				ps, err := l.Promotions(t.Context(), "server", "v1.2.3")
				if err != nil || len(ps) != 1 || ps[0].State != ledger.PromotionPending {
					t.Errorf("a held release must wait as a pending promotion: %+v, %v", ps, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := with{ledger: func(l ledger.Ledger) ledger.Ledger { return &holdBeforeClaim{Ledger: l} }}
			if tc.config != nil {
				w.config = tc.config(t)
			}
			f := newFixture(t, w)
			res := tc.run(t, f.eng)
			if res.Outcome != engine.Held {
				t.Errorf("outcome %s (%+v), want held", res.Outcome, res)
			}
			if n := len(gittest.Log(t, f.gitDir, "main")); n != 1 {
				t.Errorf("the held pair got a commit: %d commits on main, want 1", n)
			}
			ctx := t.Context()
			if p, ok, err := f.ledger.Pin(ctx, tc.env, "server"); err != nil || ok {
				t.Errorf("pin of held %s/server = %+v, %v, %v; want none", tc.env, p, ok, err)
			}
			if h, err := f.ledger.History(ctx, ledger.HistoryQuery{Env: tc.env}); err != nil || len(h) != 0 {
				t.Errorf("history of held %s = %+v, %v; want none", tc.env, h, err)
			}
			if held, err := f.ledger.Held(ctx, tc.env, "server"); err != nil || !held {
				t.Errorf("Held(%s, server) = %v, %v; want the hold kept", tc.env, held, err)
			}
			tc.check(t, f.ledger)
		})
	}
}
