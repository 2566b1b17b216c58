package server_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReleaseSignature: only X-Hub-Signature-256 = "sha256=" + 64 hex digits
// of the right HMAC-SHA256 moves prod. A value naming another hash is a
// downgrade, refused even when its MAC is right (issue 8.1).
func TestReleaseSignature(t *testing.T) {
	t.Parallel()
	mac := func(h func() hash.Hash, prefix string) func([]byte) string {
		return func(body []byte) string {
			m := hmac.New(h, []byte(webhookSecret))
			m.Write(body)
			return prefix + hex.EncodeToString(m.Sum(nil))
		}
	}
	for _, c := range []struct {
		name string
		sig  func([]byte) string
		want int
	}{
		{"sha256", sign, http.StatusOK},
		{"sha256 in upper-case hex", func(b []byte) string { return "sha256=" + strings.ToUpper(strings.TrimPrefix(sign(b), "sha256=")) }, http.StatusOK},
		{"sha1 with the right HMAC-SHA1", mac(sha1.New, "sha1="), http.StatusUnauthorized},
		{"sha512 with the right HMAC-SHA512", mac(sha512.New, "sha512="), http.StatusUnauthorized},
		{"sha1 HMAC under the sha256 prefix", mac(sha1.New, "sha256="), http.StatusUnauthorized},
		{"upper-case prefix", func(b []byte) string { return "SHA256=" + strings.TrimPrefix(sign(b), "sha256=") }, http.StatusUnauthorized},
		{"63 hex digits", func(b []byte) string { return sign(b)[:len(sign(b))-1] }, http.StatusUnauthorized},
		{"65 hex digits", func(b []byte) string { return sign(b) + "0" }, http.StatusUnauthorized},
		{"trailing space", func(b []byte) string { return sign(b) + " " }, http.StatusUnauthorized},
		{"not hex", func(b []byte) string { return "sha256=" + strings.Repeat("zz", 32) }, http.StatusUnauthorized},
		{"wrong secret", mac(func() hash.Hash { return sha256.New() }, "sha256=x"), http.StatusUnauthorized},
		{"missing", func([]byte) string { return "" }, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			if r := w.do(garRequest(pushBody("img", now(-time.Minute), data(digest(1), "v1.0.0")))); r.code != http.StatusOK {
				t.Fatalf("GAR push of v1.0.0: %d %s", r.code, r.body)
			}
			before := w.tip(t)
			r := w.do(releaseRequest("d1", "v1.0.0", c.sig))
			if r.code != c.want {
				t.Fatalf("release: %d %s, want %d", r.code, r.body, c.want)
			}
			moved := w.tip(t) != before
			if moved != (c.want == http.StatusOK) {
				t.Fatalf("prod moved = %v with answer %d", moved, r.code)
			}
		})
	}
}

// TestGARHostileInput: forged times are answered 2xx rejected and move
// nothing; ordinary clock skew and ids of any bytes and length are handled;
// what the caller sent reaches the log clipped (issue 8.2, 8.3).
func TestGARHostileInput(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 40<<10)
	for _, c := range []struct {
		name    string
		body    []byte
		outcome string
		moves   bool
	}{
		{"far-future publishTime", pushBody("f1", "9999-12-31T23:59:59Z", data(digest(1), "latest")), "rejected", false},
		{"eleven minutes ahead", pushBody("f2", now(11*time.Minute), data(digest(1), "latest")), "rejected", false},
		{"seconds of skew", pushBody("f3", now(30*time.Second), data(digest(1), "latest")), "pinned", true},
		{"id of 40 KB", pushBody(huge, now(0), data(digest(1), "latest")), "pinned", true},
		{"id with NUL", pushBody("a\x00b", now(0), data(digest(1), "latest")), "pinned", true},
		{"id of path-like bytes", pushBody("../__x__/.", now(0), data(digest(1), "latest")), "pinned", true},
		{"huge tag", pushBody("t1", now(0), data(digest(1), huge)), "rejected", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			before := w.tip(t)
			r := w.do(garRequest(c.body))
			if r.code != http.StatusOK || r.outcome != c.outcome {
				t.Fatalf("answer %d %s, want 200 %s", r.code, r.body, c.outcome)
			}
			if moved := w.tip(t) != before; moved != c.moves {
				t.Fatalf("dev moved = %v, want %v", moved, c.moves)
			}
			logs := w.logs.String()
			if strings.Contains(logs, strings.Repeat("x", 300)) {
				t.Errorf("a caller's string reached the log unclipped (%d bytes of log)", len(logs))
			}
			if c.moves {
				// A redelivery of the same id is a duplicate, not a second pin.
				r := w.do(garRequest(c.body))
				if r.code != http.StatusOK || !strings.Contains(r.body, `"duplicate":true`) {
					t.Fatalf("redelivery: %d %s, want a duplicate", r.code, r.body)
				}
			}
		})
	}
	t.Run("a rejected future message leaves the pin free for real pushes", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		if r := w.do(garRequest(pushBody("forged", "9999-12-31T23:59:59Z", data(digest(1), "latest")))); r.outcome != "rejected" {
			t.Fatalf("forged: %s", r.body)
		}
		if r := w.do(garRequest(pushBody("real", now(0), data(digest(2), "latest")))); r.outcome != "pinned" {
			t.Fatalf("real push after a forged one: %d %s, want pinned", r.code, r.body)
		}
	})
}
