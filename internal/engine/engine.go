// Package engine turns inputs into pins: an Artifact Registry push is recorded
// in the ledger, claimed as the desired pin of every environment tracking its
// tag, and reconciled into git with the rolling commit (SPEC §4.1, §5, §6).
//
// The ledger holds the desired state and git converges to it. Each delivery
// claims its pin in the ledger (a newer ordering key wins atomically), then,
// holding the branch's lock, re-reads the branch tip and only after that the
// desired pins, and commits what differs by compare-and-swap. Because the
// desired state is read after the tip, a commit built from stale desires cannot
// land: the tip it was built on would have moved. Deliveries that queue on the
// branch lock find git already at the newest desired pin and commit nothing, so
// a burst coalesces into one rolling commit.
//
// Track pins go further (group commit, group.go): a delivery joins its
// branch's next round, one reconcile commits every claim made so far and
// answers all its waiters, and rounds that move the ref are at least
// git.min_interval apart. A delivery whose claim a newer one overtakes is
// answered superseded at once (SPEC §5): only the newest claim waits for git.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/overlay"
)

// ErrTransient marks a failure worth retrying: git, the ledger or the network
// was unavailable, or the branch kept moving. Callers answer 503 (Pub/Sub
// redelivers) or nack.
var ErrTransient = errors.New("transient failure")

// Outcome is what handling one message did (SPEC §4.1).
type Outcome string

// Outcomes of a message. Every one of them but Failed is acknowledged.
const (
	Pinned     Outcome = "pinned"     // a pin changed in git
	Unchanged  Outcome = "unchanged"  // the pin already was this digest
	Recorded   Outcome = "recorded"   // digest stored; no environment tracks this tag
	Superseded Outcome = "superseded" // a newer message set the pin
	Held       Outcome = "held"       // automatic updates are paused
	Ignored    Outcome = "ignored"    // DELETE, unknown repository, ...
	Rejected   Outcome = "rejected"   // malformed
	Pending    Outcome = "pending"    // a release waits for its image (SPEC §4.2)
	Blocked    Outcome = "blocked"    // a release rule stopped a promotion
	// Failed is an environment's outcome when its overlay is missing or
	// broken (and a message's when all its environments failed): the other
	// environments are pinned, and the message is not acknowledged until a
	// human fixes the overlay.
	Failed Outcome = "failed"
)

// rank orders outcomes when one message touches several environments: the
// message's outcome is the most significant of its environments'.
var rank = map[Outcome]int{Pinned: 6, Unchanged: 5, Superseded: 4, Held: 3, Blocked: 2, Pending: 1}

// EnvResult is the outcome for one environment.
type EnvResult struct {
	Env     string  `json:"env"`
	Outcome Outcome `json:"outcome"`
	Digest  string  `json:"digest,omitempty"`
	Commit  string  `json:"commit,omitempty"`
	Reason  string  `json:"reason,omitempty"` // why it failed
}

// Result is what handling one message did.
type Result struct {
	Outcome   Outcome     `json:"outcome"`
	Reason    string      `json:"reason,omitempty"`
	Image     string      `json:"image,omitempty"`
	Digest    string      `json:"digest,omitempty"`
	Tag       string      `json:"tag,omitempty"`
	Envs      []EnvResult `json:"envs,omitempty"`
	Duplicate bool        `json:"duplicate,omitempty"`
	// Warnings are what a human should look at although the pin was made,
	// such as an images entry the edit had to create (SPEC §6.1).
	Warnings []string `json:"warnings,omitempty"`
}

// Commit returns the commit of the first environment that has one.
func (r Result) Commit() string {
	for _, e := range r.Envs {
		if e.Commit != "" {
			return e.Commit
		}
	}
	return ""
}

// Summary is r as the one log line of the event that had it (SPEC §9); what
// says what was handled ("gar message") and delivery is its id.
func (r Result) Summary(what, delivery string) logging.Event {
	ev := logging.Event{What: what, Delivery: delivery, Image: r.Image, Digest: r.Digest, Tag: r.Tag,
		Commit: r.Commit(), Outcome: string(r.Outcome), Reason: r.Reason, Duplicate: r.Duplicate, Warnings: r.Warnings}
	for _, e := range r.Envs {
		ev.Envs = append(ev.Envs, e.Env)
	}
	return ev
}

// Event is published after every pin that changed git (SPEC §3 events).
type Event struct {
	Env    string       `json:"env"`
	Image  string       `json:"image"`
	Digest string       `json:"digest"`
	Tag    string       `json:"tag,omitempty"`
	Commit string       `json:"commit"`
	Cause  ledger.Cause `json:"cause"`
	Time   time.Time    `json:"time"`
}

// Publisher delivers pin events; a failure is logged and never undoes a pin.
type Publisher interface {
	Publish(ctx context.Context, ev Event) error
}

// Options configures an [Engine].
type Options struct {
	Config *config.Config
	Ledger ledger.Ledger
	Repo   gitops.Repo
	// Events, when set, receives one event per pin that changed git.
	Events Publisher
	// Registry, when set, resolves release tags the ledger does not know.
	Registry Registry
	// Attempts and Backoff bound the compare-and-swap retries (see gitops.Writer).
	Attempts int
	Backoff  time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Engine applies pins. It is safe for concurrent use.
type Engine struct {
	cfg      *config.Config
	ledger   ledger.Ledger
	writer   *gitops.Writer
	events   Publisher
	registry Registry
	now      func() time.Time
	locks    branchLocks
	groups   groups
	checks   overlayChecks
	amends   amends
}

// New returns an engine over the given ledger and repository.
func New(o Options) *Engine {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Engine{
		cfg:      o.Config,
		ledger:   o.Ledger,
		events:   o.Events,
		registry: o.Registry,
		now:      now,
		writer: &gitops.Writer{
			Repo:     o.Repo,
			Author:   gitops.Signature{Name: o.Config.Git.Author.Name, Email: o.Config.Git.Author.Email},
			Attempts: o.Attempts,
			Backoff:  o.Backoff,
			Now:      now,
		},
	}
}

// Config returns the engine's configuration.
func (e *Engine) Config() *config.Config { return e.cfg }

// Ledger returns the engine's ledger.
func (e *Engine) Ledger() ledger.Ledger { return e.ledger }

// target is one (environment, image) pair to reconcile.
type target struct {
	env   *config.Environment
	image *config.Image
}

// describeFunc gives the subject and free text of a commit from the newest pin
// it makes; nil gives rolling commits their standard subject.
type describeFunc func(ledger.Pin) (subject, text string)

// reconcile brings the overlays of targets, all on one branch and of one
// commit kind, to their desired pins in the ledger, then records in the ledger
// that those pins are durable. It returns the branch tip that carries them and
// the pins it committed.
func (e *Engine) reconcile(ctx context.Context, branch string, kind gitops.Kind, targets []target, describe describeFunc) (string, []ledger.Pin, error) {
	return e.reconcileNoted(ctx, branch, kind, targets, describe, nil)
}

// note is what reconcileNoted learnt about one target.
type note struct {
	// failed is why the target's overlay could not be edited (missing, not a
	// kustomization pinroll can edit); the other targets went on without it.
	failed error
	// created says the edit appended the images entry: a name that matches no
	// container silently does nothing (SPEC §3, §6.1), so the caller says so.
	created bool
}

// noteKey keys the notes of reconcileNoted.
func noteKey(t target) string { return t.env.Name + "/" + t.image.Name }

// reconcileNoted is reconcile. With notes (keyed by [noteKey]), a target
// whose overlay is missing or broken does not stop the others (SPEC §6.1):
// it is skipped and its error recorded in notes, and the healthy targets are
// committed and recorded as usual.
func (e *Engine) reconcileNoted(ctx context.Context, branch string, kind gitops.Kind, targets []target, describe describeFunc, notes map[string]*note) (string, []ledger.Pin, error) {
	commit, desired, changed, err := e.reconcileLocked(ctx, branch, kind, targets, describe, notes)
	if err != nil {
		return "", nil, err
	}
	if err := e.commitPins(ctx, desired, commit); err != nil {
		return "", nil, err
	}
	// After the branch lock: a slow events topic must not stall pins.
	e.publish(ctx, changed, commit)
	return commit, changed, nil
}

// reconcileLocked is reconcile's work in git, under the branch's lock. It
// returns the tip that carries the targets' desired pins, those pins (for the
// caller to record in the ledger: [durable]) and the ones it changed.
func (e *Engine) reconcileLocked(ctx context.Context, branch string, kind gitops.Kind, targets []target, describe describeFunc, notes map[string]*note) (commit string, desired, changed []ledger.Pin, err error) {
	unlock, err := e.locks.lock(ctx, branch)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: wait for branch %s: %w", ErrTransient, branch, err)
	}
	defer unlock()

	if commit, pins, ok, err := e.durable(ctx, targets); err != nil || ok {
		return commit, pins, nil, err
	}

	var paths []string // every name kustomize accepts: one read either way
	for _, t := range targets {
		for _, p := range t.env.Kustomizations() {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	res, err := e.writer.Apply(ctx, branch, paths, func(s gitops.Snapshot) (gitops.Change, error) {
		desired, changed = desired[:0], changed[:0]
		ch := gitops.Change{Kind: kind, Files: map[string][]byte{}}
		for _, t := range targets {
			if notes != nil {
				notes[noteKey(t)] = &note{} // this attempt's, not a lost one's
			}
			// broken skips t when the caller keeps notes, else fails them all.
			broken := func(err error) error {
				if notes == nil {
					return err
				}
				notes[noteKey(t)].failed = err
				return nil
			}
			// Read after the tip (see the package doc): never commit a desire
			// older than the tip this commit is built on.
			pin, ok, err := e.ledger.Pin(ctx, t.env.Name, t.image.Name)
			if err != nil {
				return ch, fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, t.env.Name, t.image.Name, err)
			}
			if !ok {
				continue
			}
			path, src, ok := kustomization(t.env, ch.Files, s.Files)
			if !ok {
				if err := broken(fmt.Errorf("%w: environment %s: %s not found on %s at %s", gitops.ErrInvalid, t.env.Name, path, branch, short(s.Commit.SHA))); err != nil {
					return ch, err
				}
				continue
			}
			edit := overlay.Edit{Name: t.image.Name, Digest: pin.Digest, NewName: t.image.Repository}
			if t.env.IsRelease() {
				edit.NewTag = pin.Tag
			} else {
				edit.TrackTag = t.env.Track // an existing newTag names the tag the digest follows
			}
			_, existed, _ := overlay.Find(src, edit.Name)
			out, did, err := overlay.Apply(src, edit)
			if err != nil {
				if err := broken(fmt.Errorf("%w: environment %s: %s: %w", gitops.ErrInvalid, t.env.Name, path, err)); err != nil {
					return ch, err
				}
				continue
			}
			if notes != nil && did && !existed {
				notes[noteKey(t)].created = true
			}
			desired = append(desired, pin)
			if did {
				ch.Files[path] = out
				changed = append(changed, pin)
				ch.Pins = append(ch.Pins, gitops.Pin{Env: pin.Env, Image: pin.Image, Digest: pin.Digest, Tag: pin.Tag, Time: pin.Time})
			}
		}
		slices.SortStableFunc(changed, func(a, b ledger.Pin) int { return b.Time.Compare(a.Time) })
		slices.SortStableFunc(ch.Pins, func(a, b gitops.Pin) int { return b.Time.Compare(a.Time) })
		if len(ch.Pins) == 0 {
			ch.Files = nil
		} else if describe != nil {
			ch.Subject, ch.Text = describe(changed[0])
		}
		return ch, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrTransient):
		return "", nil, nil, err
	case errors.Is(err, gitops.ErrInvalid), errors.Is(err, gitops.ErrNotFound):
		// A broken overlay, a missing branch, refused credentials: not
		// acknowledged (nothing is lost), but retrying needs a human.
		return "", nil, nil, err
	default:
		// Contention, the network, GitHub's 5xx and rate limits, I/O.
		return "", nil, nil, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	if res.Replaced != "" {
		moved := map[string]string{res.Replaced: res.Commit}
		e.amends.note(moved)
		e.repoint(ctx, moved)
	}
	if !res.Changed {
		changed = nil
	}
	return res.Commit, desired, changed, nil
}

// durable reports whether the desired pin of every target is one the ledger
// records as committed, all in one commit: then git already carries them (it
// is the commit that made them durable, or the one an amend or squash
// repointed them to) and reconciling needs no call to git. It returns that
// commit and the pins. A pin claimed but not yet recorded — new, or committed
// by a process that crashed before recording it — is not durable: it takes
// the read, and git decides (SPEC §5). Release environments always read: a
// claim that keeps the digest keeps its Commit, but the tag may be new.
func (e *Engine) durable(ctx context.Context, targets []target) (string, []ledger.Pin, bool, error) {
	var commit string
	var pins []ledger.Pin
	for _, t := range targets {
		if t.env.IsRelease() {
			return "", nil, false, nil
		}
		pin, ok, err := e.ledger.Pin(ctx, t.env.Name, t.image.Name)
		if err != nil {
			return "", nil, false, fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, t.env.Name, t.image.Name, err)
		}
		if !ok {
			continue
		}
		if pin.Commit == "" || (commit != "" && pin.Commit != commit) {
			return "", nil, false, nil
		}
		commit = pin.Commit
		pins = append(pins, pin)
	}
	return commit, pins, commit != "", nil
}

// kustomization finds env's kustomization file: as edited so far, else as
// read. When there is none, path is the usual name, for the error.
func kustomization(env *config.Environment, edited, read map[string][]byte) (path string, src []byte, ok bool) {
	for _, files := range []map[string][]byte{edited, read} {
		for _, p := range env.Kustomizations() {
			if src, ok := files[p]; ok {
				return p, src, true
			}
		}
	}
	return env.Kustomization(), nil, false
}

func (e *Engine) publish(ctx context.Context, pins []ledger.Pin, commit string) {
	if e.events == nil {
		return
	}
	for _, p := range pins {
		ev := Event{Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag, Commit: commit, Cause: p.Cause, Time: e.now().UTC()}
		if err := e.events.Publish(ctx, ev); err != nil {
			logging.Logger(ctx).Warn("publish pin event failed", "env", p.Env, "image", p.Image, "error", err.Error())
		}
	}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// branchLocks serialises reconciles per branch within this process; other
// processes are excluded by the compare-and-swap.
type branchLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (b *branchLocks) lock(ctx context.Context, branch string) (func(), error) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[string]chan struct{}{}
	}
	ch, ok := b.m[branch]
	if !ok {
		ch = make(chan struct{}, 1)
		b.m[branch] = ch
	}
	b.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
