package gitops_test

import (
	"crypto/sha1"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/overlay"
)

// The files of the synthetic GitOps repository: two track environments (dev
// and web) on one branch, a release environment (prod) and a README.
const (
	devPath  = "k8s/overlays/dev/kustomization.yaml"
	webPath  = "k8s/overlays/web/kustomization.yaml"
	prodPath = "k8s/overlays/prod/kustomization.yaml"
	readme   = "README.md"
)

// trackPaths are the overlays a squash resets: the track environments'.
var trackPaths = []string{devPath, webPath}

// allPaths are every file of the world.
var allPaths = []string{devPath, webPath, prodPath, readme}

var envPath = map[string]string{"dev": devPath, "web": webPath, "prod": prodPath}

var (
	ada   = gitops.Signature{Name: "Ada", Email: "ada@example.com"}
	tokyo = time.FixedZone("JST", 9*3600)
	ny    = time.FixedZone("EST", -5*3600)
	// now is the squash's clock; the window is a week.
	now    = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	window = 168 * time.Hour
)

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func kustomization(prefix, image, tag string, d int) string {
	return fmt.Sprintf("namePrefix: %s-\nimages:\n- name: %s\n  newTag: %s\n  digest: %s\n", prefix, image, tag, digest(d))
}

// seedFiles is the world's first commit.
func seedFiles() map[string][]byte {
	return map[string][]byte{
		devPath:  []byte(kustomization("dev", "server", "latest", 1)),
		webPath:  []byte(kustomization("web", "web", "latest", 2)),
		prodPath: []byte(kustomization("prod", "server", "v1.0.0", 3)),
		readme:   []byte("# gitops\n"),
	}
}

// spec is one commit of a synthetic history.
type spec struct {
	label     string
	msg       string
	author    gitops.Signature
	committer gitops.Signature
	files     map[string][]byte // every file after the commit
	amend     bool              // replaces the tip (the rolling commit amended)
	merge     bool
	signed    bool
}

// world builds a history from steps, a ';'-separated list of:
//
//	H          a person edits the README
//	O          a person edits another field (namePrefix) of the dev overlay
//	P          a person edits the dev overlay's pinned digest
//	R:env      the bot pins env (rolling: amends the tip when it is rolling)
//	A:env      the bot pins env with an append commit
//	Rel        the bot pins prod for a release
//	Man:env    the bot pins env by hand (manual deploy)
//	M          a merge commit (a person merges a side branch)
//	S          a signed commit by a person
//
// A step prefixed "old " is committed before the window.
type world struct {
	specs []spec
	files map[string][]byte
	next  int // digest counter
	old   int // old steps so far
	young int // steps in the window so far
	steps int
}

func newWorld() *world { return &world{files: seedFiles(), next: 100} }

func build(t testing.TB, steps string) *world {
	t.Helper()
	w := newWorld()
	for _, s := range strings.Split(steps, ";") {
		if s = strings.TrimSpace(s); s != "" {
			w.step(t, s)
		}
	}
	return w
}

// step appends one commit, and reports whether it amended the tip.
func (w *world) step(t testing.TB, s string) bool {
	t.Helper()
	when := now.Add(-window / 2).Add(time.Duration(w.young) * time.Minute)
	if rest, ok := strings.CutPrefix(s, "old "); ok {
		s = rest
		when = now.Add(-2 * window).Add(time.Duration(w.old) * time.Minute)
		w.old++
	} else {
		w.young++
	}
	kind, env, _ := strings.Cut(s, ":")
	files := maps.Clone(w.files)
	human := ada
	human.When = when.In(tokyo)
	humanC := ada
	humanC.When = when.Add(30 * time.Second).In(ny)
	w.steps++
	sp := spec{label: fmt.Sprintf("%d:%s", w.steps, s), author: human, committer: humanC}
	pin := func(kind gitops.Kind, env, tag string) {
		path := envPath[env]
		if path == "" {
			t.Fatalf("step %q: unknown env", s)
		}
		w.next++
		im := "server"
		if env == "web" {
			im = "web"
		}
		out, _, err := overlay.Apply(files[path], overlay.Edit{Name: im, Digest: digest(w.next), NewTag: tag})
		if err != nil {
			t.Fatal(err)
		}
		files[path] = out
		p := gitops.Pin{Env: env, Image: im, Digest: digest(w.next), Tag: tag, Time: when.UTC()}
		m := gitops.Message{Kind: kind, Pins: []gitops.Pin{p}}
		if kind == gitops.KindRolling && len(w.specs) > 0 {
			tip := w.specs[len(w.specs)-1]
			if prev := gitops.ParseMessage(tip.msg); tip.author.Email == bot.Email && prev.Kind == gitops.KindRolling && !tip.merge {
				sp.amend = true
				m.Pins = append(m.Pins, prev.Pins...)
			}
		}
		m.Subject = fmt.Sprintf("chore(%s): pin %s %s", m.Pins[0].Env, m.Pins[0].Image, gitops.ShortDigest(m.Pins[0].Digest))
		sp.msg = m.String()
		sp.author = bot
		sp.author.When = when
		sp.committer = sp.author
	}
	switch kind {
	case "H":
		files[readme] = append(files[readme], fmt.Sprintf("line %d\n", len(w.specs))...)
		sp.msg = fmt.Sprintf("docs: line %d\n\nA body.\n", len(w.specs))
	case "O":
		files[devPath] = regexp.MustCompile(`namePrefix: \S+`).ReplaceAll(files[devPath], []byte(fmt.Sprintf("namePrefix: dev%d-", len(w.specs))))
		sp.msg = "dev: rename prefix\n"
	case "P":
		w.next++
		out, _, err := overlay.Apply(files[devPath], overlay.Edit{Name: "server", Digest: digest(w.next)})
		if err != nil {
			t.Fatal(err)
		}
		files[devPath] = out
		sp.msg = "dev: pin server by hand-editing the overlay\n"
	case "R":
		pin(gitops.KindRolling, env, "latest")
	case "A":
		pin(gitops.KindAppend, env, "latest")
	case "Rel":
		pin(gitops.KindRelease, "prod", fmt.Sprintf("v1.%d.0", w.next))
	case "Man":
		pin(gitops.KindManual, env, "")
	case "M":
		sp.merge = true
		files[readme] = append(files[readme], "merged\n"...)
		sp.msg = "Merge branch 'side'\n"
	case "S":
		sp.signed = true
		files[readme] = append(files[readme], "signed\n"...)
		sp.msg = "docs: a signed commit\n"
	default:
		t.Fatalf("unknown step %q", s)
	}
	sp.files = files
	w.files = files
	if sp.amend {
		// In the list, the amended commit replaces its predecessor, so it
		// amends whatever that one amended.
		sp.amend = w.specs[len(w.specs)-1].amend
		w.specs[len(w.specs)-1] = sp
		return true
	}
	w.specs = append(w.specs, sp)
	return false
}

// memoryHistory materializes the world as a History answer: newest first,
// down to the seed commit, with made-up SHAs.
func (w *world) memoryHistory() ([]gitops.Snapshot, map[string]string) {
	labels := map[string]string{}
	sha := func(i int) string { return fmt.Sprintf("%08x%s", i+1, strings.Repeat("ab", 16)) }
	tree := func(files map[string][]byte) string {
		h := sha1.New()
		for _, p := range slices.Sorted(maps.Keys(files)) {
			fmt.Fprintf(h, "%s\x00%s\x00", p, files[p])
		}
		return fmt.Sprintf("%x", h.Sum(nil))
	}
	root := gitops.Snapshot{Commit: gitops.Commit{SHA: sha(0), Tree: tree(seedFiles()), Message: "seed\n", Author: ada, Committer: ada}, Files: pick(seedFiles(), trackPaths)}
	root.Commit.Committer.When = now.Add(-10 * window)
	labels[root.Commit.SHA] = "seed"
	out := []gitops.Snapshot{root}
	for i, sp := range w.specs {
		c := gitops.Commit{
			SHA: sha(i + 1), Tree: tree(sp.files), Parents: []string{out[0].Commit.SHA},
			Message: sp.msg, Author: sp.author, Committer: sp.committer, Signed: sp.signed,
		}
		if sp.merge {
			c.Parents = append(c.Parents, fmt.Sprintf("%040x", 0xfff000+i))
		}
		labels[c.SHA] = sp.label
		out = append([]gitops.Snapshot{{Commit: c, Files: pick(sp.files, trackPaths)}}, out...)
	}
	return out, labels
}

func pick(files map[string][]byte, paths []string) map[string][]byte {
	out := map[string][]byte{}
	for _, p := range paths {
		if b, ok := files[p]; ok {
			out[p] = b
		}
	}
	return out
}

// imageNames are the images of the world's overlays.
var imageNames = []string{"server", "web"}

// images returns the world's images entries found in a kustomization.
func images(src []byte) ([]overlay.Image, error) {
	var out []overlay.Image
	for _, n := range imageNames {
		im, ok, err := overlay.Find(src, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, im)
		}
	}
	return out, nil
}

// resetPins is the engine's ResetPins, written with the overlay package: it
// sets every image's digest and newTag back to the base's values, and says
// whether files and parent differ in one.
func resetPins(files, parent, base map[string][]byte) (map[string][]byte, bool, error) {
	out := map[string][]byte{}
	touched := false
	for p, b := range files {
		cur, err := images(b)
		if err != nil {
			return nil, false, err
		}
		if par, ok := parent[p]; ok {
			before, err := images(par)
			if err != nil {
				return nil, false, err
			}
			if pinned(cur) != pinned(before) {
				touched = true
			}
		}
		baseImages, err := images(base[p])
		if err != nil {
			return nil, false, err
		}
		for _, im := range baseImages {
			if im.Digest == "" {
				continue
			}
			if b, _, err = overlay.Apply(b, overlay.Edit{Name: im.Name, Digest: im.Digest, NewTag: im.NewTag}); err != nil {
				return nil, false, err
			}
		}
		out[p] = b
	}
	return out, touched, nil
}

// pinned renders the pinned fields of images, for comparison.
func pinned(images []overlay.Image) string {
	var b strings.Builder
	for _, im := range images {
		fmt.Fprintf(&b, "%s:%s@%s;", im.Name, im.NewTag, im.Digest)
	}
	return b.String()
}
