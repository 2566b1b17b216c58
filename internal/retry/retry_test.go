package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

func TestDo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		policy    Policy
		deadline  time.Duration // 0: none
		cancelAt  time.Duration // 0: never
		fail      func(attempt int) error
		wantCalls int
		wantErr   []error // errors.Is each; nil: success
		minTime   time.Duration
		maxTime   time.Duration
	}{
		{
			name:   "success at once",
			policy: Policy{Attempts: 5, Base: time.Second},
			fail:   func(int) error { return nil }, wantCalls: 1, maxTime: 100 * time.Millisecond,
		},
		{
			name:   "unmarked error is final",
			policy: Policy{Attempts: 5, Base: time.Second},
			fail:   func(int) error { return errBusy }, wantCalls: 1, wantErr: []error{errBusy}, maxTime: 100 * time.Millisecond,
		},
		{
			name:   "wrapped mark is final",
			policy: Policy{Attempts: 5, Base: time.Second},
			fail:   func(int) error { return fmt.Errorf("outer: %w", Again(errBusy)) }, wantCalls: 1, wantErr: []error{errBusy},
			maxTime: 100 * time.Millisecond,
		},
		{
			name:   "retried until success",
			policy: Policy{Attempts: 5, Base: time.Millisecond},
			fail: func(n int) error {
				if n < 3 {
					return Again(errBusy)
				}
				return nil
			},
			wantCalls: 3,
		},
		{
			name:   "attempts spent",
			policy: Policy{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond},
			fail:   func(int) error { return Again(errBusy) }, wantCalls: 4, wantErr: []error{errBusy},
		},
		{
			name:   "zero policy calls once",
			policy: Policy{},
			fail:   func(int) error { return Again(errBusy) }, wantCalls: 1, wantErr: []error{errBusy},
		},
		{
			name:   "zero base retries at once",
			policy: Policy{Attempts: 100},
			fail:   func(int) error { return Again(errBusy) }, wantCalls: 100, wantErr: []error{errBusy}, maxTime: 100 * time.Millisecond,
		},
		{
			name:   "time bound",
			policy: Policy{Attempts: 100, Base: 40 * time.Millisecond, Within: 100 * time.Millisecond},
			fail:   func(int) error { return Again(errBusy) }, wantErr: []error{errBusy}, maxTime: 150 * time.Millisecond,
		},
		{
			name:   "no wait past the deadline",
			policy: Policy{Attempts: 5, Base: time.Millisecond}, deadline: 2 * time.Second,
			fail: func(int) error { return After(time.Minute, errBusy) }, wantCalls: 1, wantErr: []error{errBusy},
			maxTime: 100 * time.Millisecond,
		},
		{
			name:   "reserve kept before the deadline",
			policy: Policy{Attempts: 5, Reserve: time.Second}, deadline: 900 * time.Millisecond,
			fail: func(int) error { return After(10*time.Millisecond, errBusy) }, wantCalls: 1, wantErr: []error{errBusy},
			maxTime: 100 * time.Millisecond,
		},
		{
			name:   "after outweighs a shorter backoff",
			policy: Policy{Attempts: 2, Base: time.Millisecond}, deadline: 10 * time.Second,
			fail: func(n int) error {
				if n == 1 {
					return After(60*time.Millisecond, errBusy)
				}
				return nil
			},
			wantCalls: 2, minTime: 60 * time.Millisecond,
		},
		{
			name:   "cancelled during the wait",
			policy: Policy{Attempts: 5, Base: time.Minute}, cancelAt: 30 * time.Millisecond,
			fail: func(int) error { return Again(errBusy) }, wantCalls: 1, wantErr: []error{errBusy, context.Canceled},
			maxTime: time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			if tc.cancelAt > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tc.cancelAt, cancel)
			}
			calls, retries := 0, 0
			p := tc.policy
			p.OnRetry = func(attempt int, _ time.Duration, err error) {
				retries++
				if attempt != calls || !errors.Is(err, errBusy) {
					t.Errorf("OnRetry(%d, %v) after call %d", attempt, err, calls)
				}
			}
			start := time.Now()
			err := p.Do(ctx, func(attempt int) error {
				calls++
				if attempt != calls {
					t.Errorf("attempt %d on call %d", attempt, calls)
				}
				return tc.fail(attempt)
			})
			elapsed := time.Since(start)
			if tc.wantCalls > 0 && calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil && err != nil {
				t.Errorf("Do = %v, want success", err)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Do = %v, want it to wrap %v", err, want)
				}
			}
			var a *again
			if errors.As(err, &a) && err == error(a) {
				t.Errorf("Do returned the mark itself: %v", err)
			}
			if tc.cancelAt == 0 && retries != calls-1 {
				t.Errorf("OnRetry called %d times for %d calls", retries, calls)
			}
			if elapsed < tc.minTime || (tc.maxTime > 0 && elapsed > tc.maxTime) {
				t.Errorf("took %s, want between %s and %s", elapsed, tc.minTime, tc.maxTime)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		policy   Policy
		attempt  int
		min, max time.Duration
	}{
		{"first", Policy{Base: 20 * time.Millisecond}, 1, 10 * time.Millisecond, 20 * time.Millisecond},
		{"doubles", Policy{Base: 20 * time.Millisecond}, 3, 40 * time.Millisecond, 80 * time.Millisecond},
		{"capped", Policy{Base: 20 * time.Millisecond, Max: time.Second}, 20, 500 * time.Millisecond, time.Second},
		{"no overflow", Policy{Base: time.Minute}, 200, time.Duration(1) << 59, time.Duration(1) << 61},
		{"zero base", Policy{Max: time.Second}, 5, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if d := tc.policy.backoff(tc.attempt); d < tc.min || d > tc.max {
					t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempt, d, tc.min, tc.max)
				}
			}
		})
	}
}
