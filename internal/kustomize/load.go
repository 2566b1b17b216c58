package kustomize

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	kustypes "sigs.k8s.io/kustomize/api/types"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
)

// Reader reads files at the tip of a branch; [gitops.Repo] is one.
type Reader interface {
	Read(ctx context.Context, branch string, paths ...string) (gitops.Snapshot, error)
}

// node is one kustomization directory reached from an overlay.
type node struct {
	file  string    // path of its kustomization file; "" when there is none
	names []named   // what it names, as written
	refs  []pending // the local directories and files it names, resolved
	// newNames are the names its own images transformer renames images to.
	newNames []string
	// problems found reading it: a parse error, a missing or remote reference,
	// helm charts. Each is one line without the environment's name.
	problems []Problem
}

// graph is what a load read: the files, and the kustomization directories.
type graph struct {
	commit string
	files  map[string][]byte
	dirs   map[string]*node
	cut    map[string]bool // paths too deep to follow (see maxLevels)
	reads  int
}

// maxLevels bounds the depth of an overlay's graph that load follows: real
// overlays are a few levels deep; a deeper chain costs a read per level.
const maxLevels = 16

// maxRestarts bounds how often load starts over when the branch moves
// between two of its reads.
const maxRestarts = 3

// load reads the kustomizations at roots and everything they reach on branch,
// level by level: one Read per level of the graph (a directory's kustomization
// is asked for under each name kustomize accepts, in the same call). All the
// reads see one commit: if the branch moves meanwhile, load starts over.
func load(ctx context.Context, r Reader, branch string, roots []string) (*graph, error) {
	reads := 0
	for range maxRestarts {
		g, err := loadOnce(ctx, r, branch, roots)
		if g != nil {
			reads += g.reads
			g.reads = reads
		}
		if !errors.Is(err, errMoved) {
			return g, err
		}
	}
	return nil, fmt.Errorf("read %s: the branch kept moving during the check; run it again", branch)
}

var errMoved = errors.New("branch moved")

// ref kinds: what a name in a kustomization may be.
const (
	wantDir    = iota // a directory holding a kustomization (components)
	wantFile          // a file (patches, generator sources, crds, ...)
	wantEither        // a file or a kustomization directory (resources, bases, ...)
)

type pending struct {
	from  string // directory of the kustomization that names it
	field string // the field naming it, for messages
	name  string // as written
	path  string // resolved, relative to the repository root
	kind  int
}

func loadOnce(ctx context.Context, r Reader, branch string, roots []string) (*graph, error) {
	g := &graph{files: map[string][]byte{}, dirs: map[string]*node{}, cut: map[string]bool{}}
	var level []pending
	seen := map[string]bool{} // paths asked for, each once
	for _, root := range roots {
		if !seen[root] {
			seen[root] = true
			level = append(level, pending{path: root, kind: wantDir})
		}
	}
	for depth := 0; len(level) > 0; depth++ {
		if depth == maxLevels {
			for _, p := range level {
				g.cut[p.path] = true
				n := g.dirs[p.from]
				n.problems = append(n.problems, Problem{Severity: Error, Kind: KindMissingPath,
					Message: fmt.Sprintf("%s: %s `%s` is more than %d levels below the overlay: pinroll stops there — flatten the overlay", n.file, p.field, p.name, maxLevels)})
			}
			break
		}
		var paths []string
		for _, p := range level {
			if p.kind == wantDir || (p.kind == wantEither && !looksLikeFile(p.name)) {
				for _, n := range config.KustomizationNames {
					paths = append(paths, join(p.path, n))
				}
			}
			if p.kind == wantFile || (p.kind == wantEither && looksLikeFile(p.name)) {
				paths = append(paths, p.path)
			}
		}
		snap, err := r.Read(ctx, branch, paths...)
		g.reads++
		if err != nil {
			return g, fmt.Errorf("read %s: %w", branch, err)
		}
		if g.commit == "" {
			g.commit = snap.Commit.SHA
		} else if g.commit != snap.Commit.SHA {
			return g, errMoved
		}
		var next []pending
		for _, p := range level {
			if p.kind != wantFile {
				if file, src, ok := kustomizationIn(snap.Files, p.path); ok {
					g.files[file] = src
					n := parseNode(file, src)
					g.dirs[p.path] = n
					for _, q := range n.pendings(p.path) {
						if !seen[q.path] {
							seen[q.path] = true
							next = append(next, q)
						}
					}
					continue
				}
			}
			if src, ok := snap.Files[p.path]; ok && p.kind != wantDir {
				g.files[p.path] = src
				continue
			}
			if p.from == "" { // a root: reported by the check, with its path
				g.dirs[p.path] = &node{}
			}
			// Any other missing path is reported by closure, for each
			// kustomization that names it.
		}
		level = next
	}
	return g, nil
}

// kustomizationIn finds the kustomization file of dir among files.
func kustomizationIn(files map[string][]byte, dir string) (string, []byte, bool) {
	for _, n := range config.KustomizationNames {
		p := join(dir, n)
		if src, ok := files[p]; ok {
			return p, src, true
		}
	}
	return "", nil, false
}

func missing(from string, p pending, commit string) Problem {
	what := "no such file or kustomization directory"
	switch p.kind {
	case wantDir:
		what = "no kustomization.yaml there"
	case wantFile:
		what = "no such file"
	}
	return Problem{Severity: Error, Kind: KindMissingPath,
		Message: fmt.Sprintf("%s: %s `%s` → %s: %s at %s — fix the path or add the file", from, p.field, p.name, p.path, what, short(commit))}
}

// looksLikeFile reports whether a resources entry names a file: kustomize
// resources are YAML or JSON files or directories. A directory path is never
// asked for as a file (GitHub's API refuses the whole read then).
func looksLikeFile(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// parseNode parses the kustomization file at file and lists what it names.
func parseNode(file string, src []byte) *node {
	n := &node{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		n.problems = append(n.problems, Problem{Severity: Error, Kind: KindParse,
			Message: fmt.Sprintf("%s does not parse: %s — fix the YAML", file, oneLine(msg))})
		return n
	}
	var k kustypes.Kustomization
	if err := k.Unmarshal(src); err != nil {
		n.problems = append(n.problems, Problem{Severity: Error, Kind: KindParse,
			Message: fmt.Sprintf("%s is not a valid kustomization: %s — fix it (kustomize build says the same)", file, oneLine(err.Error()))})
		return n
	}
	k.FixKustomization()
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 {
		n.problems = append(n.problems, Problem{Severity: Warning, Kind: KindNotCheckable,
			Message: fmt.Sprintf("%s inflates helmCharts: not checkable (pinroll never runs helm) — check the pin with `kustomize build --enable-helm`", file)})
	}
	n.names = names(&k)
	for _, im := range k.Images {
		if im.NewName != "" {
			n.newNames = append(n.newNames, im.NewName)
		}
	}
	return n
}

// named is one name a kustomization gives, and what it must be.
type named struct {
	field, name string
	kind        int
}

func names(k *kustypes.Kustomization) []named {
	var out []named
	add := func(field string, kind int, list ...string) {
		for _, v := range list {
			if v != "" && !strings.Contains(v, "\n") { // inline YAML is not a path
				out = append(out, named{field, v, kind})
			}
		}
	}
	add("resources", wantEither, k.Resources...)
	add("components", wantDir, k.Components...)
	add("crds", wantFile, k.Crds...)
	add("configurations", wantFile, k.Configurations...)
	add("generators", wantEither, k.Generators...)
	add("transformers", wantEither, k.Transformers...)
	add("validators", wantEither, k.Validators...)
	for _, p := range k.PatchesStrategicMerge {
		add("patchesStrategicMerge", wantFile, string(p))
	}
	for _, p := range k.Patches {
		add("patches[].path", wantFile, p.Path)
	}
	for _, p := range k.PatchesJson6902 {
		add("patchesJson6902[].path", wantFile, p.Path)
	}
	for _, r := range k.Replacements {
		add("replacements[].path", wantFile, r.Path)
	}
	add("openapi.path", wantFile, k.OpenAPI["path"])
	gen := func(field string, s kustypes.KvPairSources) {
		for _, f := range s.FileSources {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			add(field+".files", wantFile, f)
		}
		add(field+".envs", wantFile, s.EnvSources...)
		add(field+".env", wantFile, s.EnvSource)
	}
	for _, g := range k.ConfigMapGenerator {
		gen("configMapGenerator", g.KvPairSources)
	}
	for _, g := range k.SecretGenerator {
		gen("secretGenerator", g.KvPairSources)
	}
	return out
}

// pendings resolves the names of n, a kustomization in dir: the local ones to
// read next; a remote one or one outside the repository is a problem of n.
func (n *node) pendings(dir string) []pending {
	var out []pending
	for _, nm := range n.names {
		if nm.kind != wantFile && isRemote(nm.name) {
			n.problems = append(n.problems, Problem{Severity: Warning, Kind: KindNotCheckable,
				Message: fmt.Sprintf("%s: %s `%s` is a remote base: not checkable (pinroll never fetches it) — check the pin with `kustomize build`", n.file, nm.field, nm.name)})
			continue
		}
		p := join(dir, nm.name)
		if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(nm.name) {
			n.problems = append(n.problems, Problem{Severity: Error, Kind: KindMissingPath,
				Message: fmt.Sprintf("%s: %s `%s` is outside the repository — keep the overlay's files in the repository", n.file, nm.field, nm.name)})
			continue
		}
		ref := pending{from: dir, field: nm.field, name: nm.name, path: p, kind: nm.kind}
		n.refs = append(n.refs, ref)
		out = append(out, ref)
	}
	return out
}

// isRemote reports whether a resources entry is a remote target kustomize
// would fetch: a URL, an scp-like git address, or a path starting with a host
// name (github.com/org/repo//dir?ref=v1).
func isRemote(name string) bool {
	if strings.Contains(name, "://") || strings.HasPrefix(name, "git@") || strings.Contains(name, "?ref=") {
		return true
	}
	first, _, _ := strings.Cut(name, "/")
	return strings.Contains(first, ".") && first != "." && first != ".." && !looksLikeFile(name) &&
		slices.ContainsFunc([]string{".com", ".org", ".io", ".net", ".dev"}, func(s string) bool { return strings.HasSuffix(first, s) })
}

// join joins a repository-relative directory and a relative name; "" and "."
// are the repository's root.
func join(dir, name string) string {
	return strings.TrimPrefix(path.Join(dir, name), "./")
}

// maxMessage bounds a message quoted from kustomize or YAML in a finding.
const maxMessage = 400

// oneLine puts s on one line, cut to maxMessage bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
