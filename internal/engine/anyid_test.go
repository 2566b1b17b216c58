package engine_test

import (
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

// TestAnyMessageIDIsStorable pushes messages whose ids no store takes as
// they are (issue 8): each is pinned and acknowledged, and its redelivery
// is a duplicate, not a 503 forever after git already moved.
func TestAnyMessageIDIsStorable(t *testing.T) {
	t.Parallel()
	ids := []struct{ name, id string }{
		{"nul", "a\x00b"},
		{"not utf-8", "\xff\xfe"},
		{"40 KB", strings.Repeat("7", 40<<10)},
		{"slash and dots", "../a/b"},
	}
	for i, tc := range ids {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, with{})
			ctx := t.Context()
			m := msg(tc.id, i+1, "latest")
			res, err := f.eng.Push(ctx, m)
			if err != nil || res.Outcome != engine.Pinned {
				t.Fatalf("Push = %+v, %v; want pinned", res, err)
			}
			again, err := f.eng.Push(ctx, m)
			if err != nil || !again.Duplicate {
				t.Errorf("redelivery = %+v, %v; want a duplicate", again, err)
			}
			if n := len(gittest.Log(t, f.gitDir, "main")); n != 2 {
				t.Errorf("%d commits on main, want 2", n)
			}
		})
	}
}
