// Package apptest opens pinroll over real local parts for tests: the demo
// GitOps repository (gittest.SeedDemo) and a bbolt ledger, both in a
// temporary directory, with JSON logs captured.
package apptest

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

// ReleaseSource is the GitHub repository whose releases promote the demo
// image to prod.
const ReleaseSource = "example/backend"

// World is an opened app and what a test looks at.
type World struct {
	App  *app.App
	Repo string // the GitOps repository on disk
	Log  *slog.Logger
	Logs *testlog.Buffer // everything Log wrote
}

// Open seeds the demo repository and opens the app on it: dev tracks latest,
// and releases of [ReleaseSource] promote to prod. The app is closed when the
// test ends.
func Open(t testing.TB) *World {
	t.Helper()
	repo, yaml := gittest.SeedDemo(t)
	yaml = strings.Replace(yaml, "    repository: "+gittest.DemoRepository+"\n",
		"    repository: "+gittest.DemoRepository+"\n    source: "+ReleaseSource+"\n", 1)
	yaml += "  - name: prod\n    path: k8s/namespaces/backend/overlays/prod\n    release: {}\n"
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := logging.New(logs, slog.LevelInfo)
	a, err := app.Open(context.Background(), cfg, func(string) string { return "" }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return &World{App: a, Repo: repo, Log: log, Logs: logs}
}
