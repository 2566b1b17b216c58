package github

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		perMinute int
		burst     float64
		interval  time.Duration
	}{
		{"GitHub's default", 0, 40, 1500 * time.Millisecond},
		{"four a minute", 4, 2, 30 * time.Second},
		{"one a minute", 1, 1, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPacer(tc.perMinute)
			if p.burst != tc.burst || p.interval != tc.interval {
				t.Fatalf("burst %v interval %v, want %v %v", p.burst, p.interval, tc.burst, tc.interval)
			}
			// No rolling minute holds more than perMinute requests (the one
			// at its very end aside).
			limit := tc.perMinute
			if limit == 0 {
				limit = 80
			}
			if got := p.burst + float64(time.Minute/p.interval); got > float64(limit+1) {
				t.Errorf("burst + a minute's refill = %v, over %d", got, limit)
			}
			if d := p.writeTime(int(tc.burst)); d != 0 {
				t.Errorf("writeTime(burst) = %v, want 0", d)
			}
			if d := p.writeTime(int(tc.burst) + 2); d < 2*tc.interval-time.Second || d > 2*tc.interval {
				t.Errorf("writeTime(burst+2) = %v, want about %v", d, 2*tc.interval)
			}
			for range int(tc.burst) {
				if err := p.wait(t.Context()); err != nil {
					t.Fatalf("wait within the burst: %v", err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			err := p.wait(ctx)
			if err == nil || !strings.Contains(err.Error(), "deadline") || time.Since(start) > 500*time.Millisecond {
				t.Errorf("wait past the burst with 1s left: %v after %v, want an immediate deadline error", err, time.Since(start))
			}
		})
	}
	off := newPacer(-1)
	if off != nil || off.wait(context.Background()) != nil || off.writeTime(1000) != 0 {
		t.Errorf("newPacer(-1) paces")
	}
}
