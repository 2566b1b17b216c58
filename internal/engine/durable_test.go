package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

const workerRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/worker"

// twoImages is a config with dev tracking latest of server and worker.
func twoImages(t testing.TB, gitDir string) *config.Config {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}, min_interval: 1ns}
images: [{name: server, repository: %s}, {name: worker, repository: %s}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
`, gitDir, repo, workerRepo))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// holdMark holds MarkDelivery of one delivery id until release is closed,
// saying on held when it got there.
type holdMark struct {
	ledger.Ledger
	id      string
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdMark) MarkDelivery(ctx context.Context, id, outcome string, durable ...ledger.Committed) error {
	if id == h.id {
		h.once.Do(func() { close(h.held) })
		<-h.release
	}
	return h.Ledger.MarkDelivery(ctx, id, outcome, durable...)
}

// TestLateRecordNamesTheCarrier: a delivery records its pins with its mark,
// after its round. When the next round amends that commit before the record
// lands (and repoints the ledger's pins before they exist), the record must
// still name the commit that carries the pins now, not the one amended away.
func TestLateRecordNamesTheCarrier(t *testing.T) {
	t.Parallel()
	hold := &holdMark{id: "gar/s1", held: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, with{
		config: func(gitDir string) *config.Config { return twoImages(t, gitDir) },
		ledger: func(l ledger.Ledger) ledger.Ledger { hold.Ledger = l; return hold },
	})
	ctx := context.Background()
	server := msg("s1", 1, "latest")
	done := make(chan error, 1)
	go func() { _, err := f.eng.Push(ctx, server); done <- err }()
	<-hold.held // server's round moved the branch; its record waits
	first := gittest.Log(t, f.gitDir, "main")[0].SHA

	worker := msg("w2", 2, "latest")
	worker.Repository = workerRepo
	if res, err := f.eng.Push(ctx, worker); err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("worker: %+v %v", res, err)
	}
	log := gittest.Log(t, f.gitDir, "main")
	tip := log[0].SHA
	if tip == first || len(log) != 2 {
		t.Fatalf("the worker's pin should amend the rolling commit %s: %d commits, tip %s", first, len(log), tip)
	}
	close(hold.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"server", "worker"} {
		p, ok, err := f.ledger.Pin(ctx, "dev", img)
		if err != nil || !ok || p.Commit != tip {
			t.Errorf("pin dev/%s = %+v (%v, %v), want it recorded at the tip %s, not %s", img, p, ok, err, tip, first)
		}
	}
	// History keeps the commit that made the server's pin durable.
	h, err := f.ledger.History(ctx, ledger.HistoryQuery{Env: "dev", Image: "server"})
	if err != nil || len(h) != 1 || h[0].Commit != first {
		t.Errorf("server history = %+v (%v), want one entry at %s", h, err, first)
	}
}

// TestGivingUpAfterItsRoundStillRecords: a delivery whose request ends after
// its round moved the branch, while it records what git carries, still
// leaves the ledger saying so: git has the effect, so the write is not cut
// short with the request.
func TestGivingUpAfterItsRoundStillRecords(t *testing.T) {
	t.Parallel()
	hold := &holdMark{id: "gar/m1", held: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, with{ledger: func(l ledger.Ledger) ledger.Ledger { hold.Ledger = l; return hold }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := f.eng.Push(ctx, msg("m1", 1, "latest")); done <- err }()
	<-hold.held
	cancel()
	close(hold.release)
	if err := <-done; err != nil {
		t.Fatalf("push: %v", err)
	}
	tip := gittest.Log(t, f.gitDir, "main")[0].SHA
	p, ok, err := f.ledger.Pin(context.Background(), "dev", "server")
	if err != nil || !ok || p.Commit != tip || p.Digest != msg("", 1, "").Digest {
		t.Fatalf("pin = %+v (%v, %v), want it recorded at the tip %s", p, ok, err, tip)
	}
	if _, ok, _ := f.ledger.Delivery(context.Background(), "gar/m1"); !ok {
		t.Fatal("the delivery's effect is durable, yet it is not marked handled")
	}
}

// TestRoundNobodyWaitsForRecordsItself: a delivery that gives up while its
// round is in git leaves nobody to record the round's pins with a mark; the
// round records them itself, so the ledger says what git carries.
func TestRoundNobodyWaitsForRecordsItself(t *testing.T) {
	t.Parallel()
	stall := &stallBranch{branch: "main", moving: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, with{repo: func(r gitops.Repo) gitops.Repo { stall.Repo = r; return stall }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := f.eng.Push(ctx, msg("m1", 1, "latest")); done <- err }()
	<-stall.moving
	cancel() // the delivery gives up; its round goes on
	if err := <-done; !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("a delivery out of time: %v, want a transient error", err)
	}
	close(stall.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tip := gittest.Log(t, f.gitDir, "main")[0].SHA
		p, ok, err := f.ledger.Pin(context.Background(), "dev", "server")
		if err != nil {
			t.Fatal(err)
		}
		if ok && p.Commit == tip && p.Digest == msg("", 1, "").Digest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pin = %+v, want it recorded at the tip %s", p, tip)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok, _ := f.ledger.Delivery(context.Background(), "gar/m1"); ok {
		t.Fatal("a delivery that gave up was marked handled")
	}
}

// TestPushUnblocksRequiredRelease: a release blocked until dev runs its
// digest goes in the very delivery that pins the digest in dev. The rule
// reads dev's history, which that delivery would otherwise record only with
// its mark, after the rule ran.
func TestPushUnblocksRequiredRelease(t *testing.T) {
	t.Parallel()
	f := requireFixture(t, nil)
	ctx := context.Background()
	res, err := f.eng.Push(ctx, msg("l", 7, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]engine.Outcome{}
	for _, e := range res.Envs {
		got[e.Env] = e.Outcome
	}
	if got["dev"] != engine.Pinned || got["prod"] != engine.Pinned {
		t.Fatalf("dev's pin of the released digest: %+v, want dev and prod pinned", res)
	}
	if y := string(gittest.File(t, f.gitDir, "main", "k8s/namespaces/backend/overlays/prod/kustomization.yaml")); !strings.Contains(y, msg("", 7, "").Digest) {
		t.Fatalf("prod not pinned:\n%s", y)
	}
}

// stallBranch holds the moves of one branch until release is closed, saying
// on moving when the first one got there.
type stallBranch struct {
	gitops.Repo
	branch  string
	moving  chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stallBranch) MoveBranch(ctx context.Context, branch, from, to string) error {
	if branch == s.branch {
		s.once.Do(func() { close(s.moving) })
		<-s.release
	}
	return s.Repo.MoveBranch(ctx, branch, from, to)
}

// TestLateRecordKeepsHistoryHonest: a delivery for environments on two
// branches records its pins after both rounds. When a newer pin amended the
// first branch's commit meanwhile, the history entry must still name the
// commit that carried this delivery's digest, not the amend that replaced it.
func TestLateRecordKeepsHistoryHonest(t *testing.T) {
	t.Parallel()
	stall := &stallBranch{branch: "other", moving: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, with{
		repo: func(r gitops.Repo) gitops.Repo { stall.Repo = r; return stall },
		config: func(gitDir string) *config.Config {
			if out, err := exec.Command("git", "-C", gitDir, "branch", "other", "main").CombinedOutput(); err != nil {
				t.Fatalf("git branch: %v\n%s", err, out)
			}
			c, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, min_interval: 1ns}
images: [{name: server, repository: %s}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: stg, branch: other, path: k8s/namespaces/backend/overlays/dev, track: latest}
`, gitDir, repo))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := f.eng.Push(ctx, msg("s1", 1, "latest")); first <- err }()
	<-stall.moving // main carries digest 1; the move of other waits
	carried := gittest.Log(t, f.gitDir, "main")[0].SHA
	second := make(chan error, 1)
	go func() { _, err := f.eng.Push(ctx, msg("s2", 2, "latest")); second <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for gittest.Log(t, f.gitDir, "main")[0].SHA == carried {
		if time.Now().After(deadline) {
			t.Fatal("the second pin never amended main")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stall.release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	h, err := f.ledger.History(ctx, ledger.HistoryQuery{Env: "dev", Image: "server", Digest: msg("", 1, "").Digest})
	if err != nil || len(h) != 1 || h[0].Commit != carried {
		t.Fatalf("dev history of digest 1 = %+v (%v), want one entry at %s, the commit that carried it", h, err, carried)
	}
}
