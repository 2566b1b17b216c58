package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// TestBrokenOverlayFailsItsEnvironmentOnly: qa tracks latest like dev, in the
// same rolling commit or in its own append commit, but its overlay is missing
// or broken. Dev is pinned; the message is not acknowledged, with qa's reason.
func TestBrokenOverlayFailsItsEnvironmentOnly(t *testing.T) {
	t.Parallel()
	const qaPath = "k8s/namespaces/backend/overlays/qa"
	for _, tc := range []struct {
		name    string
		commit  string // qa's commit mode
		overlay string // qa's kustomization.yaml; "" for none
		reason  string
	}{
		{"missing in the rolling commit", "rolling", "", "overlays/qa/kustomization.yaml not found on main"},
		{"missing with its own commit", "append", "", "overlays/qa/kustomization.yaml not found on main"},
		{"not YAML", "rolling", "images: [\n", "malformed kustomization"},
		{"images not a list", "append", "images: server\n", "images: is the scalar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, with{config: func(gitDir string) *config.Config {
				c, err := config.Parse([]byte(fmt.Sprintf(`git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}}
images: [{name: server, repository: %s}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: qa, path: %s, track: latest, commit: %s}
`, gitDir, repo, qaPath, tc.commit)))
				if err != nil {
					t.Fatal(err)
				}
				return c
			}})
			if tc.overlay != "" {
				if err := gittest.NewHuman(t, f.gitDir, "main").Push(qaPath+"/kustomization.yaml", tc.overlay, "qa"); err != nil {
					t.Fatal(err)
				}
			}
			m := msg("iso", 1, "latest")
			for i := range 2 { // a redelivery pins nothing twice
				res, err := f.eng.Push(context.Background(), m)
				if err == nil || errors.Is(err, engine.ErrTransient) || !errors.Is(err, gitops.ErrInvalid) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("delivery %d: err = %v, want a non-transient error saying %q", i+1, err, tc.reason)
				}
				got := map[string]engine.Outcome{}
				for _, e := range res.Envs {
					got[e.Env] = e.Outcome
				}
				wantDev := engine.Pinned
				if i > 0 {
					wantDev = engine.Unchanged
				}
				if got["dev"] != wantDev || got["qa"] != engine.Failed {
					t.Fatalf("delivery %d: %+v, want dev %s and qa failed", i+1, res.Envs, wantDev)
				}
				if !strings.Contains(string(gittest.File(t, f.gitDir, "main", "k8s/namespaces/backend/overlays/dev/kustomization.yaml")), m.Digest) {
					t.Fatalf("delivery %d: dev not pinned", i+1)
				}
				if n := len(gittest.Log(t, f.gitDir, "main")); n != 2+boolInt(tc.overlay != "") {
					t.Fatalf("delivery %d: %d commits, want the seed, qa's and one pin", i+1, n)
				}
			}
			if _, ok, _ := f.ledger.Delivery(context.Background(), "gar/iso"); ok {
				t.Fatal("a message with a failed environment was marked handled")
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTrackedTagReplacesStaleTag: the dev-append environment tracks `edge`
// in an overlay whose entry says newTag: v0.1.0 (the demo's prod overlay):
// the pin writes the tracked tag next to the digest (SPEC §6.1).
func TestTrackedTagReplacesStaleTag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{})
	m := msg("edge-1", 1, "edge")
	if res, err := f.eng.Push(context.Background(), m); err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("push: %+v %v", res, err)
	}
	y := string(gittest.File(t, f.gitDir, "main", "k8s/namespaces/backend/overlays/prod/kustomization.yaml"))
	if !strings.Contains(y, "newTag: edge\n    digest: "+m.Digest) || strings.Contains(y, "v0.1.0") {
		t.Fatalf("want newTag: edge next to the digest:\n%s", y)
	}
}
