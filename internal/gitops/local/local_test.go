package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/repotest"
)

func TestContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		repo func(t *testing.T, files map[string][]byte) string
	}{
		{"bare", func(t *testing.T, files map[string][]byte) string { return newBare(t, files) }},
		{"non-bare", newNonBare},
		{"file URL", func(t *testing.T, files map[string][]byte) string {
			return (&url.URL{Scheme: "file", Path: filepath.ToSlash(newBare(t, files))}).String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repotest.Run(t, func(t *testing.T, files map[string][]byte) gitops.Repo {
				return open(t, tc.repo(t, files))
			})
		})
	}
}

func TestOpenNotARepository(t *testing.T) {
	for _, p := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing"), "file://example.com/repo.git"} {
		if r, err := Open(p); err == nil {
			t.Errorf("Open(%q) = %v, want an error", p, r)
		}
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("Open(empty dir) error = %v, want ErrNotFound", err)
	}
}

func TestInvalidInput(t *testing.T) {
	dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	r := open(t, dir)
	tip := read(t, r, "main").Commit
	for _, b := range []string{"../config", "refs/../../x", "a..b", "x.lock", "a//b", ".hidden", "a b", "a~1", "", "a/"} {
		if _, err := r.Read(t.Context(), b); err == nil || errors.Is(err, gitops.ErrNotFound) {
			t.Errorf("Read(%q) error = %v, want an invalid-name error", b, err)
		}
		if err := r.MoveBranch(t.Context(), b, tip.SHA, tip.SHA); err == nil || errors.Is(err, gitops.ErrConflict) {
			t.Errorf("MoveBranch(%q) error = %v, want an invalid-name error", b, err)
		}
	}
	for _, p := range []string{"../x", "/abs", "a//b", "./a", ".git/config", "a/.GIT/x", "dir/"} {
		_, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: tip.Tree, Files: map[string][]byte{p: nil}, Parents: []string{tip.SHA}})
		if err == nil {
			t.Errorf("WriteCommit(file %q) succeeded, want an error", p)
		}
	}
	if _, err := r.WriteCommit(t.Context(), gitops.NewCommit{Files: map[string][]byte{"a": nil, "a/b": nil}}); err == nil {
		t.Error(`WriteCommit("a" and "a/b") succeeded, want an error`)
	}
	missing := strings.Repeat("ab", 20)
	if _, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: tip.Tree, Parents: []string{missing}}); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("WriteCommit(missing parent) error = %v, want ErrNotFound", err)
	}
	if err := r.MoveBranch(t.Context(), "main", tip.SHA, missing); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("MoveBranch(to a missing commit) error = %v, want ErrNotFound", err)
	}
	if err := r.MoveBranch(t.Context(), "main", tip.SHA, tip.Tree); err == nil {
		t.Error("MoveBranch(to a tree) succeeded, want an error")
	}
	if got := read(t, r, "main").Commit.SHA; got != tip.SHA {
		t.Errorf("branch moved to %s by invalid calls", got)
	}
}

// TestWriteCommitTrees checks the trees WriteCommit builds against git's
// rules: entries in git order (a directory sorts as if it ended in "/"),
// files replacing directories and back, and untouched subtrees shared.
func TestWriteCommitTrees(t *testing.T) {
	dir := newBare(t, map[string][]byte{
		"a.b":         []byte("file before dir a\n"),
		"a/x":         []byte("x\n"),
		"keep/deep/y": []byte("y\n"),
		"tool":        []byte("tool\n"),
	})
	r := open(t, dir)
	tip := read(t, r, "main").Commit
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Tree,
		Files: map[string][]byte{
			"a-":         []byte("sorts between a.b and a/\n"),
			"a/z/new":    []byte("new\n"),
			"tool/inner": []byte("file became a dir\n"),
			"a0":         []byte("a0\n"),
		},
		Parents: []string{tip.SHA},
		Message: "trees\n",
		Author:  gitops.Signature{Name: "n", Email: "e@x", When: time.Unix(1, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := repo.CommitObject(plumbing.NewHash(c))
	if err != nil {
		t.Fatal(err)
	}
	if commit.Committer != commit.Author {
		t.Errorf("zero Committer: got %+v, want the author %+v", commit.Committer, commit.Author)
	}
	root, err := commit.Tree()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range root.Entries {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, " "), "a- a.b a a0 keep tool"; got != want {
		t.Errorf("root entries %q, want %q", got, want)
	}
	oldTip, _ := repo.CommitObject(plumbing.NewHash(tip.SHA))
	oldRoot, _ := oldTip.Tree()
	oldKeep, _ := oldRoot.FindEntry("keep")
	newKeep, _ := root.FindEntry("keep")
	if oldKeep.Hash != newKeep.Hash {
		t.Errorf("untouched subtree keep rewritten: %s → %s", oldKeep.Hash, newKeep.Hash)
	}
	if e, err := root.FindEntry("tool"); err != nil || e.Mode != filemode.Dir {
		t.Errorf("tool: %+v %v, want a directory", e, err)
	}

	// Writing the same content again gives the same tree.
	same, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Tree, Files: map[string][]byte{"a/x": []byte("x\n")}, Parents: []string{tip.SHA},
	})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := repo.CommitObject(plumbing.NewHash(same))
	if sc.TreeHash.String() != tip.Tree {
		t.Errorf("unchanged content: tree %s, want the base tree %s", sc.TreeHash, tip.Tree)
	}

	if hasGit(t) {
		move(t, r, "main", tip.SHA, c)
		gitCmd(t, dir, "fsck", "--strict", "--no-dangling")
		if got := gitCmd(t, dir, "show", "main:a/z/new"); got != "new\n" {
			t.Errorf("git show main:a/z/new = %q", got)
		}
	}
}

// TestPackedRefs reads and moves a branch that only packed-refs knows, with
// comments, peeled lines and other refs around it.
func TestPackedRefs(t *testing.T) {
	dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	r := open(t, dir)
	tip := read(t, r, "main").Commit
	other := strings.Repeat("1", 40)
	packed := "# pack-refs with: peeled fully-peeled sorted \n" +
		other + " refs/heads/mai\n" +
		tip.SHA + " refs/heads/main\n" +
		other + " refs/heads/main2\n" +
		tip.Tree + " refs/tags/v1\n" +
		"^" + tip.SHA + "\n"
	if err := os.WriteFile(filepath.Join(dir, "packed-refs"), []byte(packed), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "refs", "heads", "main")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, r, "main").Commit.SHA; got != tip.SHA {
		t.Fatalf("Read from packed-refs: %s, want %s", got, tip.SHA)
	}
	if _, err := r.Read(t.Context(), "v1"); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("Read(v1) (a tag, not a branch) error = %v, want ErrNotFound", err)
	}
	c := commitOn(t, r, tip, "packed", nil)
	if err := r.MoveBranch(t.Context(), "main", c, c); !errors.Is(err, gitops.ErrConflict) {
		t.Errorf("stale MoveBranch error = %v, want ErrConflict", err)
	}
	move(t, r, "main", tip.SHA, c)
	if got := readFile(t, filepath.Join(dir, "refs", "heads", "main")); got != c+"\n" {
		t.Errorf("loose ref = %q, want %q", got, c+"\n")
	}
	if got := readFile(t, filepath.Join(dir, "packed-refs")); got != packed {
		t.Errorf("packed-refs changed to %q", got)
	}
	if got := read(t, r, "main").Commit.SHA; got != c {
		t.Errorf("Read after move: %s, want %s (the loose ref wins)", got, c)
	}
}

// TestGitPackRefs moves a branch after `git pack-refs --all`.
func TestGitPackRefs(t *testing.T) {
	requireGit(t)
	dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	gitCmd(t, dir, "tag", "-a", "-m", "release", "v1", "main")
	gitCmd(t, dir, "pack-refs", "--all")
	loose := filepath.Join(dir, "refs", "heads", "main")
	if _, err := os.Stat(loose); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after git pack-refs the loose ref is still there (%v)", err)
	}
	if !strings.Contains(readFile(t, filepath.Join(dir, "packed-refs")), "\n^") {
		t.Fatal("packed-refs has no peeled line; the test needs one")
	}

	r := open(t, dir)
	tip := read(t, r, "main").Commit
	if want := gitCmd(t, dir, "rev-parse", "main"); tip.SHA+"\n" != want {
		t.Fatalf("Read: %s, git rev-parse: %s", tip.SHA, want)
	}
	c := commitOn(t, r, tip, "after pack-refs", map[string][]byte{"b.txt": []byte("b")})
	if err := r.MoveBranch(t.Context(), "main", c, c); !errors.Is(err, gitops.ErrConflict) {
		t.Errorf("stale MoveBranch error = %v, want ErrConflict", err)
	}
	move(t, r, "main", tip.SHA, c)
	if got := readFile(t, loose); got != c+"\n" {
		t.Errorf("loose ref = %q, want %q", got, c+"\n")
	}
	if got := gitCmd(t, dir, "rev-parse", "main"); got != c+"\n" {
		t.Errorf("git rev-parse main = %q, want %s", got, c)
	}
	gitCmd(t, dir, "fsck", "--strict", "--no-dangling")
}

// TestLockHeld leaves another process's lock file alone: a fresh one (a
// push in progress) is waited for and the move completes once it goes; one
// that stays (a crashed git) is reported at once by its path, as a
// transient error that is not a compare-and-swap conflict (issue 8.5: a
// stale main.lock used to spin through every attempt of the writer and
// answer "contention" after 3.8 s).
func TestLockHeld(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		releases time.Duration // when the lock goes; 0: never
		lockWait time.Duration // 0: the default
	}{
		{name: "stale lock reported at once"},
		{name: "fresh lock waited for", releases: 50 * time.Millisecond, lockWait: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
			r := open(t, dir)
			if tc.lockWait > 0 {
				r.lockWait = tc.lockWait
			}
			tip := read(t, r, "main").Commit
			lock := filepath.Join(dir, "refs", "heads", "main.lock")
			const theirs = "someone else's update\n"
			if err := os.WriteFile(lock, []byte(theirs), 0o666); err != nil {
				t.Fatal(err)
			}
			if tc.releases > 0 {
				time.AfterFunc(tc.releases, func() { os.Remove(lock) })
			}
			w := &gitops.Writer{Repo: r, Author: bot}
			start := time.Now()
			res, err := w.Apply(t.Context(), "main", nil, func(gitops.Snapshot) (gitops.Change, error) {
				return gitops.Change{Kind: gitops.KindRolling, Files: map[string][]byte{"b.txt": []byte("b")}}, nil
			})
			elapsed := time.Since(start)

			if tc.releases > 0 {
				if err != nil {
					t.Fatalf("Apply with a lock released after %s: %v", tc.releases, err)
				}
				if got := read(t, r, "main").Commit.SHA; got != res.Commit || res.Attempts != 1 {
					t.Errorf("branch at %s after %d attempts, want %s in 1", got, res.Attempts, res.Commit)
				}
				return
			}
			wantMsg := lock + " exists: another git process is writing, or one crashed; remove it if no git process is running"
			if err == nil || !strings.Contains(err.Error(), wantMsg) {
				t.Fatalf("Apply with a stale lock = %v, want an error saying %q", err, wantMsg)
			}
			for _, kind := range []error{gitops.ErrConflict, gitops.ErrContention, gitops.ErrInvalid, gitops.ErrNotFound} {
				if errors.Is(err, kind) {
					t.Errorf("error %v is %v, want a plain transient error", err, kind)
				}
			}
			if res.Attempts != 1 || elapsed > 2*time.Second {
				t.Errorf("reported after %d attempts and %s, want 1 attempt at once", res.Attempts, elapsed)
			}
			if got := readFile(t, lock); got != theirs {
				t.Errorf("lock file now holds %q, want it untouched", got)
			}
			if got := read(t, r, "main").Commit.SHA; got != tip.SHA {
				t.Errorf("branch moved to %s while locked", got)
			}
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			c := commitOn(t, r, tip, "after the lock", nil)
			move(t, r, "main", tip.SHA, c)
			if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock left behind after a move: %v", err)
			}
		})
	}
}

// TestNotFoundAtOnce answers a missing object without waiting: only a read
// that failed otherwise is retried (issue 9.6: every failure used to sleep
// ~140 ms holding the object lock).
func TestNotFoundAtOnce(t *testing.T) {
	t.Parallel()
	r := open(t, newBare(t, map[string][]byte{"a.txt": []byte("a")}))
	tip := read(t, r, "main").Commit
	missing := strings.Repeat("ab", 20)
	start := time.Now()
	for range 5 {
		if err := r.MoveBranch(t.Context(), "main", tip.SHA, missing); !errors.Is(err, gitops.ErrNotFound) {
			t.Fatalf("MoveBranch(to a missing commit) = %v, want ErrNotFound", err)
		}
	}
	if elapsed := time.Since(start); elapsed > 250*time.Millisecond {
		t.Errorf("5 missing-object answers took %s, want no waiting", elapsed)
	}
}

// TestGitHonoursOurLock runs git while MoveBranch holds the branch's lock:
// git update-ref and git push must both fail to move the branch, and the
// move completes as compared.
func TestGitHonoursOurLock(t *testing.T) {
	requireGit(t)
	bare := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	clone := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, "", "clone", "-q", bare, clone)
	writeFile(t, filepath.Join(clone, "b.txt"), "b")
	gitCmd(t, clone, "add", "b.txt")
	gitCmd(t, clone, "commit", "-q", "-m", "human")

	r := open(t, bare)
	tip := read(t, r, "main").Commit
	c := commitOn(t, r, tip, "pinroll", nil)
	other := commitOn(t, r, tip, "other", nil)
	var pushOut, updateOut string
	var pushErr, updateErr error
	r.lockedHook = func(string) {
		pushOut, pushErr = gitRun(clone, "push", "origin", "HEAD:main")
		updateOut, updateErr = gitRun(bare, "update-ref", "refs/heads/main", other, tip.SHA)
	}
	move(t, r, "main", tip.SHA, c)
	r.lockedHook = nil

	if pushErr == nil || !strings.Contains(pushOut, "cannot lock ref") {
		t.Errorf("git push while pinroll held the lock: %v, want a lock failure\n%s", pushErr, pushOut)
	}
	if updateErr == nil || !strings.Contains(updateOut, "cannot lock ref") {
		t.Errorf("git update-ref while pinroll held the lock: %v, want a lock failure\n%s", updateErr, updateOut)
	}
	if got := strings.TrimSpace(gitCmd(t, bare, "rev-parse", "main")); got != c {
		t.Errorf("branch at %s, want pinroll's %s", got, c)
	}
	// With the lock released, the push is rejected as non-fast-forward.
	if out, err := gitRun(clone, "push", "origin", "HEAD:main"); err == nil {
		t.Errorf("push over pinroll's commit succeeded:\n%s", out)
	}
}

// TestReflog appends to the branch's reflog when it has one.
func TestReflog(t *testing.T) {
	dir := newNonBare(t, map[string][]byte{"a.txt": []byte("a")})
	logPath := filepath.Join(dir, ".git", "logs", "refs", "heads", "main")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 3, 4, 5, 0, time.FixedZone("", 3600))
	r := open(t, dir).WithClock(func() time.Time { return now })
	tip := read(t, r, "main").Commit
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{BaseTree: tip.Tree, Parents: []string{tip.SHA}, Message: "logged", Author: gitops.Signature{Name: "pinroll", Email: "pinroll@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	move(t, r, "main", tip.SHA, c)
	if got := read(t, r, "main").Commit.Author.When; !got.Equal(now) {
		t.Errorf("commit dated %s, want the clock's %s", got, now)
	}
	want := regexp.MustCompile(`^` + tip.SHA + ` ` + c + ` pinroll <pinroll@example.com> ` + fmt.Sprint(now.Unix()) + ` \+0100\tpinroll: move branch\n$`)
	if got := readFile(t, logPath); !want.MatchString(got) {
		t.Errorf("reflog = %q, want a line matching %s", got, want)
	}
	if hasGit(t) {
		if got := gitCmd(t, dir, "rev-parse", "main@{0}", "main@{1}"); got != c+"\n"+tip.SHA+"\n" {
			t.Errorf("git rev-parse main@{0} main@{1} = %q", got)
		}
	}
}

// TestExternalObjects reads commits whose objects another process wrote
// after Open: loose, in a new pack, and moved by a repack that deletes the
// packs and loose objects seen before.
func TestExternalObjects(t *testing.T) {
	requireGit(t)
	bare := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	r := open(t, bare)
	read(t, r, "main", "a.txt") // let go-git index the (absent) packs

	clone := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, "", "clone", "-q", bare, clone)
	push := func(file string, unpackLimit int) string {
		t.Helper()
		writeFile(t, filepath.Join(clone, file), file)
		gitCmd(t, clone, "add", file)
		gitCmd(t, clone, "commit", "-q", "-m", file)
		gitCmd(t, bare, "config", "receive.unpackLimit", fmt.Sprint(unpackLimit))
		gitCmd(t, clone, "push", "-q", "origin", "HEAD:main")
		return strings.TrimSpace(gitCmd(t, clone, "rev-parse", "HEAD"))
	}
	check := func(what, want string, files ...string) {
		t.Helper()
		s := read(t, r, "main", files...)
		if s.Commit.SHA != want {
			t.Fatalf("%s: Read = %s, want %s", what, s.Commit.SHA, want)
		}
		for _, f := range files {
			if got := string(s.Files[f]); got != f {
				t.Errorf("%s: %s = %q, want %q", what, f, got, f)
			}
		}
	}

	check("loose objects from a push", push("loose.txt", 100), "loose.txt")
	packed := push("packed.txt", 1)
	if packs, _ := filepath.Glob(filepath.Join(bare, "objects", "pack", "*.pack")); len(packs) == 0 {
		t.Fatal("the push left no pack; the test needs one")
	}
	check("a new pack from a push", packed, "packed.txt", "loose.txt")
	packed2 := push("packed2.txt", 1)
	check("a second new pack", packed2, "packed2.txt", "packed.txt")

	gitCmd(t, bare, "repack", "-a", "-d", "-q")
	gitCmd(t, bare, "prune-packed")
	check("after repack -a -d", packed2, "packed2.txt", "packed.txt", "loose.txt")

	// Writing on top of packed objects works, and git reads the result.
	tip := read(t, r, "main").Commit
	c := commitOn(t, r, tip, "on packed", map[string][]byte{"x/y.txt": []byte("y")})
	move(t, r, "main", tip.SHA, c)
	gitCmd(t, bare, "fsck", "--strict", "--no-dangling")
}

// TestRaceWithGitPush has 8 goroutines landing 5 commits each by
// compare-and-swap while a human pushes 20 commits with the git CLI into the
// same bare repository; every one of the 60 commits must end up on the
// branch's first-parent chain.
func TestRaceWithGitPush(t *testing.T) {
	requireGit(t)
	const (
		humans     = 20
		workers    = 8
		perWorker  = 5
		maxRetries = 300
	)
	bare := newBare(t, map[string][]byte{"README.md": []byte("race\n")})
	// Every push writes a pack, and receive-pack's gc --auto repacks them:
	// both must stay visible to Read.
	gitCmd(t, bare, "config", "receive.unpackLimit", "1")
	gitCmd(t, bare, "config", "gc.autoPackLimit", "4")
	gitCmd(t, bare, "config", "gc.autoDetach", "false")
	clone := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, "", "clone", "-q", bare, clone)
	r := open(t, bare)
	// Hold the lock a little between compare and rename, widening the window
	// in which a move that did not exclude git would lose a commit (in about
	// one run in four here; TestGitHonoursOurLock checks the exclusion
	// itself, deterministically).
	r.lockedHook = func(string) { time.Sleep(time.Duration(rand.N(20)) * time.Millisecond) }

	var (
		wg                          sync.WaitGroup
		pushed, rejected, conflicts atomic.Int64
		humansDone                  = make(chan struct{})
		landed                      sync.Map // SHA → subject of every commit a push or move reported landed
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(humansDone)
		for i := range humans {
			name := fmt.Sprintf("human/%02d.txt", i)
			if err := os.MkdirAll(filepath.Join(clone, "human"), 0o777); err != nil {
				t.Error(err)
				return
			}
			if err := os.WriteFile(filepath.Join(clone, name), []byte(name), 0o666); err != nil {
				t.Error(err)
				return
			}
			if _, err := gitRun(clone, "add", name); err != nil {
				t.Error(err)
				return
			}
			if _, err := gitRun(clone, "commit", "-q", "-m", fmt.Sprintf("human %02d", i)); err != nil {
				t.Error(err)
				return
			}
			for try := 0; ; try++ {
				if try == maxRetries {
					t.Errorf("human %d: push still rejected after %d tries", i, try)
					return
				}
				if _, err := gitRun(clone, "push", "-q", "origin", "HEAD:main"); err == nil {
					pushed.Add(1)
					head, err := gitRun(clone, "rev-parse", "HEAD")
					if err != nil {
						t.Error(err)
						return
					}
					landed.Store(strings.TrimSpace(head), fmt.Sprintf("human %02d", i))
					break
				}
				rejected.Add(1)
				if out, err := gitRun(clone, "pull", "-q", "--rebase", "origin", "main"); err != nil {
					t.Logf("human %d: pull --rebase: %v\n%s", i, err, out)
					gitRun(clone, "rebase", "--abort")
				}
			}
		}
	}()

	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := t.Context()
			// Spread the commits over the humans' pushes: each waits for a
			// random number of them to land, then a random while.
			after := make([]int, perWorker)
			for k := range after {
				after[k] = rand.N(humans)
			}
			sort.Ints(after)
			for k := range perWorker {
				for pushed.Load() < int64(after[k]) {
					select {
					case <-time.After(2 * time.Millisecond):
					case <-humansDone:
					}
					if t.Failed() {
						return
					}
				}
				time.Sleep(time.Duration(rand.N(50)) * time.Millisecond)
				name := fmt.Sprintf("pinroll/%d-%d.txt", w, k)
				for try := 0; ; try++ {
					if try == maxRetries {
						t.Errorf("%s: no move after %d tries", name, try)
						return
					}
					s, err := r.Read(ctx, "main")
					if err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
					c, err := r.WriteCommit(ctx, gitops.NewCommit{
						BaseTree:  s.Commit.Tree,
						Files:     map[string][]byte{name: []byte(name)},
						Parents:   []string{s.Commit.SHA},
						Message:   fmt.Sprintf("pinroll %d-%d\n", w, k),
						Author:    bot,
						Committer: bot,
					})
					if err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
					err = r.MoveBranch(ctx, "main", s.Commit.SHA, c)
					if err == nil {
						landed.Store(c, fmt.Sprintf("pinroll %d-%d", w, k))
						break
					}
					if !errors.Is(err, gitops.ErrConflict) {
						t.Errorf("%s: %v", name, err)
						return
					}
					conflicts.Add(1)
					time.Sleep(time.Duration(1+rand.N(10)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("human pushes rejected: %d; pinroll compare-and-swap conflicts: %d", rejected.Load(), conflicts.Load())
	if t.Failed() {
		return
	}

	subjects := map[string]int{}
	chain := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(gitCmd(t, bare, "log", "--first-parent", "--format=%H %s", "main")), "\n") {
		sha, subject, _ := strings.Cut(line, " ")
		subjects[subject]++
		chain[sha] = true
	}
	// A commit reported landed must stay on the chain as it was: a human
	// commit overwritten by a move would come back rebased, with a new SHA.
	landed.Range(func(sha, subject any) bool {
		if !chain[sha.(string)] {
			t.Errorf("%s (%s) was reported landed but is not on the first-parent chain", subject, sha)
		}
		return true
	})
	var missing []string
	want := func(s string) {
		if subjects[s] != 1 {
			missing = append(missing, fmt.Sprintf("%q×%d", s, subjects[s]))
		}
	}
	for i := range humans {
		want(fmt.Sprintf("human %02d", i))
	}
	for w := range workers {
		for k := range perWorker {
			want(fmt.Sprintf("pinroll %d-%d", w, k))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("first-parent chain: want each commit once, got %s", strings.Join(missing, ", "))
	}
	if n := len(strings.Fields(gitCmd(t, bare, "ls-tree", "-r", "--name-only", "main"))); n != 1+humans+workers*perWorker {
		t.Errorf("tip tree has %d files, want %d", n, 1+humans+workers*perWorker)
	}
	gitCmd(t, bare, "fsck", "--strict", "--no-dangling")
}

// BenchmarkReadWriteMove measures one read, write and move cycle on a bare
// repository.
func BenchmarkReadWriteMove(b *testing.B) {
	files := map[string][]byte{"README.md": []byte("bench\n")}
	for i := range 20 {
		files[fmt.Sprintf("envs/env%02d/kustomization.yaml", i)] = []byte("images: []\n")
	}
	r := open(b, newBare(b, files))
	const path = "envs/env07/kustomization.yaml"
	i := 0
	for b.Loop() {
		i++
		s, err := r.Read(b.Context(), "main", path)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.WriteCommit(b.Context(), gitops.NewCommit{
			BaseTree: s.Commit.Tree, Files: map[string][]byte{path: fmt.Appendf(nil, "digest: %d\n", i)},
			Parents: []string{s.Commit.SHA}, Message: "bench\n", Author: bot, Committer: bot,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.MoveBranch(b.Context(), "main", s.Commit.SHA, c); err != nil {
			b.Fatal(err)
		}
	}
}

var bot = gitops.Signature{Name: "pinroll", Email: "pinroll@example.com", When: time.Unix(1700000000, 0)}

func open(t testing.TB, repo string) *Repo {
	t.Helper()
	r, err := Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, r *Repo, branch string, paths ...string) gitops.Snapshot {
	t.Helper()
	s, err := r.Read(t.Context(), branch, paths...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func commitOn(t *testing.T, r *Repo, tip gitops.Commit, msg string, files map[string][]byte) string {
	t.Helper()
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Tree, Files: files, Parents: []string{tip.SHA}, Message: msg, Author: bot, Committer: bot,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func move(t *testing.T, r *Repo, branch, from, to string) {
	t.Helper()
	if err := r.MoveBranch(t.Context(), branch, from, to); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o666); err != nil {
		t.Fatal(err)
	}
}

// newBare makes a bare repository with go-git whose branch main has one
// commit holding files.
func newBare(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo.git")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
		Bare:        true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tree := writeTestTree(t, repo.Storer, files)
	seed := &object.Commit{
		Author:    object.Signature{Name: "seed", Email: "seed@example.com", When: time.Unix(1600000000, 0).UTC()},
		Committer: object.Signature{Name: "seed", Email: "seed@example.com", When: time.Unix(1600000000, 0).UTC()},
		Message:   "seed\n",
		TreeHash:  tree,
	}
	h := storeTestObject(t, repo.Storer, seed.Encode)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.Main, h)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newNonBare makes a repository with a work tree with go-git, committing files
// to its branch main.
func newNonBare(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(p)), string(b))
		if _, err := wt.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	sig := &object.Signature{Name: "seed", Email: "seed@example.com", When: time.Unix(1600000000, 0)}
	if _, err := wt.Commit("seed\n", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeTestTree stores files as blobs and trees, independently of the code
// under test.
func writeTestTree(t testing.TB, s storage.Storer, files map[string][]byte) plumbing.Hash {
	t.Helper()
	var entries []object.TreeEntry
	subdirs := map[string]map[string][]byte{}
	for p, b := range files {
		dir, rest, ok := strings.Cut(p, "/")
		if ok {
			if subdirs[dir] == nil {
				subdirs[dir] = map[string][]byte{}
			}
			subdirs[dir][rest] = b
			continue
		}
		h := storeTestObject(t, s, func(o plumbing.EncodedObject) error {
			o.SetType(plumbing.BlobObject)
			w, _ := o.Writer()
			_, err := w.Write(b)
			return errors.Join(err, w.Close())
		})
		entries = append(entries, object.TreeEntry{Name: p, Mode: filemode.Regular, Hash: h})
	}
	for dir, sub := range subdirs {
		entries = append(entries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: writeTestTree(t, s, sub)})
	}
	sort.Sort(object.TreeEntrySorter(entries))
	return storeTestObject(t, s, (&object.Tree{Entries: entries}).Encode)
}

func storeTestObject(t testing.TB, s storage.Storer, encode func(plumbing.EncodedObject) error) plumbing.Hash {
	t.Helper()
	o := s.NewEncodedObject()
	if err := encode(o); err != nil {
		t.Fatal(err)
	}
	h, err := s.SetEncodedObject(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// hasGit reports whether the git CLI is installed.
func hasGit(t *testing.T) bool {
	t.Helper()
	_, err := exec.LookPath("git")
	return err == nil
}

// requireGit skips the test when the git CLI is not installed, and fails it
// when it runs in CI (CI=true), which must have git.
func requireGit(t *testing.T) {
	t.Helper()
	if hasGit(t) {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the git CLI is not installed; CI must provide it")
	}
	t.Skip("the git CLI is not installed; skipping a test that drives it")
}

// gitRun runs git in dir ("" for the current directory), isolated from the
// user's and system's configuration.
func gitRun(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Human", "GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human", "GIT_COMMITTER_EMAIL=human@example.com",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitRun(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWriteCommitSyncsObjects checks, through the files on disk, that every
// loose object a commit adds is durable before WriteCommit returns and so
// before the branch can move to it: the file system holding them is flushed
// (syncfs) once all are written, or, without syncfs, each object, its
// directory and objects/ are synced.
func TestWriteCommitSyncsObjects(t *testing.T) {
	for _, noSyncfs := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSyncfs=%v", noSyncfs), func(t *testing.T) {
			dir := newBare(t, map[string][]byte{"overlays/dev/kustomization.yaml": []byte("images: []\n")})
			r := open(t, dir)
			r.noSyncfs = noSyncfs
			tip := read(t, r, "main").Commit
			objects := filepath.Join(dir, "objects")
			if _, err := os.Stat(objects); err != nil { // a non-bare fixture
				objects = filepath.Join(dir, ".git", "objects")
			}
			loose := func() map[string]bool {
				files := map[string]bool{}
				fans, _ := filepath.Glob(filepath.Join(objects, "[0-9a-f][0-9a-f]", "*"))
				for _, f := range fans {
					files[f] = true
				}
				return files
			}
			before := loose()
			var events []string
			var atFlush map[string]bool // the loose objects when syncfs ran
			r.syncedHook = func(path string) {
				events = append(events, "sync "+path)
				if path == "syncfs "+objects {
					atFlush = loose()
				}
			}
			r.lockedHook = func(ref string) { events = append(events, "lock "+ref) }

			for i, files := range []map[string][]byte{
				{"overlays/dev/kustomization.yaml": []byte("images: [{name: a}]\n")},
				{"overlays/dev/kustomization.yaml": []byte("images: [{name: b}]\n"), "new/dir/f": []byte("f\n")},
			} {
				events, atFlush = events[:0], nil
				c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
					BaseTree: tip.Tree, Files: files, Parents: []string{tip.SHA}, Message: "m\n",
					Author: gitops.Signature{Name: "n", Email: "e@x", When: time.Unix(int64(i), 0)},
				})
				if err != nil {
					t.Fatal(err)
				}
				move(t, r, "main", tip.SHA, c)
				after := loose()
				lock := slices.Index(events, "lock refs/heads/main")
				if lock < 0 {
					t.Fatalf("write %d: the move took no lock: %q", i, events)
				}
				synced := map[string]bool{}
				for _, e := range events[:lock] {
					synced[strings.TrimPrefix(e, "sync ")] = true
				}
				flushed := synced["syncfs "+objects]
				if flushed == noSyncfs {
					t.Fatalf("write %d: syncfs before the move %v, want %v: %q", i, flushed, !noSyncfs, events)
				}
				added := 0
				for f := range after {
					if before[f] {
						continue
					}
					added++
					switch {
					case flushed && !atFlush[f]:
						t.Errorf("write %d: object %s written after the file system was flushed", i, f)
					case !flushed && (!synced[f] || !synced[filepath.Dir(f)]):
						t.Errorf("write %d: object %s (synced %v, its directory %v) not synced before the move",
							i, f, synced[f], synced[filepath.Dir(f)])
					}
				}
				if added < 4 || (!flushed && !synced[objects]) {
					t.Errorf("write %d: %d objects added, objects/ synced %v; want at least commit, 2 trees and a blob, and objects/", i, added, synced[objects])
				}
				before, tip = after, read(t, r, "main").Commit
			}
		})
	}
}
