//go:build unix

package emulator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("EMULATOR_TEST_CHILD") == "1" {
		child()
		return
	}
	Main(m)
}

func TestFirestore(t *testing.T) {
	t.Parallel()
	host := Firestore(t)
	if got := os.Getenv("FIRESTORE_EMULATOR_HOST"); got != host {
		t.Errorf("FIRESTORE_EMULATOR_HOST = %q, want %q", got, host)
	}
	if again := Firestore(t); again != host {
		t.Errorf("second Firestore() = %q, want the same emulator %q", again, host)
	}
	if body := get(t, "http://"+host+"/"); !strings.HasPrefix(body, "Ok") {
		t.Errorf("GET / = %q, want Ok", body)
	}
	// Write a document through the REST API, reset the project, and find
	// it gone.
	project := ProjectID(t)
	doc := fmt.Sprintf("http://%s/v1/projects/%s/databases/(default)/documents/things/one", host, project)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, doc, strings.NewReader(`{"fields":{"n":{"integerValue":"1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH %s: %s", doc, resp.Status)
	}
	ResetFirestore(t, host, project)
	resp, err = http.Get(doc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s after ResetFirestore: %s, want 404", doc, resp.Status)
	}
}

func TestPubSub(t *testing.T) {
	t.Parallel()
	host := PubSub(t)
	if got := os.Getenv("PUBSUB_EMULATOR_HOST"); got != host {
		t.Errorf("PUBSUB_EMULATOR_HOST = %q, want %q", got, host)
	}
	if body := get(t, "http://"+host+"/"); !strings.HasPrefix(body, "Ok") {
		t.Errorf("GET / = %q, want Ok", body)
	}
	// The emulator serves the Pub/Sub REST API: create a topic.
	u := fmt.Sprintf("http://%s/v1/projects/%s/topics/gcr", host, ProjectID(t))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "/topics/gcr") {
		t.Errorf("PUT %s = %s %s", u, resp.Status, body)
	}
}

func TestProjectID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id := ProjectID(t)
		if seen[id] {
			t.Fatalf("ProjectID returned %q twice", id)
		}
		seen[id] = true
		if strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || id[0] < 'a' || id[0] > 'z' {
			t.Fatalf("ProjectID = %q, want lower-case letters, digits and hyphens, starting with a letter", id)
		}
	}
	t.Run("sub/test with spaces", func(t *testing.T) {
		if id := ProjectID(t); !strings.HasPrefix(id, "testprojectid-sub-test-with-spaces-") {
			t.Errorf("ProjectID = %q", id)
		}
	})
}

// TestStopLeavesNoProcess starts a private Firestore emulator and checks that
// stopping it leaves no process of it behind, Java child included.
func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	e := private()
	p, err := e.start(mustGcloud(t, e))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("private Firestore emulator ready in %v", p.startup)
	port := p.host[strings.LastIndexByte(p.host, ':')+1:]
	if n := emulatorProcs(port); n == 0 {
		t.Fatalf("no process found with --port=%s while the emulator runs", port)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if n := emulatorProcs(port); n != 0 {
		t.Errorf("%d processes with --port=%s left after stop", n, port)
	}
}

// TestCrashLeavesNoProcess starts an emulator in a child test binary, kills
// that binary with SIGKILL (as a -timeout or a crash would end it, without
// Stop) and checks that the emulator goes away by itself.
func TestCrashLeavesNoProcess(t *testing.T) {
	t.Parallel()
	e := private()
	mustGcloud(t, e)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EMULATOR_TEST_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	host := strings.TrimSpace(line)
	port := host[strings.LastIndexByte(host, ':')+1:]
	if n := emulatorProcs(port); n == 0 {
		t.Fatalf("child said %q, but no emulator process has --port=%s", host, port)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for emulatorProcs(port) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("emulator on port %s still running 20s after its test binary died", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// child is the child test binary of TestCrashLeavesNoProcess: it starts an
// emulator, prints its host and waits to be killed.
func child() {
	e := private()
	p, err := e.start(firstGcloud())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(p.host)
	time.Sleep(time.Minute)
	_ = p.stop()
	os.Exit(1)
}

// private returns a Firestore emulator description not shared with the
// package's own, so that a test can start and stop it.
func private() *emulator { return fresh(firestoreEmu) }

// fresh returns an unstarted copy of e's description.
func fresh(e *emulator) *emulator {
	return &emulator{
		name:      e.name,
		env:       e.env,
		component: e.component,
		apt:       e.apt,
		platform:  e.platform,
		args:      e.args,
	}
}

func mustGcloud(t *testing.T, e *emulator) string {
	t.Helper()
	gcloud, why := e.lookTools()
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return gcloud
}

func firstGcloud() string {
	p, _ := exec.LookPath("gcloud")
	return p
}

// emulatorProcs counts live processes whose command line holds --port=port,
// as gcloud's emulator scripts and their Java child do.
func emulatorProcs(port string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	n := 0
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(cmdline) == 0 { // zombies have no command line
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for _, a := range args {
			if a == "--port="+port || strings.HasSuffix(a, "--host-port=127.0.0.1:"+port) {
				n++
				break
			}
		}
	}
	return n
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeSDK makes an SDK layout in a temporary directory with a gcloud that
// runs script, and returns the path of that gcloud.
func fakeSDK(t *testing.T, script string, components ...string) string {
	t.Helper()
	sdk := t.TempDir()
	for _, c := range append([]string{"bin"}, components...) {
		if err := os.MkdirAll(filepath.Join(sdk, "platform", c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(sdk, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	gcloud := filepath.Join(sdk, "bin", "gcloud")
	if err := os.WriteFile(gcloud, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return gcloud
}

// TestMissingComponent checks the message when gcloud lacks the component.
func TestMissingComponent(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java is not installed")
	}
	gcloud := fakeSDK(t, "exit 1", "pubsub-emulator")
	t.Setenv("PATH", filepath.Dir(gcloud)+":"+filepath.Dir(java))
	e := private()
	_, why := e.lookTools()
	for _, want := range []string{"cloud-firestore-emulator is not installed", "gcloud components install cloud-firestore-emulator", "apt-get install google-cloud-cli-firestore-emulator", "FIRESTORE_EMULATOR_HOST"} {
		if !strings.Contains(why, want) {
			t.Errorf("lookTools() = %q, want it to say %q", why, want)
		}
	}
	if _, why := fresh(pubsubEmu).lookTools(); why != "" {
		t.Errorf("pubsub lookTools() = %q, want the component found", why)
	}
}

// TestStartFailures checks that an emulator that dies or never answers fails
// with its output, and leaves no process behind.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, script, want string
	}{
		{"exits", `echo "ERROR: boom $*"; exit 3`, "exited before answering"},
		{"hangs", `echo "starting $*"; exec sh -c 'sleep 300; :' fake "$@"`, "no answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := private()
			e.timeout = 2 * time.Second
			_, err := e.start(fakeSDK(t, c.script))
			if err == nil {
				t.Fatal("start succeeded")
			}
			for _, want := range []string{c.want, "--host-port=127.0.0.1:", "--quiet"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q, want it to contain %q", err, want)
				}
			}
			port := err.Error()[strings.Index(err.Error(), "--host-port=127.0.0.1:")+len("--host-port=127.0.0.1:"):]
			port = port[:strings.IndexAny(port, " \n")]
			if n := emulatorProcs(port); n != 0 {
				t.Errorf("%d processes left on port %s", n, port)
			}
		})
	}
}
