package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// failMoves refuses every ref move while failing is set.
type failMoves struct {
	gitops.Repo
	failing atomic.Bool
}

func (f *failMoves) MoveBranch(ctx context.Context, branch, from, to string) error {
	if f.failing.Load() {
		return errors.New("simulated I/O error")
	}
	return f.Repo.MoveBranch(ctx, branch, from, to)
}

// TestGroupRoundErrorFailsWaiters: when the shared reconcile fails, the
// delivery that waited for it is not acknowledged (only overtaken ones are,
// as superseded), and its redelivery pins the newest digest.
func TestGroupRoundErrorFailsWaiters(t *testing.T) {
	t.Parallel()
	var repo *failMoves
	f := newFixture(t, with{repo: func(r gitops.Repo) gitops.Repo { repo = &failMoves{Repo: r}; repo.failing.Store(true); return repo }})
	const n = 8
	results := make([]engine.Result, n+1)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() { results[i], errs[i] = f.eng.Push(context.Background(), msg(fmt.Sprint("m", i), i, "latest")) })
	}
	wg.Wait()
	for i := 1; i <= n; i++ {
		switch {
		case errs[i] != nil:
			if !errors.Is(errs[i], engine.ErrTransient) {
				t.Errorf("message %d: %v, want a transient error", i, errs[i])
			}
			if _, seen, _ := f.ledger.Delivery(context.Background(), fmt.Sprint("gar/m", i)); seen {
				t.Errorf("message %d failed but was marked handled", i)
			}
		case results[i].Outcome != engine.Superseded:
			t.Errorf("message %d: %s without error while git refused every move", i, results[i].Outcome)
		}
	}
	if errs[n] == nil {
		t.Fatalf("the newest message was acknowledged although its pin never reached git: %+v", results[n])
	}
	repo.failing.Store(false)
	res, err := f.eng.Push(context.Background(), msg(fmt.Sprint("m", n), n, "latest")) // Pub/Sub redelivers
	if err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("redelivery: %+v %v", res, err)
	}
	if got := string(gittest.File(t, f.gitDir, "main", devKustomization)); !strings.Contains(got, msg("", n, "").Digest) {
		t.Fatalf("dev not at the newest digest:\n%s", got)
	}
}

// TestGroupDeadlineBeforeNextMove: a delivery whose request deadline comes
// before the branch may move again answers a transient error at once; one
// with time to wait is pinned after the interval.
func TestGroupDeadlineBeforeNextMove(t *testing.T) {
	t.Parallel()
	f := newFixture(t, with{config: func(gitDir string) *config.Config { return burstConfig(t, gitDir, "3s") }})
	ctx := context.Background()
	if res, err := f.eng.Push(ctx, msg("m1", 1, "latest")); err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("first pin: %+v %v", res, err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := f.eng.Push(short, msg("m2", 2, "latest")); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("a deadline before the next move: %v, want a transient error", err)
	}
	if short.Err() != nil {
		t.Fatal("the refusal waited for the deadline instead of answering at once")
	}
	long, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	defer cancel2()
	res, err := f.eng.Push(long, msg("m2", 2, "latest"))
	if err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("redelivery with time to wait: %+v %v", res, err)
	}
	if n := len(gittest.Log(t, f.gitDir, "main")); n != 2 {
		t.Fatalf("%d commits, want the seed and one rolling commit", n)
	}
}
