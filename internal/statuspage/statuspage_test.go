package statuspage_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/statuspage"
)

const (
	repository = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"
	githubRepo = "https://github.com/acme/cloud-provisioning"
)

// digestOf is the n-th test digest: the SHA-256 of n, like a real one.
func digestOf(n int) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Append(nil, n))) }

// incident is the page's data after three dev pins, a prod release and a
// rollback of dev held for an incident, over a local repository and bbolt.
func incident(t testing.TB) (*engine.Engine, statuspage.Data) {
	t.Helper()
	dir := t.TempDir()
	gitDir := filepath.Join(dir, "gitops.git")
	if _, err := demo.Seed(gitDir, "main"); err != nil {
		t.Fatal(err)
	}
	l, err := bolt.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r, err := local.Open(gitDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}}
images: [{name: server, repository: %s, source: acme/backend}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: prod, path: k8s/namespaces/backend/overlays/prod, release: {}}
`, gitDir, repository))
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Config: cfg, Ledger: l, Repo: r})
	ctx := t.Context()
	pushed := func(n int, tag string) {
		m := engine.ImagePush{ID: fmt.Sprintf("m%d", n), PublishTime: time.Now().Add(time.Duration(n-10) * time.Minute), Action: "INSERT",
			Repository: repository, Digest: digestOf(n), Tag: tag}
		if _, err := eng.Push(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 3; n++ {
		pushed(n, "latest")
	}
	pushed(7, "v1.4.0")
	if _, err := eng.Release(ctx, engine.Release{Delivery: "d1", Action: "published", Repository: "acme/backend", Tag: "v1.4.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Deploy(ctx, engine.Deploy{Env: "dev", Image: "server", Rollback: 1, Hold: true,
		Reason: "checkout returns 500 since " + digestOf(3)[:19] + "; rolled back while we look (INC-4242)"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Release(ctx, engine.Release{Delivery: "d2", Action: "published", Repository: "acme/backend", Tag: "v1.5.0"}); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := eng.History(ctx, engine.HistoryQuery{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	return eng, statuspage.Data{Status: st, History: h.Entries, Repo: githubRepo, Now: time.Now()}
}

func TestRender(t *testing.T) {
	t.Parallel()
	_, d := incident(t)
	var b bytes.Buffer
	if err := statuspage.Render(&b, d); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	devPin := d.Status.Environments[0].Pins[0]
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<span class="badge held">held</span>`,
		"INC-4242",
		`<code title="` + digestOf(2) + `">` + digestOf(2)[:19] + `</code>`, // the rollback, short
		`href="` + githubRepo + "/commit/" + devPin.Commit + `"`,
		"v1.4.0",
		`v1.5.0 <span class="badge pending">pending</span>`,
		"track:latest",
		"manual",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, never := range []string{"<script", "<form", "<button", "<input"} {
		if strings.Contains(page, never) {
			t.Errorf("the page has %q: it must need no JavaScript and change nothing", never)
		}
	}
	// A local repository has no web page: commits are plain text.
	d.Repo = "/srv/gitops.git"
	b.Reset()
	if err := statuspage.Render(&b, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "/commit/") {
		t.Error("a local repository's commits must not be links")
	}
}

// TestRenderLastSquash: a branch shows its last squash, and the fold's
// history entry reads as a squash.
func TestRenderLastSquash(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tip := strings.Repeat("ab", 20)
	report := fmt.Sprintf(`{"branch":"main","outcome":"squashed","old_tip":"%s","new_tip":"%s","backup_ref":"refs/pinroll/backup/main/1700000000","folded":5,"replayed":2,"pins":[],"reason":"","time":%q}`,
		strings.Repeat("cd", 20), tip, now.Add(-3*time.Hour).Format(time.RFC3339))
	d := statuspage.Data{Now: now, Repo: githubRepo,
		Status:  engine.Status{Branches: []engine.BranchStatus{{Name: "main", Tip: tip, LastSquash: []byte(report)}}},
		History: []engine.HistoryEntry{{Commit: tip, Cause: "squash", Time: now.Add(-3 * time.Hour)}},
	}
	var b bytes.Buffer
	if err := statuspage.Render(&b, d); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"last squash", "squashed 3 h ago", "5 folded, 2 replayed", "refs/pinroll/backup/main/1700000000", "<strong>squash</strong> folded"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
