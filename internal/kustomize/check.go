// Package kustomize proves that each environment's overlay renders to its pin
// (SPEC §4.4): it reads the kustomization files an overlay reaches from the
// GitOps repository at the branch tip, renders them with kustomize's own API
// (https://pkg.go.dev/sigs.k8s.io/kustomize/api/krusty) over an in-memory
// filesystem, and checks that every carried image appears in the rendered
// containers as its repository at the pinned digest. It catches the name
// gotcha of SPEC §3 (an overlay's images[].name must match the image as the
// base's own images transformer leaves it) before the first push.
//
// It never fetches anything but the repository's files: remote bases and
// helmCharts are reported as not checkable. Package overlay stays the pure
// editor; this package only reads.
package kustomize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/overlay"
)

// Severity says whether a problem fails the check.
type Severity string

// Severities of a [Problem].
const (
	Error   Severity = "error"   // the pin does not (or would not) reach the cluster
	Warning Severity = "warning" // pinroll cannot tell, or the config works against itself
)

// Problem kinds, for scripts reading `pinroll check -o json`.
const (
	KindMissingPath  = "missing-path"  // the overlay, or a file it names, does not exist
	KindParse        = "parse"         // a kustomization does not parse
	KindRender       = "render"        // kustomize cannot build the overlay
	KindNameMismatch = "name-mismatch" // images[].name matches no container image (SPEC §3)
	KindNewName      = "new-name"      // the rendered image is not the configured repository
	KindNotPinned    = "not-pinned"    // the entry's digest does not reach the containers
	KindNotCheckable = "not-checkable" // a remote base or helmCharts
	KindConfig       = "config"        // a config warning (config.Config.Warnings)
)

// Problem is one finding, with its fix, in one line.
type Problem struct {
	Severity Severity `json:"severity"`
	Kind     string   `json:"kind"`
	Message  string   `json:"message"`
}

// ImageResult is what the overlay does with one carried image.
type ImageResult struct {
	Image string `json:"image"`
	// Entry is the overlay's images entry pinroll edits ("" when there is
	// none yet: the first pin creates it).
	Entry  string `json:"entry,omitempty"`
	Digest string `json:"digest,omitempty"` // the pinned digest, "" before the first pin
	// Containers are the rendered images the entry reaches: at the pinned
	// digest, or before the first pin as they are without one.
	Containers []string `json:"containers,omitempty"`
	OK         bool     `json:"ok"`
}

// EnvReport is the check of one environment.
type EnvReport struct {
	Env      string        `json:"env"`
	Branch   string        `json:"branch"`
	Path     string        `json:"path"`
	Commit   string        `json:"commit,omitempty"`
	OK       bool          `json:"ok"`
	Images   []ImageResult `json:"images,omitempty"`
	Problems []Problem     `json:"problems,omitempty"`
}

// Report is the check of a configuration's environments.
type Report struct {
	Envs []EnvReport `json:"envs"`
	// Warnings are the configuration's own (config.Config.Warnings).
	Warnings []string `json:"warnings,omitempty"`
	// Reads counts the repository reads (one per level of the overlays'
	// graph, per branch; one API call each on GitHub).
	Reads int `json:"reads"`
}

// OK reports whether no environment has an error-severity problem.
func (r Report) OK() bool {
	for _, e := range r.Envs {
		if !e.OK {
			return false
		}
	}
	return true
}

// Lines returns the report for people: one line per problem and per image.
func (r Report) Lines() []string {
	var out []string
	for _, w := range r.Warnings {
		out = append(out, "warning: config: "+w)
	}
	for _, e := range r.Envs {
		for _, p := range e.Problems {
			out = append(out, fmt.Sprintf("%s: %s: %s", p.Severity, e.Env, p.Message))
		}
		for _, im := range e.Images {
			if !im.OK {
				continue
			}
			what := "renders"
			if im.Digest == "" {
				what = "not pinned yet; its entry reaches"
			}
			out = append(out, fmt.Sprintf("ok: %s: %s %s %s in %d container(s)", e.Env, im.Image, what,
				strings.Join(slices.Compact(slices.Clone(im.Containers)), ", "), len(im.Containers)))
		}
	}
	return out
}

// Check checks the environments named in envs (every one when empty) of cfg
// against the repository r. Findings are in the report; an error means the
// repository could not be read.
func Check(ctx context.Context, r Reader, cfg *config.Config, envs ...string) (Report, error) {
	rep := Report{Warnings: cfg.Warnings()}
	var selected []*config.Environment
	for i := range cfg.Environments {
		e := &cfg.Environments[i]
		if len(envs) == 0 || slices.Contains(envs, e.Name) {
			selected = append(selected, e)
		}
	}
	for _, n := range envs {
		if _, ok := cfg.EnvironmentByName(n); !ok {
			return rep, fmt.Errorf("no environment %q in the config", n)
		}
	}
	// One graph per branch: environments sharing a base read it once.
	byBranch := map[string][]*config.Environment{}
	var branches []string
	for _, e := range selected {
		if _, ok := byBranch[e.Branch]; !ok {
			branches = append(branches, e.Branch)
		}
		byBranch[e.Branch] = append(byBranch[e.Branch], e)
	}
	reports := map[string]EnvReport{}
	for _, b := range branches {
		var roots []string
		for _, e := range byBranch[b] {
			roots = append(roots, e.Path)
		}
		g, err := load(ctx, r, b, roots)
		if g != nil {
			rep.Reads += g.reads
		}
		if errors.Is(err, gitops.ErrNotFound) {
			for _, e := range byBranch[b] {
				reports[e.Name] = EnvReport{Env: e.Name, Branch: b, Path: e.Path, Problems: []Problem{{Severity: Error, Kind: KindMissingPath,
					Message: fmt.Sprintf("branch %s not found in the repository — create it, or fix the environment's branch (or git.branch) in the config", b)}}}
			}
			continue
		}
		if err != nil {
			return rep, err
		}
		for _, e := range byBranch[b] {
			reports[e.Name] = checkEnv(cfg, e, g)
		}
	}
	for _, e := range selected {
		rep.Envs = append(rep.Envs, reports[e.Name])
	}
	return rep, nil
}

// checkEnv checks one environment over the graph read from its branch.
func checkEnv(cfg *config.Config, env *config.Environment, g *graph) (er EnvReport) {
	er = EnvReport{Env: env.Name, Branch: env.Branch, Path: env.Path, Commit: g.commit}
	defer func() {
		er.OK = !slices.ContainsFunc(er.Problems, func(p Problem) bool { return p.Severity == Error })
	}()
	root := g.dirs[env.Path]
	if root == nil || root.file == "" {
		er.Problems = append(er.Problems, Problem{Severity: Error, Kind: KindMissingPath,
			Message: fmt.Sprintf("%s not found on %s at %s — fix the environment's path in the config, or create the overlay there", env.Kustomization(), env.Branch, short(g.commit))})
		return er
	}
	files, problems, renamed := g.closure(env.Path)
	er.Problems = append(er.Problems, problems...)
	if len(problems) > 0 {
		return er // a render would only repeat them less clearly, or fetch
	}
	var carried []*config.Image
	for i := range cfg.Images {
		if env.Carries(cfg.Images[i].Name) {
			carried = append(carried, &cfg.Images[i])
		}
	}
	var entries []overlay.Image // the carried images' entries
	for _, im := range carried {
		en, ok, err := overlay.Find(files[root.file], im.Name)
		if err != nil {
			er.Problems = append(er.Problems, Problem{Severity: Error, Kind: KindParse,
				Message: fmt.Sprintf("%s: %s — fix the images list", root.file, strings.TrimPrefix(err.Error(), "overlay: "))})
			return er
		}
		if ok {
			entries = append(entries, en)
		}
	}

	// The overlay as it is: the pins it carries must reach the containers.
	asIs, err := render(files, env.Path)
	if err != nil {
		er.Problems = append(er.Problems, Problem{Severity: Error, Kind: KindRender,
			Message: fmt.Sprintf("kustomize build %s fails: %s — fix the overlay", env.Path, oneLine(err.Error()))})
		return er
	}
	// The overlay as pinroll's next pin leaves it, each image at a digest of
	// its own: which containers each entry reaches, and under what name.
	probe := maps(files)
	src := files[root.file]
	for _, im := range carried {
		out, _, err := overlay.Apply(src, overlay.Edit{Name: im.Name, NewName: im.Repository, Digest: probeDigest(im.Name)})
		if err != nil {
			er.Problems = append(er.Problems, Problem{Severity: Error, Kind: KindParse,
				Message: fmt.Sprintf("%s: pinroll cannot edit it: %s", root.file, strings.TrimPrefix(err.Error(), "overlay: "))})
			return er
		}
		src = out
	}
	probe[root.file] = src
	probed, err := render(probe, env.Path)
	if err != nil {
		er.Problems = append(er.Problems, Problem{Severity: Error, Kind: KindRender,
			Message: fmt.Sprintf("kustomize build %s fails once pinned: %s — fix the overlay", env.Path, oneLine(err.Error()))})
		return er
	}

	for _, im := range carried {
		res, p := checkImage(im, entries, asIs, probed, renamed)
		er.Images = append(er.Images, res)
		if p != nil {
			er.Problems = append(er.Problems, *p)
		}
	}
	return er
}

// checkImage checks one carried image: asIs is the overlay rendered as it is,
// probed as pinned at probeDigest.
func checkImage(im *config.Image, entries []overlay.Image, asIs, probed, renamed []string) (ImageResult, *Problem) {
	res := ImageResult{Image: im.Name}
	var entry *overlay.Image
	for i := range entries {
		if entries[i].Name == im.Name {
			entry = &entries[i]
			res.Entry, res.Digest = entry.Name, entry.Digest
		}
	}
	pd := probeDigest(im.Name)
	var reached []string // rendered names the entry reaches
	for _, c := range probed {
		if name, digest := split(c); digest == pd && !slices.Contains(reached, name) {
			reached = append(reached, name)
		}
	}
	if len(reached) == 0 {
		return res, nameMismatch(im, entry, asIs, renamed)
	}
	for _, name := range reached {
		if name == im.Repository {
			continue
		}
		if entry != nil && entry.NewName != "" {
			return res, &Problem{Severity: Error, Kind: KindNewName, Message: fmt.Sprintf(
				"images[].name `%s` sets newName `%s`, not the image's repository `%s`: the cluster would pull a digest from a registry that may not have it — set newName: %s",
				im.Name, entry.NewName, im.Repository, im.Repository)}
		}
		return res, &Problem{Severity: Error, Kind: KindNewName, Message: fmt.Sprintf(
			"images[].name `%s` has no newName, so the cluster would pull `%s@sha256:…`, not the image's repository `%s` — set newName: %s",
			im.Name, name, im.Repository, im.Repository)}
	}
	if entry == nil || entry.Digest == "" {
		// Before the first pin: the entry pinroll writes reaches containers.
		res.OK = true
		for _, c := range probed {
			if _, d := split(c); d == pd {
				res.Containers = append(res.Containers, strings.TrimSuffix(c, "@"+pd))
			}
		}
		return res, nil
	}
	want := im.Repository + "@" + entry.Digest
	for _, c := range asIs {
		// kustomize keeps newTag next to the digest: repository:latest@sha256:…
		if name, d := split(c); name == im.Repository && d == entry.Digest {
			res.Containers = append(res.Containers, c)
		}
	}
	if len(res.Containers) == 0 {
		return res, &Problem{Severity: Error, Kind: KindNotPinned, Message: fmt.Sprintf(
			"images[].name `%s` pins %s but no rendered container uses %s (they use %s) — something after the images transformer rewrites the image; fix the overlay",
			im.Name, short(strings.TrimPrefix(entry.Digest, "sha256:")), want, list(asIs))}
	}
	res.OK = true
	return res, nil
}

// nameMismatch is the SPEC §3 gotcha: the entry pinroll edits matches no
// container image. It names the image the base produces when one looks like
// ours; renamed are the names the bases' images transformers produce.
func nameMismatch(im *config.Image, entry *overlay.Image, rendered, renamed []string) *Problem {
	created := ""
	if entry == nil {
		created = " (pinroll would create this entry)"
	}
	var cands []string
	for _, c := range rendered {
		name, _ := split(c)
		if (name == im.Repository || lastSegment(name) == lastSegment(im.Name) || lastSegment(name) == lastSegment(im.Repository)) &&
			!slices.Contains(cands, name) {
			cands = append(cands, name)
		}
	}
	if len(cands) == 1 {
		how := "names it"
		if slices.Contains(renamed, cands[0]) {
			how = "renames it to"
		}
		return &Problem{Severity: Error, Kind: KindNameMismatch, Message: fmt.Sprintf(
			"images[].name `%s` matches no container image%s; the base %s `%s` — name the entry `%s` (and the image's name in pinroll's config, which names the entry pinroll edits)",
			im.Name, created, how, cands[0], cands[0])}
	}
	return &Problem{Severity: Error, Kind: KindNameMismatch, Message: fmt.Sprintf(
		"images[].name `%s` matches no container image%s; the rendered containers use %s — name the entry (and the image in pinroll's config) after the one it should pin",
		im.Name, created, list(rendered))}
}

// closure returns the files the overlay in dir reaches, the problems of
// every kustomization on the way (a path one names that does not exist
// included), and the names the images transformers below the overlay rename
// images to.
func (g *graph) closure(dir string) (files map[string][]byte, problems []Problem, renamed []string) {
	files = map[string][]byte{}
	seen := map[string]bool{}
	var walk func(dir string)
	walk = func(d string) {
		if seen[d] {
			return
		}
		seen[d] = true
		n := g.dirs[d]
		files[n.file] = g.files[n.file]
		problems = append(problems, n.problems...)
		if d != dir {
			renamed = append(renamed, n.newNames...)
		}
		for _, r := range n.refs {
			if d, ok := g.dirs[r.path]; ok && d.file != "" && r.kind != wantFile {
				walk(r.path)
			} else if b, ok := g.files[r.path]; ok && r.kind != wantDir {
				files[r.path] = b
			} else if !g.cut[r.path] {
				problems = append(problems, missing(n.file, r, g.commit))
			}
		}
	}
	walk(dir)
	return files, problems, renamed
}

// render builds the overlay in dir from files with kustomize's defaults (no
// plugins, no helm, no network) and returns every container and init
// container image, sorted.
func render(files map[string][]byte, dir string) ([]string, error) {
	fs := filesys.MakeFsInMemory()
	for p, b := range files {
		if err := fs.WriteFile("/"+p, b); err != nil {
			return nil, fmt.Errorf("stage %s: %w", p, err)
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/"+dir)
	if err != nil {
		return nil, err
	}
	return containerImages(m), nil
}

func containerImages(m resmap.ResMap) []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				if (k == "containers" || k == "initContainers") && v.Kind == yaml.SequenceNode {
					for _, c := range v.Content {
						if img := yaml.NewRNode(c).Field("image"); img != nil && img.Value.YNode().Kind == yaml.ScalarNode {
							out = append(out, img.Value.YNode().Value)
						}
					}
				}
				walk(v)
			}
		case yaml.SequenceNode, yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c)
			}
		}
	}
	for _, r := range m.Resources() {
		walk(r.YNode())
	}
	sort.Strings(out)
	return out
}

// split splits an image reference into its name and digest ("" without one);
// a tag is dropped.
func split(ref string) (name, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		name, digest = ref[:i], ref[i+1:]
	} else {
		name = ref
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name, digest
}

func lastSegment(s string) string { return s[strings.LastIndex(s, "/")+1:] }

// probeDigest is a digest of an image's own, to see where its entry lands.
func probeDigest(image string) string {
	h := sha256.Sum256([]byte("pinroll check probe " + image))
	return "sha256:" + hex.EncodeToString(h[:])
}

func list(images []string) string {
	if len(images) == 0 {
		return "no container image at all"
	}
	uniq := slices.Compact(slices.Clone(images))
	return "`" + strings.Join(uniq, "`, `") + "`"
}

func maps(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
