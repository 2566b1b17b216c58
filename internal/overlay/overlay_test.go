package overlay

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected.yaml with what Apply produces")

const (
	digestOld   = "sha256:cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4"
	digestNew   = "sha256:11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"
	digestOther = "sha256:d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"

	registryServer = "asia-northeast2-docker.pkg.dev/acme/backend/server"
)

// goldenCases maps each folder of testdata to the edit applied to its input.yaml; expected.yaml
// holds the result.
var goldenCases = []struct {
	name    string
	edit    Edit
	changed bool
}{
	{"comments", Edit{Name: "server", Digest: digestNew}, true},
	{"flow-list", Edit{Name: "server", Digest: digestNew}, true},
	{"block-compact", Edit{Name: "server", Digest: digestNew}, true},
	{"block-wide", Edit{Name: "server", Digest: digestNew}, true},
	{"newname-newtag", Edit{Name: "server", Digest: digestNew}, true},
	{"name-only", Edit{Name: registryServer, Digest: digestNew}, true},
	{"no-images", Edit{Name: "server", NewName: registryServer, Digest: digestNew}, true},
	{"several-images", Edit{Name: "server", Digest: digestNew}, true},
	{"quoted-values", Edit{Name: "server", Digest: digestNew}, true},
	{"already-pinned", Edit{Name: "server", NewTag: "v1.2.0", Digest: digestNew}, false},
	{"release", Edit{Name: "server", NewTag: "v1.2.0", Digest: digestNew}, true},
	{"leading-document-marker", Edit{Name: "server", Digest: digestNew}, true},
	{"indent-four", Edit{Name: "server", Digest: digestNew}, true},
	{"create-entry", Edit{Name: "server", NewName: registryServer, NewTag: "v1.2.0", Digest: digestNew}, true},
	{"unusual-layout", Edit{Name: "server", Digest: digestNew}, true},
	{"empty-list", Edit{Name: "server", NewName: registryServer, Digest: digestNew}, true},
	{"null-images", Edit{Name: "server", NewName: registryServer, Digest: digestNew}, true},
}

func TestApplyGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join("testdata", tc.name)
			src := readFile(t, filepath.Join(dir, "input.yaml"))

			out, changed, err := Apply(src, tc.edit)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if changed != tc.changed {
				t.Errorf("changed = %t, want %t", changed, tc.changed)
			}
			if !changed && !bytes.Equal(out, src) {
				t.Errorf("unchanged output differs from input:\n%s", out)
			}

			golden := filepath.Join(dir, "expected.yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); !bytes.Equal(out, want) {
				t.Errorf("Apply output differs from %s (rerun with -update to rewrite it)\n--- got:\n%s\n--- want:\n%s", golden, out, want)
			}

			// The result carries the pin and is stable.
			im, ok, err := Find(out, tc.edit.Name)
			if err != nil || !ok || im.Digest != tc.edit.Digest {
				t.Errorf("Find(out) = %+v, %t, %v; want digest %s", im, ok, err, tc.edit.Digest)
			}
			if out2, changed, err := Apply(out, tc.edit); err != nil || changed || !bytes.Equal(out2, out) {
				t.Errorf("second Apply: changed=%t err=%v, identical=%t", changed, err, bytes.Equal(out2, out))
			}
		})
	}
}

// Every testdata folder has a golden case, so none is silently skipped.
func TestGoldenCasesCoverTestdata(t *testing.T) {
	t.Parallel()
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	known := make(map[string]bool)
	for _, tc := range goldenCases {
		known[tc.name] = true
	}
	for _, d := range dirs {
		if d.IsDir() && d.Name() != "fuzz" && !known[d.Name()] {
			t.Errorf("testdata/%s has no entry in goldenCases", d.Name())
		}
	}
}

// Line endings are not something a golden file keeps reliably through git, so test them here.
func TestApplyLineEndings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "CRLF kept",
			src:  "resources:\r\n- ../../base\r\n\r\nimages:\r\n- name: server\r\n  newTag: v1\r\n",
			want: "resources:\r\n- ../../base\r\n\r\nimages:\r\n- name: server\r\n  newTag: v1\r\n  digest: " + digestNew + "\r\n",
		},
		{
			name: "no final newline, last line kept",
			src:  "images:\n- name: server\n  digest: " + digestOld + "\n  newTag: v1",
			want: "images:\n- name: server\n  digest: " + digestNew + "\n  newTag: v1",
		},
		{
			name: "no final newline, appended after the last line",
			src:  "images:\n- name: server\n  newTag: v1",
			want: "images:\n- name: server\n  newTag: v1\n  digest: " + digestNew + "\n",
		},
		{
			name: "trailing empty document kept",
			src:  "images:\n- name: server\n---\n",
			want: "images:\n- name: server\n  digest: " + digestNew + "\n---\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, changed, err := Apply([]byte(tt.src), Edit{Name: "server", Digest: digestNew})
			if err != nil || !changed {
				t.Fatalf("Apply: changed=%t err=%v", changed, err)
			}
			if string(out) != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", out, tt.want)
			}
		})
	}
}

// When the spliced bytes do not read back as kyaml's rendering, minimalEdit falls back to that
// rendering, keeping a leading "---" and CRLF line endings.
func TestMinimalEditFallback(t *testing.T) {
	t.Parallel()
	src := []byte("---\r\na: 1\r\n")
	// "a:   2" is not how kyaml renders a: 2, so the spliced result cannot match it.
	got := minimalEdit(src, []byte("a: 1\n"), []byte("a:   2\n"), layout{indent: 2})
	if want := "---\r\na:   2\r\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	const src = `images:
- name: server
  newName: ` + registryServer + `
  newTag: "1.0"
  digest: ` + digestOld + `
- {name: worker, newTag: v1.4.0}
- name: gateway
  digest: ~
- name: 2024
  newTag: 1.10
`
	tests := []struct {
		name      string
		src       string
		image     string
		want      Image
		wantFound bool
	}{
		{"all fields", src, "server", Image{Name: "server", NewName: registryServer, NewTag: "1.0", Digest: digestOld}, true},
		{"flow entry", src, "worker", Image{Name: "worker", NewTag: "v1.4.0"}, true},
		{"null digest", src, "gateway", Image{Name: "gateway"}, true},
		{"non-string scalars as written", src, "2024", Image{Name: "2024", NewTag: "1.10"}, true},
		{"matches name, not newName", src, registryServer, Image{}, false},
		{"absent", src, "nope", Image{}, false},
		{"no images key", "resources:\n- ../../base\n", "server", Image{}, false},
		{"null images", "images:\n", "server", Image{}, false},
		{"flow document", "{images: [{name: server, digest: '" + digestOld + "'}]}", "server", Image{Name: "server", Digest: digestOld}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, found, err := Find([]byte(tt.src), tt.image)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if got != tt.want || found != tt.wantFound {
				t.Errorf("Find = %+v, %t; want %+v, %t", got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestOutputName(t *testing.T) {
	t.Parallel()
	base := []byte("images:\n- name: server\n  newName: " + registryServer + "\n- name: worker\n  newTag: v1\n")
	// The kustomize gotcha: an overlay on this base must name the image by its registry path.
	for name, want := range map[string]string{"server": registryServer, "worker": "worker"} {
		im, ok, err := Find(base, name)
		if err != nil || !ok {
			t.Fatalf("Find(%q) = %v, %v", name, ok, err)
		}
		if n := im.OutputName(); n != want {
			t.Errorf("%s: OutputName() = %q, want %q", name, n, want)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	valid := Edit{Name: "server", Digest: digestNew}
	tests := []struct {
		name    string
		src     string
		edit    Edit
		wantIs  error
		wantMsg string // substring of the error
	}{
		{"empty file", "", valid, ErrMalformed, "empty document"},
		{"only a comment", "# nothing here\n", valid, ErrMalformed, "empty document"},
		{"not YAML", "images: [\n", valid, ErrMalformed, "overlay: malformed kustomization: yaml:"},
		{"top level list", "- name: server\n", valid, ErrMalformed, "top level is a list, want a mapping"},
		{"top level scalar", "server\n", valid, ErrMalformed, `top level is the scalar "server"`},
		{"two documents", "images: []\n---\nimages: []\n", valid, ErrMalformed, "more than one YAML document (line 2)"},
		{"images is a mapping", "images:\n  server: x\n", valid, ErrMalformed, "images: is a mapping, want a list"},
		{"images is a string", "images: server\n", valid, ErrMalformed, `images: is the scalar "server", want a list`},
		{"entry not a mapping", "images:\n- name: a\n- name: b\n- server\n", valid, ErrMalformed, `images[2]: is the scalar "server", want a mapping`},
		{"entry without name", "images:\n- newTag: v1\n", valid, ErrMalformed, "images[0]: no name"},
		{"name not a string", "images:\n- name: [server]\n", valid, ErrMalformed, "images[0].name: is a list, want a string"},
		{"digest not a string", "images:\n- name: server\n  digest: {sha256: x}\n", valid, ErrMalformed, "images[0].digest: is a mapping, want a string"},
		{"duplicate names", "images:\n- name: server\n- name: worker\n- name: server\n", valid, ErrMalformed, `images[2]: name "server" is also the name of images[0]`},
		{"empty name", "images: []\n", Edit{Digest: digestNew}, ErrInvalidEdit, "empty image name"},
		{"digest without algorithm", "images: []\n", Edit{Name: "server", Digest: strings.TrimPrefix(digestNew, "sha256:")}, ErrInvalidEdit, "want \"sha256:\" and 64 lowercase hex digits"},
		{"digest upper case", "images: []\n", Edit{Name: "server", Digest: strings.ToUpper(digestNew)}, ErrInvalidEdit, "digest"},
		{"digest short", "images: []\n", Edit{Name: "server", Digest: digestNew[:70]}, ErrInvalidEdit, "digest"},
		{"digest sha512", "images: []\n", Edit{Name: "server", Digest: "sha512:" + strings.Repeat("ab", 64)}, ErrInvalidEdit, "digest"},
		{"digest missing", "images: []\n", Edit{Name: "server"}, ErrInvalidEdit, "digest"},
		{"bad tag", "images: []\n", Edit{Name: "server", Digest: digestNew, NewTag: "server/v1.2.0"}, ErrInvalidEdit, `tag "server/v1.2.0" is not a valid image tag`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, changed, err := Apply([]byte(tt.src), tt.edit)
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Apply error = %v; want %v containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "overlay: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if out != nil || changed {
				t.Errorf("Apply returned output (%q, changed=%t) with an error", out, changed)
			}
			if tt.wantIs == ErrMalformed {
				if _, _, err := Find([]byte(tt.src), "server"); !errors.Is(err, ErrMalformed) {
					t.Errorf("Find error = %v, want %v", err, ErrMalformed)
				}
			}
		})
	}
}

func TestValidDigest(t *testing.T) {
	t.Parallel()
	for d, want := range map[string]bool{
		digestNew:                           true,
		"sha256:" + strings.Repeat("0", 64): true,
		"sha256:" + strings.Repeat("0", 63): false,
		"sha256:" + strings.Repeat("g", 64): false,
		"SHA256:" + strings.Repeat("0", 64): false,
		" " + digestNew:                     false,
		digestNew + "\n":                    false,
		"":                                  false,
	} {
		if got := ValidDigest(d); got != want {
			t.Errorf("ValidDigest(%q) = %t, want %t", d, got, want)
		}
	}
}

func FuzzApply(f *testing.F) {
	for _, tc := range goldenCases {
		src, err := os.ReadFile(filepath.Join("testdata", tc.name, "input.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, tc.edit.Name, tc.edit.NewTag, tc.edit.NewName)
	}
	f.Fuzz(func(t *testing.T, src []byte, name, newTag, newName string) {
		e := Edit{Name: name, NewTag: newTag, NewName: newName, Digest: digestNew}
		out, changed, err := Apply(src, e)
		if err != nil {
			return
		}
		if !changed && !bytes.Equal(out, src) {
			t.Fatalf("changed=false but output differs:\n%q\n%q", src, out)
		}
		im, ok, err := Find(out, name)
		if err != nil || !ok || im.Digest != e.Digest || (newTag != "" && im.NewTag != newTag) {
			t.Fatalf("Find after Apply = %+v, %t, %v\nsrc: %q\nout: %q", im, ok, err, src, out)
		}
		out2, changed, err := Apply(out, e)
		if err != nil || changed || !bytes.Equal(out2, out) {
			t.Fatalf("second Apply: changed=%t err=%v\nout: %q\nout2: %q", changed, err, out, out2)
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
