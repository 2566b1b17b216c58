package github

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// bucketShape is what a test expects of one bucket.
type bucketShape struct {
	burst    float64
	interval time.Duration
}

func TestPacer(t *testing.T) {
	t.Parallel()
	github := []bucketShape{{24, 1250 * time.Millisecond}, {150, 12 * time.Second}}
	for _, tc := range []struct {
		name      string
		perMinute int
		limits    []WriteLimit
		want      []bucketShape
	}{
		{"GitHub's default", 0, nil, github},
		{"GitHub's, spelled out", 0, SecondaryLimits, github},
		{"four a minute", 4, nil, []bucketShape{{150, 12 * time.Second}, {1, 30 * time.Second}}},
		{"two a minute: one at once, then one a minute", 2, nil, []bucketShape{{150, 12 * time.Second}, {1, time.Minute}}},
		{"a test's small window", 0, []WriteLimit{{8, 6 * time.Second}}, []bucketShape{{2, 1200 * time.Millisecond}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPacer(tc.perMinute, tc.limits)
			if len(p.buckets) != len(tc.want) {
				t.Fatalf("%d buckets, want %d", len(p.buckets), len(tc.want))
			}
			limits := tc.limits
			if len(limits) == 0 {
				limits = SecondaryLimits
			}
			if tc.perMinute > 0 {
				limits = []WriteLimit{SecondaryLimits[1], {tc.perMinute, time.Minute}}
			}
			for i, b := range p.buckets {
				if b.burst != tc.want[i].burst || b.interval != tc.want[i].interval {
					t.Errorf("bucket %d: burst %v interval %v, want %v %v", i, b.burst, b.interval, tc.want[i].burst, tc.want[i].interval)
				}
				// No window of the limit's length holds more than burst +
				// refill, which leaves room under the limit (one write a
				// minute aside, which cannot).
				if got, l := b.burst+float64(limits[i].Per/b.interval), limits[i]; got > float64(max(l.N-1, 2)) {
					t.Errorf("bucket %d: burst + a window's refill = %v, not under %d", i, got, l.N)
				}
			}
			// A lone pin after idle (tree, commit, ref move) does not wait.
			if d := p.writeTime(1); d != 0 {
				t.Errorf("writeTime(1) = %v, want 0", d)
			}
			burst := int(tc.want[0].burst)
			for _, s := range tc.want {
				burst = min(burst, int(s.burst))
			}
			for range burst {
				if err := p.wait(t.Context()); err != nil {
					t.Fatalf("wait within the burst: %v", err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			err := p.wait(ctx)
			if err == nil || !errors.Is(err, ErrRateLimited) || RetryAfter(err) <= 0 || !strings.Contains(err.Error(), "deadline") || time.Since(start) > 500*time.Millisecond {
				t.Errorf("wait past the burst with 1s left: %v after %v, want an immediate rate-limit error", err, time.Since(start))
			}
		})
	}
	off := newPacer(-1, nil)
	if off != nil || off.wait(context.Background()) != nil || off.writeTime(1000) != 0 {
		t.Errorf("newPacer(-1) paces")
	}
}

// TestPacerKeepsEveryWindow: concurrent writers paced under two limits (a
// short and a longer window, as GitHub's minute and hour) never put more than
// a limit's N requests in any window of its length.
func TestPacerKeepsEveryWindow(t *testing.T) {
	t.Parallel()
	limits := []WriteLimit{{6, 300 * time.Millisecond}, {10, 1200 * time.Millisecond}}
	p := newPacer(0, limits)
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if err := p.wait(t.Context()); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(sent, time.Time.Compare)
	for _, l := range limits {
		for i := range sent {
			n := 0
			for _, s := range sent[i:] {
				if s.Sub(sent[i]) < l.Per {
					n++
				}
			}
			if n > l.N {
				t.Fatalf("%d requests within %v from request %d, over %d", n, l.Per, i, l.N)
			}
		}
	}
	// 20 requests: 3 at once, then one per 200 ms of the longer bucket.
	if took := sent[len(sent)-1].Sub(sent[0]); took < 3*time.Second {
		t.Errorf("20 requests took %v, want the longer window's pace (about 3.4 s)", took)
	}
}

// TestPacerCanceledWaitsGiveBack: a write whose wait is cut short was never
// sent, so it does not keep a slot: after five abandoned waits the next write
// waits what it would on a pacer nobody abandoned.
func TestPacerCanceledWaitsGiveBack(t *testing.T) {
	t.Parallel()
	p := newPacer(0, []WriteLimit{{N: 4, Per: 4 * time.Second}}) // burst 1, then one every 2 s
	if err := p.wait(context.Background()); err != nil {         // spends the burst
		t.Fatal(err)
	}
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background()) // no deadline: the wait starts
		time.AfterFunc(10*time.Millisecond, cancel)
		if err := p.wait(ctx); err == nil {
			t.Fatal("a wait cut short succeeded")
		}
	}
	if d := p.writeTime(1); d > 2500*time.Millisecond {
		t.Errorf("after five abandoned waits the next write waits %s, want at most 2 s", d)
	}
}
