package kustomize

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/gitops"
)

// movingRepo is a dirRepo whose branch tip moves before each of the first
// `moves` reads after the first: a commit landing while check reads.
type movingRepo struct {
	dirRepo
	moves, reads int
}

func (m *movingRepo) Read(ctx context.Context, branch string, paths ...string) (gitops.Snapshot, error) {
	snap, err := m.dirRepo.Read(ctx, branch, paths...)
	if m.reads > 0 && m.moves > 0 {
		m.moves--
	}
	m.reads++
	snap.Commit.SHA = fmt.Sprintf("%040d", m.moves)
	return snap, err
}

func TestLoadSeesOneCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		moves     int
		wantReads int
		wantErr   string
	}{
		{"still", 0, 3, ""},
		{"moves once", 1, 5, ""},                // 2 reads see two commits, then 3 at one
		{"keeps moving", 100, 6, "kept moving"}, // gives up after maxRestarts
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &movingRepo{dirRepo: dirRepo{filepath.Join("testdata", "ok-demo-shape", "repo")}, moves: tc.moves}
			g, err := load(context.Background(), r, "main", []string{"overlays/dev", "overlays/prod"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.reads != tc.wantReads || len(g.files) != 4 {
				t.Fatalf("reads %d (want %d), files %d (want 4)", g.reads, tc.wantReads, len(g.files))
			}
		})
	}
}
