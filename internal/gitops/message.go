package gitops

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind says what made a bot commit; it is the Pinroll-Kind trailer.
type Kind string

// The kinds of bot commits (SPEC §6.2, §6.4). KindAppend marks the one-commit-
// per-pin mode (`commit: append`): such commits are never amended, so they need
// a kind of their own.
const (
	KindRolling Kind = "rolling"
	KindAppend  Kind = "append"
	KindRelease Kind = "release"
	KindManual  Kind = "manual"
)

// Trailer keys written on every bot commit.
const (
	TrailerKind = "Pinroll-Kind"
	TrailerEnv  = "Pinroll-Env"
	TrailerPin  = "Pinroll-Pin"
)

// Pin is one pin carried by a commit.
type Pin struct {
	Env    string    `json:"env"`
	Image  string    `json:"image"`
	Digest string    `json:"digest"`
	Tag    string    `json:"tag,omitempty"`
	Time   time.Time `json:"time"`
}

// ShortDigest is "sha256:" and the first 12 hex digits of a digest.
func ShortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// Message is a bot commit message: a subject, free text, the pins folded into
// the commit (newest first) and the trailers derived from them.
type Message struct {
	Kind    Kind
	Subject string
	Text    string // paragraphs between the subject and the pin list, e.g. a release URL
	Pins    []Pin  // newest first; a rolling commit lists every pin folded into it
}

const pinsHeading = "Pins, newest first:"

// Carried returns the pins the commit carries: the newest pin of each
// (environment, image), newest first. They are the Pinroll-Pin trailers.
func (m Message) Carried() []Pin {
	seen := map[string]bool{}
	var out []Pin
	for _, p := range m.Pins {
		k := p.Env + "/" + p.Image
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

// String renders the message: subject, text, the pin list, then the trailers
// (one Pinroll-Env per environment and one Pinroll-Pin per carried pin).
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(m.Subject)
	b.WriteString("\n\n")
	if t := strings.TrimSpace(m.Text); t != "" {
		b.WriteString(t)
		b.WriteString("\n\n")
	}
	if len(m.Pins) > 0 {
		b.WriteString(pinsHeading + "\n")
		for _, p := range m.Pins {
			tag := p.Tag
			if tag == "" {
				tag = "-"
			}
			fmt.Fprintf(&b, "- %s/%s %s tag=%s at=%s\n", p.Env, p.Image, p.Digest, tag, p.Time.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s: %s\n", TrailerKind, m.Kind)
	carried := m.Carried()
	envs := map[string]bool{}
	for _, p := range carried {
		if !envs[p.Env] {
			envs[p.Env] = true
			fmt.Fprintf(&b, "%s: %s\n", TrailerEnv, p.Env)
		}
	}
	for _, p := range carried {
		fmt.Fprintf(&b, "%s: %s/%s=%s\n", TrailerPin, p.Env, p.Image, p.Digest)
	}
	return b.String()
}

var pinLine = regexp.MustCompile(`^- ([^/\s]+)/(\S+) (sha256:[0-9a-f]{64}) tag=(\S+) at=(\S+)$`)

// ParseMessage reads a message written by [Message.String]. A message without
// a Pinroll-Kind trailer has an empty Kind: it is not a bot commit.
func ParseMessage(s string) Message {
	var m Message
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 0 {
		m.Subject = lines[0]
	}
	// Trailers: the last paragraph's "Key: value" lines.
	end := len(lines)
	start := end
	for start > 1 && strings.TrimSpace(lines[start-1]) != "" {
		start--
	}
	var trailerPins []Pin
	for _, l := range lines[start:end] {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch k {
		case TrailerKind:
			m.Kind = Kind(strings.TrimSpace(v))
		case TrailerPin:
			ei, d, ok := strings.Cut(strings.TrimSpace(v), "=")
			env, img, ok2 := strings.Cut(ei, "/")
			if ok && ok2 {
				trailerPins = append(trailerPins, Pin{Env: env, Image: img, Digest: d})
			}
		}
	}
	var text []string
	inPins := false
	for _, l := range lines[1:start] {
		switch {
		case l == pinsHeading:
			inPins = true
		case inPins && pinLine.MatchString(l):
			g := pinLine.FindStringSubmatch(l)
			t, _ := time.Parse(time.RFC3339, g[5])
			tag := g[4]
			if tag == "-" {
				tag = ""
			}
			m.Pins = append(m.Pins, Pin{Env: g[1], Image: g[2], Digest: g[3], Tag: tag, Time: t})
		default:
			inPins = false
			text = append(text, l)
		}
	}
	m.Text = strings.TrimSpace(strings.Join(text, "\n"))
	if len(m.Pins) == 0 {
		m.Pins = trailerPins
	}
	return m
}
