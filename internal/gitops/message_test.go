package gitops

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	d1 := "sha256:" + strings.Repeat("1", 64)
	d2 := "sha256:" + strings.Repeat("2", 64)
	d3 := "sha256:" + strings.Repeat("3", 64)
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	m := Message{
		Kind:    KindRolling,
		Subject: "chore(dev): pin server sha256:333333333333",
		Pins: []Pin{
			{Env: "dev", Image: "server", Digest: d3, Tag: "latest", Time: at.Add(2 * time.Minute)},
			{Env: "dev", Image: "worker", Digest: d2, Tag: "", Time: at.Add(time.Minute)},
			{Env: "dev", Image: "server", Digest: d1, Tag: "latest", Time: at},
		},
	}
	s := m.String()
	want := `chore(dev): pin server sha256:333333333333

Pins, newest first:
- dev/server ` + d3 + ` tag=latest at=2026-11-23T09:02:00Z
- dev/worker ` + d2 + ` tag=- at=2026-11-23T09:01:00Z
- dev/server ` + d1 + ` tag=latest at=2026-11-23T09:00:00Z

Pinroll-Kind: rolling
Pinroll-Env: dev
Pinroll-Pin: dev/server=` + d3 + `
Pinroll-Pin: dev/worker=` + d2 + `
`
	if s != want {
		t.Fatalf("message:\n%s\nwant:\n%s", s, want)
	}
	got := ParseMessage(s)
	if got.Kind != KindRolling || got.Subject != m.Subject || len(got.Pins) != 3 {
		t.Fatalf("parsed %+v", got)
	}
	for i := range m.Pins {
		if got.Pins[i] != m.Pins[i] {
			t.Errorf("pin %d = %+v, want %+v", i, got.Pins[i], m.Pins[i])
		}
	}
	if ParseMessage(got.String()).String() != s {
		t.Fatal("render(parse(render(m))) != render(m)")
	}
}

func TestParseMessage(t *testing.T) {
	t.Parallel()
	d := "sha256:" + strings.Repeat("a", 64)
	cases := []struct {
		name     string
		msg      string
		kind     Kind
		pins     int
		textHave string
	}{
		{"human commit", "fix: typo\n\nSigned-off-by: A <a@example.com>\n", "", 0, "fix"},
		{"human commit without body", "fix: typo", "", 0, ""},
		{"release with text", "release(prod): server v1.2.3\n\nRelease: https://github.com/o/r/releases/tag/v1.2.3\n\nPins, newest first:\n- prod/server " + d + " tag=v1.2.3 at=2026-11-23T09:00:00Z\n\nPinroll-Kind: release\nPinroll-Env: prod\nPinroll-Pin: prod/server=" + d + "\n", KindRelease, 1, "Release: https://github.com"},
		{"pins only in trailers", "chore(dev): pin\n\nPinroll-Kind: rolling\nPinroll-Env: dev\nPinroll-Pin: dev/server=" + d + "\n", KindRolling, 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := ParseMessage(c.msg)
			if m.Kind != c.kind || len(m.Pins) != c.pins || !strings.Contains(m.Text+m.Subject, c.textHave) {
				t.Fatalf("parsed %+v", m)
			}
		})
	}
}

// TestMessageListsTheNewestPins renders a message folding more pins than it
// lists, and amends an old-style message that listed them all.
func TestMessageListsTheNewestPins(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	pin := func(i int, img string) Pin {
		return Pin{Env: "dev", Image: img, Digest: fmt.Sprintf("sha256:%064x", i), Tag: "latest", Time: at.Add(time.Duration(i) * time.Minute)}
	}
	var all []Pin // newest first: 1,499 pins of server, then the one pin of worker, the oldest
	for i := 1500; i > 1; i-- {
		all = append(all, pin(i, "server"))
	}
	all = append(all, pin(1, "worker"))
	for _, tc := range []struct {
		name string
		msg  Message
	}{
		{"pins given", Message{Kind: KindRolling, Subject: "s", Pins: all}},
		{"old message listing them all", ParseMessage(oldStyle(all))},
		{"amend of a short message", func() Message {
			prev := ParseMessage(Message{Kind: KindRolling, Subject: "s", Pins: all[1:]}.String())
			return Message{Kind: KindRolling, Subject: "s", Pins: append([]Pin{all[0]}, prev.Pins...), Earlier: prev.Earlier, Since: prev.Since, Carry: prev.Carried()}
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.msg.String()
			if len(s) > 4<<10 {
				t.Errorf("message of %d bytes", len(s))
			}
			if !strings.Contains(s, "\n… and 1,480 earlier pins since 2026-11-23T09:01:00Z\n\n") {
				t.Errorf("message lacks the count of earlier pins:\n%s", s)
			}
			wantTrailers := "Pinroll-Kind: rolling\nPinroll-Env: dev\nPinroll-Pin: dev/server=" + all[0].Digest + "\nPinroll-Pin: dev/worker=" + all[1499].Digest + "\n"
			if !strings.HasSuffix(s, "\n\n"+wantTrailers) {
				t.Errorf("trailers of:\n%s\nwant:\n%s", s, wantTrailers)
			}
			got := ParseMessage(s)
			if len(got.Pins) != MaxListedPins || got.Pins[0] != all[0] || got.Earlier != 1480 || !got.Since.Equal(at.Add(time.Minute)) {
				t.Errorf("parsed %d pins (first %+v), %d earlier since %s", len(got.Pins), got.Pins[0], got.Earlier, got.Since)
			}
			if got.String() != s {
				t.Errorf("render(parse(m)) differs:\n%s\nwant:\n%s", got.String(), s)
			}
		})
	}
}

// oldStyle renders pins the way messages did before they were bounded:
// every pin listed.
func oldStyle(pins []Pin) string {
	var b strings.Builder
	b.WriteString("s\n\nPins, newest first:\n")
	for _, p := range pins {
		fmt.Fprintf(&b, "- %s/%s %s tag=%s at=%s\n", p.Env, p.Image, p.Digest, p.Tag, p.Time.Format(time.RFC3339))
	}
	b.WriteString("\nPinroll-Kind: rolling\nPinroll-Env: dev\nPinroll-Pin: dev/server=" + pins[0].Digest + "\nPinroll-Pin: dev/worker=" + pins[len(pins)-1].Digest + "\n")
	return b.String()
}
