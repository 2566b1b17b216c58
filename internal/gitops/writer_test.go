package gitops_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// countingRepo is a local repository that counts branch reads.
type countingRepo struct {
	*local.Repo
	reads atomic.Int32
}

func (c *countingRepo) Read(ctx context.Context, branch string, paths ...string) (gitops.Snapshot, error) {
	c.reads.Add(1)
	return c.Repo.Read(ctx, branch, paths...)
}

// TestRememberedTip: after Apply moved the branch, the next Apply skips the
// read while the branch stays put, and reads it again when somebody else
// moved it: the pin lands on top and the other commit survives, even when
// the remembered tip wrongly says nothing is left to change.
func TestRememberedTip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		foreign []byte // a person's content for "d" committed after the first pin; nil: none
		reads   int32  // reads of the second Apply
	}{
		{name: "branch stays put: no read", reads: 0},
		{name: "a person's commit behind the remembered tip", foreign: []byte("a person's d"), reads: 1},
		{name: "a person reverted the pin: the remembered tip is not trusted", foreign: []byte("seed"), reads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			r := &countingRepo{Repo: newRepo(t, map[string][]byte{"README.md": []byte("gitops\n"), "d": []byte("seed")})}
			seed, err := r.Repo.Read(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			w := &gitops.Writer{Repo: r, Author: bot, Backoff: time.Millisecond}
			pin := func(digest string) gitops.Result {
				t.Helper()
				res, err := w.Apply(ctx, "main", []string{"d"}, func(s gitops.Snapshot) (gitops.Change, error) {
					if string(s.Files["d"]) == digest {
						return gitops.Change{}, nil
					}
					return gitops.Change{Kind: gitops.KindRolling, Files: map[string][]byte{"d": []byte(digest)},
						Pins: []gitops.Pin{{Env: "dev", Image: "server", Digest: digest, Tag: "latest", Time: time.Unix(1.7e9, 0)}}}, nil
				})
				if err != nil || !res.Changed {
					t.Fatalf("pin %s: %+v %v", digest, res, err)
				}
				return res
			}
			pin("one")
			var foreign string
			if tc.foreign != nil {
				tip, err := r.Repo.Read(ctx, "main")
				if err != nil {
					t.Fatal(err)
				}
				person := gitops.Signature{Name: "A Person", Email: "person@example.com", When: time.Unix(1.7e9, 0)}
				foreign, err = r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Commit.Tree, Parents: []string{tip.Commit.SHA},
					Files: map[string][]byte{"d": tc.foreign, "NOTES.md": []byte("hello\n")}, Message: "a person's change\n", Author: person, Committer: person})
				if err == nil {
					err = r.MoveBranch(ctx, "main", tip.Commit.SHA, foreign)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			r.reads.Store(0)
			want := "two"
			if string(tc.foreign) == "seed" {
				// Pin "one" again: the remembered tip says it is there, but
				// only the read may decide that nothing changes.
				want = "one"
			}
			res := pin(want)
			if n := r.reads.Load(); n != tc.reads {
				t.Errorf("%d reads, want %d", n, tc.reads)
			}
			tip, err := r.Repo.Read(ctx, "main", "d", "NOTES.md")
			if err != nil {
				t.Fatal(err)
			}
			if tip.Commit.SHA != res.Commit || string(tip.Files["d"]) != want {
				t.Fatalf("tip %s with d=%q, want %s with d=%q", tip.Commit.SHA, tip.Files["d"], res.Commit, want)
			}
			wantParent := seed.Commit.SHA // an amend of the first pin
			if foreign != "" {
				wantParent = foreign
				if string(tip.Files["NOTES.md"]) != "hello\n" {
					t.Error("the person's NOTES.md was lost")
				}
			}
			if !slices.Equal(tip.Commit.Parents, []string{wantParent}) {
				t.Errorf("tip's parents %v, want [%s]", tip.Commit.Parents, wantParent)
			}
		})
	}
}
