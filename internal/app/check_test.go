package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/app"
	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/testing/gittest"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

// TestOpenChecksOverlays: opening the app (what serve, watch and the function
// targets do) logs the config's warnings and each overlay problem as a
// WARNING, starts anyway, and keeps each environment's check for the status.
func TestOpenChecksOverlays(t *testing.T) {
	t.Parallel()
	_, yaml := gittest.SeedDemo(t)
	yaml += "  - name: staging\n    path: k8s/namespaces/backend/overlays/staging\n    track: staging\n    commit: append\n"
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	a, err := app.Open(context.Background(), cfg, func(string) string { return "" }, logging.New(logs, slog.LevelInfo))
	if err != nil {
		t.Fatalf("a broken overlay must not stop the start: %v", err)
	}
	defer a.Close()
	for _, want := range []string{
		`"severity":"WARNING","message":"config: environments[1] \"staging\" (commit: append) and environments[0] \"dev\" (commit: rolling) both write branch main`,
		`"severity":"WARNING","message":"overlay check: staging: k8s/namespaces/backend/overlays/staging/kustomization.yaml not found on main at `,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line with %s in:\n%s", want, logs)
		}
	}
	checks := a.Engine.OverlayChecks()
	if dev, staging := checks["dev"], checks["staging"]; !dev.OK || dev.Time.IsZero() || staging.OK || len(staging.Problems) != 1 {
		t.Fatalf("checks: %+v", checks)
	}
}
