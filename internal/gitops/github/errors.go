package github

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// ErrRateLimited means GitHub's primary or secondary rate limit stopped a call
// and the wait it asked for did not fit the context deadline (or the
// backend's cap). It is transient: retry after [RetryAfter].
var ErrRateLimited = errors.New("github: rate limited")

// ErrTransient means GitHub or the network kept failing (5xx answers,
// connection errors) through the backend's bounded retries. Retry later.
var ErrTransient = errors.New("github: transient failure")

// ErrUnauthorized means GitHub rejected the credentials (HTTP 401, or a
// GitHub App whose token exchange failed). Retrying will not help.
var ErrUnauthorized = fmt.Errorf("github: authentication failed: %w", gitops.ErrInvalid)

// RetryAfter returns how long GitHub asked the caller to wait before retrying
// the call that failed with err, or 0 when it did not say.
func RetryAfter(err error) time.Duration {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.retryAfter
	}
	var r *redacted
	if errors.As(err, &r) {
		return r.retryAfter
	}
	return 0
}

// apiError is one failed GitHub call: what GitHub answered, its request id,
// and the sentinel (kind) that tells callers what to do about it.
type apiError struct {
	kind       error // ErrRateLimited, ErrTransient, ErrUnauthorized, gitops.ErrConflict, … or nil
	status     int
	requestID  string
	msg        string
	retryAfter time.Duration
	cause      error
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.msg)
	var meta []string
	if e.status != 0 {
		meta = append(meta, fmt.Sprintf("HTTP %d", e.status))
	}
	if e.requestID != "" {
		meta = append(meta, "X-GitHub-Request-Id "+e.requestID)
	}
	if len(meta) > 0 {
		b.WriteString(" (" + strings.Join(meta, ", ") + ")")
	}
	return b.String()
}

func (e *apiError) Unwrap() []error {
	var out []error
	if e.kind != nil {
		out = append(out, e.kind)
	}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	return out
}

// redacted is an error whose message had a secret in it. It keeps only the
// sentinels the original matched (and its Retry-After), not the original
// itself, so nothing can unwrap its way back to the secret.
type redacted struct {
	msg        string
	kinds      []error
	retryAfter time.Duration
}

func (e *redacted) Error() string   { return e.msg }
func (e *redacted) Unwrap() []error { return e.kinds }

// sentinels are the errors callers branch on; scrub keeps them.
var sentinels = []error{
	ErrRateLimited, ErrTransient, ErrUnauthorized,
	gitops.ErrConflict, gitops.ErrNotFound, gitops.ErrInvalid,
	context.Canceled, context.DeadlineExceeded,
}

// scrub replaces every secret in err's message by "[REDACTED]". GitHub does
// not echo credentials, and none travel in URLs, but an error from a proxy or
// a library might: this is the last line of defence.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[REDACTED]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	r := &redacted{msg: msg, retryAfter: RetryAfter(err)}
	for _, k := range sentinels {
		if errors.Is(err, k) {
			r.kinds = append(r.kinds, k)
		}
	}
	return r
}

// short abbreviates a SHA for messages.
func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
