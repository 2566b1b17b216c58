// Package overlay pins images in a kustomization.yaml: it sets digest (and, for release
// environments, newTag) on an entry of the kustomization's images list
// (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/images/).
// It is pure: bytes in, bytes out, no I/O.
//
// # Which name to edit
//
// An overlay's images[].name must match the image as it appears after the base's own images
// transformer. If the base renames "server" to the full registry path, an overlay entry named
// "server" silently does nothing: the caller must pass the renamed image as [Edit.Name].
// [Find] and [Image.OutputName] read a base kustomization to find that name.
//
// # What is preserved
//
// The edit is made on the YAML node tree with sigs.k8s.io/kustomize/kyaml, which keeps comments
// (head, inline, foot), key order, quoting and flow or block style. kyaml (go.yaml.in/yaml/v3
// underneath) renders a whole document, and its rendering differs from hand-written YAML in ways
// that have nothing to do with the edit: it drops blank lines (except before a comment that ends
// a block), collapses the spaces before an inline comment to one, re-indents everything with one
// indentation width and one sequence style, drops a leading "---" and a trailing "...",
// re-flows folded scalars and writes LF line endings.
//
// So that a pin changes only the lines it has to, [Apply] renders the document with kyaml before
// and after the edit, with the indentation width and sequence style of the original (read from
// the images list, else from the first nested block), and replays only the lines that differ
// onto the original bytes; every other line is copied as it was. It then parses the result and
// checks that kyaml sees exactly the edited document. What remains re-formatted:
//
//   - a line the edit changes is written as kyaml renders it: a changed "digest: ... # comment"
//     line gets a single space before "#", and new lines use the detected indentation and the
//     file's line ending;
//   - new keys go at the end of their mapping: digest after newTag, a new entry at the end of
//     images, a new images key at the end of the document (before a trailing comment);
//   - in a flow list ("images: [{name: server}]") the encoder single-quotes a new digest, and an
//     empty "images: []" becomes a block list when Apply adds the first entry;
//   - where the lines next to the edit are not laid out as kyaml would lay them out (say
//     "-   name: server" or a multi-line flow list), the lines between the nearest unchanged
//     lines that kyaml renders identically are replaced by kyaml's rendering, except for blank
//     lines at the end of that range (see testdata/unusual-layout);
//   - as a safety net, if the result does not read back as exactly the edited document, the
//     whole document is kyaml's rendering, with a leading "---" and CRLF line endings put back.
//
// An Apply that changes nothing returns src itself.
package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Sentinel errors, for errors.Is. Every error returned by this package wraps one of them.
var (
	// ErrMalformed reports a kustomization this package cannot work with: not YAML, not a single
	// YAML mapping, or an images list that is not a list of mappings with a string name.
	ErrMalformed = errors.New("malformed kustomization")
	// ErrInvalidEdit reports an [Edit] that [Apply] refuses: no name, or a bad digest or tag.
	ErrInvalidEdit = errors.New("invalid edit")
)

// Field names of an images entry.
const (
	keyImages  = "images"
	keyName    = "name"
	keyNewName = "newName"
	keyNewTag  = "newTag"
	keyDigest  = "digest"
)

// Image is one images[] entry of a kustomization
// (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/images/).
// A field absent from the entry (or null) is "".
type Image struct {
	Name    string // image name the entry matches
	NewName string // replacement image name
	NewTag  string // replacement tag
	Digest  string // replacement digest; kustomize prefers it over NewTag
}

// OutputName returns the image name that resources carry after this entry has been applied,
// which is the name an images entry of an overlay built on top of it must match (see the package
// documentation): NewName if set, else Name.
func (im Image) OutputName() string {
	if im.NewName != "" {
		return im.NewName
	}
	return im.Name
}

// Edit describes the pin [Apply] makes on the images entry named Name.
type Edit struct {
	Name    string // images[].name to match
	Digest  string // "sha256:<64 lowercase hex>"; always required, see [ValidDigest]
	NewTag  string // also set newTag when non-empty (release environments); "" leaves an existing newTag as it is
	NewName string // newName of an entry Apply has to create (e.g. the full registry path); an existing newName is kept
}

var (
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// tagRE is the tag grammar of the OCI distribution spec
	// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests).
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidDigest reports whether d is a sha256 image digest as kustomize and registries write it:
// "sha256:" followed by 64 lowercase hexadecimal digits.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

func (e Edit) validate() error {
	switch {
	case e.Name == "":
		return fmt.Errorf("overlay: %w: empty image name", ErrInvalidEdit)
	case !ValidDigest(e.Digest):
		return fmt.Errorf("overlay: %w: digest %q: want \"sha256:\" and 64 lowercase hex digits", ErrInvalidEdit, e.Digest)
	case e.NewTag != "" && !tagRE.MatchString(e.NewTag):
		return fmt.Errorf("overlay: %w: tag %q is not a valid image tag", ErrInvalidEdit, e.NewTag)
	}
	return nil
}

// Find returns the entry of the images list of the kustomization in src whose name is name, if
// there is one.
func Find(src []byte, name string) (Image, bool, error) {
	doc, err := parse(src)
	if err != nil {
		return Image{}, false, err
	}
	list, err := readImages(doc)
	if err != nil {
		return Image{}, false, err
	}
	if en := list.find(name); en != nil {
		return en.image, true, nil
	}
	return Image{}, false, nil
}

// Apply pins an image in the kustomization in src as e describes and returns the new bytes and
// whether anything changed. On the entry named e.Name it sets digest, and newTag if e.NewTag is
// set; other fields, newName included, are kept. If there is no such entry, Apply appends one
// (name, newName if e.NewName is set, newTag if e.NewTag is set, digest), creating the images
// list if needed. When nothing changes, out is src itself, byte for byte. See the package
// documentation for what the edit may re-format.
func Apply(src []byte, e Edit) (out []byte, changed bool, err error) {
	if err := e.validate(); err != nil {
		return nil, false, err
	}
	doc, err := parse(src)
	if err != nil {
		return nil, false, err
	}
	list, err := readImages(doc)
	if err != nil {
		return nil, false, err
	}

	lay := detectLayout(doc, list.value)
	before, err := lay.encode(doc)
	if err != nil {
		return nil, false, err
	}

	if en := list.find(e.Name); en != nil {
		changed = setString(en.node, keyDigest, e.Digest)
		if e.NewTag != "" {
			changed = setString(en.node, keyNewTag, e.NewTag) || changed
		}
	} else {
		if err := list.appendEntry(doc, e); err != nil {
			return nil, false, fmt.Errorf("overlay: add images entry %q: %w", e.Name, err)
		}
		changed = true
	}
	if !changed {
		return src, false, nil
	}

	after, err := lay.encode(doc)
	if err != nil {
		return nil, false, err
	}
	out = minimalEdit(src, before, after, lay)

	// Belt and braces: the bytes handed back must read back as the pin just made.
	got, ok, err := Find(out, e.Name)
	if err != nil || !ok || got.Digest != e.Digest || (e.NewTag != "" && got.NewTag != e.NewTag) {
		return nil, false, fmt.Errorf("overlay: internal error: edited kustomization does not read back (entry %+v, found %t, %v)", got, ok, err)
	}
	return out, true, nil
}

// parse decodes src, which must hold exactly one YAML document whose top level is a mapping,
// and returns it as a kyaml document node.
func parse(src []byte) (*yaml.RNode, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("overlay: %w: empty document", ErrMalformed)
		}
		return nil, fmt.Errorf("overlay: %w: %w", ErrMalformed, err)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("overlay: %w: %w", ErrMalformed, err)
		}
		if !yaml.IsYNodeEmptyDoc(&next) {
			return nil, fmt.Errorf("overlay: %w: more than one YAML document (line %d)", ErrMalformed, next.Line)
		}
	}
	if yaml.IsYNodeEmptyDoc(&doc) {
		return nil, fmt.Errorf("overlay: %w: empty document", ErrMalformed)
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("overlay: %w: top level is %s, want a mapping", ErrMalformed, kindName(root))
	}
	return yaml.NewRNode(&doc), nil
}

// imageList is the images field of a kustomization, checked.
type imageList struct {
	value   *yaml.RNode // images value; nil when there is no images key or it is null
	entries []entry
}

// entry is one checked element of the images list.
type entry struct {
	node  *yaml.RNode
	image Image
}

// readImages reads and checks the images list of doc. An entry that is not a mapping, whose
// name, newName, newTag or digest is not a scalar, that has no name, or whose name another
// entry has too is an error: kustomize would reject the file or apply an entry unexpectedly.
func readImages(doc *yaml.RNode) (imageList, error) {
	f := doc.Field(keyImages)
	if f == nil || yaml.IsMissingOrNull(f.Value) {
		return imageList{}, nil
	}
	if n := f.Value.YNode(); n.Kind != yaml.SequenceNode {
		return imageList{}, fmt.Errorf("overlay: %w: images: is %s, want a list", ErrMalformed, kindName(n))
	}
	elems, err := f.Value.Elements()
	if err != nil {
		return imageList{}, fmt.Errorf("overlay: %w: images: %w", ErrMalformed, err)
	}
	list := imageList{value: f.Value}
	seen := make(map[string]int, len(elems))
	for i, el := range elems {
		if n := el.YNode(); n.Kind != yaml.MappingNode {
			return imageList{}, fmt.Errorf("overlay: %w: images[%d]: is %s, want a mapping", ErrMalformed, i, kindName(n))
		}
		var im Image
		for _, fld := range []struct {
			key string
			dst *string
		}{{keyName, &im.Name}, {keyNewName, &im.NewName}, {keyNewTag, &im.NewTag}, {keyDigest, &im.Digest}} {
			mf := el.Field(fld.key)
			if mf == nil || yaml.IsMissingOrNull(mf.Value) {
				continue
			}
			if n := mf.Value.YNode(); n.Kind != yaml.ScalarNode {
				return imageList{}, fmt.Errorf("overlay: %w: images[%d].%s: is %s, want a string", ErrMalformed, i, fld.key, kindName(n))
			}
			*fld.dst = mf.Value.YNode().Value
		}
		if im.Name == "" {
			return imageList{}, fmt.Errorf("overlay: %w: images[%d]: no name", ErrMalformed, i)
		}
		if j, dup := seen[im.Name]; dup {
			return imageList{}, fmt.Errorf("overlay: %w: images[%d]: name %q is also the name of images[%d]", ErrMalformed, i, im.Name, j)
		}
		seen[im.Name] = i
		list.entries = append(list.entries, entry{node: el, image: im})
	}
	return list, nil
}

func (l imageList) find(name string) *entry {
	for i := range l.entries {
		if l.entries[i].image.Name == name {
			return &l.entries[i]
		}
	}
	return nil
}

// appendEntry appends an entry for e to the images list of doc, creating the list if needed.
func (l imageList) appendEntry(doc *yaml.RNode, e Edit) error {
	en := yaml.NewMapRNode(nil)
	fields := []struct{ key, value string }{
		{keyName, e.Name}, {keyNewName, e.NewName}, {keyNewTag, e.NewTag}, {keyDigest, e.Digest},
	}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		if err := en.PipeE(yaml.SetField(f.key, yaml.NewStringRNode(f.value))); err != nil {
			return err
		}
	}
	seq := l.value
	if seq != nil && len(seq.Content()) == 0 {
		// "images: []" is how YAML spells an empty list, not a choice of flow style: start a
		// block list, as the rest of a kustomization is written.
		seq.YNode().Style &^= yaml.FlowStyle
	}
	if seq == nil {
		// No images key, or "images:" with no value: (re)place it with an empty list.
		var err error
		if seq, err = doc.Pipe(yaml.SetField(keyImages, yaml.NewListRNode())); err != nil {
			return err
		}
	}
	return seq.PipeE(yaml.Append(en.YNode()))
}

// setString sets the field key of the mapping m to the string value and reports whether that
// changed anything. An existing scalar is updated in place, so that its quoting style and its
// comments stay: kyaml's FieldSetter replaces the whole value node, which would drop an inline
// comment such as "digest: sha256:... # pinned by pinroll". A missing field is appended with
// kyaml's SetField.
func setString(m *yaml.RNode, key, value string) bool {
	if f := m.Field(key); f != nil {
		n := f.Value.YNode() // a scalar: readImages checked it
		if n.Tag == yaml.NodeTagString && n.Value == value {
			return false
		}
		// A null or a non-string scalar (newTag: 1.0) becomes a string; the encoder quotes
		// it if it would read back as another type.
		n.Tag = yaml.NodeTagString
		n.Value = value
		n.Style &^= yaml.TaggedStyle
		return true
	}
	// SetField appends; it only fails on a non-mapping, which readImages ruled out.
	_ = m.PipeE(yaml.SetField(key, yaml.NewStringRNode(value)))
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.DocumentNode:
		return "a document"
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == yaml.NodeTagNull {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "empty"
}
