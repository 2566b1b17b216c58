// Package logging builds pinroll's structured JSON logger: one JSON object per
// line on stdout with the field names Cloud Logging understands (severity,
// message, time, logging.googleapis.com/trace), see
// https://cloud.google.com/logging/docs/structured-logging.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
)

// TraceKey is the Cloud Logging field that links a log line to a trace.
const TraceKey = "logging.googleapis.com/trace"

// New returns a JSON logger writing to w at level and above.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.MessageKey:
				a.Key = "message"
			case slog.LevelKey:
				a.Key = "severity"
				a.Value = slog.StringValue(severity(a.Value.Any().(slog.Level)))
			}
			return a
		},
	}))
}

// severity maps slog levels onto Cloud Logging's LogSeverity names.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// traceID is a trace id as both headers carry it.
var traceID = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// Trace returns the Cloud Logging trace field value for a request carrying
// X-Cloud-Trace-Context (or W3C traceparent), or "" when there is none, the
// project is unknown, or the trace id is not 32 hex digits (the header comes
// from the caller: nothing else reaches the log).
func Trace(r *http.Request, project string) string {
	if project == "" {
		return ""
	}
	id := ""
	if h := r.Header.Get("X-Cloud-Trace-Context"); h != "" {
		id, _, _ = strings.Cut(h, "/")
	} else if h := r.Header.Get("Traceparent"); h != "" {
		if parts := strings.Split(h, "-"); len(parts) == 4 {
			id = parts[1]
		}
	}
	if !traceID.MatchString(id) {
		return ""
	}
	return fmt.Sprintf("projects/%s/traces/%s", project, id)
}
