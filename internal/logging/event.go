package logging

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"
)

type loggerKey struct{}

// WithLogger returns a context carrying the request's logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger returns the logger carried by ctx, or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Event is the one log line per handled event (SPEC §9): what was handled,
// the delivery, image, digest and tag, the environments, the commit, the
// outcome and why.
type Event struct {
	What      string // "gar message", "github release", ...
	Delivery  string
	Image     string
	Digest    string
	Tag       string
	Envs      []string
	Commit    string
	Outcome   string
	Reason    string
	Duplicate bool
}

// Outcomes LogEvent logs at WARNING rather than INFO (SPEC §4.1).
const outcomeRejected = "rejected"

// LogEvent writes ev to the logger ctx carries, with how long handling took
// and the error, if any: ERROR with an error, WARNING for a rejected message,
// INFO otherwise. Every entry point (HTTP, function targets, pull mode) uses
// it, so the lines look the same wherever they come from. Strings that may
// come from a caller are clipped (see [Clip]); the JSON handler escapes them.
func LogEvent(ctx context.Context, ev Event, took time.Duration, err error) {
	attrs := []any{
		"delivery", Clip(ev.Delivery),
		"image", Clip(ev.Image),
		"digest", Clip(ev.Digest),
		"tag", Clip(ev.Tag),
		"outcome", ev.Outcome,
		"duration_ms", took.Milliseconds(),
	}
	switch len(ev.Envs) {
	case 0:
	case 1:
		attrs = append(attrs, "env", ev.Envs[0])
	default:
		attrs = append(attrs, "env", ev.Envs)
	}
	if ev.Commit != "" {
		attrs = append(attrs, "commit", ev.Commit)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ClipN(ev.Reason, MaxReasonBytes))
	}
	if ev.Duplicate {
		attrs = append(attrs, "duplicate", true)
	}
	log := Logger(ctx)
	switch {
	case err != nil:
		log.ErrorContext(ctx, ev.What+" failed", append(attrs, "error", ClipN(err.Error(), MaxReasonBytes))...)
	case ev.Outcome == outcomeRejected:
		log.WarnContext(ctx, ev.What, attrs...)
	default:
		log.InfoContext(ctx, ev.What, attrs...)
	}
}

// Limits of [Clip] and of reasons and errors in [LogEvent].
const (
	// MaxFieldBytes bounds an identifier from outside (a message or delivery
	// id, a tag, a digest, a repository) in a log line.
	MaxFieldBytes = 200
	// MaxReasonBytes bounds a reason or an error text in a log line; the
	// inputs they quote are clipped to MaxFieldBytes where they are built.
	MaxReasonBytes = 1000
)

// Clip returns s cut to at most MaxFieldBytes bytes, on a rune boundary,
// followed by "…(N bytes)" giving its full length, or s itself when short
// enough. Use it for every caller-controlled string that reaches a log line
// or an error message.
func Clip(s string) string { return ClipN(s, MaxFieldBytes) }

// ClipN is [Clip] with a limit of n bytes.
func ClipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// Quote returns s clipped (see [Clip]) and quoted with Go escapes
// (strconv.Quote), safe to embed in a reason or an error message: control
// characters, NUL and invalid UTF-8 become visible escapes.
func Quote(s string) string { return fmt.Sprintf("%q", Clip(s)) }
