//go:build unix

// Package emulator gives tests a running Google Cloud emulator: the Firestore
// emulator (gcloud emulators firestore) and the Pub/Sub emulator (gcloud beta
// emulators pubsub), each on a free loopback port.
//
// When FIRESTORE_EMULATOR_HOST or PUBSUB_EMULATOR_HOST is already set, the
// emulator found there is used. Otherwise the first call in a test binary
// starts one with gcloud and sets the variable for the whole process, so the
// Cloud client libraries find it; later calls share it. A package that may
// start an emulator calls [Main] from its TestMain, which stops everything
// started once the tests are done:
//
//	func TestMain(m *testing.M) { emulator.Main(m) }
//
// An emulator started here also stops by itself when the test binary dies
// without reaching [Stop] (a panic, a -timeout, a SIGKILL): it runs under a
// small shell that kills its process group when its standard input, a pipe
// from the test binary, closes.
//
// When gcloud, its emulator component or Java is missing, the calling test is
// skipped with a message naming what is missing and how to install it, except
// under CI=true, where it fails (STYLE.md point 12).
//
// Tests sharing one emulator stay apart by using their own project id
// ([ProjectID]); [ResetFirestore] empties one project's database.
//
// With EMULATOR_VERBOSE set, each start is reported on stderr with the time
// the emulator took to answer (2-6 s for either emulator on two cores).
package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long an emulator may take to answer after it was
// started. A cold JVM on a loaded two-core machine needs a few seconds.
var StartTimeout = 90 * time.Second

// An emulator describes one gcloud emulator and, once started, its process.
type emulator struct {
	name      string        // for messages: "Firestore"
	env       string        // FIRESTORE_EMULATOR_HOST
	component string        // gcloud component: cloud-firestore-emulator
	apt       string        // Debian package of the component
	platform  string        // directory under the SDK's platform/ holding the component
	args      []string      // gcloud arguments before --host-port
	timeout   time.Duration // 0: StartTimeout

	once sync.Once
	host string // host:port, once running
	skip string // why it can't run: tool missing
	err  error  // why it failed to start

	mu   sync.Mutex
	proc *process // nil unless started here
}

var (
	firestoreEmu = &emulator{
		name:      "Firestore",
		env:       "FIRESTORE_EMULATOR_HOST",
		component: "cloud-firestore-emulator",
		apt:       "google-cloud-cli-firestore-emulator",
		platform:  "cloud-firestore-emulator",
		args:      []string{"emulators", "firestore", "start"},
	}
	pubsubEmu = &emulator{
		name:      "Pub/Sub",
		env:       "PUBSUB_EMULATOR_HOST",
		component: "pubsub-emulator",
		apt:       "google-cloud-cli-pubsub-emulator",
		platform:  "pubsub-emulator",
		args:      []string{"beta", "emulators", "pubsub", "start"},
	}
	all = []*emulator{firestoreEmu, pubsubEmu}
)

// Firestore returns the host:port of a running Firestore emulator, starting
// one on a free loopback port on first use, and sets FIRESTORE_EMULATOR_HOST
// for the process so that cloud.google.com/go/firestore connects to it.
func Firestore(t testing.TB) string {
	t.Helper()
	return firestoreEmu.get(t)
}

// PubSub returns the host:port of a running Pub/Sub emulator, starting one on
// a free loopback port on first use, and sets PUBSUB_EMULATOR_HOST for the
// process so that cloud.google.com/go/pubsub/v2 connects to it.
func PubSub(t testing.TB) string {
	t.Helper()
	return pubsubEmu.get(t)
}

// Main runs the tests of m, stops the emulators they started and exits with
// the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run runs the tests of m, stops the emulators they started and returns the
// tests' exit code, for a TestMain that has more to do before exiting.
func Run(m *testing.M) int {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "emulator: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Stop stops every emulator this process started, with all their child
// processes (gcloud runs the emulator in a Java child). Emulators found
// through the environment are left alone. Calling Stop again does nothing.
func Stop() error {
	var errs []error
	for _, e := range all {
		e.mu.Lock()
		p := e.proc
		e.proc = nil
		e.mu.Unlock()
		if p != nil {
			if err := p.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop %s emulator: %w", e.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var (
	projectSeq   atomic.Int64
	projectNonce = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
)

// ProjectID returns a project id no other call returns, in this test binary
// or another sharing the same emulator: a readable form of t.Name(), a
// per-process nonce and a counter. Tests that use their own project id see
// only their own data, so they can run in parallel on one emulator.
func ProjectID(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "t-" + name
	}
	return fmt.Sprintf("%s-%s-%d", strings.TrimSuffix(name, "-"), projectNonce, projectSeq.Add(1))
}

// ResetFirestore deletes every document of database "(default)" of project
// in the Firestore emulator at host, through the emulator's
// DELETE /emulator/v1/projects/{project}/databases/(default)/documents.
func ResetFirestore(t testing.TB, host, project string) {
	t.Helper()
	u := fmt.Sprintf("http://%s/emulator/v1/projects/%s/databases/(default)/documents", host, url.PathEscape(project))
	req, err := http.NewRequestWithContext(context.Background(), http.MethodDelete, u, nil)
	if err != nil {
		t.Fatalf("emulator: reset Firestore project %s: %v", project, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("emulator: reset Firestore project %s: %v", project, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator: reset Firestore project %s: %s: %s", project, resp.Status, body)
	}
}

// get returns the emulator's host:port, starting it once per process, and
// skips or fails t when it can't.
func (e *emulator) get(t testing.TB) string {
	t.Helper()
	e.once.Do(e.init)
	switch {
	case e.skip != "" && os.Getenv("CI") == "true":
		t.Fatalf("emulator: %s (CI=true, so this fails instead of skipping)", e.skip)
	case e.skip != "":
		t.Skipf("emulator: %s", e.skip)
	case e.err != nil:
		t.Fatalf("emulator: %v", e.err)
	}
	return e.host
}

// init finds or starts the emulator, setting host, skip or err.
func (e *emulator) init() {
	if h := os.Getenv(e.env); h != "" {
		e.host = h
		return
	}
	gcloud, why := e.lookTools()
	if why != "" {
		e.skip = why
		return
	}
	// A free port may be taken between our probe and the emulator's bind:
	// try a few ports before giving up.
	var errs []error
	for range 3 {
		p, err := e.start(gcloud)
		if err == nil {
			e.mu.Lock()
			e.proc = p
			e.mu.Unlock()
			e.host = p.host
			if err := os.Setenv(e.env, p.host); err != nil {
				e.err = fmt.Errorf("set %s: %w", e.env, err)
			}
			return
		}
		errs = append(errs, err)
		if !errors.Is(err, errExited) {
			break
		}
	}
	e.err = errors.Join(errs...)
}

// lookTools finds gcloud and checks that the emulator's component and Java
// are installed. It returns gcloud's path, or why the emulator can't run.
func (e *emulator) lookTools() (gcloud, why string) {
	hint := fmt.Sprintf("install the Google Cloud CLI and its %s component (gcloud components install %s, or apt-get install %s), or set %s to a running emulator",
		e.component, e.component, e.apt, e.env)
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", fmt.Sprintf("%s emulator unavailable: gcloud is not on PATH; %s", e.name, hint)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Sprintf("%s emulator unavailable: java is not on PATH (the emulator needs a Java runtime, e.g. apt-get install default-jre-headless); or set %s to a running emulator", e.name, e.env)
	}
	// gcloud is SDK/bin/gcloud; components live in SDK/platform. When the
	// layout is not recognised, start anyway and let gcloud tell.
	if real, err := filepath.EvalSymlinks(gcloud); err == nil {
		sdk := filepath.Dir(filepath.Dir(real))
		if _, err := os.Stat(filepath.Join(sdk, "platform")); err == nil {
			if _, err := os.Stat(filepath.Join(sdk, "platform", e.platform)); err != nil {
				return "", fmt.Sprintf("%s emulator unavailable: gcloud component %s is not installed in %s; %s", e.name, e.component, sdk, hint)
			}
		}
	}
	return gcloud, ""
}

// errExited says the emulator's process ended before it answered.
var errExited = errors.New("exited before answering")

// start starts the emulator on a free loopback port and waits until it
// answers, or fails with the emulator's output.
func (e *emulator) start(gcloud string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start %s emulator: %w", e.name, err)
	}
	host := net.JoinHostPort("127.0.0.1", port)
	args := append(append([]string{}, e.args...), "--host-port="+host, "--quiet")

	// gcloud moves itself to a new process group unless it leads its
	// session, so it gets its own session: its process group then holds
	// gcloud and the emulator's Java child, and we can signal them all.
	cmd := exec.Command(gcloud, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(),
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true",
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true",
	)
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout = out
	cmd.Stderr = out
	// The Java child shares gcloud's output pipe; don't let Wait hang on it
	// should it outlive gcloud.
	cmd.WaitDelay = 5 * time.Second
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s emulator: gcloud %s: %w", e.name, strings.Join(args, " "), err)
	}
	p := &process{host: host, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	// The watchdog kills the group when its stdin, a pipe from this process,
	// closes: when this process dies without calling Stop (a panic, a test
	// -timeout, SIGKILL). Stop ends the watchdog first and kills the group
	// itself.
	if err := p.startWatchdog(); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("start %s emulator: %w", e.name, err)
	}

	timeout := e.timeout
	if timeout == 0 {
		timeout = StartTimeout
	}
	if err := p.waitReady(timeout); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("start %s emulator: gcloud %s: %w after %v; output:\n%s",
			e.name, strings.Join(args, " "), err, time.Since(began).Round(time.Millisecond), out.String())
	}
	p.startup = time.Since(began)
	if os.Getenv("EMULATOR_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "emulator: %s emulator on %s, ready in %v\n", e.name, host, p.startup.Round(time.Millisecond))
	}
	return p, nil
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// A process is an emulator started here.
type process struct {
	host    string
	cmd     *exec.Cmd
	dog     *exec.Cmd // the watchdog, nil once stopped
	dogIn   io.Closer // the watchdog's stdin; closing it kills the group
	out     *tailBuffer
	done    chan struct{} // closed when the shell has exited
	waitErr error
	startup time.Duration
}

// waitReady polls the emulator's HTTP root until it answers "Ok", the process
// exits, or timeout passes.
func (p *process) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w (%v)", errExited, p.waitErr)
		case <-deadline:
			return errors.New("no answer")
		case <-tick.C:
		}
		resp, err := client.Get("http://" + p.host + "/")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "Ok") {
			return nil
		}
	}
}

// watchdogScript waits for EOF on stdin, then kills process group $1:
// SIGTERM, and SIGKILL if it is still there 10s later. POSIX sh (dash).
const watchdogScript = `read -r _
kill -s TERM -- "-$1" 2>/dev/null || exit 0
i=0
while kill -s 0 -- "-$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -s KILL -- "-$1" 2>/dev/null
exit 0`

// startWatchdog starts a shell that kills the emulator's process group when
// this process ends.
func (p *process) startWatchdog() error {
	dog := exec.Command("/bin/sh", "-c", watchdogScript, "sh", fmt.Sprint(p.cmd.Process.Pid))
	dog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The pipe's write end stays open in this process, and only here, for as
	// long as the process lives.
	in, err := dog.StdinPipe()
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	if err := dog.Start(); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	p.dog, p.dogIn = dog, in
	return nil
}

// stop ends the emulator's process group: SIGTERM, then SIGKILL to whatever
// is left after a grace period, and waits until no process of it is left.
func (p *process) stop() error {
	if p.dog != nil {
		_ = p.dog.Process.Kill()
		_ = p.dog.Wait()
		p.dog = nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGone(pgid, 10*time.Second) {
		<-p.done
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGone(pgid, 5*time.Second) {
		<-p.done
		return nil
	}
	return fmt.Errorf("process group %d survived SIGKILL", pgid)
}

// waitGone waits until no live process is left in process group pgid.
// Zombies waiting for their parent to reap them don't count.
func waitGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// groupAlive reports whether process group pgid has a live (non-zombie)
// member, reading /proc where it can.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // no /proc: trust kill(2)
	}
	for _, ent := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if f[2] == fmt.Sprint(pgid) {
			return true
		}
	}
	return false
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "[…]" + b.buf.String()
	}
	return b.buf.String()
}
