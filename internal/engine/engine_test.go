package engine_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

const repo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"

func testConfig(t testing.TB, gitDir string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(fmt.Sprintf(`git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}, min_interval: 20ms}
images: [{name: server, repository: %s}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: dev-append, path: k8s/namespaces/backend/overlays/prod, track: edge, commit: append}
`, gitDir, repo)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type fixture struct {
	eng    *engine.Engine
	ledger ledger.Ledger
	gitDir string
}

// with changes the fixture: its config, or the ledger and repository the
// engine sees (to inject faults). Nil fields keep the defaults.
type with struct {
	config func(gitDir string) *config.Config
	ledger func(ledger.Ledger) ledger.Ledger
	repo   func(gitops.Repo) gitops.Repo
	now    func() time.Time
}

func newFixture(t testing.TB, w with) *fixture {
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
	o := engine.Options{Config: testConfig(t, gitDir), Ledger: l, Repo: r}
	if w.config != nil {
		o.Config = w.config(gitDir)
	}
	if w.ledger != nil {
		o.Ledger = w.ledger(l)
	}
	if w.repo != nil {
		o.Repo = w.repo(r)
	}
	o.Now = w.now
	return &fixture{eng: engine.New(o), ledger: l, gitDir: gitDir}
}

func msg(id string, n int, tag string) engine.ImagePush {
	return engine.ImagePush{ID: id, PublishTime: time.Unix(1_700_000_000+int64(n), 0).UTC(), Action: "INSERT",
		Repository: repo, Digest: fmt.Sprintf("sha256:%064x", n), Tag: tag}
}

// crashAfterGit fails the first write that records a commit (CommitPin, or
// MarkDelivery with durable pins): the process "dies" after the commit
// landed in git and before the ledger recorded it.
type crashAfterGit struct {
	ledger.Ledger
	crashed atomic.Bool
}

func (c *crashAfterGit) CommitPin(ctx context.Context, p ledger.Pin, commit string, at time.Time) error {
	if c.crashed.CompareAndSwap(false, true) {
		return errors.New("simulated crash")
	}
	return c.Ledger.CommitPin(ctx, p, commit, at)
}

func (c *crashAfterGit) MarkDelivery(ctx context.Context, id, outcome string, durable ...ledger.Committed) error {
	if len(durable) > 0 && c.crashed.CompareAndSwap(false, true) {
		return errors.New("simulated crash")
	}
	return c.Ledger.MarkDelivery(ctx, id, outcome, durable...)
}

func TestCrashBetweenGitAndLedger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{ledger: func(l ledger.Ledger) ledger.Ledger { return &crashAfterGit{Ledger: l} }})
	ctx := context.Background()
	m := msg("m1", 1, "latest")
	if _, err := f.eng.Push(ctx, m); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("first delivery: err = %v, want a transient error (not acknowledged)", err)
	}
	log := gittest.Log(t, f.gitDir, "main")
	if len(log) != 2 {
		t.Fatalf("the commit should have landed before the crash: %d commits", len(log))
	}
	if _, ok, _ := f.ledger.Delivery(ctx, "gar/m1"); ok {
		t.Fatal("the delivery was marked handled although its pin was not recorded")
	}
	res, err := f.eng.Push(ctx, m) // Pub/Sub redelivers
	if err != nil {
		t.Fatal(err)
	}
	after := gittest.Log(t, f.gitDir, "main")
	if len(after) != 2 || after[0].SHA != log[0].SHA {
		t.Fatalf("the redelivery changed git: %d commits, tip %s", len(after), after[0].SHA)
	}
	pin, ok, _ := f.ledger.Pin(ctx, "dev", "server")
	if !ok || pin.Commit != log[0].SHA || pin.Digest != m.Digest {
		t.Fatalf("ledger pin = %+v, want committed at %s", pin, log[0].SHA)
	}
	if h, _ := f.ledger.History(ctx, ledger.HistoryQuery{Env: "dev"}); len(h) != 1 || h[0].Commit != log[0].SHA || h[0].Cause != ledger.CauseGAR {
		t.Fatalf("history = %+v", h)
	}
	if res.Outcome != engine.Unchanged || res.Commit() != log[0].SHA {
		t.Fatalf("redelivery result = %+v", res)
	}
}

func TestAppendModeMakesOneCommitPerPin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if res, err := f.eng.Push(ctx, msg(fmt.Sprint("e", i), i, "edge")); err != nil || res.Outcome != engine.Pinned {
			t.Fatalf("push %d: %+v %v", i, res, err)
		}
	}
	log := gittest.Log(t, f.gitDir, "main")
	if len(log) != 4 {
		t.Fatalf("%d commits, want the seed and 3 append commits", len(log))
	}
	for _, c := range log[:3] {
		if !strings.Contains(c.Message, "\nPinroll-Kind: append\n") {
			t.Fatalf("not an append commit:\n%s", c.Message)
		}
	}
	// A rolling pin after append commits appends too: it never amends them.
	if _, err := f.eng.Push(ctx, msg("r", 9, "latest")); err != nil {
		t.Fatal(err)
	}
	if n := len(gittest.Log(t, f.gitDir, "main")); n != 5 {
		t.Fatalf("%d commits, want 5", n)
	}
}

func TestHeldEnvironmentDoesNotMove(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{})
	ctx := context.Background()
	if err := f.ledger.SetHold(ctx, "dev", "server", true); err != nil {
		t.Fatal(err)
	}
	res, err := f.eng.Push(ctx, msg("h", 1, "latest"))
	if err != nil || res.Outcome != engine.Held {
		t.Fatalf("%+v %v", res, err)
	}
	if n := len(gittest.Log(t, f.gitDir, "main")); n != 1 {
		t.Fatalf("a held environment got a commit")
	}
	if _, ok, _ := f.ledger.Digest(ctx, "server", msg("h", 1, "").Digest); !ok {
		t.Fatal("a held push must still record the digest")
	}
}

func TestBrokenOverlayIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{config: func(gitDir string) *config.Config {
		c := testConfig(t, gitDir)
		c.Environments[0].Path = "k8s/namespaces/backend/overlays/missing"
		return c
	}})
	_, err := f.eng.Push(context.Background(), msg("b", 1, "latest"))
	if err == nil || errors.Is(err, engine.ErrTransient) || !strings.Contains(err.Error(), "overlays/missing/kustomization.yaml not found") {
		t.Fatalf("err = %v, want a clear, non-transient error naming the file", err)
	}
	if _, ok, _ := f.ledger.Delivery(context.Background(), "gar/b"); ok {
		t.Fatal("a message that could not be applied was marked handled")
	}
}

// BenchmarkPinLocal measures one pin end to end on the local backend with the
// bbolt ledger: dedupe, record, claim, read, edit, amend, compare-and-swap,
// commit record. git.min_interval is 1 ns, so the pins run back to back: the
// figure is a pin's own cost, not the pause between ref moves. It reports the
// ledger's write transactions per pin (two fdatasyncs each).
func BenchmarkPinLocal(b *testing.B) {
	f := newFixture(b, with{config: func(gitDir string) *config.Config {
		c := testConfig(b, gitDir)
		c.Git.MinInterval.Duration = time.Nanosecond
		return c
	}})
	ctx := context.Background()
	l := f.ledger.(*bolt.Ledger)
	before, err := l.Commits()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if res, err := f.eng.Push(ctx, msg(fmt.Sprint("b", i), i, "latest")); err != nil || res.Outcome != engine.Pinned {
			b.Fatalf("%+v %v", res, err)
		}
	}
	after, err := l.Commits()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(i), "ledger-writes/op")
}

// failMoveOnce makes the first branch move fail as a network error would.
type failMoveOnce struct {
	gitops.Repo
	failed atomic.Bool
}

func (f *failMoveOnce) MoveBranch(ctx context.Context, branch, from, to string) error {
	if f.failed.CompareAndSwap(false, true) {
		return errors.New("connection reset")
	}
	return f.Repo.MoveBranch(ctx, branch, from, to)
}

func TestRetriedDeliveryReportsPinned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{repo: failOnce})
	m := msg("m", 1, "latest")
	if _, err := f.eng.Push(context.Background(), m); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("first attempt: %v, want transient", err)
	}
	res, err := f.eng.Push(context.Background(), m)
	if err != nil || res.Outcome != engine.Pinned || res.Commit() == "" {
		t.Fatalf("redelivery: %+v %v, want pinned with a commit", res, err)
	}
}

func failOnce(r gitops.Repo) gitops.Repo { return &failMoveOnce{Repo: r} }

// TestReleaseRetriedAfterFailedCommit: the claim lands in the ledger but the
// commit does not reach git; the redelivered webhook must commit it, not
// find its own claim and answer unchanged.
func TestReleaseRetriedAfterFailedCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{repo: failOnce, config: func(gitDir string) *config.Config {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`git: {repo: %s}
images: [{name: server, repository: %s, source: acme/backend}]
environments: [{name: prod, path: k8s/namespaces/backend/overlays/prod, release: {}}]
`, gitDir, repo)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}})
	eng, gitDir := f.eng, f.gitDir
	ctx := context.Background()
	if _, err := eng.Push(ctx, msg("p", 7, "v1.2.3")); err != nil {
		t.Fatal(err)
	}
	rel := engine.Release{Delivery: "d1", Action: "published", Repository: "acme/backend", Tag: "v1.2.3"}
	if _, err := eng.Release(ctx, rel); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("first attempt: %v, want transient", err)
	}
	res, err := eng.Release(ctx, rel)
	if err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("redelivery: %+v %v, want pinned", res, err)
	}
	if y := string(gittest.File(t, gitDir, "main", "k8s/namespaces/backend/overlays/prod/kustomization.yaml")); !strings.Contains(y, msg("", 7, "").Digest) {
		t.Fatalf("prod not pinned:\n%s", y)
	}
}
