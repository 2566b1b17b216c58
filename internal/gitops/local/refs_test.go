package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
)

const backup = "refs/pinroll/backup/main/100"

// TestUpdateRefsLocked: a lock held by someone else on any ref of the
// transaction fails it whole, and leaves their lock and every ref alone.
func TestUpdateRefsLocked(t *testing.T) {
	for _, locked := range []string{"refs/heads/main", backup} {
		t.Run(locked, func(t *testing.T) {
			t.Parallel()
			dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
			r := open(t, dir)
			tip := read(t, r, "main").Commit
			c := commitOn(t, r, tip, "squashed", map[string][]byte{"a.txt": []byte("b")})
			lock := filepath.Join(dir, filepath.FromSlash(locked)) + ".lock"
			writeFile(t, lock, "theirs")

			err := r.UpdateRefs(t.Context(), []gitops.RefUpdate{{Ref: backup, To: tip.SHA}, {Ref: "refs/heads/main", From: tip.SHA, To: c}})
			if !errors.Is(err, gitops.ErrConflict) {
				t.Fatalf("UpdateRefs with %s locked: %v, want ErrConflict", locked, err)
			}
			if readFile(t, lock) != "theirs" {
				t.Errorf("their lock was touched")
			}
			if got := read(t, r, "main").Commit.SHA; got != tip.SHA {
				t.Errorf("branch moved to %s", got)
			}
			if refs, _ := r.ListRefs(t.Context(), "refs/pinroll/"); len(refs) != 0 {
				t.Errorf("backups = %v, want none", refs)
			}
			for _, ref := range []string{"refs/heads/main", backup} {
				if ref != locked {
					if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(ref)) + ".lock"); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("our lock on %s left behind: %v", ref, err)
					}
				}
			}
		})
	}
}

// TestUpdateRefsPacked lists and deletes refs that git pack-refs moved into
// packed-refs, and honours git's lock on the branch during the transaction.
func TestUpdateRefsPacked(t *testing.T) {
	requireGit(t)
	dir := newBare(t, map[string][]byte{"a.txt": []byte("a")})
	r := open(t, dir)
	tip := read(t, r, "main").Commit
	if err := r.UpdateRefs(t.Context(), []gitops.RefUpdate{{Ref: backup, To: tip.SHA}, {Ref: backup + "-1", To: tip.SHA}}); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, dir, "pack-refs", "--all")
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(backup))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("git pack-refs left the loose backup: %v", err)
	}
	refs, err := r.ListRefs(t.Context(), "refs/pinroll/backup/main/")
	if err != nil || len(refs) != 2 || refs[backup] != tip.SHA {
		t.Fatalf("ListRefs of packed refs = %v, %v", refs, err)
	}

	c := commitOn(t, r, tip, "squashed", nil)
	var pushErr error
	var pushOut string
	r.lockedHook = func(ref string) {
		if ref == "refs/heads/main" {
			pushOut, pushErr = gitRun(dir, "update-ref", "refs/heads/main", tip.SHA)
		}
	}
	err = r.UpdateRefs(t.Context(), []gitops.RefUpdate{
		{Ref: backup, From: tip.SHA},
		{Ref: "refs/pinroll/backup/main/200", To: tip.SHA},
		{Ref: "refs/heads/main", From: tip.SHA, To: c},
	})
	r.lockedHook = nil
	if err != nil {
		t.Fatalf("UpdateRefs: %v", err)
	}
	if pushErr == nil || !strings.Contains(pushOut, "cannot lock ref") {
		t.Errorf("git update-ref during the transaction: %v, want a lock failure\n%s", pushErr, pushOut)
	}
	out := gitCmd(t, dir, "show-ref")
	if strings.Contains(out, backup+"\n") || !strings.Contains(out, backup+"-1") || !strings.Contains(out, c+" refs/heads/main") {
		t.Errorf("git show-ref after the transaction:\n%s", out)
	}
	gitCmd(t, dir, "fsck", "--no-progress")
}
