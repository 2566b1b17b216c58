package gitops_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
)

// randomSteps is a random interleaving of pins and people's commits, the
// first few before the window.
func randomSteps(rng *rand.Rand) string {
	alphabet := []string{"H", "O", "R:dev", "R:web", "R:dev", "A:dev", "A:web", "Rel", "Man:prod"}
	var steps []string
	for range 3 + rng.IntN(3) {
		steps = append(steps, "old "+alphabet[rng.IntN(len(alphabet))])
	}
	for range 5 + rng.IntN(20) {
		s := alphabet[rng.IntN(len(alphabet))]
		if rng.IntN(40) == 0 {
			s = "P" // now and then a person edits a pinned field
		}
		steps = append(steps, s)
	}
	return strings.Join(steps, "; ")
}

// TestSquashProperty squashes random histories and checks the invariants:
// the tree is identical, people's commits (author, dates, message and diff
// outside the pinned fields) are unchanged and in order, one rolling commit
// at the tip; or, when the squash skips or finds nothing, nothing moved.
func TestSquashProperty(t *testing.T) {
	t.Parallel()
	runs := 12
	if testing.Short() {
		runs = 5
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			outcomes := map[gitops.SquashOutcome]int{}
			defer func() { t.Logf("outcomes: %v", outcomes) }()
			for i := range runs {
				steps := randomSteps(rand.New(rand.NewPCG(uint64(i), 7)))
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					r := b.new(t)
					materialize(t, r, build(t, steps))
					before := history(t, r)
					rep, err := squasher(r).Squash(t.Context(), branch, false)
					if err != nil {
						t.Fatalf("steps %q: %v", steps, err)
					}
					after := history(t, r)
					switch rep.Outcome {
					case gitops.SquashSquashed:
						checkSquashed(t, r, rep, before, after)
					case gitops.SquashNothing, gitops.SquashSkipped:
						if after[0].Commit.SHA != before[0].Commit.SHA {
							t.Errorf("%s moved the branch", rep.Outcome)
						}
						if rep.Outcome == gitops.SquashSkipped && !strings.Contains(steps, "P") {
							t.Errorf("skipped without a person editing a pinned field: %s", rep.Reason)
						}
					default:
						t.Errorf("outcome %s: %s", rep.Outcome, rep.Reason)
					}
					outcomes[rep.Outcome]++
					if t.Failed() {
						t.Logf("steps: %s", steps)
					}
				})
			}
		})
	}
}
