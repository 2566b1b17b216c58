package overlay

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sergi/go-diff/diffmatchpatch"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// layout is the block indentation of a document, as the kyaml encoder can reproduce it.
type layout struct {
	indent int  // spaces per nesting level
	wide   bool // block sequences indented under their key ("images:\n  - name: a") rather than level with it
}

// detectLayout reads the layout of doc from the positions of its nodes. The sequence style and,
// for wide sequences, the indentation come from the images list when it is a block sequence,
// since that is where edits happen, else from the first block sequence found; the indentation
// otherwise comes from the first nested block mapping. kyaml's own DeriveSeqIndentStyle (used by
// kio.ByteReader's PreserveSeqIndent) only tells two-space wide sequences from compact ones and
// only looks at the first sequence; the kio reader also adds and strips annotations, dropping an
// empty "metadata.annotations: {}".
func detectLayout(doc, images *yaml.RNode) layout {
	const defaultIndent = 2
	mapIndent, seqOffset := 0, -1
	if images != nil {
		seqOffset = blockSeqOffset(doc.YNode(), keyImages)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle == 0 {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 || v.Line <= k.Line {
					continue // not a block collection on lines of its own
				}
				switch v.Kind {
				case yaml.MappingNode:
					if mapIndent == 0 && v.Column > k.Column {
						mapIndent = v.Column - k.Column
					}
				case yaml.SequenceNode:
					if seqOffset < 0 && v.Column >= k.Column {
						seqOffset = v.Column - k.Column
					}
				}
			}
		}
		for _, c := range n.Content {
			if mapIndent != 0 && seqOffset >= 0 {
				return
			}
			walk(c)
		}
	}
	walk(doc.YNode())

	l := layout{indent: mapIndent, wide: seqOffset > 0}
	if l.wide {
		// The encoder indents a wide sequence by the indentation width; match the sequence.
		l.indent = seqOffset
	}
	if l.indent < 2 || l.indent > 9 { // the range go.yaml.in/yaml/v3 accepts
		l.indent = defaultIndent
	}
	return l
}

// blockSeqOffset returns how many columns the block sequence value of key in mapping m is
// indented from the key, or -1 if it is not a block sequence on lines of its own.
func blockSeqOffset(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != key {
			continue
		}
		if v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 &&
			v.Line > k.Line && v.Column >= k.Column {
			return v.Column - k.Column
		}
		return -1
	}
	return -1
}

// encode encodes doc with kyaml's encoder in layout l.
func (l layout) encode(doc *yaml.RNode) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(l.indent)
	if l.wide {
		enc.DefaultSeqIndent()
	} else {
		enc.CompactSeqIndent()
	}
	err := enc.Encode(doc.Document())
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: render kustomization: %w", err)
	}
	return b.Bytes(), nil
}

// minimalEdit returns src changed as kyaml changed its rendering from before to after, touching
// as few lines of src as it can (see the package documentation). Both renderings are in layout l.
func minimalEdit(src, before, after []byte, l layout) []byte {
	eol := "\n"
	if bytes.Contains(src, []byte("\r\n")) {
		eol = "\r\n"
	}
	if out, ok := splice(src, before, after, eol); ok {
		// Keep the spliced bytes only if kyaml reads them as exactly the edited document.
		if doc, err := parse(out); err == nil {
			if again, err := l.encode(doc); err == nil && bytes.Equal(again, after) {
				return out
			}
		}
	}
	// Fall back to kyaml's rendering of the whole document.
	out := string(after)
	if first, _, _ := strings.Cut(string(src), "\n"); isDocStart(first) {
		out = "---\n" + out
	}
	if eol != "\n" {
		out = strings.ReplaceAll(out, "\n", eol)
	}
	return []byte(out)
}

// splice replays on src the line changes between before and after, two kyaml renderings of src
// without and with the edit. Lines of src are matched to lines of before by a line diff; a
// changed line of before that matches a line of src is changed there, and new lines go after
// the line of src that matches the line before them. Where that does not work, the lines of src
// between the nearest lines that appear unchanged in all three are replaced by after's lines.
// New lines end with eol. ok is false when the changes cannot be placed in order.
func splice(src, before, after []byte, eol string) (out []byte, ok bool) {
	a := splitLines(string(src)) // src lines with their line endings
	aKeys := make([]string, len(a))
	for i, s := range a {
		aKeys[i] = strings.TrimRight(s, "\r\n")
	}
	// kyaml renders LF line endings and a final line ending.
	b := strings.Split(strings.TrimSuffix(string(before), "\n"), "\n")
	c := strings.Split(strings.TrimSuffix(string(after), "\n"), "\n")
	if len(a)+len(b)+len(c) > maxSpliceLines {
		return nil, false
	}

	ab := matchLines(b, aKeys) // ab[j]: line of src equal to line j of before, or -1
	bc := matchLines(b, c)     // bc[j]: line of after equal to line j of before, or -1
	anchor := func(j int) bool { return ab[j] >= 0 && bc[j] >= 0 }

	var w strings.Builder
	emitSrc := func(from, to int) {
		for _, s := range a[from:to] {
			w.WriteString(s)
		}
	}
	emitNew := func(lines []string) {
		if len(lines) == 0 {
			return
		}
		if w.Len() > 0 && !strings.HasSuffix(w.String(), "\n") {
			w.WriteString(eol) // the last line of src had no line ending
		}
		for _, s := range lines {
			w.WriteString(s)
			w.WriteString(eol)
		}
	}

	next := 0 // next line of src to copy
	hunks := changes(bc, len(b), len(c))
	for i := 0; i < len(hunks); i++ {
		h := hunks[i]
		start, end, placed := h.place(ab, len(b))
		if !placed || start < next {
			// Widen to the nearest lines that are the same in src, before and after.
			p, q := h.b0-1, h.b1
			for p >= 0 && !anchor(p) {
				p--
			}
			for q < len(b) && !anchor(q) {
				q++
			}
			start, end = 0, len(a)
			h.c0, h.c1 = 0, len(c)
			if p >= 0 {
				start, h.c0 = ab[p]+1, bc[p]+1
			} else if len(a) > 0 && isDocStart(aKeys[0]) {
				start = 1 // kyaml does not render a leading "---"; keep it
			}
			if q < len(b) {
				end, h.c1 = ab[q], bc[q]
			}
			// kyaml drops blank lines; keep those that end the range (before the next section).
			for end > start && strings.TrimSpace(a[end-1]) == "" && (h.c1 == h.c0 || c[h.c1-1] != "") {
				end--
			}
			if start < next {
				return nil, false
			}
			for i+1 < len(hunks) && hunks[i+1].b0 <= q {
				i++ // covered by the widened range
			}
		}
		emitSrc(next, start)
		emitNew(c[h.c0:h.c1])
		next = end
	}
	emitSrc(next, len(a))
	return []byte(w.String()), true
}

// maxSpliceLines bounds the work splice does; bigger documents get kyaml's whole rendering.
// A kustomization has tens of lines.
const maxSpliceLines = 100_000

// hunk is a run of changed lines: lines [b0,b1) of before became lines [c0,c1) of after.
type hunk struct{ b0, b1, c0, c1 int }

// changes returns the hunks between before and after given bc, the line of after that each line
// of before is kept as (or -1 if it is not kept).
func changes(bc []int, nb, nc int) []hunk {
	var hs []hunk
	j, k := 0, 0 // next line of before, of after
	for j < nb || k < nc {
		if j < nb && bc[j] == k {
			j, k = j+1, k+1
			continue
		}
		h := hunk{b0: j, c0: k}
		for j < nb && bc[j] < 0 {
			j++
		}
		if j < nb {
			k = bc[j]
		} else {
			k = nc
		}
		h.b1, h.c1 = j, k
		hs = append(hs, h)
	}
	return hs
}

// place returns the lines [start,end) of src that h replaces, given ab, the line of src that
// each line of before matches (or -1).
func (h hunk) place(ab []int, nb int) (start, end int, ok bool) {
	if h.b1 > h.b0 {
		// The changed lines must be consecutive lines of src.
		for j := h.b0; j < h.b1; j++ {
			if ab[j] < 0 || (j > h.b0 && ab[j] != ab[j-1]+1) {
				return 0, 0, false
			}
		}
		return ab[h.b0], ab[h.b1-1] + 1, true
	}
	// Pure insertion: after the line before it, else before the line after it.
	switch {
	case h.b0 > 0 && ab[h.b0-1] >= 0:
		return ab[h.b0-1] + 1, ab[h.b0-1] + 1, true
	case h.b0 < nb && ab[h.b0] >= 0:
		return ab[h.b0], ab[h.b0], true
	}
	return 0, 0, false
}

// matchLines returns, for each line of x, the line of y it is paired with by a line diff of x
// and y, or -1.
func matchLines(x, y []string) []int {
	ids := make(map[string]rune)
	toRunes := func(lines []string) []rune {
		rs := make([]rune, len(lines))
		for i, s := range lines {
			r, ok := ids[s]
			if !ok {
				r = rune(len(ids))
				if r >= 0xD800 { // skip the surrogates, which are not valid runes
					r += 0x800
				}
				ids[s] = r
			}
			rs[i] = r
		}
		return rs
	}
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0 // exact and deterministic
	m := make([]int, len(x))
	i, j := 0, 0
	for _, d := range dmp.DiffMainRunes(toRunes(x), toRunes(y), false) {
		n := utf8.RuneCountInString(d.Text)
		switch d.Type {
		case diffmatchpatch.DiffEqual:
			for range n {
				m[i] = j
				i, j = i+1, j+1
			}
		case diffmatchpatch.DiffDelete:
			for range n {
				m[i] = -1
				i++
			}
		case diffmatchpatch.DiffInsert:
			j += n
		}
	}
	return m
}

// splitLines splits s after each "\n", keeping the line endings.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// isDocStart reports whether line is a YAML document start marker, which kyaml does not render.
func isDocStart(line string) bool {
	return strings.TrimRight(line, " \t\r") == "---"
}
