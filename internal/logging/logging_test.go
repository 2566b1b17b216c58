package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, want string
	}{
		{"short", "abc", "abc"},
		{"at the limit", strings.Repeat("a", MaxFieldBytes), strings.Repeat("a", MaxFieldBytes)},
		{"over", strings.Repeat("a", 40<<10), strings.Repeat("a", MaxFieldBytes) + "…(40960 bytes)"},
		{"cut on a rune boundary", strings.Repeat("a", MaxFieldBytes-1) + "é", strings.Repeat("a", MaxFieldBytes-1) + "…(201 bytes)"},
	} {
		if got := Clip(c.in); got != c.want {
			t.Errorf("%s: Clip = %q, want %q", c.name, got, c.want)
		}
	}
	if got := Quote("a\x00b\xff\n"); got != `"a\x00b\xff\n"` {
		t.Errorf("Quote = %s", got)
	}
}

func TestLogEvent(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("\x00\xff", 20<<10)
	for _, c := range []struct {
		name     string
		ev       Event
		err      error
		severity string
	}{
		{"pinned", Event{What: "gar message", Delivery: "1", Outcome: "pinned", Envs: []string{"dev"}, Commit: "abc"}, nil, "INFO"},
		{"ignored", Event{What: "gar message", Delivery: "1", Outcome: "ignored"}, nil, "INFO"},
		{"rejected, hostile strings", Event{What: "gar message", Delivery: huge, Tag: huge, Digest: huge, Outcome: "rejected", Reason: huge}, nil, "WARNING"},
		{"failed", Event{What: "gar message", Delivery: "1"}, errors.New(huge), "ERROR"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			ctx := WithLogger(context.Background(), New(&buf, slog.LevelInfo))
			LogEvent(ctx, c.ev, 0, c.err)
			line := buf.Bytes()
			if bytes.Count(line, []byte("\n")) != 1 || !utf8.Valid(line) {
				t.Fatalf("not one valid UTF-8 line: %q", line)
			}
			// JSON writes a NUL or an invalid byte as 6 characters.
			if len(line) > 6*(5*MaxFieldBytes+2*MaxReasonBytes) {
				t.Fatalf("log line of %d bytes: caller strings not clipped", len(line))
			}
			var v map[string]any
			if err := json.Unmarshal(line, &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if v["severity"] != c.severity {
				t.Errorf("severity %v, want %s", v["severity"], c.severity)
			}
		})
	}
}

func TestTrace(t *testing.T) {
	t.Parallel()
	const id = "105445aa7843bc8bf206b12000100000"
	for _, c := range []struct {
		header, value, want string
	}{
		{"X-Cloud-Trace-Context", id + "/1;o=1", "projects/p/traces/" + id},
		{"Traceparent", "00-" + id + "-00f067aa0ba902b7-01", "projects/p/traces/" + id},
		{"X-Cloud-Trace-Context", strings.Repeat("a", 4096), ""},
		{"X-Cloud-Trace-Context", "not hex at all, 32 characters!!!", ""},
	} {
		r := httptest.NewRequest("POST", "/gar", nil)
		r.Header.Set(c.header, c.value)
		if got := Trace(r, "p"); got != c.want {
			t.Errorf("Trace(%s: %.40q) = %q, want %q", c.header, c.value, got, c.want)
		}
	}
}
