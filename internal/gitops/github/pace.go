package github

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// secondaryWritesPerMinute is GitHub's secondary rate limit on
// content-creating requests
// (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
const secondaryWritesPerMinute = 80

// pacer is a token bucket for content-creating requests (CreateTree,
// CreateCommit, CreateBlob): burst requests at once, then one per interval,
// so that no rolling minute holds more than perMinute of them. The burst is
// half of them, so that ordinary pins (two writes each) never wait. A nil
// pacer does not pace.
type pacer struct {
	burst    float64
	interval time.Duration

	mu     sync.Mutex
	tokens float64 // may go negative: requests that have reserved a later slot
	last   time.Time
}

// newPacer paces perMinute requests a minute: 0 means GitHub's 80, a
// negative number not at all.
func newPacer(perMinute int) *pacer {
	if perMinute < 0 {
		return nil
	}
	if perMinute == 0 {
		perMinute = secondaryWritesPerMinute
	}
	burst := max(1, perMinute/2)
	if perMinute == burst {
		perMinute++ // at least one refill a minute
	}
	return &pacer{
		burst:    float64(burst),
		interval: time.Minute / time.Duration(perMinute-burst),
		tokens:   float64(burst),
		last:     time.Now(),
	}
}

// refill adds the tokens earned since last; p.mu must be held.
func (p *pacer) refill(now time.Time) {
	p.tokens = min(p.burst, p.tokens+float64(now.Sub(p.last))/float64(p.interval))
	p.last = now
}

// wait takes a token, waiting for it when there is none; a wait that would
// end past ctx's deadline fails at once.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	p.refill(now)
	d := time.Duration((1 - p.tokens) * float64(p.interval))
	if dl, ok := ctx.Deadline(); ok && d > 0 && now.Add(d).After(dl) {
		p.mu.Unlock()
		return fmt.Errorf("pacing writes under GitHub's secondary rate limit needs %s, past the deadline", d.Round(time.Millisecond))
	}
	p.tokens--
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pacing writes: %w", context.Cause(ctx))
	}
}

// writeTime is the least time n more requests take from now.
func (p *pacer) writeTime(n int) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refill(time.Now())
	return time.Duration(max(0, float64(n)-p.tokens) * float64(p.interval))
}

// WriteTime is the least time writing commits more commits takes at the
// paced rate (one CreateTree and one CreateCommit each).
func (r *Repo) WriteTime(commits int) time.Duration { return r.pace.writeTime(2 * commits) }
