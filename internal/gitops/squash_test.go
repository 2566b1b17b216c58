package gitops_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
)

var update = flag.Bool("update", false, "rewrite testdata/squash/*.golden")

// TestPlanSquash plans squashes of synthetic histories and compares each
// plan, rendered as text, with testdata/squash/<case>.golden.
func TestPlanSquash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		steps     string
		noRewrite bool
	}{
		{name: "only-humans", steps: "H; O; H"},
		{name: "rolling-tip-already-alone", steps: "H; R:dev; R:web"},
		{name: "pins-on-both-sides-of-a-human", steps: "R:dev; R:dev; H; R:dev; R:web"},
		{name: "interleaved", steps: "old H; old R:dev; R:dev; H; R:dev; Rel; A:web; O; H; R:dev"},
		{name: "release-and-manual-prod", steps: "R:dev; Rel; Man:prod; H; R:dev"},
		{name: "merge-stops-the-walk", steps: "R:dev; H; M; R:dev; H; R:dev"},
		{name: "signed-stops-the-walk", steps: "R:dev; S; A:dev; H; R:dev"},
		{name: "human-touches-pinned-field", steps: "R:dev; H; P; H; R:dev"},
		{name: "manual-dev-pin-is-replayed-human", steps: "R:dev; Man:dev; R:dev"},
		{name: "human-touches-other-field", steps: "R:dev; O; R:web; O"},
		{name: "two-track-envs", steps: "R:dev; R:web; H; A:web; A:dev; H; R:web; R:dev"},
		{name: "rewrite-false-folds-tip-run", steps: "R:dev; H; A:web; A:dev; R:dev", noRewrite: true},
		{name: "rewrite-false-human-tip", steps: "R:dev; A:dev; H", noRewrite: true},
		{name: "pins-before-window-stay", steps: "old R:dev; old H; old A:web; H; R:dev; H; R:web"},
		{name: "nothing-in-window", steps: "old R:dev; old H; old R:dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hist, labels := build(t, tc.steps).memoryHistory()
			// What a backend returns: down to the first commit FoldStop accepts.
			stop := gitops.FoldStop(now.Add(-window))
			for i, s := range hist {
				if stop(s.Commit) {
					hist = hist[:i+1]
					break
				}
			}
			p, err := gitops.PlanSquash(gitops.SquashInput{
				History: hist, Cutoff: now.Add(-window), BotEmail: bot.Email,
				Rewrite: !tc.noRewrite, Reset: resetPins,
			})
			if err != nil {
				t.Fatalf("PlanSquash: %v", err)
			}
			got := "steps: " + tc.steps + "\n" + renderPlan(p, labels)
			golden := filepath.Join("testdata", "squash", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o777); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// renderPlan writes a plan for people, commits named by their step labels.
func renderPlan(p gitops.SquashPlan, labels map[string]string) string {
	var b strings.Builder
	name := func(sha string) string {
		if l, ok := labels[sha]; ok {
			return l
		}
		return sha
	}
	outcome := p.Outcome
	if outcome == "" {
		outcome = gitops.SquashSquashed
	}
	fmt.Fprintf(&b, "outcome: %s\n", outcome)
	if p.Reason != "" {
		r := p.Reason
		for sha, l := range labels {
			r = strings.ReplaceAll(r, sha[:12], l)
		}
		fmt.Fprintf(&b, "reason: %s\n", r)
	}
	if outcome != gitops.SquashSquashed {
		return b.String()
	}
	fmt.Fprintf(&b, "base: %s\n", name(p.Base.Commit.SHA))
	var folded []string
	for _, c := range p.Folded {
		folded = append(folded, name(c.SHA))
	}
	fmt.Fprintf(&b, "folded: %s\n", strings.Join(folded, " "))
	for _, r := range p.Replays {
		fmt.Fprintf(&b, "replay: %s %q\n", name(r.Commit.SHA), strings.SplitN(r.Commit.Message, "\n", 2)[0])
		for _, path := range slices.Sorted(mapsKeys(r.Files)) {
			fmt.Fprintf(&b, "  reset %s:\n", path)
			for _, l := range strings.Split(strings.TrimRight(string(r.Files[path]), "\n"), "\n") {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	fmt.Fprintf(&b, "rolling commit:\n")
	for _, l := range strings.Split(strings.TrimRight(p.Rolling.String(), "\n"), "\n") {
		fmt.Fprintf(&b, "  | %s\n", l)
	}
	return b.String()
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
