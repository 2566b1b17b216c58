package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
)

// TestSquashCLI folds a rolling commit across a person's commit from the
// command line, on every backend: a dry run that moves nothing, the squash
// with -o json, the table of a squash with nothing to fold, and the errors.
func TestSquashCLI(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b)
			d := func(n int) string { return fmt.Sprintf("sha256:%064x", 0xc5_0000+n) }
			must := func(want int, args ...string) (string, string) {
				t.Helper()
				code, out, errOut := w.cli(args...)
				if code != want {
					t.Fatalf("pinroll %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
				}
				return out, errOut
			}
			must(0, "notify", serverRepo+"@"+d(1), "--tag", "latest")
			if err := w.host.human(t).Push("README.md", "hello\n", "docs: add a README"); err != nil {
				t.Fatal(err)
			}
			must(0, "notify", serverRepo+"@"+d(2), "--tag", "latest")
			before := w.host.log(t)
			if len(before) != 4 {
				t.Fatalf("before the squash: %d commits, want 4", len(before))
			}

			out, _ := must(0, "squash", "--dry-run")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "BRANCH") || strings.Join(strings.Fields(lines[1])[:7], " ") != "main squashed (dry run) 2 1 "+before[0].SHA[:7] {
				t.Errorf("squash --dry-run table:\n%s", out)
			}
			if got := w.host.log(t); got[0].SHA != before[0].SHA {
				t.Fatal("a dry run moved main")
			}

			out, _ = must(0, "squash", "--env", "dev", "-o", "json")
			var ans struct{ Reports []engine.SquashReport }
			if err := json.Unmarshal([]byte(out), &ans); err != nil || len(ans.Reports) != 1 {
				t.Fatalf("squash -o json: %v\n%s", err, out)
			}
			after := w.host.log(t)
			r := ans.Reports[0]
			if r.Outcome != gitops.SquashSquashed || r.NewTip != after[0].SHA || r.OldTip != before[0].SHA || r.Folded != 2 || r.Replayed != 1 || len(after) != 3 ||
				r.BackupRef == "" || !strings.Contains(out, `"backup_ref"`) {
				t.Fatalf("squash: %+v; log %d commits", r, len(after))
			}
			if subject(after[1]) != "docs: add a README" || string(w.host.file(t, "README.md")) != "hello\n" || w.pinned(t, "server") != d(2) {
				t.Errorf("after the squash: %q, README %q, pinned %s", subject(after[1]), w.host.file(t, "README.md"), w.pinned(t, "server"))
			}

			if out, _ = must(0, "status"); !strings.Contains(out, "main at "+r.NewTip[:7]+"; last squash ") || !strings.Contains(out, "squashed (2 folded, 1 replayed)") {
				t.Errorf("status after the squash:\n%s", out)
			}
			if out, _ = must(0, "squash"); !strings.Contains(out, "main") || !strings.Contains(out, "nothing") {
				t.Errorf("second squash table:\n%s", out)
			}
			if _, errOut := must(1, "squash", "--env", "staging"); !strings.Contains(errOut, `no environment "staging"`) || !strings.Contains(errOut, "404") {
				t.Errorf("squash of an unknown env must print the server's error: %q", errOut)
			}
			if _, errOut := must(2, "squash", "main"); strings.Count(errOut, "usage:") != 1 {
				t.Errorf("usage error: %q", errOut)
			}
		})
	}
}
