package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// cli runs one pinroll command line against the world's server, named
// without a scheme as a new user types it, and returns its exit status,
// stdout and stderr.
func (w *world) cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	env := &cliEnv{stdout: &out, stderr: &errOut, getenv: func(k string) string {
		if k == "PINROLL_SERVER" {
			return strings.TrimPrefix(w.base, "http://")
		}
		return w.env[k]
	}}
	code := run(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

// TestOpsCLI is the incident from the command line, on every backend:
// rollback with a hold, a push answered held, the status table, history
// pages, resume, and the errors a user meets.
func TestOpsCLI(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b)
			d := func(n int) string { return fmt.Sprintf("sha256:%064x", 0xc1_0000+n) }
			short := func(n int) string { return d(n)[:19] }
			must := func(want int, args ...string) (string, string) {
				t.Helper()
				code, out, errOut := w.cli(args...)
				if code != want {
					t.Fatalf("pinroll %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
				}
				return out, errOut
			}
			for n := 1; n <= 3; n++ {
				must(0, "notify", serverRepo+"@"+d(n), "--tag", "latest")
			}
			out, _ := must(0, "deploy", "dev", "server", "--rollback", "1", "--hold", "--reason", "INC-4242")
			if !strings.HasPrefix(out, "pinned dev/server "+short(2)) || !strings.Contains(out, "held until `pinroll resume dev server`") {
				t.Errorf("deploy --rollback 1 --hold printed %q", out)
			}
			if out, _ := must(0, "notify", serverRepo+"@"+d(4), "--tag", "latest"); !strings.Contains(out, `"outcome":"held"`) {
				t.Errorf("a push while held answered %s", out)
			}
			out, _ = must(0, "status")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if !strings.HasPrefix(lines[0], "ENV") || !strings.Contains(out, "held: INC-4242") || !strings.Contains(out, short(2)) {
				t.Errorf("status table:\n%s", out)
			}
			out, _ = must(0, "status", "-o", "json")
			var st struct{ Environments []struct{ Name string } }
			if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Environments) != 2 {
				t.Errorf("status -o json: %v\n%s", err, out)
			}
			out, _ = must(0, "history", "--env", "dev", "--limit", "2")
			if !strings.Contains(out, "manual") || !strings.Contains(out, "More: pinroll history --before ") {
				t.Errorf("history page 1:\n%s", out)
			}
			cursor := strings.Fields(out[strings.Index(out, "--before "):])[1]
			if out, _ = must(0, "history", "--env", "dev", "--limit", "2", "--before", cursor); !strings.Contains(out, short(1)) {
				t.Errorf("history page 2:\n%s", out)
			}
			if out, _ = must(0, "resume", "dev", "server"); !strings.HasPrefix(out, "pinned dev/server "+short(4)) {
				t.Errorf("resume printed %q", out)
			}
			// A tag only Artifact Registry knows resolves there.
			w.registry.SetTag(serverRepo, "v2.0.0", d(20))
			if out, _ := must(0, "deploy", "prod", "server", "--tag", "v2.0.0"); !strings.HasPrefix(out, "pinned prod/server "+short(20)+" (v2.0.0)") {
				t.Errorf("deploy --tag from Artifact Registry printed %q", out)
			}
			// So does a digest only Artifact Registry knows; one nobody knows is 422.
			w.registry.SetTag(serverRepo, "build-30", d(30))
			if out, _ := must(0, "deploy", "dev", "server", "--digest", d(30)); !strings.HasPrefix(out, "pinned dev/server "+short(30)) {
				t.Errorf("deploy --digest from Artifact Registry printed %q", out)
			}
			if _, errOut := must(1, "deploy", "dev", "server", "--digest", d(31)); !strings.Contains(errOut, "422") {
				t.Errorf("a digest nobody knows: %q", errOut)
			}
			if _, errOut := must(1, "deploy", "prod", "server", "--tag", "v9.9.9"); !strings.Contains(errOut, "422") {
				t.Errorf("a tag nobody knows: %q", errOut)
			}
			if _, errOut := must(1, "deploy", "dev", "server", "--rollback", "9"); !strings.Contains(errOut, "rollback 9") || !strings.Contains(errOut, "409") {
				t.Errorf("a refused deploy must print the server's error: %q", errOut)
			}
			if _, errOut := must(2, "deploy", "dev", "server"); strings.Count(errOut, "usage:") != 1 {
				t.Errorf("usage error: %q", errOut)
			}
		})
	}
}

// TestCLIHelpers covers what a new user types wrong.
func TestCLIHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args      []string
		env       map[string]string
		code      int
		stderr    string // a part of it
		stdoutHas string
	}{
		{[]string{"status", "--server", "127.0.0.1:1"}, nil, 1, "no pinroll server is running at http://127.0.0.1:1: start one with `pinroll serve`", ""},
		{[]string{"serve", "--config", "/nonexistent/pinroll.yaml"}, nil, 1, "pass --config FILE or set $PINROLL_CONFIG", ""},
		{[]string{"release", "acme/backend", "latest"}, map[string]string{"PINROLL_WEBHOOK_SECRET": "x"}, 2, "not a release version", ""},
		{[]string{"status", "--bogus"}, nil, 2, "flag provided but not defined: -bogus\nusage: pinroll status", ""},
		{[]string{"status", "--server", "ftp://x"}, nil, 2, "want a URL such as http://localhost:8080", ""},
		{[]string{"--version"}, nil, 0, "", "pinroll "},
		{[]string{"version"}, nil, 0, "", "pinroll "},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			env := &cliEnv{stdout: &out, stderr: &errOut, getenv: func(k string) string { return tc.env[k] }}
			code := run(context.Background(), env, tc.args)
			if code != tc.code || !strings.Contains(errOut.String(), tc.stderr) || !strings.Contains(out.String(), tc.stdoutHas) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stderr with %q", code, out.String(), errOut.String(), tc.code, tc.stderr)
			}
			if out.Len() > 0 && tc.code == 2 {
				t.Errorf("a usage error printed the help on stdout too: %q", out.String())
			}
		})
	}
	var out bytes.Buffer
	run(context.Background(), &cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}, []string{"--help"})
	for name := range commands {
		var help bytes.Buffer
		run(context.Background(), &cliEnv{stdout: &help, stderr: &help, getenv: func(string) string { return "" }}, []string{name, "--help"})
		out.Write(help.Bytes())
	}
	if strings.Contains(out.String(), "SPEC") || strings.Contains(out.String(), "§") {
		t.Errorf("help texts mention the SPEC:\n%s", out.String())
	}
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:9000":   "127.0.0.1:9000",
		"[::]:8080":      "127.0.0.1:8080",
		"10.0.0.5:8080":  "10.0.0.5:8080",
		"localhost:8080": "localhost:8080",
	} {
		if got := loopback(in); got != want {
			t.Errorf("loopback(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestServeOpenListensOnLoopback: with no ops auth and no --addr, serve
// listens on 127.0.0.1 only.
func TestServeOpenListensOnLoopback(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0])
	w.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var logs bytes.Buffer
	env := &cliEnv{stdout: &logs, stderr: &logs, ready: func(addr string) { ready <- addr }, getenv: func(k string) string {
		if k == "PORT" {
			return "0"
		}
		return w.env[k]
	}}
	go func() { done <- run(ctx, env, []string{"serve", "--config", w.cfgPath}) }()
	select {
	case addr := <-ready:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("serve without auth listens on %s, want loopback", addr)
		}
	case code := <-done:
		t.Fatalf("serve exited with %d", code)
	}
	cancel()
	<-done
}
