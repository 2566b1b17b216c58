package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/testing/testlog"
)

func TestWatchUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no subscription", nil, "--subscription is required"},
		{"not a subscription name", []string{"--subscription", "projects/p/topics/gcr"}, "want projects/PROJECT/subscriptions/SUBSCRIPTION"},
		{"no concurrency", []string{"--subscription", "projects/p/subscriptions/s", "--concurrency", "0"}, "--concurrency 0: want at least 1"},
		{"positional argument", []string{"--subscription", "projects/p/subscriptions/s", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			env := &cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
			if code := run(t.Context(), env, append([]string{"watch"}, c.args...)); code != 2 {
				t.Fatalf("exit %d, want 2:\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), c.want) || !strings.Contains(out.String(), "usage: pinroll watch") {
				t.Errorf("stderr %q, want it to say %q and show the usage", out.String(), c.want)
			}
		})
	}
}

// watchWorld is the GitOps repo and config of a world without its serve: the
// bolt ledger admits one process at a time, and here watch is that process.
func watchWorld(t *testing.T) *world {
	t.Helper()
	b := backends[0]
	host := b.git(t)
	gitYAML, env := host.configure()
	path := filepath.Join(t.TempDir(), "pinroll.yaml")
	if err := os.WriteFile(path, []byte(gitYAML+fmt.Sprintf(scenarioConfig, b.ledger(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, host: host, cfgPath: path, env: env}
}

// startWatch runs `pinroll watch` on subscription until the returned stop,
// which cancels it as SIGTERM would and returns its exit status.
func startWatch(t *testing.T, w *world, subscription string) (stop func() int, logs func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	buf := &testlog.Buffer{}
	env := &cliEnv{
		stdout: buf, stderr: buf,
		getenv: func(k string) string { return w.env[k] },
	}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, env, []string{"watch", "--config", w.cfgPath, "--subscription", subscription, "--concurrency", "2"})
	}()
	logs = buf.String
	stopped, code := false, 0
	stop = func() int {
		if stopped {
			return code
		}
		stopped = true
		cancel()
		select {
		case code = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("pinroll watch did not stop within 30s of its signal:\n%s", logs())
		}
		return code
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pinroll watch logs:\n%s", logs())
		}
	})
	return stop, logs
}

// TestWatchPullsAndPins runs `pinroll watch` on a pull subscription of the
// Pub/Sub emulator: GAR messages pin dev, malformed ones are acknowledged and
// logged as rejected, and a stop signal ends watch with status 0.
func TestWatchPullsAndPins(t *testing.T) {
	t.Parallel()
	ps := newPubSubProject(t)
	w := watchWorld(t)
	topic := ps.createTopic(t, "gcr")
	sub := ps.createSubscription(t, "pinroll-pull", topic, "")
	stop, logs := startWatch(t, w, sub)

	bad := ps.publish(t, topic, []byte(`{"action":"INSERT","digest":"not a reference"}`))
	ps.publish(t, topic, garData(t, serverRepo, digest(1), "latest"))
	w.waitPinned(t, "server", digest(1), 30*time.Second)
	ps.publish(t, topic, garData(t, serverRepo, digest(2), "latest"))
	w.waitPinned(t, "server", digest(2), 30*time.Second)

	if code := stop(); code != 0 {
		t.Fatalf("pinroll watch exited %d on stop, want 0:\n%s", code, logs())
	}
	if log := w.host.log(t); botRun(log) != 1 {
		t.Errorf("want one rolling bot commit, got %d", botRun(log))
	}
	out := logs()
	if n := strings.Count(out, `"message":"gar message"`); n != 3 {
		t.Errorf("want 3 gar message log lines, got %d:\n%s", n, out)
	}
	if !strings.Contains(out, `"severity":"WARNING","message":"gar message","delivery":"`+bad+`"`) ||
		!strings.Contains(out, `"outcome":"rejected"`) {
		t.Errorf("the malformed message %s is not logged as a rejected WARNING:\n%s", bad, out)
	}
	if !strings.Contains(out, `"message":"pinroll watch stopped"`) {
		t.Errorf("watch did not log its stop:\n%s", out)
	}

	// Everything was acknowledged: a new watch on the subscription gets
	// nothing back, and a new push still pins.
	stop2, logs2 := startWatch(t, w, sub)
	ps.publish(t, topic, garData(t, serverRepo, digest(3), "latest"))
	w.waitPinned(t, "server", digest(3), 30*time.Second)
	if code := stop2(); code != 0 {
		t.Fatalf("second pinroll watch exited %d, want 0", code)
	}
	if n := strings.Count(logs2(), `"message":"gar message"`); n != 1 {
		t.Errorf("second watch handled %d messages, want only the new one (the others were acked):\n%s", n, logs2())
	}
}

// TestWatchMissingSubscriptionFails checks that a subscription that does not
// exist ends watch with status 1 and one sentence.
func TestWatchMissingSubscriptionFails(t *testing.T) {
	t.Parallel()
	ps := newPubSubProject(t)
	w := watchWorld(t)
	var out bytes.Buffer
	env := &cliEnv{stdout: &bytes.Buffer{}, stderr: &out, getenv: func(k string) string { return w.env[k] }}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code := run(ctx, env, []string{"watch", "--config", w.cfgPath, "--subscription", ps.subscription("nope")})
	if code != 1 || !strings.Contains(out.String(), "pinroll watch: receive from "+ps.subscription("nope")) {
		t.Fatalf("exit %d, stderr %q; want 1 and the subscription named", code, out.String())
	}
}

// TestWatchNacksTransientFailures makes git unavailable while a message is
// handled: watch nacks it, Pub/Sub redelivers it, and once git is back the
// redelivery pins.
func TestWatchNacksTransientFailures(t *testing.T) {
	t.Parallel()
	ps := newPubSubProject(t)
	w := watchWorld(t)
	repo := w.host.(*localHost).dir
	topic := ps.createTopic(t, "gcr")
	sub := ps.createSubscription(t, "pinroll-pull", topic, "")
	stop, logs := startWatch(t, w, sub)
	waitLog(t, logs, `"message":"pinroll watching"`)
	if err := os.Rename(repo, repo+".away"); err != nil {
		t.Fatal(err)
	}
	ps.publish(t, topic, garData(t, serverRepo, digest(1), "latest"))
	waitLog(t, logs, `"message":"gar message failed"`)
	if err := os.Rename(repo+".away", repo); err != nil {
		t.Fatal(err)
	}
	w.waitPinned(t, "server", digest(1), 30*time.Second)
	if code := stop(); code != 0 {
		t.Fatalf("pinroll watch exited %d, want 0", code)
	}
	if !strings.Contains(logs(), `"outcome":"pinned"`) && !strings.Contains(logs(), `"outcome":"unchanged"`) {
		t.Errorf("the redelivery was not logged as handled:\n%s", logs())
	}
}

// waitLog waits until logs holds want, failing after 30s.
func waitLog(t *testing.T, logs func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s logged within 30s:\n%s", want, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
