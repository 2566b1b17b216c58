package engine

import (
	"context"
	"time"
)

// LogEvent writes the one log line per handled event (SPEC §9) to the logger
// ctx carries: what happened, to which environments, image and digest, the
// commit, the outcome and how long it took. Every entry point (HTTP, function
// targets, pull mode) uses it so the lines look the same wherever they come from.
func LogEvent(ctx context.Context, what, delivery string, res Result, took time.Duration, err error) {
	attrs := []any{
		"delivery", delivery,
		"image", res.Image,
		"digest", res.Digest,
		"tag", res.Tag,
		"outcome", string(res.Outcome),
		"duration_ms", took.Milliseconds(),
	}
	switch len(res.Envs) {
	case 0:
	case 1:
		attrs = append(attrs, "env", res.Envs[0].Env)
	default:
		envs := make([]string, 0, len(res.Envs))
		for _, e := range res.Envs {
			envs = append(envs, e.Env)
		}
		attrs = append(attrs, "env", envs)
	}
	if c := res.Commit(); c != "" {
		attrs = append(attrs, "commit", c)
	}
	if res.Reason != "" {
		attrs = append(attrs, "reason", res.Reason)
	}
	if res.Duplicate {
		attrs = append(attrs, "duplicate", true)
	}
	log := Logger(ctx)
	switch {
	case err != nil:
		log.ErrorContext(ctx, what+" failed", append(attrs, "error", err.Error())...)
	case res.Outcome == Rejected:
		log.WarnContext(ctx, what, attrs...)
	default:
		log.InfoContext(ctx, what, attrs...)
	}
}
