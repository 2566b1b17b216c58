// Package worlds opens pinroll's engine in each of the three worlds it runs
// in, for tests: a local repository with a bbolt ledger, the fake GitHub with
// a bbolt ledger, and a local repository with the Firestore emulator (which
// the test starts itself: it skips when the emulator is missing, except under
// CI=true, where it fails). A package using the Firestore world should stop
// the emulator in its TestMain with emulator.Main.
package worlds

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/ledger/firestore"
	"github.com/pinroll/pinroll/internal/testing/emulator"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// The world's images and overlays.
const (
	ServerRepo        = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"
	WebRepo           = "asia-northeast2-docker.pkg.dev/PROJECT/frontend/web"
	DevKustomization  = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"
	ProdKustomization = "k8s/namespaces/backend/overlays/prod/kustomization.yaml"
	// ReleaseSource is the GitHub repository whose releases promote server.
	ReleaseSource = "acme/backend"
)

// Config has dev track latest and prod take releases of [ReleaseSource],
// both on main of the demo GitOps tree; dev carries a second image, web, so
// that two images share dev's rolling commit.
func Config(t testing.TB, repoURL string) *config.Config {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, `git: {repo: %s, author: {name: pinroll, email: pinroll@example.com}, min_interval: 20ms}
images:
  - {name: server, repository: %s, source: %s}
  - {name: web, repository: %s}
environments:
  - {name: dev, path: k8s/namespaces/backend/overlays/dev, track: latest}
  - {name: prod, path: k8s/namespaces/backend/overlays/prod, images: [server], release: {}}
`, repoURL, ServerRepo, ReleaseSource, WebRepo))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Commit is what tests look at in a commit.
type Commit struct {
	SHA     string
	Parents []string
	Message string
}

// World is an engine over one world, with views of the branch main.
type World struct {
	Name   string
	Engine *engine.Engine
	Ledger ledger.Ledger
	// Repo is the engine's git backend, for writing people's commits.
	Repo gitops.Repo
	// Log is main's first-parent history, newest first.
	Log func(t testing.TB) []Commit
	// File is path at the tip of main ("" when absent).
	File func(t testing.TB, path string) string
}

// Opener opens one world.
type Opener struct {
	Name string
	Open func(t testing.TB) *World
}

// All are the three worlds.
var All = []Opener{
	{"local+bolt", func(t testing.TB) *World { return OpenLocal(t, OpenBolt(t)) }},
	{"github+bolt", OpenGitHub},
	{"local+firestore", func(t testing.TB) *World {
		emulator.Firestore(t)
		l, err := firestore.Open(t.Context(), emulator.ProjectID(t), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		w := OpenLocal(t, l)
		return w
	}},
}

// Each runs test in every world, in parallel subtests named after them.
func Each(t *testing.T, test func(t *testing.T, w *World)) {
	t.Helper()
	for _, o := range All {
		t.Run(o.Name, func(t *testing.T) {
			t.Parallel()
			w := o.Open(t)
			w.Name = o.Name
			test(t, w)
		})
	}
}

// OpenBolt opens a bbolt ledger in a temporary directory.
func OpenBolt(t testing.TB) ledger.Ledger {
	t.Helper()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// OpenLocal opens the engine over l and the demo GitOps tree in a local
// repository.
func OpenLocal(t testing.TB, l ledger.Ledger) *World {
	t.Helper()
	gitDir := filepath.Join(t.TempDir(), "gitops.git")
	if _, err := demo.Seed(gitDir, "main"); err != nil {
		t.Fatal(err)
	}
	r, err := local.Open(gitDir)
	if err != nil {
		t.Fatal(err)
	}
	return &World{
		Name:   "local",
		Engine: engine.New(engine.Options{Config: Config(t, gitDir), Ledger: l, Repo: r, Backoff: time.Millisecond}),
		Ledger: l,
		Repo:   r,
		Log: func(t testing.TB) []Commit {
			var out []Commit
			for _, c := range gittest.Log(t, gitDir, "main") {
				out = append(out, Commit{c.SHA, c.Parents, c.Message})
			}
			return out
		},
		File: func(t testing.TB, p string) string { return string(gittest.File(t, gitDir, "main", p)) },
	}
}

// OpenGitHub opens the engine over the fake GitHub, seeded with the demo
// GitOps tree, and a bbolt ledger.
func OpenGitHub(t testing.TB) *World {
	t.Helper()
	gh := fakegithub.New(t, "acme", "cloud-provisioning", "main", demo.Files())
	// A world plays a week of pins in seconds: its writes are not paced,
	// and the fake does not limit them (ratelimit_test.go in engine does).
	gh.SetContentLimits()
	r, err := github.New(github.Options{Repo: gh.RepoURL(), APIURL: gh.URL(), Token: gh.Token(), WritesPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := OpenBolt(t)
	return &World{
		Name:   "github",
		Engine: engine.New(engine.Options{Config: Config(t, gh.RepoURL()), Ledger: l, Repo: r, Backoff: time.Millisecond}),
		Ledger: l,
		Repo:   r,
		Log: func(t testing.TB) []Commit {
			var out []Commit
			for _, c := range gh.Log("main") {
				out = append(out, Commit{c.SHA, c.Parents, c.Message})
			}
			return out
		},
		File: func(t testing.TB, p string) string { return string(gh.File("main", p)) },
	}
}

// Digest is the n-th test digest.
func Digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// Message is push n of tag to repository: message id "m<n>", digest
// [Digest](n), published now, so that it is newer than everything done
// before it, operators' pins included (those are dated by the engine's
// clock, as real pushes are).
func (w *World) Message(n int, repository, tag string) engine.ImagePush {
	return engine.ImagePush{ID: fmt.Sprintf("m%d", n), PublishTime: time.Now(),
		Action: "INSERT", Repository: repository, Digest: Digest(n), Tag: tag}
}

// Push pushes [World.Message](n, ServerRepo, tag) and checks its outcome.
func (w *World) Push(t testing.TB, n int, tag string, want engine.Outcome) engine.Result {
	t.Helper()
	res, err := w.Engine.Push(t.Context(), w.Message(n, ServerRepo, tag))
	if err != nil {
		t.Fatalf("push %d: %v", n, err)
	}
	if res.Outcome != want {
		t.Fatalf("push %d: outcome %s (%+v), want %s", n, res.Outcome, res, want)
	}
	return res
}
