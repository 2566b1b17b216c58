// Package retry is pinroll's one retry loop: it runs an operation again after
// a failure the operation itself marks as worth retrying, waiting a jittered,
// exponentially growing time in between, within an attempt bound, a time
// bound and the context's deadline. It never starts a wait that would end
// past the deadline: the last failure is returned at once instead.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy bounds a retry loop. The zero Policy calls the operation once.
type Policy struct {
	// Attempts is the most calls of the operation (default 1: no retry).
	Attempts int
	// Within bounds the time from the first call to the end of the last
	// wait: a wait that would end later is not started (0: only the
	// context's deadline bounds it).
	Within time.Duration
	// Base is the wait after the first failure; it doubles after each
	// further one, up to Max (0: no cap). The wait is jittered down to
	// half of that, so that competing callers spread out. A zero Base
	// retries at once.
	Base time.Duration
	Max  time.Duration
	// Reserve is the time an attempt needs after a wait: a wait that
	// leaves less than Reserve before the context's deadline is not
	// started.
	Reserve time.Duration
	// OnRetry, when set, is called before each wait with the attempt that
	// failed, the wait and its error (to log it).
	OnRetry func(attempt int, wait time.Duration, err error)
}

// again marks an error worth retrying; see [Again] and [After].
type again struct {
	err   error
	after time.Duration
}

func (a *again) Error() string { return a.err.Error() }
func (a *again) Unwrap() error { return a.err }

// Again marks err as worth retrying after the policy's backoff. The
// operation must return it as is, not wrapped: a marked error that a caller
// wrapped is final, so that nested loops do not multiply their attempts.
func Again(err error) error { return &again{err: err} }

// After marks err as worth retrying after at least d, as a server's
// Retry-After asks; the policy's backoff applies when it is longer.
func After(d time.Duration, err error) error { return &again{err: err, after: d} }

// Do calls fn with attempt = 1, 2, … until it returns nil or an error not
// marked by [Again] or [After], or until no retry is allowed: the attempts
// are spent, or the wait would end past Within or (less Reserve) the
// context's deadline. It returns fn's last error without its mark. When the
// context ends during a wait, the error wraps both the context's cause and
// fn's last error.
func (p Policy) Do(ctx context.Context, fn func(attempt int) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := fn(attempt)
		a, ok := err.(*again)
		if !ok {
			return err
		}
		err = a.err
		if attempt >= p.Attempts {
			return err
		}
		wait := max(p.backoff(attempt), a.after)
		end := time.Now().Add(wait)
		if p.Within > 0 && end.After(start.Add(p.Within)) {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && end.Add(p.Reserve).After(dl) {
			return err
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, wait, err)
		}
		if err := Sleep(ctx, wait); err != nil {
			return fmt.Errorf("wait to retry: %w (after: %w)", err, a.err)
		}
	}
}

// backoff is the jittered wait after failed attempt n (1-based):
// Base·2^(n-1), capped at Max, then taken down by up to half at random.
func (p Policy) backoff(n int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 1; i < n && d < time.Duration(1)<<60 && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends; it returns the context's cause then.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
