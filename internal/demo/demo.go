// Package demo seeds the embedded default of SPEC §7: a bare git repository
// holding the demo GitOps tree of examples/gitops, which `make run` serves.
package demo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/pinroll/pinroll/examples"
)

// Seed creates the bare repository repoDir (e.g. .pinroll/gitops.git) with one
// commit on branch holding the demo GitOps tree. It does nothing and returns
// created=false when repoDir already exists, so it is safe to run every time.
func Seed(repoDir, branch string) (created bool, err error) {
	if _, err := os.Stat(repoDir); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("demo: %w", err)
	}
	// Build in a sibling directory and rename, so an interrupted seed never
	// leaves a half-made repository behind that the next run would trust.
	tmp := repoDir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := build(tmp, branch); err != nil {
		_ = os.RemoveAll(tmp)
		return false, fmt.Errorf("demo: seed %s: %w", repoDir, err)
	}
	if err := os.Rename(tmp, repoDir); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	return true, nil
}

// Files returns the demo GitOps tree as slash-separated paths and contents,
// e.g. to seed a fake GitHub repository in tests.
func Files() map[string][]byte {
	files := map[string][]byte{}
	_ = fs.WalkDir(examples.GitOps, "gitops", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := examples.GitOps.ReadFile(p)
		files[strings.TrimPrefix(p, "gitops/")] = b
		return err
	})
	return files
}

func build(dir, branch string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	wt := memfs.New()
	r, err := git.InitWithOptions(st, wt, git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)})
	if err != nil {
		return err
	}
	w, err := r.Worktree()
	if err != nil {
		return err
	}
	for p, b := range Files() {
		f, err := wt.Create(p)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := w.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return err
	}
	sig := &object.Signature{Name: "Demo Human", Email: "human@example.com", When: time.Now()}
	if _, err := w.Commit("Add backend manifests (demo)", &git.CommitOptions{Author: sig}); err != nil {
		return err
	}
	// The repository has no work tree on disk: mark it bare like `git init --bare`.
	cfg, err := r.Config()
	if err != nil {
		return err
	}
	cfg.Core.IsBare = true
	cfg.Core.Worktree = ""
	return r.SetConfig(cfg)
}
