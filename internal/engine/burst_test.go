package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// countMoves counts the ref moves that succeeded.
type countMoves struct {
	gitops.Repo
	moves atomic.Int64
}

func (c *countMoves) MoveBranch(ctx context.Context, branch, from, to string) error {
	err := c.Repo.MoveBranch(ctx, branch, from, to)
	if err == nil {
		c.moves.Add(1)
	}
	return err
}

func (c *countMoves) UpdateRefs(ctx context.Context, updates []gitops.RefUpdate) error {
	err := c.Repo.UpdateRefs(ctx, updates)
	if err == nil {
		c.moves.Add(1)
	}
	return err
}

// burstConfig is testConfig with dev only and git.min_interval as given
// (the default when empty).
func burstConfig(t testing.TB, gitDir, interval string) *config.Config {
	t.Helper()
	if interval != "" {
		interval = ", min_interval: " + interval
	}
	c, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}%s}
images: [{name: server, repository: %s}]
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
`, gitDir, interval, repo))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// burst is what one burst did.
type burst struct {
	moves    int64
	outcomes map[engine.Outcome]int
	humans   []string // subjects of the human commits pushed during the burst
	late     []string // and after it
	took     time.Duration
	writes   uint64 // the ledger's write transactions
}

// runBurst delivers n distinct pins of latest (message i published at i
// seconds), concurrency at a time, each with a 30 s request deadline, while a
// human, when human is set, commits and pushes with the git CLI in a loop.
// interval is git.min_interval ("" for the default).
func runBurst(t testing.TB, n, concurrency int, human bool, interval string, pace time.Duration) burst {
	t.Helper()
	var counter *countMoves
	f := newFixture(t, with{
		config: func(gitDir string) *config.Config { return burstConfig(t, gitDir, interval) },
		repo:   func(r gitops.Repo) gitops.Repo { counter = &countMoves{Repo: r}; return counter },
	})
	var h *gittest.Human
	if human {
		h = gittest.NewHuman(t, f.gitDir, "main")
	}
	out := burst{outcomes: map[engine.Outcome]int{}}
	l := f.ledger.(*bolt.Ledger)
	writes, err := l.Commits()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	humanDone := make(chan error, 1)
	go func() {
		if h == nil {
			humanDone <- nil
			return
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				humanDone <- nil
				return
			default:
			}
			subject := fmt.Sprintf("human edit %d", i)
			if err := h.Push(fmt.Sprintf("docs/human-%d.txt", i), subject+"\n", subject); err != nil {
				humanDone <- fmt.Errorf("%s: %w\n%s", subject, err, h.Dump())
				return
			}
			select {
			case <-stop: // landed after the burst: checked, not counted
				out.late = append(out.late, subject)
			default:
				out.humans = append(out.humans, subject)
			}
		}
	}()

	var errs []error
	out.outcomes, errs, out.took = deliver(f.eng, n, concurrency, pace)
	close(stop)
	if err := <-humanDone; err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		t.Error(err)
	}
	out.moves = counter.moves.Load()
	after, err := l.Commits()
	if err != nil {
		t.Fatal(err)
	}
	out.writes = after - writes

	// The final pin is the newest, and every human commit is on the branch.
	if got, want := string(gittest.File(t, f.gitDir, "main", devKustomization)), msg("", n, "").Digest; !strings.Contains(got, "digest: "+want) {
		t.Errorf("dev is not pinned to the newest digest %s:\n%s", want, got)
	}
	onBranch := map[string]bool{}
	for _, c := range gittest.Log(t, f.gitDir, "main") {
		onBranch[strings.SplitN(c.Message, "\n", 2)[0]] = true
	}
	for _, s := range append(out.humans, out.late...) {
		if !onBranch[s] {
			t.Errorf("human commit %q was lost", s)
		}
	}
	return out
}

// deliver pushes messages 1..n of latest, concurrency at a time, each with a
// 30 s request deadline, and returns their outcomes, errors and duration.
// deliver pushes n messages, concurrency at a time, handing out one every
// pace (0: as fast as they are taken).
func deliver(eng *engine.Engine, n, concurrency int, pace time.Duration) (map[engine.Outcome]int, []error, time.Duration) {
	outcomes := map[engine.Outcome]int{}
	var errs []error
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := eng.Push(ctx, msg(fmt.Sprint("burst-", i), i, "latest"))
				cancel()
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("message %d: %w", i, err))
				}
				outcomes[res.Outcome]++
				mu.Unlock()
			}
		})
	}
	for i := 1; i <= n; i++ {
		if pace > 0 && i > 1 {
			time.Sleep(pace)
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return outcomes, errs, time.Since(start)
}

// TestBurstLeavesHumansRoom: 1,000 pins, 16 at a time, fold into few ref
// moves; the newest pin lands, and a human pushing in a loop meanwhile lands
// at least 5 pushes, none lost.
func TestBurstLeavesHumansRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("a 1,000-pin burst")
	}
	gittest.RequireGit(t)
	// A human's pull and push take up to seconds on a loaded machine (CI,
	// this test's own 16 deliveries): 2 s between ref moves leaves room.
	// The burst is paced (125 pins a second, 8 s in all) so that it lasts
	// as long on a fast machine as on a loaded one: an unpaced burst can end
	// in 2 s, before a person's loop of pull + push had 5 chances.
	b := runBurst(t, 1000, 16, true, "2s", 8*time.Millisecond)
	t.Logf("%d ref moves, %d human pushes, %v in %s", b.moves, len(b.humans), b.outcomes, b.took.Round(time.Millisecond))
	if len(b.humans) < 5 {
		t.Errorf("the human landed %d pushes during the burst, want at least 5", len(b.humans))
	}
	if b.moves > 60 {
		t.Errorf("%d ref moves for 1,000 pins, want at most 60", b.moves)
	}
	if got := b.outcomes[engine.Pinned] + b.outcomes[engine.Superseded] + b.outcomes[engine.Unchanged]; got != 1000 {
		t.Errorf("outcomes %v: want every message pinned, superseded or unchanged", b.outcomes)
	}
}

// BenchmarkBurst is one op per burst of 1,000 distinct pins delivered 16 at a
// time (local repository, bbolt ledger, default git.min_interval) and reports
// ref moves per burst, the human pushes that landed during it and the ledger's
// write transactions per pin.
func BenchmarkBurst(b *testing.B) {
	gittest.RequireGit(b)
	var moves, humans int64
	var writes uint64
	var took time.Duration
	for range b.N {
		r := runBurst(b, 1000, 16, true, "", 0)
		moves += r.moves
		humans += int64(len(r.humans))
		took += r.took
		writes += r.writes
	}
	b.ReportMetric(float64(moves)/float64(b.N), "ref-moves/op")
	b.ReportMetric(float64(writes)/float64(b.N)/1000, "ledger-writes/pin")
	b.ReportMetric(float64(humans)/float64(b.N), "human-pushes/op")
	b.ReportMetric(took.Seconds()/float64(b.N)/1000*1e6, "µs/pin")
}

// BenchmarkBurstGitHub is BenchmarkBurst against the fake GitHub with its
// secondary write limit on (GitHub's 80 content-generating requests a
// minute and 500 an hour), the client's write pacing and git.min_interval at
// their defaults. It reports ref updates, content writes (trees, commits,
// blobs, ref updates) and requests refused as rate limited per burst, and
// fails if any was: pinroll must never trip GitHub's limit.
func BenchmarkBurstGitHub(b *testing.B) {
	var updates, writes, limited int
	var took time.Duration
	for range b.N {
		gh := fakegithub.New(b, "acme", "cloud-provisioning", "main", demo.Files())
		gh.SetContentLimits(fakegithub.ContentLimits...)
		repo, err := github.New(github.Options{Repo: gh.RepoURL(), APIURL: gh.URL(), Token: gh.Token()})
		if err != nil {
			b.Fatal(err)
		}
		l, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		eng := engine.New(engine.Options{Config: burstConfig(b, gh.RepoURL(), ""), Ledger: l, Repo: repo})
		_, errs, d := deliver(eng, 1000, 16, 0)
		took += d
		l.Close()
		for _, err := range errs {
			b.Error(err)
		}
		if got, want := string(gh.File("main", devKustomization)), msg("", 1000, "").Digest; !strings.Contains(got, "digest: "+want) {
			b.Errorf("dev is not pinned to the newest digest %s", want)
		}
		calls := gh.Calls()
		updates += calls[fakegithub.EndpointGraphQLMutation] + calls[fakegithub.EndpointUpdateRef]
		writes += gh.ContentWrites()
		limited += gh.RateLimited()
	}
	b.ReportMetric(float64(updates)/float64(b.N), "updateRefs/op")
	b.ReportMetric(float64(writes)/float64(b.N), "content-writes/op")
	b.ReportMetric(float64(limited)/float64(b.N), "rate-limited/op")
	b.ReportMetric(took.Seconds()/float64(b.N), "s/burst")
	if limited > 0 {
		b.Errorf("%d requests refused for GitHub's secondary rate limit, want 0", limited)
	}
	if per := float64(updates) / float64(b.N); per > 30 {
		b.Errorf("%.1f updateRefs per burst, want at most 30", per)
	}
}
