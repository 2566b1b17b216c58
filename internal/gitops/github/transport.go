package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
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
// GraphQL alike). It counts calls, retries 5xx answers and network errors
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
	sleep        func(ctx context.Context, d time.Duration) error
	now          func() time.Time
	secrets      []string // redacted from logged error texts
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
		sleep:        sleepCtx,
		now:          time.Now,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RoundTrip implements http.RoundTripper.
func (l *limiter) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	rewindable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	failures, rateWaits := 0, 0
	for {
		r, err := rewind(req)
		if err != nil {
			return nil, fmt.Errorf("rewind request body: %w", err)
		}
		l.calls.Add(1)
		start := l.now()
		resp, err := l.next.RoundTrip(r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if ae := appTokenError(err); ae != nil {
				if !errors.Is(ae, ErrTransient) {
					return nil, ae
				}
			}
			failures++
			if failures > l.retries || !rewindable {
				return nil, &apiError{kind: ErrTransient, msg: fmt.Sprintf("%s %s failed %d times: %v", req.Method, req.URL.Path, failures, err), cause: err}
			}
			wait := l.backoffFor(failures)
			l.log.WarnContext(ctx, "github call failed, retrying", "method", req.Method, "path", req.URL.Path, "error", l.redact(err.Error()), "attempt", failures, "wait", wait.String())
			if err := l.sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		reqID := resp.Header.Get("X-GitHub-Request-Id")
		l.log.DebugContext(ctx, "github call", "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode,
			"request_id", reqID, "duration_ms", l.now().Sub(start).Milliseconds(),
			"ratelimit_remaining", resp.Header.Get("X-RateLimit-Remaining"))

		switch {
		case resp.StatusCode >= 500:
			msg := githubMessage(drain(resp))
			failures++
			if failures > l.retries || !rewindable {
				return nil, &apiError{kind: ErrTransient, status: resp.StatusCode, requestID: reqID,
					msg: fmt.Sprintf("GitHub answered %s %s with %d %s %d times", req.Method, req.URL.Path, resp.StatusCode, msg, failures)}
			}
			wait := l.backoffFor(failures)
			if ra, ok := retryAfterHeader(resp, l.now()); ok && ra <= l.maxWait {
				wait = max(wait, ra)
			}
			l.log.WarnContext(ctx, "github server error, retrying", "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode, "request_id", reqID, "attempt", failures, "wait", wait.String())
			if err := l.sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue

		case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests:
			body := drain(resp)
			wait, limited := rateLimitWait(resp, body, l.now())
			if !limited {
				resp.Body = io.NopCloser(bytes.NewReader(body))
				return resp, nil
			}
			waits := rateWaits
			if !rewindable {
				waits = l.maxRateWaits // the body is spent: no second try
			}
			if err := l.rateLimited(ctx, waits, wait, resp.StatusCode, reqID, githubMessage(body)); err != nil {
				return nil, err
			}
			rateWaits++
			continue
		}
		return resp, nil
	}
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

// fits reports whether waiting d leaves the call time to run before its
// deadline, and d is within the cap.
// rateLimited handles a rate limit GitHub announced (how it was announced is
// the caller's to read): when the wait fits the call's deadline and the
// limiter's budget (waits so far < maxRateWaits), it logs and sleeps, and
// returns nil so the caller tries again; otherwise it returns the
// ErrRateLimited error (or the context's, if the sleep was cut short).
func (l *limiter) rateLimited(ctx context.Context, waits int, wait time.Duration, status int, reqID, detail string) error {
	if waits < l.maxRateWaits && l.fits(ctx, wait) {
		l.log.WarnContext(ctx, "github rate limit, waiting", "status", status, "request_id", reqID, "wait", wait.String())
		return l.sleep(ctx, wait)
	}
	msg := fmt.Sprintf("rate limited: GitHub asks to wait %s, more than this call can wait", wait.Round(time.Second))
	if detail != "" {
		msg = fmt.Sprintf("rate limited: GitHub asks to wait %s (%s), more than this call can wait", wait.Round(time.Second), detail)
	}
	return &apiError{kind: ErrRateLimited, status: status, requestID: reqID, retryAfter: wait, msg: msg}
}

func (l *limiter) fits(ctx context.Context, d time.Duration) bool {
	if d > l.maxWait {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && l.now().Add(d+250*time.Millisecond).After(dl) {
		return false
	}
	return true
}

// backoffFor is the wait before retry n (1-based): backoff·2^(n-1), with
// jitter taking it down to half of that.
func (l *limiter) backoffFor(n int) time.Duration {
	d := l.backoff << (n - 1)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// rewind returns a copy of req with a fresh body.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
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
