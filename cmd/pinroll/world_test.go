package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/testing/emulator"
	"github.com/pinroll/pinroll/internal/testing/fakegar"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
	"github.com/pinroll/pinroll/internal/testing/gittest"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

// The scenarios' fixed names: what a user writes in pinroll.yaml.
const (
	serverRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"
	workerRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/worker"
	devPath    = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"
	botEmail   = "pinroll@example.com"
)

// gitHost is the GitOps repository a world's pinroll writes to: a local repo
// on disk or a fake GitHub. Scenarios only look at it through this.
type gitHost interface {
	// configure returns the git: section of pinroll.yaml and the environment
	// variables (credentials) pinroll needs for it.
	configure() (gitYAML string, env map[string]string)
	log(t testing.TB) []gitops.Commit
	file(t testing.TB, path string) []byte
	// human returns someone who commits to the branch as a person would.
	human(t testing.TB) interface {
		Push(path, content, message string) error
	}
}

// localHost is a bare repository on disk, seeded with the demo GitOps tree.
type localHost struct{ dir string }

func newLocalHost(t testing.TB) gitHost {
	dir := filepath.Join(t.TempDir(), "gitops.git")
	if _, err := demo.Seed(dir, "main"); err != nil {
		t.Fatal(err)
	}
	return &localHost{dir: dir}
}

func (h *localHost) configure() (string, map[string]string) {
	return fmt.Sprintf("git:\n  repo: %s\n  branch: main\n  author: {name: pinroll, email: %s}\n", h.dir, botEmail), nil
}
func (h *localHost) log(t testing.TB) []gitops.Commit { return gittest.Log(t, h.dir, "main") }
func (h *localHost) file(t testing.TB, p string) []byte {
	return gittest.File(t, h.dir, "main", p)
}
func (h *localHost) human(t testing.TB) interface {
	Push(path, content, message string) error
} {
	return gittest.NewHuman(t, h.dir, "main")
}

// backends lists the git hosts and ledgers the scenarios run on.
type backend struct {
	name   string
	git    func(t testing.TB) gitHost
	ledger func(t testing.TB) string // the ledger: URL
}

var backends = []backend{
	{name: "local+bolt", git: newLocalHost, ledger: boltLedger},
	{name: "github+bolt", git: newGitHubHost, ledger: boltLedger},
	{name: "local+firestore", git: newLocalHost, ledger: firestoreLedger},
}

// firestoreLedger is a fresh project on the Firestore emulator (started on
// first use; skipped without gcloud, except under CI=true).
func firestoreLedger(t testing.TB) string {
	emulator.Firestore(t)
	return "firestore://" + emulator.ProjectID(t)
}

// githubHost is a fake GitHub (real git objects, GitHub's rules) seeded with
// the demo GitOps tree; pinroll reaches it through git.repo + git.api_url and
// PINROLL_GITHUB_TOKEN, as a user would configure GitHub Enterprise.
type githubHost struct{ gh *fakegithub.Server }

func newGitHubHost(t testing.TB) gitHost {
	return &githubHost{gh: fakegithub.New(t, "acme", "cloud-provisioning", "main", demo.Files())}
}

func (h *githubHost) configure() (string, map[string]string) {
	return fmt.Sprintf("git:\n  repo: %s\n  api_url: %s\n  branch: main\n  author: {name: pinroll, email: %s}\n", h.gh.RepoURL(), h.gh.URL(), botEmail),
		map[string]string{"PINROLL_GITHUB_TOKEN": h.gh.Token()}
}

func (h *githubHost) log(t testing.TB) []gitops.Commit {
	var out []gitops.Commit
	for _, c := range h.gh.Log("main") {
		out = append(out, gitops.Commit{SHA: c.SHA, Tree: c.Tree, Parents: c.Parents, Message: c.Message,
			Author: gitops.Signature{Name: c.Author.Name, Email: c.Author.Email, When: c.Author.When}})
	}
	return out
}

func (h *githubHost) file(t testing.TB, p string) []byte { return h.gh.File("main", p) }

func (h *githubHost) human(t testing.TB) interface {
	Push(path, content, message string) error
} {
	return ghHuman{h.gh}
}

// ghHuman commits through GitHub's side, as a person using the web UI or a
// push would, racing pinroll's reads and writes.
type ghHuman struct{ gh *fakegithub.Server }

func (g ghHuman) Push(path, content, message string) error {
	g.gh.Commit(message, map[string][]byte{path: []byte(content)})
	return nil
}

func boltLedger(t testing.TB) string { return "bolt://" + filepath.Join(t.TempDir(), "ledger.db") }

// world is a pinroll serve process (in-process, over real HTTP) with its
// config, git host and ledger.
type world struct {
	t        *testing.T
	host     gitHost
	registry *fakegar.Server // Artifact Registry, for release tag lookups
	cfgPath  string
	env      map[string]string
	base     string // http://127.0.0.1:PORT
	stop     func() int
	logBuf   testlog.Buffer // everything pinroll serve wrote, across restarts
}

// logs returns what pinroll serve printed so far.
func (w *world) logs() string { return w.logBuf.String() }

// scenarioConfig is the config every scenario serves: two images carried by
// dev (tracking latest) and a release-driven prod.
const scenarioConfig = `ledger: %s
images:
  - name: server
    repository: ` + serverRepo + `
    source: example/backend
  - name: worker
    repository: ` + workerRepo + `
environments:
  - name: dev
    path: k8s/namespaces/backend/overlays/dev
    track: latest
  - name: prod
    path: k8s/namespaces/backend/overlays/prod
    release: {}
`

// webhookSecret is the PINROLL_WEBHOOK_SECRET of every world.
const webhookSecret = "test-webhook-secret"

// newWorld starts pinroll serve on backend b; edits, if any, change the
// scenario config first.
func newWorld(t *testing.T, b backend, edits ...func(string) string) *world {
	host := b.git(t)
	gitYAML, env := host.configure()
	cfg := gitYAML + fmt.Sprintf(scenarioConfig, b.ledger(t))
	for _, e := range edits {
		cfg = e(cfg)
	}
	reg := fakegar.Start(t)
	if env == nil {
		env = map[string]string{}
	}
	env["PINROLL_WEBHOOK_SECRET"] = webhookSecret
	env["PINROLL_ARTIFACT_REGISTRY_ENDPOINT"] = reg.Addr()
	path := filepath.Join(t.TempDir(), "pinroll.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, host: host, registry: reg, cfgPath: path, env: env}
	w.start()
	t.Cleanup(func() { w.stop() })
	return w
}

// start runs `pinroll serve --config F --addr 127.0.0.1:0` until stop.
func (w *world) start() {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int, 1)
	env := &cliEnv{
		stdout: &w.logBuf, stderr: &w.logBuf,
		getenv: func(k string) string { return w.env[k] },
		ready:  func(addr string) { ready <- addr },
	}
	go func() { done <- run(ctx, env, []string{"serve", "--config", w.cfgPath, "--addr", "127.0.0.1:0"}) }()
	select {
	case addr := <-ready:
		w.base = "http://" + addr
	case code := <-done:
		cancel()
		w.t.Fatalf("pinroll serve exited with %d:\n%s", code, w.logs())
	case <-time.After(30 * time.Second):
		cancel()
		w.t.Fatal("pinroll serve did not start")
	}
	stopped := false
	w.stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		code := <-done
		if w.t.Failed() {
			w.t.Logf("pinroll serve logs:\n%s", w.logs())
		}
		return code
	}
}

// restart stops pinroll serve and starts it again on the same config.
func (w *world) restart() {
	if code := w.stop(); code != 0 {
		w.t.Fatalf("pinroll serve exited with %d on SIGTERM", code)
	}
	w.start()
}

// encoding is one of the three ways a GAR message reaches POST /gar.
type encoding string

const (
	binaryCE     encoding = "cloudevent-binary"
	structuredCE encoding = "cloudevent-structured"
	pushEnvelope encoding = "push-envelope"
)

// reply is POST /gar's answer.
type reply struct {
	Status    int
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
}

// request builds the HTTP request delivering m in encoding enc.
func (w *world) request(t testing.TB, enc encoding, m gar.Message) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.base+"/gar", nil)
	if err != nil {
		t.Fatal(err)
	}
	switch enc {
	case pushEnvelope:
		ev, err := gar.NewEvent(m)
		if err != nil {
			t.Fatal(err)
		}
		b := ev.Data() // the push envelope
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		req.Header.Set("Content-Type", "application/json")
	default:
		ev, err := gar.NewEvent(m)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if enc == structuredCE {
			ctx = binding.WithForceStructured(ctx)
		}
		if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

// deliver sends m once and returns the answer.
func (w *world) deliver(t testing.TB, enc encoding, m gar.Message) reply {
	t.Helper()
	return w.do(t, w.request(t, enc, m))
}

func (w *world) do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, body)
	}
	return r
}

// push is a GAR INSERT of repo@digest with tag, published at t0+sec.
func push(id string, repo, digest, tag string, sec int) gar.Message {
	return gar.Message{ID: id, PublishTime: t0.Add(time.Duration(sec) * time.Second), Action: "INSERT",
		Repository: repo, Digest: digest, Tag: tag}
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// digest returns a valid, distinct digest for n.
func digest(n int) string {
	return fmt.Sprintf("sha256:%064x", 0xd1_9e57_0000+n)
}

// pinned returns the digest the dev overlay pins for image at the tip.
func (w *world) pinned(t testing.TB, image string) string {
	t.Helper()
	y := string(w.host.file(t, devPath))
	_, after, ok := strings.Cut(y, "- name: "+image)
	if !ok {
		return ""
	}
	if i := strings.Index(after, "\n  - "); i >= 0 {
		after = after[:i]
	}
	_, d, ok := strings.Cut(after, "digest: ")
	if !ok {
		return ""
	}
	d, _, _ = strings.Cut(d, "\n")
	return strings.TrimSpace(d)
}

func isBot(c gitops.Commit) bool {
	return c.Author.Email == botEmail && strings.Contains(c.Message, "\nPinroll-Kind: ")
}

func subject(c gitops.Commit) string {
	s, _, _ := strings.Cut(c.Message, "\n")
	return s
}

// botRun counts the bot commits at the top of log.
func botRun(log []gitops.Commit) int {
	n := 0
	for n < len(log) && isBot(log[n]) {
		n++
	}
	return n
}

func trailer(c gitops.Commit, line string) bool {
	for _, l := range strings.Split(c.Message, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
