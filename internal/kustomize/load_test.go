package kustomize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinroll/pinroll/internal/config"
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

// TestHostileGraphs: a cycle and a very deep chain of kustomizations end
// with a finding, after a bounded number of reads.
func TestHostileGraphs(t *testing.T) {
	t.Parallel()
	const k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n"
	for _, tc := range []struct {
		name      string
		files     map[string]string
		want      string
		wantReads int
	}{
		{"cycle", map[string]string{
			"overlays/dev/kustomization.yaml":   fmt.Sprintf(k, "../other"),
			"overlays/other/kustomization.yaml": fmt.Sprintf(k, "../dev"),
		}, "error: dev: kustomize build overlays/dev fails: ", 2},
		{"deep chain", deepChain(40, k), "is more than 16 levels below the overlay", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			for p, b := range tc.files {
				writeFile(t, filepath.Join(root, p), b)
			}
			writeFile(t, filepath.Join(root, "pinroll.yaml"), "git: {repo: /unused}\nimages: [{name: server, repository: r.example/p/server}]\nenvironments:\n  - {name: dev, path: overlays/dev, track: latest}\n")
			cfg, err := config.Load(filepath.Join(root, "pinroll.yaml"), func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Check(context.Background(), dirRepo{root}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rep.Lines(), "\n")
			if !strings.Contains(got, tc.want) || rep.OK() || rep.Reads != tc.wantReads {
				t.Fatalf("report (%d reads, want %d):\n%s\nwant a line with %q", rep.Reads, tc.wantReads, got, tc.want)
			}
		})
	}
}

// deepChain is overlays/dev → d1 → d2 → … → dN.
func deepChain(n int, k string) map[string]string {
	files := map[string]string{"overlays/dev/kustomization.yaml": fmt.Sprintf(k, "../../d1")}
	for i := 1; i < n; i++ {
		files[fmt.Sprintf("d%d/kustomization.yaml", i)] = fmt.Sprintf(k, fmt.Sprintf("../d%d", i+1))
	}
	return files
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
