package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
)

type ghFixture struct {
	eng  *engine.Engine
	gh   *fakegithub.Server
	repo *github.Repo
}

// newGitHubFixture is an engine over a fake GitHub seeded with files (the
// demo GitOps tree when nil) and a bolt ledger.
func newGitHubFixture(t testing.TB, files map[string][]byte) *ghFixture {
	t.Helper()
	if files == nil {
		files = demo.Files()
	}
	gh := fakegithub.New(t, "acme", "cloud-provisioning", "main", files)
	repo, err := github.New(github.Options{Repo: gh.RepoURL(), APIURL: gh.URL(), Token: gh.Token(), WritesPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	eng := engine.New(engine.Options{Config: testConfig(t, gh.RepoURL()), Ledger: l, Repo: repo, Backoff: time.Millisecond})
	return &ghFixture{eng: eng, gh: gh, repo: repo}
}

// TestForeignWriterOnEveryAttempt makes somebody else's commit land between
// pinroll's read and its ref update on each of the first three attempts.
func TestForeignWriterOnEveryAttempt(t *testing.T) {
	t.Parallel()
	f := newGitHubFixture(t, nil)
	f.gh.ForeignCommitsBeforeUpdate(3)
	res, err := f.eng.Push(context.Background(), msg("m", 1, "latest"))
	if err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("push: %+v %v", res, err)
	}
	log := f.gh.Log("main")
	if len(log) != 5 {
		t.Fatalf("want seed + 3 foreign commits + the pin, got %d commits", len(log))
	}
	if log[0].Author.Email != "pinroll@example.com" || log[0].SHA != res.Commit() {
		t.Fatalf("the pin is not on top: %s by %s", log[0].SHA, log[0].Author.Email)
	}
	for _, c := range log[1:4] {
		if c.Author.Email == "pinroll@example.com" {
			t.Fatalf("a foreign commit was replaced: %+v", c)
		}
	}
	if !strings.Contains(string(f.gh.File("main", "k8s/namespaces/backend/overlays/dev/kustomization.yaml")), msg("m", 1, "").Digest) {
		t.Fatal("digest not pinned")
	}
	// No tip is remembered yet: each attempt costs a read, a tree, a commit
	// and the update; a refused update needs no check query.
	if n := f.repo.Calls(); n != 4*4 {
		t.Fatalf("%d API calls, want %d", n, 4*4)
	}
}

const devOverlay = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"

// TestCallsAtTheFloor pins once (4 calls: nothing is remembered), then
// checks what the next message costs once pinroll remembers the tip it
// wrote, and what it does to the commit graph and the overlay.
func TestCallsAtTheFloor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		foreign bool // a person commits on top of pinroll's tip first
		races   int  // foreign commits landing before pinroll's next updates
		same    bool // the next message carries the pinned digest again
		calls   int64
		outcome engine.Outcome
	}{
		{name: "changed pin amends the remembered tip", calls: 3, outcome: engine.Pinned},
		{name: "pinned digest under a new message id", same: true, calls: 0, outcome: engine.Unchanged},
		{name: "foreign commit behind the remembered tip", foreign: true, calls: 3 + 4, outcome: engine.Pinned},
		{name: "foreign writer wins the first three races", races: 3, calls: 3 + 3*4, outcome: engine.Pinned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newGitHubFixture(t, nil)
			ctx := context.Background()
			first, err := f.eng.Push(ctx, msg("m1", 1, "latest"))
			if err != nil || first.Outcome != engine.Pinned {
				t.Fatalf("first push: %+v %v", first, err)
			}
			var foreign string
			if tc.foreign {
				foreign = f.gh.Commit("docs: a person's change\n", map[string][]byte{"NOTES.md": []byte("hello\n")})
			}
			f.gh.ForeignCommitsBeforeUpdate(tc.races)
			prev := f.gh.Log("main")
			before, start := len(prev), f.repo.Calls()
			m := msg("m2", 2, "latest")
			if tc.same {
				m = msg("m2", 1, "latest")
			}
			res, err := f.eng.Push(ctx, m)
			if err != nil || res.Outcome != tc.outcome {
				t.Fatalf("second push: %+v %v, want %s", res, err, tc.outcome)
			}
			if n := f.repo.Calls() - start; n != tc.calls {
				t.Errorf("%d API calls, want %d", n, tc.calls)
			}
			log := f.gh.Log("main")
			if !strings.Contains(string(f.gh.File("main", devOverlay)), "digest: "+m.Digest) {
				t.Fatalf("overlay does not pin %s:\n%s", m.Digest, f.gh.File("main", devOverlay))
			}
			switch {
			case tc.same:
				if log[0].SHA != first.Commit() || res.Commit() != first.Commit() {
					t.Errorf("tip %s, result %s; want both at the first pin %s", log[0].SHA, res.Commit(), first.Commit())
				}
			case tc.foreign || tc.races > 0:
				// The pin lands on top of every foreign commit, as a new commit.
				if want := before + tc.races + 1; len(log) != want || log[0].SHA != res.Commit() || log[0].Author.Email != "pinroll@example.com" {
					t.Fatalf("log has %d commits (want %d), tip %s by %s", len(log), want, log[0].SHA, log[0].Author.Email)
				}
				for _, c := range log[1 : 1+tc.races] {
					if c.Author.Email == "pinroll@example.com" {
						t.Errorf("foreign commit %s replaced", c.SHA)
					}
				}
				if foreign != "" && log[1].SHA != foreign {
					t.Errorf("the foreign commit %s is not the pin's parent (%s)", foreign, log[1].SHA)
				}
			default:
				// The rolling commit is amended: same length, same parent.
				if len(log) != before || log[0].SHA != res.Commit() || log[1].SHA != prev[1].SHA {
					t.Fatalf("log has %d commits (want %d), tip %s", len(log), before, log[0].SHA)
				}
				if !strings.Contains(log[0].Message, msg("", 1, "").Digest) {
					t.Errorf("the amended commit lost the first pin:\n%s", log[0].Message)
				}
			}
			if p, ok, err := f.eng.Ledger().Pin(ctx, "dev", "server"); err != nil || !ok || p.Digest != m.Digest || p.Commit != res.Commit() {
				t.Errorf("ledger pin %+v %v %v, want %s at %s", p, ok, err, m.Digest, res.Commit())
			}
		})
	}
}

// BenchmarkRollingPinGitHub pins a new digest per op through the GitHub
// backend (each op amends the rolling commit, whose tip pinroll remembers:
// no read) and reports API calls per pin.
func BenchmarkRollingPinGitHub(b *testing.B) {
	benchGitHub(b, 0, true)
}

// BenchmarkRollingPinGitHubUnchanged re-delivers the pinned digest under new
// message ids: the ledger records it durable, so git is not read at all.
func BenchmarkRollingPinGitHubUnchanged(b *testing.B) {
	benchGitHub(b, 0, false)
}

// BenchmarkRollingPinGitHubLatency100ms is the changing pin with 100 ms
// injected per GitHub round trip; it reports the pin's p50 and p99.
func BenchmarkRollingPinGitHubLatency100ms(b *testing.B) {
	benchGitHub(b, 100*time.Millisecond, true)
}

// BenchmarkRollingPinGitHubForeignWriter is the changing pin with a
// person's commit landing before each of the first three ref updates of
// every op: 3 calls on the remembered tip, then a read and 3 per retry.
func BenchmarkRollingPinGitHubForeignWriter(b *testing.B) {
	f := newGitHubFixture(b, nil)
	f.gh.SetRateLimit(1 << 30)
	f.gh.SetContentLimits() // b.N grows past 80 writes a minute (the client is unpaced)
	ctx := context.Background()
	if _, err := f.eng.Push(ctx, msg("warm", 1, "latest")); err != nil {
		b.Fatal(err)
	}
	start, n := f.repo.Calls(), 0
	i := 1
	for b.Loop() {
		i++
		n++
		f.gh.ForeignCommitsBeforeUpdate(3)
		res, err := f.eng.Push(ctx, msg(fmt.Sprint("b", i), i, "latest"))
		if err != nil || res.Outcome != engine.Pinned {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(f.repo.Calls()-start)/float64(n), "api-calls/op")
}

func benchGitHub(b *testing.B, latency time.Duration, change bool) {
	f := newGitHubFixture(b, nil)
	f.gh.SetRateLimit(1 << 30) // b.N grows past GitHub's 5,000 calls an hour
	f.gh.SetContentLimits()    // and past 80 writes a minute (the client is unpaced)
	ctx := context.Background()
	if _, err := f.eng.Push(ctx, msg("warm", 1, "latest")); err != nil {
		b.Fatal(err)
	}
	f.gh.SetLatency(latency)
	start := f.repo.Calls()
	var took []time.Duration
	i := 1
	for b.Loop() {
		i++
		m := msg(fmt.Sprint("b", i), i, "latest")
		if !change {
			m.Digest = msg("", 1, "").Digest
		}
		t0 := time.Now()
		res, err := f.eng.Push(ctx, m)
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if want := map[bool]engine.Outcome{true: engine.Pinned, false: engine.Unchanged}[change]; res.Outcome != want {
			b.Fatalf("outcome %s, want %s", res.Outcome, want)
		}
	}
	b.ReportMetric(float64(f.repo.Calls()-start)/float64(len(took)), "api-calls/op")
	if latency > 0 {
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(took[(len(took)*99)/100].Milliseconds()), "p99-ms")
	}
}

// TestKustomizationYml: an overlay named kustomization.yml (kustomize accepts
// it) is edited in place, still in 4 API calls.
func TestKustomizationYml(t *testing.T) {
	t.Parallel()
	files := demo.Files()
	const dev = "k8s/namespaces/backend/overlays/dev/"
	files[dev+"kustomization.yml"] = files[dev+"kustomization.yaml"]
	delete(files, dev+"kustomization.yaml")
	f := newGitHubFixture(t, files)
	gh, repo, eng := f.gh, f.repo, f.eng
	m := msg("m", 1, "latest")
	if res, err := eng.Push(context.Background(), m); err != nil || res.Outcome != engine.Pinned {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(string(gh.File("main", dev+"kustomization.yml")), "digest: "+m.Digest) {
		t.Fatal("kustomization.yml not pinned")
	}
	if gh.File("main", dev+"kustomization.yaml") != nil {
		t.Fatal("a kustomization.yaml was created next to the .yml")
	}
	if n := repo.Calls(); n != 4 {
		t.Fatalf("%d API calls, want 4", n)
	}
}
