package kustomize

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected.txt with what Check reports")

// dirRepo serves the files of a directory as the tip of every branch, like a
// repository whose checkout it is.
type dirRepo struct{ root string }

const fixtureCommit = "c0ffee0000000000000000000000000000000000"

func (d dirRepo) Read(_ context.Context, _ string, paths ...string) (gitops.Snapshot, error) {
	snap := gitops.Snapshot{Commit: gitops.Commit{SHA: fixtureCommit}, Files: map[string][]byte{}}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(p)))
		switch {
		case err == nil:
			snap.Files[p] = b
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		default:
			// A directory read as a file: GitHub refuses the whole read too.
			return gitops.Snapshot{}, err
		}
	}
	return snap, nil
}

// TestCheckGolden checks testdata/<case>/repo with testdata/<case>/pinroll.yaml
// and compares the report's lines with testdata/<case>/expected.txt.
func TestCheckGolden(t *testing.T) {
	t.Parallel()
	cases, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join("testdata", c.Name())
			cfg, err := config.Load(filepath.Join(dir, "pinroll.yaml"), func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Check(context.Background(), dirRepo{filepath.Join(dir, "repo")}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rep.Lines(), "\n") + "\n"
			got += "reads: " + strconv.Itoa(rep.Reads) + "\n"
			golden := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("report differs from %s (rerun with -update to rewrite it)\n--- got:\n%s--- want:\n%s", golden, got, want)
			}
			if ok := !strings.Contains(got, "error: "); rep.OK() != ok {
				t.Errorf("OK() = %t, but the lines say %t", rep.OK(), ok)
			}
		})
	}
}

// BenchmarkCheck checks the demo-shaped fixture (two environments over one
// base): reads from disk, two renders per environment.
func BenchmarkCheck(b *testing.B) {
	dir := filepath.Join("testdata", "ok-demo-shape")
	cfg, err := config.Load(filepath.Join(dir, "pinroll.yaml"), func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	r := dirRepo{filepath.Join(dir, "repo")}
	for b.Loop() {
		if rep, err := Check(context.Background(), r, cfg); err != nil || !rep.OK() {
			b.Fatal(rep, err)
		}
	}
}
