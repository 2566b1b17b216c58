package gitops

import (
	"fmt"
	"regexp"
	"strconv"
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
//
// A rolling commit amended many times folds in many pins; its message lists
// only the newest [MaxListedPins] of them and counts the rest ("… and 1,432
// earlier pins since …"), so that it stays small. Its trailers stay exact:
// the pins it carries include those no longer listed (Carry).
type Message struct {
	Kind    Kind
	Subject string
	Text    string // paragraphs between the subject and the pin list, e.g. a release URL
	Pins    []Pin  // newest first; String lists the newest MaxListedPins and counts the rest
	// Earlier counts the pins folded in before Pins and no longer listed;
	// Since is the time of the oldest of them (zero when unknown).
	Earlier int
	Since   time.Time
	// Carry holds pins carried from earlier folds (the trailers of the
	// commit amended): a pin of Carry counts only when no pin of Pins has
	// its environment and image.
	Carry []Pin
}

// MaxListedPins is how many pins a message body lists at most.
const MaxListedPins = 20

const pinsHeading = "Pins, newest first:"

// Carried returns the pins the commit carries: the newest pin of each
// (environment, image), newest first, from Pins and then Carry. They are the
// Pinroll-Pin trailers.
func (m Message) Carried() []Pin {
	seen := map[string]bool{}
	var out []Pin
	for _, ps := range [][]Pin{m.Pins, m.Carry} {
		for _, p := range ps {
			k := p.Env + "/" + p.Image
			if !seen[k] {
				seen[k] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// String renders the message: subject, text, the pin list (the newest
// MaxListedPins, then a count of the earlier ones), then the trailers (one
// Pinroll-Env per environment and one Pinroll-Pin per carried pin).
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(m.Subject)
	b.WriteString("\n\n")
	if t := strings.TrimSpace(m.Text); t != "" {
		b.WriteString(t)
		b.WriteString("\n\n")
	}
	listed, earlier, since := m.Pins, m.Earlier, m.Since
	if len(listed) > MaxListedPins {
		for _, p := range listed[MaxListedPins:] {
			earlier++
			if since.IsZero() || !p.Time.IsZero() && p.Time.Before(since) {
				since = p.Time
			}
		}
		listed = listed[:MaxListedPins]
	}
	if len(listed) > 0 || earlier > 0 {
		b.WriteString(pinsHeading + "\n")
		for _, p := range listed {
			tag := p.Tag
			if tag == "" {
				tag = "-"
			}
			fmt.Fprintf(&b, "- %s/%s %s tag=%s at=%s\n", p.Env, p.Image, p.Digest, tag, p.Time.UTC().Format(time.RFC3339))
		}
		if earlier > 0 {
			b.WriteString(earlierLine(earlier, since))
			b.WriteString("\n")
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

// earlierLine is the pin list's last line when it does not list every pin:
// "… and 1,432 earlier pins since 2026-11-23T09:00:00Z".
func earlierLine(n int, since time.Time) string {
	noun := "pins"
	if n == 1 {
		noun = "pin"
	}
	s := fmt.Sprintf("… and %s earlier %s", thousands(n), noun)
	if !since.IsZero() {
		s += " since " + since.UTC().Format(time.RFC3339)
	}
	return s
}

// thousands renders n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

var (
	pinLine     = regexp.MustCompile(`^- ([^/\s]+)/(\S+) (sha256:[0-9a-f]{64}) tag=(\S+) at=(\S+)$`)
	earlierPins = regexp.MustCompile(`^… and ([0-9,]+) earlier pins?(?: since (\S+))?$`)
)

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
		if l == pinsHeading {
			inPins = true
			continue
		}
		if inPins {
			if g := pinLine.FindStringSubmatch(l); g != nil {
				t, _ := time.Parse(time.RFC3339, g[5])
				tag := g[4]
				if tag == "-" {
					tag = ""
				}
				m.Pins = append(m.Pins, Pin{Env: g[1], Image: g[2], Digest: g[3], Tag: tag, Time: t})
				continue
			}
			if g := earlierPins.FindStringSubmatch(l); g != nil {
				m.Earlier, _ = strconv.Atoi(strings.ReplaceAll(g[1], ",", ""))
				m.Since, _ = time.Parse(time.RFC3339, g[2])
				continue
			}
		}
		inPins = false
		text = append(text, l)
	}
	m.Text = strings.TrimSpace(strings.Join(text, "\n"))
	if len(m.Pins) == 0 && m.Earlier == 0 {
		m.Pins = trailerPins // a message without a pin list
	} else {
		m.Carry = trailerPins
	}
	return m
}
