package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// rssLoad is what one op of an RSS benchmark sends to a fresh `pinroll
// serve`: n distinct pushes of the demo's tracked tag, concurrency at a time.
type rssLoad struct {
	n, concurrency int
	// minInterval, when set, replaces the demo's git.min_interval.
	minInterval string
}

// BenchmarkServeBurstRSS measures the memory of a real `pinroll serve`
// process after a burst (issue 14: VmRSS ≤ 40 MiB). It builds the binary as
// `make build` does (see [buildPinroll]), seeds the demo (`pinroll demo`,
// examples/pinroll.yaml: a local repository and a bbolt ledger) in a temp
// dir, serves it on a loopback port, and POSTs 1,000 distinct Pub/Sub push
// envelopes of latest to /gar, 16 at a time. Once every delivery answered 2xx
// and dev pins the newest digest, it reads /proc/PID/status and reports
// VmRSS, RssAnon (heap, stacks), RssFile (the mapped binary, the bbolt file)
// and VmHWM (the peak) in MiB; -v logs the largest mappings of
// /proc/PID/smaps and the totals of smaps_rollup. The Go runtime's
// environment variables (GOGC, GOMEMLIMIT, GODEBUG, GOMAXPROCS) reach the
// server, to compare settings.
func BenchmarkServeBurstRSS(b *testing.B) {
	benchRSS(b, rssLoad{n: 1000, concurrency: 16})
}

// BenchmarkServeLongRunRSS is BenchmarkServeBurstRSS after a long life
// rather than a burst: 3,000 pins one at a time with git.min_interval 1ms,
// each its own ref move, so that every cache pinroll keeps is filled.
func BenchmarkServeLongRunRSS(b *testing.B) {
	benchRSS(b, rssLoad{n: 3000, concurrency: 1, minInterval: "1ms"})
}

// benchRSS sends load to a fresh `pinroll serve` per op and reports the
// server's memory figures after it, averaged over the ops.
func benchRSS(b *testing.B, load rssLoad) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		b.Skip("no /proc/PID/smaps_rollup on this system: VmRSS cannot be read")
	}
	gittest.RequireGit(b)
	bin := buildPinroll(b)
	var sum rssFigures
	for range b.N {
		f := serveBurst(b, bin, load)
		sum.vmRSS += f.vmRSS
		sum.rssAnon += f.rssAnon
		sum.rssFile += f.rssFile
		sum.vmHWM += f.vmHWM
	}
	n := float64(b.N)
	b.ReportMetric(sum.vmRSS/n, "VmRSS-MiB")
	b.ReportMetric(sum.rssAnon/n, "RssAnon-MiB")
	b.ReportMetric(sum.rssFile/n, "RssFile-MiB")
	b.ReportMetric(sum.vmHWM/n, "VmHWM-MiB")
}

// rssFigures are a process's memory figures in MiB.
type rssFigures struct{ vmRSS, rssAnon, rssFile, vmHWM float64 }

// defaultBuildFlags are the `go build` flags of `make build`, for a run of
// the benchmark outside make; the Makefile passes its own in
// $PINROLL_BUILD_FLAGS.
const defaultBuildFlags = "-tags=kustomize_disable_go_plugin_support"

// buildPinroll builds ./cmd/pinroll into a temp dir as `make build` does:
// with $PINROLL_BUILD_FLAGS (default [defaultBuildFlags]) and, unless the
// environment says otherwise, CGO_ENABLED=0.
func buildPinroll(b *testing.B) string {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skipf("go command not found: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "pinroll")
	flags, ok := os.LookupEnv("PINROLL_BUILD_FLAGS")
	if !ok {
		flags = defaultBuildFlags
	}
	args := append([]string{"build", "-o", bin}, strings.Fields(flags)...)
	cmd := exec.Command(goBin, append(args, ".")...)
	cmd.Env = os.Environ()
	if _, ok := os.LookupEnv("CGO_ENABLED"); !ok {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", flags, err, out)
	}
	return bin
}

// serveBurst sends load to `pinroll serve` on a fresh demo and returns the
// server's memory figures after it.
func serveBurst(b *testing.B, bin string, load rssLoad) rssFigures {
	b.Helper()
	dir := b.TempDir()
	cfg, err := os.ReadFile(filepath.Join("..", "..", "examples", "pinroll.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	if load.minInterval != "" {
		branch := []byte("\n  branch: main\n")
		if !bytes.Contains(cfg, branch) {
			b.Fatalf("examples/pinroll.yaml has no %q line to add git.min_interval after", bytes.TrimSpace(branch))
		}
		cfg = bytes.Replace(cfg, branch, append(branch, "  min_interval: "+load.minInterval+"\n"...), 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "pinroll.yaml"), cfg, 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := pinrollCmd(bin, dir, "demo", "--config", "pinroll.yaml").CombinedOutput(); err != nil {
		b.Fatalf("pinroll demo: %v\n%s", err, out)
	}
	srv := startServe(b, bin, dir)
	defer srv.stop(b)

	base := "http://" + srv.addr
	msgs := make(chan gar.Message)
	errs := make(chan error, load.n)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: load.concurrency}}
	var wg sync.WaitGroup
	for range load.concurrency {
		wg.Go(func() {
			for m := range msgs {
				if err := deliverEnvelope(client, base, m); err != nil {
					errs <- err
				}
			}
		})
	}
	b.ResetTimer()
	for i := range load.n {
		msgs <- push(fmt.Sprintf("rss-%04d", i), serverRepo, digest(i), "latest", i)
	}
	close(msgs)
	wg.Wait()
	b.StopTimer()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			b.Error(err)
		}
	}
	if failed > 0 {
		b.Fatalf("%d of %d deliveries failed; pinroll serve's last log lines:\n%s", failed, load.n, srv.logTail())
	}
	repo := filepath.Join(dir, ".pinroll", "gitops.git")
	if got, want := string(gittest.File(b, repo, "main", devPath)), digest(load.n-1); !strings.Contains(got, "digest: "+want+"\n") {
		b.Fatalf("dev does not pin the newest digest %s:\n%s", want, got)
	}

	f, err := readStatus(srv.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	if testing.Verbose() {
		if top, err := topMappings(srv.cmd.Process.Pid, 8); err == nil {
			b.Logf("VmRSS %.1f MiB (anon %.1f, file %.1f, peak %.1f); largest mappings:\n%s", f.vmRSS, f.rssAnon, f.rssFile, f.vmHWM, top)
		}
	}
	b.StartTimer()
	return f
}

// deliverEnvelope POSTs m to /gar as a Pub/Sub push subscription would, and
// fails unless the answer is 2xx.
func deliverEnvelope(client *http.Client, base string, m gar.Message) error {
	ev, err := gar.NewEvent(m)
	if err != nil {
		return err
	}
	resp, err := client.Post(base+"/gar", "application/json", bytes.NewReader(ev.Data()))
	if err != nil {
		return fmt.Errorf("deliver %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("deliver %s: %s: %s", m.ID, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// pinrollCmd is bin run in dir with a clean environment: local mode (no
// Google credentials), only the Go runtime's settings passed on.
func pinrollCmd(bin, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	return cmd
}

// serveProc is a running `pinroll serve`.
type serveProc struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	done    chan error
}

// startServe starts `pinroll serve` on a loopback port in dir and waits for
// its "pinroll serving" log line.
func startServe(b *testing.B, bin, dir string) *serveProc {
	b.Helper()
	p := &serveProc{logPath: filepath.Join(dir, "serve.log"), done: make(chan error, 1)}
	logf, err := os.Create(p.logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	p.cmd = pinrollCmd(bin, dir, "serve", "--config", "pinroll.yaml", "--addr", "127.0.0.1:0")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); p.addr == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-p.done:
			logs, _ := os.ReadFile(p.logPath)
			b.Fatalf("pinroll serve exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			p.stop(b)
			b.Fatal("pinroll serve did not start within 30s")
		}
		p.addr = servingAddr(p.logPath)
	}
	return p
}

// logTail is the end of what the server logged, for a failure message.
func (p *serveProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b[max(0, len(b)-4096):])
}

// servingAddr is the address of the "pinroll serving" line in the log at
// path, or "".
func servingAddr(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			Addr    string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "pinroll serving" {
			return line.Addr
		}
	}
	return ""
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 15 s).
func (p *serveProc) stop(b *testing.B) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // a second stop returns at once
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		b.Errorf("pinroll serve did not stop within 15s of SIGTERM")
		p.done <- <-p.done
	}
}

// readStatus reads the memory figures of /proc/PID/status.
func readStatus(pid int) (rssFigures, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rssFigures{}, fmt.Errorf("read status: %w", err)
	}
	var f rssFigures
	fields := map[string]*float64{"VmRSS": &f.vmRSS, "RssAnon": &f.rssAnon, "RssFile": &f.rssFile, "VmHWM": &f.vmHWM}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if dst, ok := fields[k]; ok {
			kb, err := kiB(v)
			if err != nil {
				return rssFigures{}, fmt.Errorf("status %s: %w", k, err)
			}
			*dst = kb / 1024
			found++
		}
	}
	if found != len(fields) {
		return rssFigures{}, fmt.Errorf("status of %d lacks a memory figure:\n%s", pid, b)
	}
	return f, nil
}

// kiB parses "  1234 kB".
func kiB(v string) (float64, error) {
	return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
}

// topMappings lists the n mappings of /proc/PID/smaps with the most Rss, and
// the totals of /proc/PID/smaps_rollup.
func topMappings(pid, n int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return "", fmt.Errorf("read smaps: %w", err)
	}
	type mapping struct {
		name           string
		rss, anonymous float64
	}
	var maps []mapping
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch f := strings.Fields(line); {
		case len(f) >= 5 && strings.Contains(f[0], "-"):
			name := "[anon]"
			if len(f) >= 6 {
				name = f[5]
			}
			maps = append(maps, mapping{name: f[0] + " " + f[1] + " " + filepath.Base(name)})
		case k == "Rss" && len(maps) > 0:
			maps[len(maps)-1].rss, _ = kiB(v)
		case k == "Anonymous" && len(maps) > 0:
			maps[len(maps)-1].anonymous, _ = kiB(v)
		}
	}
	sort.Slice(maps, func(i, j int) bool { return maps[i].rss > maps[j].rss })
	var sb strings.Builder
	for _, m := range maps[:min(n, len(maps))] {
		fmt.Fprintf(&sb, "  %8.1f MiB (anon %6.1f)  %s\n", m.rss/1024, m.anonymous/1024, m.name)
	}
	if roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		sb.WriteString("smaps_rollup:\n")
		for _, line := range strings.Split(string(roll), "\n")[1:] {
			if k, _, _ := strings.Cut(line, ":"); k == "Rss" || k == "Pss" || k == "Anonymous" || k == "Private_Clean" || k == "Shared_Clean" || k == "Private_Dirty" {
				sb.WriteString("  " + line + "\n")
			}
		}
	}
	return sb.String(), nil
}

// TestBuildLeavesOutGoPlugins guards the build flags of `make build`: the
// binary they make must not link the plugin package, which (with cgo) makes
// the linker keep and export every symbol: a 17 MB larger binary and 14 MiB
// more RSS for serve.
func TestBuildLeavesOutGoPlugins(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "BUILD_FLAGS := " + defaultBuildFlags + "\n"; !strings.Contains(string(mk), want) {
		t.Fatalf("the Makefile's build flags are not %q: keep defaultBuildFlags and the Makefile in step", want)
	}
	args := append([]string{"list", "-deps"}, strings.Fields(defaultBuildFlags)...)
	out, err := exec.Command(goBin, append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "plugin" {
			t.Fatalf("go build %s ./cmd/pinroll links the plugin package; find who imports it with go list -deps -f '{{.ImportPath}} {{.Imports}}'", defaultBuildFlags)
		}
	}
}
