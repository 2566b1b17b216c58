package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"

	"github.com/pinroll/pinroll/internal/retry"
)

// Defaults of the limiter.
const (
	defaultRetries      = 3                      // retries of a 5xx or network failure
	defaultBackoff      = 500 * time.Millisecond // first retry waits 0.5–1× this, doubling
	defaultMaxWait      = time.Minute            // longest rate-limit wait
	defaultMaxRateWaits = 2                      // rate-limit waits per call
	secondaryLimitWait  = time.Minute            // GitHub: wait at least a minute when it says nothing
	resetSkew           = time.Second            // added to X-RateLimit-Reset for clock skew
)

// limiter is the http.RoundTripper every GitHub call goes through (REST and
// GraphQL alike). It paces content-creating requests (every attempt of a
// REST write or a GraphQL mutation) under GitHub's secondary limits, counts
// calls, retries 5xx answers and network errors
// with exponential backoff and jitter, and honours Retry-After and
// X-RateLimit-Reset when the wait fits the request's context deadline and
// maxWait; otherwise it fails with ErrRateLimited or ErrTransient. Other
// answers (401, 403 without a rate limit, 404, 422, …) pass through.
type limiter struct {
	next         http.RoundTripper
	calls        atomic.Int64
	log          *slog.Logger
	retries      int
	backoff      time.Duration
	maxWait      time.Duration
	maxRateWaits int
	now          func() time.Time
	secrets      []string // redacted from logged error texts
	pace         *pacer   // content-creating requests wait here; nil: unpaced
}

func newLimiter(next http.RoundTripper, log *slog.Logger, maxWait time.Duration) *limiter {
	if maxWait <= 0 {
		maxWait = defaultMaxWait
	}
	return &limiter{
		next:         next,
		log:          log,
		retries:      defaultRetries,
		backoff:      defaultBackoff,
		maxWait:      maxWait,
		maxRateWaits: defaultMaxRateWaits,
		now:          time.Now,
	}
}

// rateReserve is the time a call needs after a wait: a wait that would leave
// less before the context's deadline is not started.
const rateReserve = 250 * time.Millisecond

// policy is the retry policy of one GitHub call: failures retried with
// backoff, rate limits waited out, and no wait that would end past the
// call's deadline. what names the call in the log.
func (l *limiter) policy(ctx context.Context, what string) retry.Policy {
	return retry.Policy{
		Attempts: 1 + l.retries + l.maxRateWaits,
		Base:     l.backoff,
		Reserve:  rateReserve,
		OnRetry: func(attempt int, wait time.Duration, err error) {
			msg := "github call failed, retrying"
			if errors.Is(err, ErrRateLimited) {
				msg = "github rate limit, waiting"
			}
			l.log.WarnContext(ctx, msg, "call", what, "error", l.redact(err.Error()), "attempt", attempt, "wait", wait.String())
		},
	}
}

// rateLimited is the one place where a rate limit GitHub announced (how it
// announced it is the caller's to read) becomes an error: ErrRateLimited
// with the wait GitHub asked for, marked for a retry after that wait while
// the call has waited fewer than maxRateWaits times and the wait is within
// maxWait. The retry loop ([limiter.policy]) waits only if the wait fits the
// call's deadline; otherwise it fails at once with this error, which the
// engine answers as transient (503).
func (l *limiter) rateLimited(waits int, wait time.Duration, status int, reqID, detail string) error {
	msg := fmt.Sprintf("rate limited: GitHub asks to wait %s, more than this call can wait", wait.Round(time.Second))
	if detail != "" {
		msg = fmt.Sprintf("rate limited: GitHub asks to wait %s (%s), more than this call can wait", wait.Round(time.Second), detail)
	}
	err := &apiError{kind: ErrRateLimited, status: status, requestID: reqID, retryAfter: wait, msg: msg}
	if waits >= l.maxRateWaits || wait > l.maxWait {
		return err
	}
	return retry.After(wait, err)
}

// RoundTrip implements http.RoundTripper. Like every RoundTripper it closes
// the request's body, even on errors: a body that can be replayed (GetBody)
// is never sent itself — every attempt sends a fresh copy — and is closed on
// return; one that cannot be replayed is sent once and not retried.
func (l *limiter) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	hasBody := req.Body != nil && req.Body != http.NoBody
	rewindable := !hasBody || req.GetBody != nil
	if hasBody && rewindable {
		defer req.Body.Close()
	}
	what := req.Method + " " + req.URL.Path
	failures, rateWaits := 0, 0
	var resp *http.Response
	err := l.policy(ctx, what).Do(ctx, func(int) error {
		r, err := rewind(req, hasBody && rewindable)
		if err != nil {
			return fmt.Errorf("rewind request body: %w", err)
		}
		if contentCreating(req) {
			if err := l.pace.wait(ctx); err != nil {
				return err
			}
		}
		l.calls.Add(1)
		start := l.now()
		resp, err = l.next.RoundTrip(r)
		if err != nil {
			resp = nil
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if ae := appTokenError(err); ae != nil && !errors.Is(ae, ErrTransient) {
				return ae
			}
			failures++
			e := &apiError{kind: ErrTransient, msg: fmt.Sprintf("%s failed %d times: %v", what, failures, err), cause: err}
			if failures > l.retries || !rewindable {
				return e
			}
			return retry.Again(e)
		}
		status, reqID := resp.StatusCode, resp.Header.Get("X-GitHub-Request-Id")
		l.log.DebugContext(ctx, "github call", "method", req.Method, "path", req.URL.Path, "status", status,
			"request_id", reqID, "duration_ms", l.now().Sub(start).Milliseconds(),
			"ratelimit_remaining", resp.Header.Get("X-RateLimit-Remaining"))

		switch {
		case status >= 500:
			msg := githubMessage(drain(resp))
			ra, hasRA := retryAfterHeader(resp, l.now())
			resp = nil
			failures++
			e := &apiError{kind: ErrTransient, status: status, requestID: reqID,
				msg: fmt.Sprintf("GitHub answered %s with %d %s %d times", what, status, msg, failures)}
			switch {
			case failures > l.retries || !rewindable:
				return e
			case hasRA && ra <= l.maxWait:
				return retry.After(ra, e)
			}
			return retry.Again(e)

		case status == http.StatusForbidden || status == http.StatusTooManyRequests:
			body := drain(resp)
			wait, limited := rateLimitWait(resp, body, l.now())
			if !limited {
				resp.Body = io.NopCloser(bytes.NewReader(body))
				return nil
			}
			resp = nil
			waits := rateWaits
			if !rewindable {
				waits = l.maxRateWaits // the body is spent: no second try
			}
			rateWaits++
			return l.rateLimited(waits, wait, status, reqID, githubMessage(body))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// mutationKey marks the context of a GraphQL mutation (see [asMutation]).
type mutationKey struct{}

// asMutation marks ctx as the context of a GraphQL mutation, which GitHub
// counts as content-generating like a REST write.
func asMutation(ctx context.Context) context.Context {
	return context.WithValue(ctx, mutationKey{}, true)
}

// contentCreating tells whether GitHub counts req against its limits on
// content-generating requests: a REST POST, PATCH, PUT or DELETE, or a
// GraphQL mutation (a GraphQL query is a POST too, and does not count).
func contentCreating(req *http.Request) bool {
	switch req.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	if strings.HasSuffix(req.URL.Path, "/graphql") {
		return req.Context().Value(mutationKey{}) != nil
	}
	return true
}

// redact hides secrets in a text about to be logged.
func (l *limiter) redact(s string) string {
	for _, sec := range l.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

// rewind returns a copy of req to send, with a fresh copy of the body when
// fresh is set.
func rewind(req *http.Request, fresh bool) (*http.Request, error) {
	r := req.Clone(req.Context())
	if fresh {
		b, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = b
	}
	return r, nil
}

// drain reads up to 64 KiB of the body and closes it.
func drain(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return b
}

// rateLimitWait tells whether a 403/429 answer is a rate limit and how long
// GitHub asks to wait: Retry-After first, then X-RateLimit-Remaining: 0 until
// X-RateLimit-Reset, then a minute for a secondary limit that says nothing.
func rateLimitWait(resp *http.Response, body []byte, now time.Time) (time.Duration, bool) {
	if d, ok := retryAfterHeader(resp, now); ok {
		return d, true
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(reset, 0).Sub(now)+resetSkew, 0), true
		}
		return secondaryLimitWait, true
	}
	msg := strings.ToLower(string(body))
	if resp.StatusCode == http.StatusTooManyRequests || strings.Contains(msg, "secondary rate limit") ||
		strings.Contains(msg, "abuse detection") || strings.Contains(msg, "rate limit exceeded") {
		return secondaryLimitWait, true
	}
	return 0, false
}

// retryAfterHeader parses Retry-After (seconds or an HTTP date).
func retryAfterHeader(resp *http.Response, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// appTokenError classifies a failed GitHub App token exchange: rejected
// credentials are ErrUnauthorized, a 5xx is transient (retried by the caller).
func appTokenError(err error) error {
	var he *ghinstallation.HTTPError
	if !errors.As(err, &he) {
		return nil
	}
	if he.Response == nil {
		return &apiError{kind: ErrTransient, msg: "GitHub App token exchange failed: " + he.Message}
	}
	body := drain(he.Response)
	status := he.Response.StatusCode
	reqID := he.Response.Header.Get("X-GitHub-Request-Id")
	if status >= 500 || status == http.StatusTooManyRequests {
		return &apiError{kind: ErrTransient, status: status, requestID: reqID, msg: "GitHub App token exchange failed"}
	}
	return &apiError{kind: ErrUnauthorized, status: status, requestID: reqID,
		msg: fmt.Sprintf("GitHub App token exchange for installation %d failed: %s (check PINROLL_GITHUB_APP_ID, PINROLL_GITHUB_APP_INSTALLATION_ID and the private key)", he.InstallationID, githubMessage(body))}
}

// githubMessage extracts GitHub's "message" from an error body, or a short
// prefix of the body.
func githubMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		return m.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "no message"
	}
	return s
}

// bearer adds a personal access token to requests for the API host only, so
// a redirect elsewhere never carries it.
type bearer struct {
	next  http.RoundTripper
	token string
	host  string
}

// RoundTrip implements http.RoundTripper.
func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, b.host) {
		return nil, fmt.Errorf("refusing to send credentials to %s (not the GitHub API host)", req.URL.Host)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
