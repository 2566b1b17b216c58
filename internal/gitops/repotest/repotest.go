// Package repotest is the contract every [gitops.Repo] backend must honour,
// written once and run against each of them (gitops/local on disk,
// gitops/github against a fake GitHub server). It tests only what the
// interface's doc comments promise, through the interface.
package repotest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// Run runs the Repo contract. newRepo returns a repository whose branch "main"
// has exactly one commit holding files; it is called once per subtest, with
// the subtest's t.
func Run(t *testing.T, newRepo func(t *testing.T, files map[string][]byte) gitops.Repo) {
	t.Helper()
	for _, tc := range []struct {
		name string
		test func(t *testing.T, r gitops.Repo)
	}{
		{"Read", testRead},
		{"ReadMissingBranch", testReadMissingBranch},
		{"WriteCommitThenMove", testWriteCommitThenMove},
		{"MoveStale", testMoveStale},
		{"MoveToNonDescendant", testMoveToNonDescendant},
		{"ConcurrentMovesOneWins", testConcurrentMovesOneWins},
		{"ConcurrentRetriesAllLand", testConcurrentRetriesAllLand},
		{"InvalidInput", testInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.test(t, newRepo(t, seed()))
		})
	}
	for _, tc := range squashCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.test(t, newRepo(t, seed()))
		})
	}
}

const branch = "main"

// Paths of the seed commit.
const (
	readme   = "README.md"
	devKust  = "envs/dev/kustomization.yaml"
	prodKust = "envs/prod/kustomization.yaml"
	deep     = "a/b/c/d/deep.txt"
)

// seed returns the files of the first commit; a fresh map on every call, so a
// backend may keep it.
func seed() map[string][]byte {
	return map[string][]byte{
		readme:   []byte("# demo\n"),
		devKust:  []byte("images:\n- name: server\n  digest: sha256:1111\n"),
		prodKust: []byte("images:\n- name: server\n  newTag: v1.0.0\n"),
		deep:     []byte("deep\x00binary\xff\n"),
	}
}

var sha = regexp.MustCompile(`^[0-9a-f]{40}$`)

var bot = gitops.Signature{
	Name:  "pinroll",
	Email: "pinroll@example.com",
	When:  time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
}

func read(t *testing.T, r gitops.Repo, paths ...string) gitops.Snapshot {
	t.Helper()
	s, err := r.Read(t.Context(), branch, paths...)
	if err != nil {
		t.Fatalf("Read(%q): %v", branch, err)
	}
	return s
}

// commit writes a child of parent (by default tip) whose tree is tip's tree
// with files replaced.
func commit(t *testing.T, r gitops.Repo, tip gitops.Commit, msg string, files map[string][]byte, parents ...string) string {
	t.Helper()
	if parents == nil {
		parents = []string{tip.SHA}
	}
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Tree, Files: files, Parents: parents,
		Message: msg, Author: bot, Committer: bot,
	})
	if err != nil {
		t.Fatalf("WriteCommit(%q): %v", msg, err)
	}
	if !sha.MatchString(c) {
		t.Fatalf("WriteCommit(%q) = %q, want a 40-hex SHA", msg, c)
	}
	return c
}

func move(t *testing.T, r gitops.Repo, from, to string) {
	t.Helper()
	if err := r.MoveBranch(t.Context(), branch, from, to); err != nil {
		t.Fatalf("MoveBranch(%s → %s): %v", from, to, err)
	}
}

// wantFiles checks that got holds exactly want.
func wantFiles(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("Files[%q] absent, want %q", p, w)
		case !bytes.Equal(g, w):
			t.Errorf("Files[%q] = %q, want %q", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("Files[%q] present (%q), want absent", p, got[p])
		}
	}
}

func testRead(t *testing.T, r gitops.Repo) {
	s := read(t, r, readme, devKust, prodKust, deep,
		"missing.txt", "envs/dev/missing.yaml", "no/such/dir/file")
	c := s.Commit
	if !sha.MatchString(c.SHA) || !sha.MatchString(c.Tree) || c.SHA == c.Tree {
		t.Errorf("Commit SHA %q, Tree %q: want two distinct 40-hex SHAs", c.SHA, c.Tree)
	}
	if len(c.Parents) != 0 {
		t.Errorf("Parents = %q, want none (the seed commit is a root)", c.Parents)
	}
	wantFiles(t, s.Files, seed())

	again := read(t, r)
	if again.Commit.SHA != c.SHA || again.Commit.Tree != c.Tree {
		t.Errorf("second Read: commit %s tree %s, want %s %s", again.Commit.SHA, again.Commit.Tree, c.SHA, c.Tree)
	}
	if len(again.Files) != 0 {
		t.Errorf("Read with no paths: Files = %q, want empty", again.Files)
	}
}

func testReadMissingBranch(t *testing.T, r gitops.Repo) {
	for _, b := range []string{"no-such-branch", "feature/missing"} {
		if _, err := r.Read(t.Context(), b, readme); !errors.Is(err, gitops.ErrNotFound) {
			t.Errorf("Read(%q) error = %v, want ErrNotFound", b, err)
		}
	}
}

func testWriteCommitThenMove(t *testing.T, r gitops.Repo) {
	tip := read(t, r).Commit
	const (
		newFile = "envs/staging/eu/kustomization.yaml"
		msg     = "chore(dev): pin server sha256:2222\n\nPinroll-Kind: rolling\nPinroll-Env: dev\n"
	)
	edit := map[string][]byte{
		devKust: []byte("images:\n- name: server\n  digest: sha256:2222\n"),
		newFile: []byte("images: []\n"),
	}
	c := commit(t, r, tip, msg, edit)

	if got := read(t, r).Commit.SHA; got != tip.SHA {
		t.Fatalf("after WriteCommit the branch is at %s, want it still at %s", got, tip.SHA)
	}
	move(t, r, tip.SHA, c)

	s := read(t, r, readme, devKust, prodKust, deep, newFile)
	got := s.Commit
	if got.SHA != c {
		t.Errorf("tip = %s, want %s", got.SHA, c)
	}
	if len(got.Parents) != 1 || got.Parents[0] != tip.SHA {
		t.Errorf("Parents = %q, want [%s]", got.Parents, tip.SHA)
	}
	if got.Tree == tip.Tree || !sha.MatchString(got.Tree) {
		t.Errorf("Tree = %q, want a new tree (base %s)", got.Tree, tip.Tree)
	}
	if got.Message != msg {
		t.Errorf("Message = %q, want %q", got.Message, msg)
	}
	if got.Author.Email != bot.Email || got.Author.Name != bot.Name || !got.Author.When.Equal(bot.When) {
		t.Errorf("Author = %+v, want %+v", got.Author, bot)
	}
	want := seed()
	for p, b := range edit {
		want[p] = b
	}
	wantFiles(t, s.Files, want)
}

func testMoveStale(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	c1 := commit(t, r, t0, "first", map[string][]byte{readme: []byte("one\n")})
	c2 := commit(t, r, t0, "second", map[string][]byte{readme: []byte("two\n")})
	move(t, r, t0.SHA, c1)

	for _, from := range []string{t0.SHA, c2} {
		err := r.MoveBranch(t.Context(), branch, from, c2)
		if !errors.Is(err, gitops.ErrConflict) {
			t.Errorf("MoveBranch(from %s) with the branch at %s: error = %v, want ErrConflict", from, c1, err)
		}
	}
	s := read(t, r, readme)
	if s.Commit.SHA != c1 {
		t.Errorf("after the failed moves the branch is at %s, want %s", s.Commit.SHA, c1)
	}
	wantFiles(t, map[string][]byte{readme: s.Files[readme]}, map[string][]byte{readme: []byte("one\n")})
}

// testMoveToNonDescendant amends the tip: the new commit has the tip's parent.
func testMoveToNonDescendant(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	c1 := commit(t, r, t0, "rolling 1", map[string][]byte{devKust: []byte("digest: 1\n")})
	move(t, r, t0.SHA, c1)
	tip := read(t, r).Commit
	c2 := commit(t, r, tip, "rolling 2", map[string][]byte{devKust: []byte("digest: 2\n")}, tip.Parents...)
	move(t, r, c1, c2)

	s := read(t, r, devKust)
	if s.Commit.SHA != c2 || len(s.Commit.Parents) != 1 || s.Commit.Parents[0] != t0.SHA {
		t.Errorf("tip %s parents %q, want %s with parent %s", s.Commit.SHA, s.Commit.Parents, c2, t0.SHA)
	}
	if got := string(s.Files[devKust]); got != "digest: 2\n" {
		t.Errorf("%s = %q, want the amended content", devKust, got)
	}
}

const workers = 8

// testConcurrentMovesOneWins has every worker read the same tip and write its
// commit, then all move at once: one wins, the others conflict.
func testConcurrentMovesOneWins(t *testing.T, r gitops.Repo) {
	var (
		ready sync.WaitGroup
		done  sync.WaitGroup
		start = make(chan struct{})
		tips  [workers]string
		shas  [workers]string
		errs  [workers]error
	)
	ready.Add(workers)
	done.Add(workers)
	for i := range workers {
		go func() {
			defer done.Done()
			ctx := t.Context()
			s, err := r.Read(ctx, branch)
			if err == nil {
				tips[i] = s.Commit.SHA
				shas[i], err = r.WriteCommit(ctx, gitops.NewCommit{
					BaseTree:  s.Commit.Tree,
					Files:     map[string][]byte{fmt.Sprintf("race/%d.txt", i): []byte("x\n")},
					Parents:   []string{s.Commit.SHA},
					Message:   fmt.Sprintf("race %d", i),
					Author:    bot,
					Committer: bot,
				})
			}
			ready.Done()
			<-start
			if err == nil {
				err = r.MoveBranch(ctx, branch, tips[i], shas[i])
			}
			errs[i] = err
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("workers %d and %d both moved the branch from %s", winner, i, tips[i])
		case err == nil:
			winner = i
		case !errors.Is(err, gitops.ErrConflict):
			t.Errorf("worker %d: %v, want nil or ErrConflict", i, err)
		}
		if tips[i] != tips[0] {
			t.Errorf("worker %d read tip %s, worker 0 read %s", i, tips[i], tips[0])
		}
	}
	if winner < 0 {
		t.Fatal("no worker moved the branch")
	}
	if got := read(t, r).Commit.SHA; got != shas[winner] {
		t.Errorf("branch at %s, want the winner's commit %s", got, shas[winner])
	}
}

// testConcurrentRetriesAllLand runs read-modify-CAS loops with retries: every
// edit must land, each on top of the previous one.
func testConcurrentRetriesAllLand(t *testing.T, r gitops.Repo) {
	t0 := read(t, r).Commit
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		parents = map[string]string{} // landed commit → its parent
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := t.Context()
			path := fmt.Sprintf("edits/%d.txt", i)
			for attempt := 1; ; attempt++ {
				if attempt > 100 {
					t.Errorf("worker %d: no move after %d attempts", i, attempt-1)
					return
				}
				s, err := r.Read(ctx, branch)
				if err != nil {
					t.Errorf("worker %d: Read: %v", i, err)
					return
				}
				c, err := r.WriteCommit(ctx, gitops.NewCommit{
					BaseTree:  s.Commit.Tree,
					Files:     map[string][]byte{path: []byte(path)},
					Parents:   []string{s.Commit.SHA},
					Message:   fmt.Sprintf("edit %d", i),
					Author:    bot,
					Committer: bot,
				})
				if err != nil {
					t.Errorf("worker %d: WriteCommit: %v", i, err)
					return
				}
				err = r.MoveBranch(ctx, branch, s.Commit.SHA, c)
				if err == nil {
					mu.Lock()
					parents[c] = s.Commit.SHA
					mu.Unlock()
					return
				}
				if !errors.Is(err, gitops.ErrConflict) {
					t.Errorf("worker %d: MoveBranch: %v", i, err)
					return
				}
				time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var paths []string
	want := seed()
	for i := range workers {
		p := fmt.Sprintf("edits/%d.txt", i)
		paths = append(paths, p)
		want[p] = []byte(p)
	}
	s := read(t, r, append(paths, readme, devKust, prodKust, deep)...)
	wantFiles(t, s.Files, want)

	if len(s.Commit.Parents) != 1 || s.Commit.Parents[0] != parents[s.Commit.SHA] {
		t.Errorf("tip %s has parents %q, want [%s]", s.Commit.SHA, s.Commit.Parents, parents[s.Commit.SHA])
	}
	n := 0
	for c := s.Commit.SHA; c != t0.SHA; n++ {
		p, ok := parents[c]
		if !ok || n > workers {
			t.Fatalf("parents chain from the tip leaves the landed commits at %s after %d commits", c, n)
		}
		c = p
	}
	if n != workers {
		t.Errorf("parents chain from the tip to the seed has %d commits, want %d", n, workers)
	}
}

// testInvalidInput: a bad branch name, path or object name is ErrInvalid on
// every backend (a request a retry cannot fix: not a 503), never ErrNotFound
// or ErrConflict, and moves nothing.
func testInvalidInput(t *testing.T, r gitops.Repo) {
	tip := read(t, r).Commit
	ctx := t.Context()
	for _, b := range []string{"", "../config", "a..b", "x.lock", "a//b", ".hidden", "a b", "a~1", "a/", "a:b", "a\x00b"} {
		if _, err := r.Read(ctx, b); !errors.Is(err, gitops.ErrInvalid) || errors.Is(err, gitops.ErrNotFound) {
			t.Errorf("Read(branch %q) = %v, want ErrInvalid", b, err)
		}
		if err := r.MoveBranch(ctx, b, tip.SHA, tip.SHA); !errors.Is(err, gitops.ErrInvalid) || errors.Is(err, gitops.ErrConflict) {
			t.Errorf("MoveBranch(branch %q) = %v, want ErrInvalid", b, err)
		}
	}
	for _, p := range []string{"", "../x", "/abs", "a//b", "./a", "dir/", ".git/config", "a/.GIT/x", "a\\b", "nul\x00"} {
		if _, err := r.Read(ctx, branch, p); !errors.Is(err, gitops.ErrInvalid) {
			t.Errorf("Read(path %q) = %v, want ErrInvalid", p, err)
		}
		_, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: tip.Tree, Files: map[string][]byte{p: []byte("x")}, Parents: []string{tip.SHA}, Message: "bad path", Author: bot})
		if !errors.Is(err, gitops.ErrInvalid) {
			t.Errorf("WriteCommit(path %q) = %v, want ErrInvalid", p, err)
		}
	}
	for _, c := range []gitops.NewCommit{
		{BaseTree: "not-a-sha", Message: "bad base tree", Author: bot},
		{BaseTree: tip.Tree, Parents: []string{"HEAD~1"}, Message: "bad parent", Author: bot},
	} {
		if _, err := r.WriteCommit(ctx, c); !errors.Is(err, gitops.ErrInvalid) {
			t.Errorf("WriteCommit(%s) = %v, want ErrInvalid", c.Message, err)
		}
	}
	if err := r.MoveBranch(ctx, branch, "main", tip.SHA); !errors.Is(err, gitops.ErrInvalid) {
		t.Errorf("MoveBranch(from %q) = %v, want ErrInvalid", "main", err)
	}
	if got := read(t, r).Commit.SHA; got != tip.SHA {
		t.Errorf("invalid calls moved the branch to %s", got)
	}
}
