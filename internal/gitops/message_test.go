package gitops

import (
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
