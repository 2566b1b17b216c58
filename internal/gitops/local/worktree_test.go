package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// nonBare makes a non-bare repository with the git CLI: main checked out,
// one commit holding files.
func nonBare(t *testing.T, files map[string]string) string {
	t.Helper()
	gittest.RequireGit(t)
	dir := filepath.Join(t.TempDir(), "work")
	runGit(t, "", "init", "-q", "-b", "main", dir)
	runGit(t, dir, "config", "user.name", "A Human")
	runGit(t, dir, "config", "user.email", "human@example.com")
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "seed")
	return dir
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pin moves main to a commit changing path to content, as the engine would.
func pin(t *testing.T, r *Repo, path, content string) {
	t.Helper()
	ctx := context.Background()
	s, err := r.Read(ctx, "main", path)
	if err != nil {
		t.Fatal(err)
	}
	sha, err := r.WriteCommit(ctx, gitops.NewCommit{BaseTree: s.Commit.Tree, Parents: []string{s.Commit.SHA},
		Files: map[string][]byte{path: []byte(content)}, Message: "pin",
		Author: gitops.Signature{Name: "pinroll", Email: "pinroll@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MoveBranch(ctx, "main", s.Commit.SHA, sha); err != nil {
		t.Fatal(err)
	}
}

func TestNonBareWorkTreeFollowsTheBranch(t *testing.T) {
	t.Parallel()
	dir := nonBare(t, map[string]string{"overlay/kustomization.yaml": "old\n", "README.md": "hi\n"})
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pin(t, r, "overlay/kustomization.yaml", "new\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "overlay/kustomization.yaml")); string(b) != "new\n" {
		t.Fatalf("work tree file = %q, want the pinned content", b)
	}
	if st := runGit(t, dir, "status", "--porcelain"); st != "" {
		t.Fatalf("git status not clean after the move:\n%s", st)
	}
	// A person's next commit there keeps the pin instead of reverting it.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "commit", "-q", "-am", "docs")
	if got := runGit(t, dir, "show", "HEAD:overlay/kustomization.yaml"); got != "new\n" {
		t.Fatalf("the human commit reverted the pin: %q", got)
	}
}

func TestNonBareLocalChangesAreLeftAlone(t *testing.T) {
	t.Parallel()
	dir := nonBare(t, map[string]string{"overlay/kustomization.yaml": "old\n"})
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mine := "old\n# my uncommitted edit\n"
	if err := os.WriteFile(filepath.Join(dir, "overlay/kustomization.yaml"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	pin(t, r, "overlay/kustomization.yaml", "new\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "overlay/kustomization.yaml")); string(b) != mine {
		t.Fatalf("a local edit was overwritten: %q", b)
	}
	if got := runGit(t, dir, "show", "main:overlay/kustomization.yaml"); got != "new\n" {
		t.Fatalf("branch = %q, want the pin", got)
	}
}

func TestNonBareOtherBranchCheckedOut(t *testing.T) {
	t.Parallel()
	dir := nonBare(t, map[string]string{"overlay/kustomization.yaml": "old\n"})
	runGit(t, dir, "checkout", "-q", "-b", "feature")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pin(t, r, "overlay/kustomization.yaml", "new\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "overlay/kustomization.yaml")); string(b) != "old\n" {
		t.Fatalf("the work tree of another branch changed: %q", b)
	}
	if st := runGit(t, dir, "status", "--porcelain"); st != "" {
		t.Fatalf("git status:\n%s", st)
	}
}

// TestNonBareFlagsAndModesAreRespected: an entry marked assume-unchanged
// anywhere in the index, or a staged mode change on the pinned file, makes
// the sync stand back rather than lose it.
func TestNonBareFlagsAndModesAreRespected(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T, dir string){
		"assume-unchanged elsewhere": func(t *testing.T, dir string) {
			runGit(t, dir, "update-index", "--assume-unchanged", "local.env")
		},
		"staged chmod": func(t *testing.T, dir string) {
			runGit(t, dir, "update-index", "--chmod=+x", "overlay/kustomization.yaml")
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := nonBare(t, map[string]string{"overlay/kustomization.yaml": "old\n", "local.env": "x=1\n"})
			prepare(t, dir)
			before := runGit(t, dir, "ls-files", "-s", "-v")
			r, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			pin(t, r, "overlay/kustomization.yaml", "new\n")
			if after := runGit(t, dir, "ls-files", "-s", "-v"); after != before {
				t.Fatalf("index changed:\n%s\nwas:\n%s", after, before)
			}
			if got := runGit(t, dir, "show", "main:overlay/kustomization.yaml"); got != "new\n" {
				t.Fatalf("branch = %q", got)
			}
		})
	}
}
