// Package gittest gives tests a look at a git repository on disk, and a human
// who pushes to it with the real git CLI.
package gittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/gitops"
)

// RequireGit skips the test when the git CLI is missing, or fails it under
// CI=true, where every test must run.
func RequireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git CLI not found; CI must run this test")
		}
		t.Skip("git CLI not found; install git to run this test")
	}
}

// Log returns the first-parent history of branch in the repository at dir,
// newest first.
func Log(t testing.TB, dir, branch string) []gitops.Commit {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	ref, err := r.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatalf("branch %s: %v", branch, err)
	}
	var out []gitops.Commit
	for h := ref.Hash(); !h.IsZero(); {
		c, err := r.CommitObject(h)
		if err != nil {
			t.Fatalf("commit %s: %v", h, err)
		}
		gc := gitops.Commit{SHA: c.Hash.String(), Tree: c.TreeHash.String(), Message: c.Message,
			Author: gitops.Signature{Name: c.Author.Name, Email: c.Author.Email, When: c.Author.When}}
		for _, p := range c.ParentHashes {
			gc.Parents = append(gc.Parents, p.String())
		}
		out = append(out, gc)
		if len(c.ParentHashes) == 0 {
			break
		}
		h = c.ParentHashes[0]
	}
	return out
}

// File returns the content of path at the tip of branch, or nil when absent.
func File(t testing.TB, dir, branch, path string) []byte {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	ref, err := r.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatalf("branch %s: %v", branch, err)
	}
	c, err := r.CommitObject(ref.Hash())
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	f, err := c.File(path)
	if errors.Is(err, object.ErrFileNotFound) {
		return nil
	} else if err != nil {
		t.Fatalf("file %s: %v", path, err)
	}
	s, err := f.Contents()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return []byte(s)
}

// Human is a person with a clone of the repository who pushes with the git CLI.
type Human struct {
	t      testing.TB
	dir    string
	branch string
}

// NewHuman clones remote (a path) into a temporary directory.
func NewHuman(t testing.TB, remote, branch string) *Human {
	t.Helper()
	RequireGit(t)
	dir := filepath.Join(t.TempDir(), "clone")
	h := &Human{t: t, dir: dir, branch: branch}
	if out, err := exec.Command("git", "clone", "-q", "-b", branch, remote, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	h.git("config", "user.name", "A Human")
	h.git("config", "user.email", "human@example.com")
	h.git("config", "pull.rebase", "true")
	return h
}

// Push writes content to path, commits it with message and pushes, rebasing
// and retrying (at most 50 times) when the push is rejected because the branch
// moved. It returns the subject it committed, which survives a rebase.
func (h *Human) Push(path, content, message string) error {
	h.t.Helper()
	full := filepath.Join(h.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		return err
	}
	if _, err := h.run("add", path); err != nil {
		return err
	}
	if _, err := h.run("commit", "-q", "-m", message); err != nil {
		return err
	}
	var last error
	for i := 0; i < 50; i++ {
		out, err := h.run("push", "-q", "origin", h.branch)
		if err == nil {
			return nil
		}
		last = errors.New(out)
		if _, err := h.run("pull", "-q", "--rebase", "origin", h.branch); err != nil {
			return err
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
	return errors.New("push kept being rejected: " + last.Error())
}

func (h *Human) git(args ...string) {
	h.t.Helper()
	if out, err := h.run(args...); err != nil {
		h.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (h *Human) run(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = h.dir
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// Dump returns the human clone's reflog and the remote's graph, for failure messages.
func (h *Human) Dump() string {
	reflog, _ := h.run("reflog", "--format=%h %gs", "-n", "60")
	remote, _ := h.run("log", "--graph", "--format=%h %ae %s", "-n", "60", "origin/main")
	return "human reflog:\n" + reflog + "\nremote (as last fetched):\n" + remote
}

// DemoRepository is the Artifact Registry repository of the demo's server image.
const DemoRepository = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"

// SeedDemo seeds the demo GitOps repository in a temporary directory and
// returns it with the config of the smallest pinroll over it: a bbolt ledger
// beside it, the server image, dev tracking latest.
func SeedDemo(t testing.TB) (repo, config string) {
	t.Helper()
	dir := t.TempDir()
	repo = filepath.Join(dir, "gitops.git")
	if _, err := demo.Seed(repo, "main"); err != nil {
		t.Fatal(err)
	}
	return repo, fmt.Sprintf(`git:
  repo: %s
  branch: main
  author: {name: pinroll, email: pinroll@example.com}
ledger: bolt://%s
images:
  - name: server
    repository: %s
environments:
  - name: dev
    path: k8s/namespaces/backend/overlays/dev
    track: latest
`, repo, filepath.Join(dir, "ledger.db"), DemoRepository)
}
