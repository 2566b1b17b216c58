package gitops_test

import (
	"context"

	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
)

// weekSteps is a busy week: 200 append pins across two track environments
// and 30 people's commits spread among them.
func weekSteps() string {
	var steps []string
	for i := range 230 {
		switch {
		case i%23 == 3, i%23 == 11, i%23 == 19:
			steps = append(steps, "H")
		case i%2 == 0:
			steps = append(steps, "A:dev")
		default:
			steps = append(steps, "A:web")
		}
	}
	return strings.Join(steps, "; ")
}

// benchSquash squashes the week once per op; between ops the branch goes
// back to the week's tip (and the backup is deleted), outside the timer.
// The clock is fixed, so every op writes the same commits.
func benchSquash(b *testing.B, r gitops.Repo, calls func() int64) {
	ctx := context.Background()
	w := build(b, weekSteps())
	if n := strings.Count(weekSteps(), "H"); n != 30 {
		b.Fatalf("week has %d people's commits, want 30", n)
	}
	tip := materialize(b, r, w)
	s := squasher(r)
	var total int64
	b.ResetTimer()
	for range b.N {
		var before int64
		if calls != nil {
			before = calls()
		}
		rep, err := s.Squash(ctx, branch, false)
		if calls != nil {
			total += calls() - before
		}
		if err != nil || rep.Outcome != gitops.SquashSquashed || rep.Folded != 200 || rep.Replayed != 30 {
			b.Fatalf("squash = %+v, %v; want 200 folded, 30 replayed", rep, err)
		}
		b.StopTimer()
		err = r.UpdateRefs(ctx, []gitops.RefUpdate{
			{Ref: "refs/heads/" + branch, From: rep.NewTip, To: tip},
			{Ref: rep.BackupRef, From: tip},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	if calls != nil {
		b.ReportMetric(float64(total)/float64(b.N), "api-calls/op")
	}
}

// BenchmarkSquashWeekLocal squashes 200 pins and 30 people's commits in a
// repository on disk.
func BenchmarkSquashWeekLocal(b *testing.B) {
	benchSquash(b, newLocal(b), nil)
}

// BenchmarkSquashWeekGitHub squashes the same week through the fake GitHub
// (unpaced) and reports the API calls per squash: about 2 per replayed
// commit, plus the reads and the move.
func BenchmarkSquashWeekGitHub(b *testing.B) {
	r, _ := newGitHub(b, -1)
	benchSquash(b, r, r.Calls)
}
