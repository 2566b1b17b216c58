package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/logging"
)

// Group commit (issue 14): deliveries of track pins claim in the ledger, then
// join their branch's next round instead of reconciling one by one. A round
// reconciles every target joined so far in one rolling commit, at most once
// per git.min_interval per branch, and answers all its waiters together.
//
// Ack rule (SPEC §5): a waiter joins a round that has not started yet, and
// the round reads the desired pins from the ledger after it starts, so the
// round commits the waiter's claim or a newer one before answering it. A
// waiter whose claim is overtaken by a newer claim in this process, on every
// target it waits for, is released at once as superseded: the newer claim's
// own delivery carries the effect. An error in a round fails every waiter of
// it. Other processes are excluded by the compare-and-swap, as before.

// groups holds the group-commit state of every branch.
type groups struct {
	mu sync.Mutex
	m  map[string]*branchGroup
}

// branchGroup is one branch's group-commit state; its fields are guarded by
// groups.mu.
type branchGroup struct {
	pending *round    // the round that waiters join; nil when none
	running bool      // a goroutine runs this branch's rounds
	next    time.Time // the earliest start of a round after a ref move
	// newest is the newest claim key joined per target (noteKey), and
	// bumped is closed, then replaced, whenever one changes.
	newest map[string]ledger.Key
	bumped chan struct{}
}

// round is one reconcile shared by its waiters.
type round struct {
	targets []target
	keys    map[string]bool // noteKeys of targets
	ctxs    []context.Context
	done    chan struct{}
	// waiting counts the waiters that have not left it (overtaken, or out
	// of time), and finished says the results below are set; both are
	// guarded by groups.mu. A round that finishes with no waiter records
	// its pins itself: nobody else will.
	waiting  int
	finished bool

	// Set before done is closed.
	commit  string
	desired []ledger.Pin // the pins git carries at commit, to record
	changed []ledger.Pin
	notes   map[string]*note
	err     error
}

// grouped is what a waiter learns from its round.
type grouped struct {
	commit  string
	desired []ledger.Pin // for the waiter to record ([durable])
	changed []ledger.Pin
	// overtaken says the waiter was released before its round because
	// newer claims were made for all its targets.
	overtaken bool
}

// reconcileGrouped reconciles targets, claimed with key, on branch with the
// rolling commit, sharing the reconcile with the other deliveries waiting on
// the branch. It fills notes for targets as reconcileNoted does.
func (e *Engine) reconcileGrouped(ctx context.Context, branch string, key ledger.Key, targets []target, notes map[string]*note) (grouped, error) {
	g, r, err := e.join(ctx, branch, key, targets)
	if err != nil {
		return grouped{}, err
	}
	for {
		e.groups.mu.Lock()
		if r.finished {
			e.groups.mu.Unlock()
			break
		}
		over := true
		for _, t := range targets {
			if n, ok := g.newest[noteKey(t)]; !ok || !key.Less(n) {
				over = false
			}
		}
		if over {
			r.waiting--
			e.groups.mu.Unlock()
			return grouped{overtaken: true}, nil
		}
		bumped := g.bumped
		e.groups.mu.Unlock()
		select {
		case <-r.done:
		case <-bumped:
		case <-ctx.Done():
			e.groups.mu.Lock()
			finished := r.finished
			if !finished {
				r.waiting--
			}
			e.groups.mu.Unlock()
			if !finished {
				return grouped{}, fmt.Errorf("%w: wait for branch %s: %w", ErrTransient, branch, context.Cause(ctx))
			}
		}
	}
	if r.err != nil {
		return grouped{}, r.err
	}
	for _, t := range targets {
		if n := r.notes[noteKey(t)]; n != nil {
			notes[noteKey(t)] = n
		}
	}
	return grouped{commit: r.commit, desired: r.desired, changed: r.changed}, nil
}

// join adds targets to branch's pending round, starting the branch's
// goroutine when none runs. A request whose deadline comes before the
// branch's next ref move may start is refused at once.
func (e *Engine) join(ctx context.Context, branch string, key ledger.Key, targets []target) (*branchGroup, *round, error) {
	e.groups.mu.Lock()
	defer e.groups.mu.Unlock()
	if e.groups.m == nil {
		e.groups.m = map[string]*branchGroup{}
	}
	g := e.groups.m[branch]
	if g == nil {
		g = &branchGroup{newest: map[string]ledger.Key{}, bumped: make(chan struct{})}
		e.groups.m[branch] = g
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(g.next) {
		return nil, nil, fmt.Errorf("%w: branch %s moves next in %s, past this request's deadline",
			ErrTransient, branch, time.Until(g.next).Round(time.Millisecond))
	}
	r := g.pending
	if r == nil {
		r = &round{keys: map[string]bool{}, done: make(chan struct{})}
		g.pending = r
	}
	r.ctxs = append(r.ctxs, ctx)
	r.waiting++
	bump := false
	for _, t := range targets {
		k := noteKey(t)
		if !r.keys[k] {
			r.keys[k] = true
			r.targets = append(r.targets, t)
		}
		if n, ok := g.newest[k]; !ok || n.Less(key) {
			g.newest[k], bump = key, true
		}
	}
	if bump {
		close(g.bumped)
		g.bumped = make(chan struct{})
	}
	if !g.running {
		g.running = true
		go e.runRounds(branch, g)
	}
	return g, r, nil
}

// runRounds runs branch's pending rounds one after the other, each no sooner
// than the minimum interval after the previous ref move, and returns when
// none is pending.
func (e *Engine) runRounds(branch string, g *branchGroup) {
	for {
		e.groups.mu.Lock()
		wait := time.Until(g.next)
		e.groups.mu.Unlock()
		if wait > 0 {
			time.Sleep(wait) // waiters keep joining the pending round
		}
		e.groups.mu.Lock()
		r := g.pending
		g.pending = nil
		if r == nil {
			g.running = false
			clear(g.newest) // nothing waits: forget the keys
			e.groups.mu.Unlock()
			return
		}
		e.groups.mu.Unlock()

		ctx, cancel := roundContext(r.ctxs)
		r.notes = map[string]*note{}
		r.commit, r.desired, r.changed, r.err = e.reconcileLocked(ctx, branch, gitops.KindRolling, r.targets, nil, r.notes)
		e.groups.mu.Lock()
		if r.err == nil && len(r.changed) > 0 {
			g.next = time.Now().Add(e.cfg.Git.MinInterval.Duration)
		}
		r.finished = true
		orphaned := r.waiting == 0
		e.groups.mu.Unlock()
		close(r.done)
		if r.err == nil && orphaned {
			if err := e.commitPins(ctx, r.desired, r.commit); err != nil {
				// Git carries them: the next delivery for these pins
				// reads git and records them.
				logging.Logger(ctx).Warn("record pins of a round nobody waited for failed", "branch", branch, "error", err.Error())
			}
		}
		if r.err == nil {
			// After the round: a slow events topic must not stall pins.
			e.publish(ctx, r.changed, r.commit)
		}
		cancel()
	}
}

// roundContext is a context for a round serving the requests of ctxs: it
// keeps the first one's values (the logger) and ends at the latest of their
// deadlines, or never when one of them has none.
func roundContext(ctxs []context.Context) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctxs[0])
	var latest time.Time
	for _, c := range ctxs {
		dl, ok := c.Deadline()
		if !ok {
			return context.WithCancel(base)
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	return context.WithDeadline(base, latest)
}

// reconcilePush is reconcileNoted for a delivery's targets claimed with key:
// rolling commits are grouped (reconcileGrouped) and their pins left in d
// for the delivery's last ledger write to record; other kinds are reconciled
// and recorded alone. overtaken says newer claims released the delivery
// before its round.
func (e *Engine) reconcilePush(ctx context.Context, branch string, kind gitops.Kind, key ledger.Key, targets []target, notes map[string]*note, d *durable) (commit string, changed []ledger.Pin, overtaken bool, err error) {
	if kind != gitops.KindRolling {
		commit, changed, err = e.reconcileNoted(ctx, branch, kind, targets, nil, notes)
		return commit, changed, false, err
	}
	r, err := e.reconcileGrouped(ctx, branch, key, targets, notes)
	d.add(r.desired, r.commit)
	return r.commit, r.changed, r.overtaken, err
}
