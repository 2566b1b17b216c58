package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pinroll/pinroll/internal/ledger"
)

// One sync point per pin (issue 14): a delivery's claim is one ledger write,
// and everything after git made it durable is another. The pins a delivery's
// reconciles committed travel with it ([durable]) and are recorded by the
// write that marks the delivery handled ([ledger.Ledger.MarkDelivery]), so a
// delivery costs the ledger two transactions, and concurrent deliveries share
// them.
//
// Recording after the branch lock is released opens one gap: the next round
// may amend the commit before the pins it carried are recorded, and repoint
// the ledger's pins (RepointPins) before those exist. [amends] closes it in
// this process without making anyone wait: every amend and squash is noted
// before its repoint, and a recording checks after its write whether the
// commit it recorded was replaced, and then repoints the pins itself. The
// history entries keep the commit that carried their digest.
//
// Git has the effect before these writes start, so they are not cut short
// when the request ends: a delivery that gave up still leaves the ledger
// saying what git carries ([recordTimeout]).

// recordTimeout bounds a ledger write that records what git already
// carries; the request's own end does not cancel it.
const recordTimeout = 30 * time.Second

// durable collects the pins one delivery's reconciles made durable in git.
type durable struct {
	pins []ledger.Committed
}

// add notes that pins are durable at commit, each dated by its claim.
func (d *durable) add(pins []ledger.Pin, commit string) {
	for _, p := range pins {
		// The entry is dated by the claim, not by this write: two processes
		// recording their commits in either order keep history in pin order.
		d.pins = append(d.pins, ledger.Committed{Pin: p, Commit: commit, At: p.Time})
	}
}

// amendLimit bounds the replaced commits [amends] remembers: a recording
// follows its round within moments, so a thousand amends back is plenty.
const amendLimit = 1024

// amends remembers which commit replaced which in this process (an amend,
// or a squash's rewrite), for recordings that end after the repoint.
type amends struct {
	mu    sync.Mutex
	next  map[string]string // replaced → replacement
	order []string          // the keys of next, oldest first
}

// note records moved (replaced → replacement); the caller repoints the
// ledger's pins afterwards.
func (a *amends) note(moved map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == nil {
		a.next = map[string]string{}
	}
	for old, c := range moved {
		if _, ok := a.next[old]; !ok {
			a.order = append(a.order, old)
		}
		a.next[old] = c
	}
	for len(a.order) > amendLimit {
		delete(a.next, a.order[0])
		a.order = a.order[1:]
	}
}

// carriers returns, for each of commits, the commit that carries what it
// carried now (itself when it was not replaced).
func (a *amends) carriers(commits []string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(commits))
	for i, c := range commits {
		for range amendLimit { // a chain, never a cycle: bounded all the same
			n, ok := a.next[c]
			if !ok {
				break
			}
			c = n
		}
		out[i] = c
	}
	return out
}

// record runs write, which records pins, with a context the request's end
// does not cancel. When an amend of this process has replaced the commit of
// one of the pins (before or during write), its repoint may have come before
// the write: record then repoints those pins to the commit that carries them
// now.
func (e *Engine) record(ctx context.Context, pins []ledger.Committed, write func(context.Context, []ledger.Committed) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := write(ctx, pins); err != nil {
		return err
	}
	commits := make([]string, len(pins))
	for i, p := range pins {
		commits[i] = p.Commit
	}
	moved := map[string]string{}
	for i, c := range e.amends.carriers(commits) {
		if c != commits[i] {
			moved[commits[i]] = c
		}
	}
	if len(moved) > 0 {
		e.repoint(ctx, moved)
	}
	return nil
}

// commitPins records in the ledger that pins are durable at commit.
func (e *Engine) commitPins(ctx context.Context, pins []ledger.Pin, commit string) error {
	var d durable
	d.add(pins, commit)
	return e.commitDurable(ctx, &d)
}

// commitDurable records the pins of d, for a caller with no delivery to mark.
func (e *Engine) commitDurable(ctx context.Context, d *durable) error {
	return e.record(ctx, d.pins, func(ctx context.Context, pins []ledger.Committed) error {
		for _, c := range pins {
			if err := e.ledger.CommitPin(ctx, c.Pin, c.Commit, c.At); err != nil {
				return fmt.Errorf("%w: record pin %s/%s at %s: %w", ErrTransient, c.Pin.Env, c.Pin.Image, short(c.Commit), err)
			}
		}
		return nil
	})
}

// markDelivery records the pins of d and marks delivery handled with outcome,
// in one ledger write.
func (e *Engine) markDelivery(ctx context.Context, delivery string, outcome Outcome, d *durable) error {
	return e.record(ctx, d.pins, func(ctx context.Context, pins []ledger.Committed) error {
		return e.ledger.MarkDelivery(ctx, delivery, string(outcome), pins...)
	})
}
