package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/gittest"
	"github.com/pinroll/pinroll/internal/testing/testlog"
)

const (
	serverRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"
	devPath    = "k8s/namespaces/backend/overlays/dev/kustomization.yaml"
)

// TestContainerServesOnImagePushed builds this command, runs it as Cloud Run
// would (FUNCTION_TARGET, PORT, PINROLL_CONFIG) and delivers GAR CloudEvents
// in binary mode, as Eventarc does.
func TestContainerServesOnImagePushed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function binary")
	}
	t.Parallel()
	repo, config := gittest.SeedDemo(t)
	cfg := filepath.Join(t.TempDir(), "pinroll.yaml")
	writeFile(t, cfg, config)

	base, logs := start(t, buildFunction(t), "FUNCTION_TARGET=OnImagePushed", "PINROLL_CONFIG="+cfg)

	d1 := fmt.Sprintf("sha256:%064x", 1)
	if code := deliver(t, base, "m1", d1); code/100 != 2 {
		t.Fatalf("first event: status %d, want 2xx\n%s", code, logs)
	}
	if y := gittest.File(t, repo, "main", devPath); !bytes.Contains(y, []byte("digest: "+d1)) {
		t.Fatalf("dev overlay does not pin %s:\n%s", d1, y)
	}

	// git goes away: the function fails so that Eventarc retries...
	if err := os.Rename(repo, repo+".away"); err != nil {
		t.Fatal(err)
	}
	d2 := fmt.Sprintf("sha256:%064x", 2)
	if code := deliver(t, base, "m2", d2); code/100 == 2 {
		t.Fatalf("event while git is unavailable: status %d, want non-2xx\n%s", code, logs)
	}
	// ...and the retry, once git is back, pins.
	if err := os.Rename(repo+".away", repo); err != nil {
		t.Fatal(err)
	}
	if code := deliver(t, base, "m2", d2); code/100 != 2 {
		t.Fatalf("retried event: status %d, want 2xx\n%s", code, logs)
	}
	if y := gittest.File(t, repo, "main", devPath); !bytes.Contains(y, []byte("digest: "+d2)) {
		t.Fatalf("dev overlay does not pin %s after the retry:\n%s", d2, y)
	}
	for _, want := range []string{`"outcome":"pinned"`, `"severity":"ERROR"`, `"env":"dev"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// buildFunction builds this command into a temporary directory.
func buildFunction(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "function")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// start runs bin on a free port with env added to the test's own, waits
// until it answers and returns its base URL and its output.
func start(t *testing.T, bin string, env ...string) (string, *testlog.Buffer) {
	t.Helper()
	port := freePort(t)
	logs := &testlog.Buffer{}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append(env, "PORT="+port)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("function output:\n%s", logs)
		}
	})
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return base, logs
		}
		select {
		case <-done:
			t.Fatalf("function exited before listening:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("function not listening on %s after 30s:\n%s", port, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliver POSTs a GAR INSERT of serverRepo@digest tagged latest as a binary
// CloudEvent and returns the status.
func deliver(t *testing.T, base, id, digest string) int {
	t.Helper()
	ev, err := gar.NewEvent(gar.Message{ID: id, PublishTime: time.Now().UTC(), Action: gar.ActionInsert,
		Repository: serverRepo, Digest: digest, Tag: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, base+"/", ev)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", base, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
