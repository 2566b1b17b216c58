package statuspage_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/statuspage"
)

// TestRenderOverlayCheck: an environment whose overlay check failed at
// start-up shows each problem; one that passed shows nothing more.
func TestRenderOverlayCheck(t *testing.T) {
	t.Parallel()
	const problem = "k8s/namespaces/backend/overlays/staging/kustomization.yaml not found on main at 50fa0db28da4 — fix the environment's path"
	d := statuspage.Data{Now: time.Now(), Status: engine.Status{Environments: []engine.EnvStatus{
		{Name: "dev", Path: "k8s/dev", Branch: "main", Trigger: "track:latest", Check: &engine.OverlayCheck{OK: true}},
		{Name: "staging", Path: "k8s/staging", Branch: "main", Trigger: "track:latest", Check: &engine.OverlayCheck{Problems: []string{problem}}},
	}}}
	var b bytes.Buffer
	if err := statuspage.Render(&b, d); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Count(page, `<ul class="check held">`) != 1 || !strings.Contains(page, "<li>"+strings.ReplaceAll(problem, "'", "&#39;")+"</li>") {
		t.Fatalf("want staging's problem, once:\n%s", page)
	}
}
