package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// forEachBackend runs a scenario on every git host and ledger.
func forEachBackend(t *testing.T, scenario func(t *testing.T, w *world)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			scenario(t, newWorld(t, b))
		})
	}
}

func TestEncodingsPin(t *testing.T) {
	t.Parallel()
	for i, enc := range []encoding{binaryCE, structuredCE, pushEnvelope} {
		t.Run(string(enc), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, w *world) {
				d := digest(i)
				r := w.deliver(t, enc, push("m1", serverRepo, d, "latest", 1))
				if r.Status != http.StatusOK || r.Outcome != "pinned" {
					t.Fatalf("answer = %+v, want 200 pinned", r)
				}
				if got := w.pinned(t, "server"); got != d {
					t.Fatalf("dev pins %q, want %q", got, d)
				}
				log := w.host.log(t)
				if botRun(log) != 1 || len(log) != 2 {
					t.Fatalf("want one bot commit above the seed, got %d commits, %d bot", len(log), botRun(log))
				}
				c := log[0]
				wantSubject := "chore(dev): pin server " + d[:len("sha256:")+12]
				if subject, _, _ := strings.Cut(c.Message, "\n"); subject != wantSubject {
					t.Errorf("subject = %q, want %q", subject, wantSubject)
				}
				for _, l := range []string{"Pinroll-Kind: rolling", "Pinroll-Env: dev", "Pinroll-Pin: dev/server=" + d} {
					if !trailer(c, l) {
						t.Errorf("commit lacks trailer %q:\n%s", l, c.Message)
					}
				}
			})
		})
	}
}

func TestNotifyTwiceAmendsOneRollingCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		for i := 1; i <= 2; i++ {
			var out strings.Builder
			env := &cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
			code := run(t.Context(), env, []string{"notify", serverRepo + "@" + digest(i), "--tag", "latest", "--server", w.base})
			if code != 0 || !strings.Contains(out.String(), `"pinned"`) {
				t.Fatalf("notify %d: exit %d: %s", i, code, out.String())
			}
			time.Sleep(2 * time.Millisecond) // notify stamps publishTime with the clock
		}
		log := w.host.log(t)
		if len(log) != 2 || botRun(log) != 1 {
			t.Fatalf("want exactly one bot commit on top of the seed, got %d commits (%d bot)", len(log), botRun(log))
		}
		if got := w.pinned(t, "server"); got != digest(2) {
			t.Fatalf("dev pins %s, want the second digest %s", got, digest(2))
		}
		msg := log[0].Message
		if !trailer(log[0], "Pinroll-Pin: dev/server="+digest(2)) {
			t.Errorf("rolling commit does not carry the second pin:\n%s", msg)
		}
		if strings.Index(msg, digest(2)) > strings.Index(msg, digest(1)) || !strings.Contains(msg, digest(1)) {
			t.Errorf("body must list both folded pins, newest first:\n%s", msg)
		}
	})
}

func TestDuplicateDeliveryMakesNoCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		m := push("dup-1", serverRepo, digest(1), "latest", 1)
		if r := w.deliver(t, binaryCE, m); r.Outcome != "pinned" {
			t.Fatalf("first delivery: %+v", r)
		}
		before := w.host.log(t)
		for _, enc := range []encoding{binaryCE, pushEnvelope} {
			r := w.deliver(t, enc, m)
			if r.Status != http.StatusOK || !r.Duplicate {
				t.Fatalf("redelivery (%s) = %+v, want 200 duplicate", enc, r)
			}
		}
		if after := w.host.log(t); after[0].SHA != before[0].SHA {
			t.Fatalf("a duplicate moved the branch from %s to %s", before[0].SHA, after[0].SHA)
		}
	})
}

func TestOlderMessageNeverWins(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		if r := w.deliver(t, binaryCE, push("new", serverRepo, digest(2), "latest", 20)); r.Outcome != "pinned" {
			t.Fatalf("newer message: %+v", r)
		}
		tip := w.host.log(t)[0].SHA
		check := func(when string, m gar.Message) {
			t.Helper()
			r := w.deliver(t, pushEnvelope, m)
			if r.Status != http.StatusOK || (r.Outcome != "superseded" && !r.Duplicate) {
				t.Fatalf("%s: older message answered %+v, want 200 superseded (or duplicate)", when, r)
			}
			if got := w.pinned(t, "server"); got != digest(2) {
				t.Fatalf("%s: dev pins %s, want the newer %s", when, got, digest(2))
			}
			if now := w.host.log(t)[0].SHA; now != tip {
				t.Fatalf("%s: branch moved to %s", when, now)
			}
		}
		check("late", push("old", serverRepo, digest(1), "latest", 10))
		w.restart()
		check("redelivered after restart", push("old", serverRepo, digest(1), "latest", 10))
		check("under a new message id", push("old-again", serverRepo, digest(1), "latest", 10))
		// Same publishTime, smaller message id: still older.
		check("same time, smaller id", push("new", serverRepo, digest(3), "latest", 19))
	})
}

func TestHumanCommitBetweenPins(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		w.deliver(t, binaryCE, push("a", serverRepo, digest(1), "latest", 1))
		if err := w.host.human(t).Push("README.md", "hello\n", "docs: add a README"); err != nil {
			t.Fatal(err)
		}
		w.deliver(t, binaryCE, push("b", serverRepo, digest(2), "latest", 2))
		w.deliver(t, binaryCE, push("c", serverRepo, digest(3), "latest", 3))
		log := w.host.log(t)
		var subjects []string
		for _, c := range log {
			subjects = append(subjects, subject(c))
		}
		want := []string{
			"chore(dev): pin server " + digest(3)[:19],
			"docs: add a README",
			"chore(dev): pin server " + digest(1)[:19],
			subject(log[len(log)-1]), // the seed
		}
		if fmt.Sprint(subjects) != fmt.Sprint(want) {
			t.Fatalf("history:\n got %q\nwant %q", subjects, want)
		}
		if string(w.host.file(t, "README.md")) != "hello\n" {
			t.Fatal("the human's file changed")
		}
		if w.pinned(t, "server") != digest(3) {
			t.Fatal("newest digest not pinned")
		}
	})
}

func TestTwoImagesFoldIntoOneRollingCommit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		w.deliver(t, binaryCE, push("s", serverRepo, digest(1), "latest", 1))
		if r := w.deliver(t, binaryCE, push("w", workerRepo, digest(2), "latest", 2)); r.Outcome != "pinned" {
			t.Fatalf("worker: %+v", r)
		}
		log := w.host.log(t)
		if botRun(log) != 1 || len(log) != 2 {
			t.Fatalf("want one rolling commit carrying both images; got %d commits, %d bot", len(log), botRun(log))
		}
		for _, l := range []string{"Pinroll-Pin: dev/server=" + digest(1), "Pinroll-Pin: dev/worker=" + digest(2), "Pinroll-Env: dev"} {
			if !trailer(log[0], l) {
				t.Errorf("missing %q in:\n%s", l, log[0].Message)
			}
		}
		if strings.Count(log[0].Message, "Pinroll-Env: dev") != 1 {
			t.Errorf("one Pinroll-Env per environment:\n%s", log[0].Message)
		}
		if w.pinned(t, "server") != digest(1) || w.pinned(t, "worker") != digest(2) {
			t.Fatalf("overlay:\n%s", w.host.file(t, devPath))
		}
		// The worker entry was created with the registry path as newName.
		if !strings.Contains(string(w.host.file(t, devPath)), "newName: "+workerRepo) {
			t.Errorf("worker entry lacks newName:\n%s", w.host.file(t, devPath))
		}
	})
}

func TestRestartKeepsLedger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		m := push("r1", serverRepo, digest(1), "latest", 1)
		w.deliver(t, structuredCE, m)
		w.restart()
		if r := w.deliver(t, structuredCE, m); !r.Duplicate {
			t.Fatalf("after restart the delivery id was forgotten: %+v", r)
		}
		if r := w.deliver(t, binaryCE, push("r2", serverRepo, digest(1), "latest", 2)); r.Outcome != "unchanged" {
			t.Fatalf("same digest again after restart: %+v, want unchanged", r)
		}
		if n := len(w.host.log(t)); n != 2 {
			t.Fatalf("%d commits, want 2", n)
		}
	})
}

func TestMessagesThatDoNotApply(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		w.deliver(t, binaryCE, push("first", serverRepo, digest(1), "latest", 1))
		tip := w.host.log(t)[0].SHA

		post := func(body, contentType string) reply {
			req, _ := http.NewRequest(http.MethodPost, w.base+"/gar", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			return w.do(t, req)
		}
		envelope := func(data string) string {
			return fmt.Sprintf(`{"message":{"data":%q,"messageId":"x-%d","publishTime":"2026-11-23T10:00:00Z"},"subscription":"projects/p/subscriptions/s"}`,
				b64(data), rand.Int())
		}
		del := push("del", serverRepo, digest(1), "latest", 5)
		del.Action = "DELETE"
		cases := []struct {
			name    string
			send    func() reply
			status  int
			outcome string
		}{
			{"DELETE", func() reply { return w.deliver(t, pushEnvelope, del) }, 200, "ignored"},
			{"unknown repository", func() reply {
				return w.deliver(t, binaryCE, push("u", "asia-northeast2-docker.pkg.dev/PROJECT/other/thing", digest(7), "latest", 6))
			}, 200, "ignored"},
			{"untracked tag", func() reply { return w.deliver(t, binaryCE, push("v", serverRepo, digest(8), "v1.2.3", 7)) }, 200, "recorded"},
			{"untagged push", func() reply { return w.deliver(t, binaryCE, push("n", serverRepo, digest(9), "", 8)) }, 200, "recorded"},
			{"data not JSON", func() reply { return post(envelope("not json"), "application/json") }, 200, "rejected"},
			{"bad digest", func() reply {
				return post(envelope(`{"action":"INSERT","digest":"`+serverRepo+`@sha256:abc","tag":"`+serverRepo+`:latest"}`), "application/json")
			}, 200, "rejected"},
			{"INSERT without digest", func() reply {
				return post(envelope(`{"action":"INSERT","tag":"`+serverRepo+`:latest"}`), "application/json")
			}, 200, "rejected"},
			{"bad publishTime", func() reply {
				return post(`{"message":{"data":"`+b64(`{"action":"INSERT"}`)+`","messageId":"bad-time","publishTime":"yesterday"}}`, "application/json")
			}, 200, "rejected"},
			{"data not base64", func() reply { return post(`{"message":{"data":"!!!","messageId":"bad-b64"}}`, "application/json") }, 200, "rejected"},
			{"truncated body", func() reply { return post(envelope(`{"action":"INSERT"}`)[:40], "application/json") }, 400, ""},
			{"empty body", func() reply { return post("", "application/json") }, 400, ""},
			{"huge body", func() reply { return post(`{"message":{"data":"`+strings.Repeat("A", 2<<20)+`"}}`, "application/json") }, 413, ""},
		}
		for _, c := range cases {
			r := c.send()
			if r.Status != c.status || r.Outcome != c.outcome {
				t.Errorf("%s: answered %d %q (%s%s), want %d %q", c.name, r.Status, r.Outcome, r.Reason, r.Error, c.status, c.outcome)
			}
			if r.Status >= 500 {
				t.Errorf("%s: 5xx for a message that is not transient", c.name)
			}
		}
		if now := w.host.log(t)[0].SHA; now != tip {
			t.Fatalf("a message that does not apply moved the branch")
		}
		if w.pinned(t, "server") != digest(1) {
			t.Fatal("pin changed")
		}
	})
}

// TestBurstWithRacingHuman sends 24 deliveries at once, in random order, while
// a human pushes with the git CLI. Pub/Sub's behaviour is modelled by the
// client: a 5xx/429 is redelivered, a bounded number of times.
func TestBurstWithRacingHuman(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		const n, humans, maxDeliveries = 24, 5, 8
		order := rand.Perm(n)
		var wg sync.WaitGroup
		errs := make(chan error, n+1)
		human := w.host.human(t)
		wg.Go(func() {
			for i := range humans {
				if err := human.Push(fmt.Sprintf("notes/%d.txt", i), fmt.Sprintf("note %d\n", i), fmt.Sprintf("docs: note %d", i)); err != nil {
					errs <- err
					return
				}
			}
		})
		for _, i := range order {
			wg.Go(func() {
				m := push(fmt.Sprintf("burst-%02d", i), serverRepo, digest(100+i), "latest", 100+i)
				enc := []encoding{binaryCE, structuredCE, pushEnvelope}[i%3]
				for attempt := 1; ; attempt++ {
					resp, err := http.DefaultClient.Do(w.request(t, enc, m))
					if err != nil {
						errs <- err
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 == 2 {
						return
					}
					if attempt == maxDeliveries {
						errs <- fmt.Errorf("%s still %d after %d deliveries: %s", m.ID, resp.StatusCode, attempt, body)
						return
					}
					time.Sleep(time.Duration(attempt*20) * time.Millisecond)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got, want := w.pinned(t, "server"), digest(100+n-1); got != want {
			t.Errorf("dev pins %s, want the newest %s", got, want)
		}
		log := w.host.log(t)
		found := 0
		for i, c := range log {
			if strings.HasPrefix(c.Message, "docs: note ") {
				found++
			}
			if i > 0 && isBot(c) && isBot(log[i-1]) {
				t.Errorf("two bot commits in a row: %s and %s", log[i-1].SHA[:8], c.SHA[:8])
			}
		}
		if found != humans {
			var b strings.Builder
			for _, c := range log {
				s, _, _ := strings.Cut(c.Message, "\n")
				fmt.Fprintf(&b, "%s %s %s\n", c.SHA[:8], c.Author.Email, s)
			}
			dump := ""
			if d, ok := human.(interface{ Dump() string }); ok {
				dump = d.Dump()
			}
			t.Errorf("found %d of %d human commits in the first-parent history:\n%s\n%s", found, humans, b.String(), dump)
		}
		for i := range humans {
			if got := string(w.host.file(t, fmt.Sprintf("notes/%d.txt", i))); got != fmt.Sprintf("note %d\n", i) {
				t.Errorf("human file %d = %q", i, got)
			}
		}
	})
}

// TestTokenNeverLogged gives pinroll a token GitHub refuses: the delivery
// fails (and will be redelivered), and the token appears in no log line and
// no answer.
func TestTokenNeverLogged(t *testing.T) {
	t.Parallel()
	b := backends[1] // github
	w := newWorld(t, backend{name: b.name, ledger: b.ledger, git: func(t testing.TB) gitHost {
		return wrongToken{b.git(t).(*githubHost), "ghp_" + strings.Repeat("S3cr3t", 6)}
	}})
	r := w.deliver(t, binaryCE, push("m", serverRepo, digest(1), "latest", 1))
	if r.Status < 500 {
		t.Fatalf("a refused token answered %+v, want a 5xx so Pub/Sub redelivers", r)
	}
	secret := w.env["PINROLL_GITHUB_TOKEN"]
	if strings.Contains(w.logs(), secret) || strings.Contains(r.Error, secret) {
		t.Fatalf("the token leaked:\n%s\n%s", w.logs(), r.Error)
	}
	if !strings.Contains(w.logs(), "authentication") && !strings.Contains(w.logs(), "401") {
		t.Fatalf("the log should say GitHub refused the credentials:\n%s", w.logs())
	}
}

type wrongToken struct {
	*githubHost
	token string
}

func (h wrongToken) configure() (string, map[string]string) {
	y, _ := h.githubHost.configure()
	return y, map[string]string{"PINROLL_GITHUB_TOKEN": h.token}
}

// TestNonBareRepository points pinroll at an ordinary `git init` repository
// with main checked out, as a new user might: the work tree follows the
// pins, and a person's next commit there keeps them.
func TestNonBareRepository(t *testing.T) {
	t.Parallel()
	gittest.RequireGit(t)
	dir := filepath.Join(t.TempDir(), "gitops")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("init", "-q", "-b", "main")
	run("config", "user.name", "A Human")
	run("config", "user.email", "human@example.com")
	for p, b := range demo.Files() {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("add", "-A")
	run("commit", "-q", "-m", "seed")
	w := newWorld(t, backend{name: "non-bare", ledger: boltLedger, git: func(testing.TB) gitHost { return &localHost{dir: dir} }})
	for i := 1; i <= 2; i++ {
		if r := w.deliver(t, binaryCE, push(fmt.Sprint("m", i), serverRepo, digest(i), "latest", i)); r.Outcome != "pinned" {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, devPath)); !strings.Contains(string(b), "digest: "+digest(2)) {
		t.Fatalf("work tree overlay:\n%s", b)
	}
	if st := run("status", "--porcelain"); st != "" {
		t.Fatalf("git status is not clean:\n%s", st)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "README.md")
	run("commit", "-q", "-m", "docs: readme")
	if w.pinned(t, "server") != digest(2) {
		t.Fatal("the person's commit reverted the pin")
	}
	if n := len(w.host.log(t)); n != 3 {
		t.Fatalf("%d commits, want seed + rolling + human", n)
	}
}
