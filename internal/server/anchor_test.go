package server_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	kustypes "sigs.k8s.io/kustomize/api/types"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// BenchmarkAnchor times, in one run, what pinroll replaces beside pinroll:
// the seeds' CI job (git clone of the GitOps repository, `kustomize edit set
// image server=REPO@DIGEST` done with the kustomize Go API, git commit, git
// push, all on a local bare repository) and pinroll's pin of a new digest
// through POST /gar. Each op runs both; pinroll's pin starts with the branch
// idle (git.min_interval waited out, untimed), as a CI job's build would. It
// reports both costs and their ratio pinroll/anchor (`make bench-anchor`).
func BenchmarkAnchor(b *testing.B) {
	gittest.RequireGit(b)
	w := newWorld(b)
	anchorRepo, _ := gittest.SeedDemo(b)
	work := b.TempDir()
	var anchor, pin time.Duration
	for i := range b.N {
		t0 := time.Now()
		anchorJob(b, anchorRepo, filepath.Join(work, fmt.Sprint("job-", i)), digest(i))
		anchor += time.Since(t0)

		// The job's clone leaves the file system dirty; flush it, untimed,
		// so that pinroll's syncfs does not pay for the job's writes (on
		// their own machines neither would), then let the branch go idle.
		syscall.Sync()
		time.Sleep(config.DefaultMinIntervalLocal)
		body := pushBody(fmt.Sprint("anchor-", i), now(0), data(digest(i), "latest"))
		t0 = time.Now()
		r := w.do(garRequest(body))
		pin += time.Since(t0)
		if r.code != 200 || r.outcome != "pinned" {
			b.Fatalf("pin %d: %d %s", i, r.code, r.body)
		}
	}
	b.ReportMetric(float64(anchor.Microseconds())/float64(b.N)/1000, "anchor-ms/op")
	b.ReportMetric(float64(pin.Microseconds())/float64(b.N)/1000, "pinroll-ms/op")
	b.ReportMetric(pin.Seconds()/anchor.Seconds(), "pinroll/anchor")
}

// anchorJob is the CI job: clone remote into dir, set the server image's
// digest in dev's kustomization, commit and push.
func anchorJob(b *testing.B, remote, dir, digest string) {
	b.Helper()
	git := func(dir string, args ...string) {
		b.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("", "clone", "-q", "-b", "main", remote, dir)
	path := filepath.Join(dir, filepath.FromSlash(devPath))
	src, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	// kustomize edit set image server=REPO@DIGEST: load, set, write back.
	var k kustypes.Kustomization
	if err := yaml.Unmarshal(src, &k); err != nil {
		b.Fatal(err)
	}
	img := kustypes.Image{Name: "server", NewName: serverRepo, Digest: digest}
	set := false
	for i := range k.Images {
		if k.Images[i].Name == img.Name {
			k.Images[i], set = img, true
		}
	}
	if !set {
		k.Images = append(k.Images, img)
	}
	out, err := yaml.Marshal(&k)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		b.Fatal(err)
	}
	git(dir, "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q", "-am", "chore(dev): set image server@"+digest[:19])
	git(dir, "push", "-q", "origin", "main")
}
