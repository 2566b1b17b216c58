package gitops_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/gitops/local"
)

// runGit runs the git CLI in dir, isolated from the user's configuration.
func runGit(dir string, args ...string) (string, error) {
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

// TestSquashRacesGitPush squashes a local repository again and again while
// a person pushes to it with git: every push git reports as landed is in
// the final history, and every squash either moved the branch or aborted.
func TestSquashRacesGitPush(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI is not installed")
	}
	if testing.Short() {
		t.Skip("a race of about ten seconds")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo.git")
	if _, err := gogit.PlainInit(dir, true); err != nil {
		t.Fatal(err)
	}
	r, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := build(t, "R:dev; H; A:web; R:dev")
	materialize(t, r, w)
	if _, err := runGit(dir, "symbolic-ref", "HEAD", "refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if _, err := runGit("", "clone", "-q", dir, clone); err != nil {
		t.Fatal(err)
	}

	const pushes, rounds = 8, 12
	var (
		wg      sync.WaitGroup
		landed  []string
		botDone = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range pushes {
			msg := fmt.Sprintf("person %d", i)
			var last error
			for quiet := 0; ; {
				select {
				case <-botDone: // the bot no longer moves the branch: land soon
					if quiet++; quiet > 5 {
						t.Errorf("%s: no push after the bot stopped: %v", msg, last)
						return
					}
				default: // the bot may starve us for a while; not forever
				}
				if _, err := runGit(clone, "fetch", "-q", "origin"); err != nil {
					last = err
					continue
				}
				if _, err := runGit(clone, "reset", "-q", "--hard", "origin/main"); err != nil {
					t.Error(err)
					return
				}
				if err := os.WriteFile(filepath.Join(clone, "people.txt"), []byte(msg+"\n"), 0o666); err != nil {
					t.Error(err)
					return
				}
				if _, err := runGit(clone, "commit", "-qam", msg); err != nil {
					if _, err := runGit(clone, "add", "people.txt"); err != nil {
						t.Error(err)
						return
					}
					if _, err := runGit(clone, "commit", "-qm", msg); err != nil {
						t.Error(err)
						return
					}
				}
				_, last = runGit(clone, "push", "-q", "origin", "HEAD:main")
				if last == nil {
					landed = append(landed, msg)
					break
				}
			}
		}
	}()

	outcomes := map[gitops.SquashOutcome]int{}
	for range rounds {
		time.Sleep(time.Duration(100+rand.N(300)) * time.Millisecond) // give pushes a chance
		// A pin between squashes, so that each has something to fold.
		for _, s := range []string{"A:dev", "R:web"} {
			if err := pinOnTip(t, r, w, s); err != nil {
				outcomes["pin lost a race"]++
			}
		}
		rep, err := squasher(r).Squash(t.Context(), branch, false)
		if err != nil {
			t.Error(err)
			break
		}
		outcomes[rep.Outcome]++
		if rep.Outcome != gitops.SquashSquashed && rep.Outcome != gitops.SquashAborted && rep.Outcome != gitops.SquashNothing {
			t.Errorf("squash: %s: %s", rep.Outcome, rep.Reason)
		}
	}
	close(botDone)
	wg.Wait()
	t.Logf("squashes: %v; pushes landed: %d", outcomes, len(landed))

	var msgs []string
	for _, s := range history(t, r) {
		msgs = append(msgs, strings.TrimSpace(s.Commit.Message))
	}
	all := strings.Join(msgs, "\n")
	for _, m := range landed {
		if !strings.Contains(all, m) {
			t.Errorf("push %q landed but is not in the history", m)
		}
	}
	if out, err := runGit(dir, "fsck", "--no-progress"); err != nil {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
}

// pinOnTip commits a bot pin on the current tip (the world's files for the
// overlays, whatever the rest of the tree holds), as the engine would.
func pinOnTip(t *testing.T, r gitops.Repo, w *world, step string) error {
	t.Helper()
	w.step(t, step)
	sp := w.specs[len(w.specs)-1]
	tip, err := r.Read(t.Context(), branch)
	if err != nil {
		return err
	}
	c, err := r.WriteCommit(t.Context(), gitops.NewCommit{
		BaseTree: tip.Commit.Tree, Files: pick(sp.files, trackPaths), Parents: []string{tip.Commit.SHA},
		Message: sp.msg, Author: sp.author, Committer: sp.committer,
	})
	if err != nil {
		return err
	}
	return r.MoveBranch(t.Context(), branch, tip.Commit.SHA, c)
}
