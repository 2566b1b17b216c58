package github

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pinroll/pinroll/internal/retry"
)

// WriteLimit is a cap on content-creating requests: at most N in any Per.
type WriteLimit struct {
	N   int
	Per time.Duration
}

// SecondaryLimits are GitHub's secondary rate limits on content-generating
// requests: "no more than 80 content-generating requests per minute and no
// more than 500 content-generating requests per hour"
// (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
// They count every REST POST, PATCH, PUT and DELETE and every GraphQL
// mutation of the account, whatever the repository, web edits included.
var SecondaryLimits = []WriteLimit{{N: 80, Per: time.Minute}, {N: 500, Per: time.Hour}}

// pacer keeps content-creating requests (CreateTree, CreateCommit,
// CreateBlob, the updateRefs mutation) under a set of limits, with one token
// bucket per limit; a request takes a token from each, waiting for the
// scarcest.
//
// A limit of N per Per is paced at 90% of N (at least one less), leaving the
// rest to the account's other writers (a person's web edit counts too) and
// to the time a request takes to reach GitHub. Of that, a third is the
// bucket's burst and two thirds its refill over Per: any window of Per holds
// no more than burst + refill, a lone pin after idle (three writes) never
// waits, and a sustained stream settles at the refill rate of the slowest
// bucket. With GitHub's limits the buckets hold 24 and 150 writes, refilled
// at 48 a minute (one per 1.25 s: a ref move's three writes every 3.75 s,
// which git.min_interval's 4 s default stays under) and 300 an hour (one
// per 12 s: a ref move every 36 s once a stream has spent the hour's burst).
// A nil pacer does not pace.
type pacer struct {
	buckets []*bucket
	mu      sync.Mutex
}

// bucket is one token bucket of a pacer; guarded by pacer.mu.
type bucket struct {
	burst    float64
	interval time.Duration // one token per interval
	tokens   float64       // may go negative: requests that have reserved a later slot
	last     time.Time
}

// newPacer paces under limits (GitHub's [SecondaryLimits] when empty), with
// perMinute, when positive, replacing the one-minute limit (or adding one);
// a negative perMinute does not pace at all.
func newPacer(perMinute int, limits []WriteLimit) *pacer {
	if perMinute < 0 {
		return nil
	}
	if len(limits) == 0 {
		limits = SecondaryLimits
	}
	if perMinute > 0 {
		var out []WriteLimit
		for _, l := range limits {
			if l.Per != time.Minute {
				out = append(out, l)
			}
		}
		limits = append(out, WriteLimit{N: perMinute, Per: time.Minute})
	}
	p := &pacer{}
	now := time.Now()
	for _, l := range limits {
		if l.N <= 0 || l.Per <= 0 {
			continue
		}
		usable := max(1, min(l.N-1, l.N*9/10))
		burst := max(1, usable/3)
		refill := max(1, usable-burst) // at least one a Per
		p.buckets = append(p.buckets, &bucket{
			burst:    float64(burst),
			interval: l.Per / time.Duration(refill),
			tokens:   float64(burst),
			last:     now,
		})
	}
	return p
}

// refill adds the tokens earned since last; pacer.mu must be held.
func (b *bucket) refill(now time.Time) {
	b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.interval))
	b.last = now
}

// need is how long until b has n more tokens than it has now.
func (b *bucket) need(n float64) time.Duration {
	return time.Duration(max(0, n-b.tokens) * float64(b.interval))
}

// wait takes a token of every bucket, waiting for the scarcest when one has
// none; a wait that would end past ctx's deadline takes nothing and fails at
// once with ErrRateLimited (retry after the wait), and a wait ctx cuts short
// gives its token back.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil || len(p.buckets) == 0 {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	var d time.Duration
	for _, b := range p.buckets {
		b.refill(now)
		d = max(d, b.need(1))
	}
	if dl, ok := ctx.Deadline(); ok && d > 0 && now.Add(d).After(dl) {
		p.mu.Unlock()
		return &apiError{kind: ErrRateLimited, retryAfter: d,
			msg: fmt.Sprintf("pacing writes under GitHub's secondary rate limit needs %s, past the deadline", d.Round(time.Millisecond))}
	}
	for _, b := range p.buckets {
		b.tokens--
	}
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if err := retry.Sleep(ctx, d); err != nil {
		// The request was never sent: its slot goes back to the buckets.
		p.mu.Lock()
		now := time.Now()
		for _, b := range p.buckets {
			b.refill(now)
			b.tokens = min(b.burst, b.tokens+1)
		}
		p.mu.Unlock()
		return fmt.Errorf("pacing writes: %w", err)
	}
	return nil
}

// writeTime is the least time n more requests take from now.
func (p *pacer) writeTime(n int) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	now := time.Now()
	for _, b := range p.buckets {
		b.refill(now)
		d = max(d, b.need(float64(n)))
	}
	return d
}

// WriteTime is the least time writing commits more commits takes at the
// paced rate (one CreateTree and one CreateCommit each, and the one
// updateRefs that moves the branch).
func (r *Repo) WriteTime(commits int) time.Duration { return r.lim.pace.writeTime(2*commits + 1) }
