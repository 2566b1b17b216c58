package gitops_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/local"
)

var bot = gitops.Signature{Name: "pinroll", Email: "pinroll@example.com"}

// newRepo returns a bare repository on disk whose branch main has one commit
// holding files.
func newRepo(t testing.TB, files map[string][]byte) *local.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo.git")
	if _, err := git.PlainInit(dir, true); err != nil {
		t.Fatal(err)
	}
	r, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := r.WriteCommit(t.Context(), gitops.NewCommit{Files: files, Message: "seed\n",
		Author: gitops.Signature{Name: "human", Email: "human@example.com", When: time.Unix(1.6e9, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "refs", "heads", "main"), []byte(seed+"\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRollingMessageStaysSmall amends one rolling commit with 1,000 pins of
// three images in two environments (issue 8.4: every amend used to re-list
// every pin, 177 KB after 1,452 of them). The message must stay under 8 KB
// at every step, list the newest pins, count the rest, and carry exact
// trailers: one Pinroll-Env per environment and one Pinroll-Pin per
// (environment, image), at its newest digest.
func TestRollingMessageStaysSmall(t *testing.T) {
	t.Parallel()
	const pins = 1000
	r := newRepo(t, map[string][]byte{"README.md": []byte("gitops\n")})
	seed, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	w := &gitops.Writer{Repo: r, Author: bot}
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	envs, images := []string{"dev", "staging"}, []string{"server", "worker", "web"}
	newest := map[string]string{} // env/image → digest
	var listed []string           // the pin lines the newest message must list, newest first
	largest := 0
	for i := range pins {
		env, img := envs[i%len(envs)], images[i%len(images)]
		digest := fmt.Sprintf("sha256:%064x", i+1)
		at := start.Add(time.Duration(i) * time.Minute)
		newest[env+"/"+img] = digest
		listed = append([]string{fmt.Sprintf("- %s/%s %s tag=latest at=%s", env, img, digest, at.Format(time.RFC3339))}, listed...)
		file := fmt.Sprintf("envs/%s/%s.digest", env, img)
		res, err := w.Apply(t.Context(), "main", []string{file}, func(s gitops.Snapshot) (gitops.Change, error) {
			return gitops.Change{
				Kind:  gitops.KindRolling,
				Files: map[string][]byte{file: []byte(digest)},
				Pins:  []gitops.Pin{{Env: env, Image: img, Digest: digest, Tag: "latest", Time: at}},
			}, nil
		})
		if err != nil {
			t.Fatalf("pin %d: %v", i, err)
		}
		if !res.Changed {
			t.Fatalf("pin %d: nothing changed", i)
		}
		s, err := r.Read(t.Context(), "main")
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(s.Commit.Message))
		if len(s.Commit.Message) > 8<<10 {
			t.Fatalf("after %d pins the rolling message is %d bytes, want under 8 KB", i+1, len(s.Commit.Message))
		}
	}
	t.Logf("largest rolling message over %d pins: %d bytes", pins, largest)

	tip, err := r.Read(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tip.Commit.Parents, []string{seed.Commit.SHA}) {
		t.Errorf("tip's parents = %v, want the seed %s: every pin amends the one rolling commit", tip.Commit.Parents, seed.Commit.SHA)
	}
	msg := tip.Commit.Message
	body, trailers, ok := strings.Cut(msg, "\n\nPinroll-Kind: ")
	if !ok {
		t.Fatalf("no trailers in:\n%s", msg)
	}
	wantList := strings.Join(listed[:gitops.MaxListedPins], "\n") + "\n… and 980 earlier pins since " + start.Format(time.RFC3339)
	if !strings.HasSuffix(body, "Pins, newest first:\n"+wantList) {
		t.Errorf("pin list:\n%s\nwant it to end with:\n%s", body, wantList)
	}
	wantTrailers := []string{"rolling", "Pinroll-Env: staging", "Pinroll-Env: dev"}
	for i := pins - 1; i >= pins-6; i-- { // the newest pin of each of the six (env, image)
		k := envs[i%len(envs)] + "/" + images[i%len(images)]
		wantTrailers = append(wantTrailers, "Pinroll-Pin: "+k+"="+newest[k])
	}
	if got := strings.Split(strings.TrimRight(trailers, "\n"), "\n"); !slices.Equal(got, wantTrailers) {
		t.Errorf("trailers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantTrailers, "\n"))
	}
	m := gitops.ParseMessage(msg)
	if len(m.Pins) != gitops.MaxListedPins || m.Earlier != pins-gitops.MaxListedPins || !m.Since.Equal(start) || len(m.Carried()) != 6 {
		t.Errorf("parsed %d pins, %d earlier since %s, %d carried", len(m.Pins), m.Earlier, m.Since, len(m.Carried()))
	}
}

// BenchmarkRollingAmend amends a rolling commit that has already folded in
// 1,452 pins (issue 8.4's branch), reporting the message's size.
func BenchmarkRollingAmend(b *testing.B) {
	r := newRepo(b, map[string][]byte{"README.md": []byte("gitops\n")})
	seed, err := r.Read(b.Context(), "main")
	if err != nil {
		b.Fatal(err)
	}
	var msg strings.Builder
	msg.WriteString("chore(dev): pin server\n\nPins, newest first:\n")
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i := 1452; i > 0; i-- {
		fmt.Fprintf(&msg, "- dev/server sha256:%064x tag=latest at=%s\n", i, at.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))
	}
	fmt.Fprintf(&msg, "\nPinroll-Kind: rolling\nPinroll-Env: dev\nPinroll-Pin: dev/server=sha256:%064x\n", 1452)
	c, err := r.WriteCommit(b.Context(), gitops.NewCommit{BaseTree: seed.Commit.Tree, Parents: []string{seed.Commit.SHA}, Message: msg.String(), Author: bot, Committer: bot})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.MoveBranch(b.Context(), "main", seed.Commit.SHA, c); err != nil {
		b.Fatal(err)
	}
	w := &gitops.Writer{Repo: r, Author: bot}
	b.ResetTimer()
	for i := range b.N {
		digest := fmt.Sprintf("sha256:%064x", 2000+i)
		_, err := w.Apply(b.Context(), "main", nil, func(gitops.Snapshot) (gitops.Change, error) {
			return gitops.Change{Kind: gitops.KindRolling, Files: map[string][]byte{"d": []byte(digest)},
				Pins: []gitops.Pin{{Env: "dev", Image: "server", Digest: digest, Tag: "latest", Time: at.Add(time.Duration(2000+i) * time.Minute)}}}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	tip, err := r.Read(b.Context(), "main")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(tip.Commit.Message)), "msg-bytes")
}
