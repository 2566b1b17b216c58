package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/logging"
)

// ImagePush is one Artifact Registry notification, as the edges (POST /gar,
// the OnImagePushed function target, pull mode) decode it (SPEC §4.1).
type ImagePush struct {
	// ID is the Pub/Sub message id: the delivery, deduplicated.
	ID string
	// PublishTime is the Pub/Sub publishTime: with ID, the ordering key. The
	// zero time orders before every other.
	PublishTime time.Time
	// Action is "INSERT" or "DELETE".
	Action string
	// Repository is the image repository without tag or digest, such as
	// asia-northeast2-docker.pkg.dev/PROJECT/backend/server.
	Repository string
	// Digest is "sha256:<64 hex>".
	Digest string
	// Tag is the tag pushed, or "" for an untagged push.
	Tag string
}

// MaxClockSkew is how far ahead of the engine's clock a publish time may be.
// Pub/Sub stamps publishTime itself: a message further ahead is forged or
// comes from a broken clock, and accepting it would pin a key no real push
// could beat, freezing the environment (SPEC §4.1).
const MaxClockSkew = 10 * time.Minute

// Push handles one Artifact Registry notification (SPEC §4.1). It returns an
// error only for failures worth a redelivery; every other case, including a
// message that does not apply, is a Result with its Outcome.
//
// Ack rule (SPEC §5): Push returns without error only once the message's pin,
// or a newer one, is durable in git and in the ledger, or the message is
// recorded as not applying. The delivery id is marked handled last, so a crash
// anywhere before makes the redelivery do the work again, and finding git
// already pinned it only records it.
//
// A publish time more than [MaxClockSkew] ahead of the engine's clock is
// answered [Rejected] before anything is read or written.
func (e *Engine) Push(ctx context.Context, m ImagePush) (Result, error) {
	res := Result{Digest: m.Digest, Tag: m.Tag}
	if ahead := m.PublishTime.Sub(e.now()); ahead > MaxClockSkew {
		res.Outcome = Rejected
		res.Reason = fmt.Sprintf("publishTime %s is more than %s ahead of this server's clock: forged, or a clock is broken",
			m.PublishTime.UTC().Format(time.RFC3339), MaxClockSkew)
		return res, nil
	}
	if m.ID == "" {
		var d durable
		res, err := e.push(ctx, m, res, &d)
		if rerr := e.commitDurable(ctx, &d); err == nil {
			err = rerr
		}
		return res, err
	}
	return e.once(ctx, "gar/"+m.ID, res, func(res Result, d *durable) (Result, error) { return e.push(ctx, m, res, d) })
}

// once runs handle for a delivery that was not handled before, and marks it
// handled with its outcome only after handle succeeded: a failure anywhere
// before makes the redelivery do the work again. The pins handle leaves in
// its durable are recorded by the same ledger write that marks the delivery
// (or alone, when handle failed). A delivery seen before answers unchanged,
// with Duplicate set.
func (e *Engine) once(ctx context.Context, delivery string, res Result, handle func(Result, *durable) (Result, error)) (Result, error) {
	out, seen, err := e.ledger.Delivery(ctx, delivery)
	if err != nil {
		return res, fmt.Errorf("%w: read delivery %s: %w", ErrTransient, logging.Quote(delivery), err)
	}
	if seen {
		res.Outcome, res.Duplicate = Unchanged, true
		res.Reason = "delivery " + logging.Quote(delivery) + " was already handled (" + out + ")"
		return res, nil
	}
	var d durable
	if res, err = handle(res, &d); err != nil {
		// What git carries is recorded all the same; the delivery is not.
		if rerr := e.commitDurable(ctx, &d); rerr != nil {
			logging.Logger(ctx).Warn("record pins of a failed delivery failed", "delivery", logging.Clip(delivery), "error", rerr.Error())
		}
		return res, err
	}
	if err := e.markDelivery(ctx, delivery, res.Outcome, &d); err != nil {
		return res, fmt.Errorf("%w: mark delivery %s: %w", ErrTransient, logging.Quote(delivery), err)
	}
	return res, nil
}

// push is Push's work; the pins its rolling rounds made durable are left in d
// for the caller to record.
func (e *Engine) push(ctx context.Context, m ImagePush, res Result, d *durable) (Result, error) {
	if m.Action != "INSERT" {
		res.Outcome, res.Reason = Ignored, logging.Clip(m.Action)+" notifications never unpin: the pin stays until a newer push or a manual deploy"
		return res, nil
	}
	img, ok := e.cfg.ImageByRepository(m.Repository)
	if !ok {
		res.Outcome, res.Reason = Ignored, "no configured image has repository "+logging.Clip(m.Repository)
		return res, nil
	}
	res.Image = img.Name
	key := ledger.Key{Time: m.PublishTime, ID: m.ID}
	var envs []*config.Environment
	for i := range e.cfg.Environments {
		env := &e.cfg.Environments[i]
		if m.Tag != "" && env.Track == m.Tag && env.Carries(img.Name) {
			envs = append(envs, env)
		}
	}
	// One ledger transaction records the digest and claims the pins of the
	// environments tracking the tag, unless a newer message already set
	// them or they are held (decided in that transaction).
	pins := make([]ledger.Pin, len(envs))
	for i, env := range envs {
		pins[i] = ledger.Pin{
			Env: env.Name, Image: img.Name, Digest: m.Digest, Tag: m.Tag,
			Key: key, Cause: ledger.CauseGAR, Time: e.now(),
		}
	}
	claims, err := e.ledger.RecordClaim(ctx, img.Name, m.Digest, m.Tag, key, pins)
	if err != nil {
		return res, fmt.Errorf("%w: record digest %s of %s: %w", ErrTransient, m.Digest, img.Name, err)
	}
	if m.Tag == "" {
		res.Outcome, res.Reason = Recorded, "untagged push: no environment tracks it"
		return res, nil
	}
	// A release published before its image was pushed waits for this push.
	promoted, err := e.completePromotions(ctx, img, m.Tag)
	if err != nil {
		return res, err
	}
	res.Envs = promoted
	if len(envs) == 0 {
		res.Outcome = combine(res.Envs, Recorded)
		if len(res.Envs) == 0 {
			res.Reason = "no environment tracks tag " + m.Tag + " of " + img.Name
		}
		return res, nil
	}

	claimed := map[*config.Environment]Outcome{}
	for i, env := range envs {
		claimed[env] = claimOutcome(claims[i], m.Digest)
	}
	// Reconcile every environment that is not held, grouped by branch and
	// commit kind. Superseded ones are acknowledged at once (SPEC §5): the
	// newer claim's own delivery carries the effect.
	type group struct {
		branch string
		kind   gitops.Kind
	}
	groups := map[group][]target{}
	var order []group
	for _, env := range envs {
		if claimed[env] == Held || claimed[env] == Superseded {
			continue
		}
		g := group{env.Branch, gitops.KindRolling}
		if !env.Rolling() {
			g.kind = gitops.KindAppend
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], target{env, img})
	}
	commits := map[string]string{}
	// A missing or broken overlay fails its environment only (SPEC §6.1): the
	// others are pinned and recorded, then the message is not acknowledged,
	// so it comes back once a human fixes the overlay. The redelivery finds
	// the healthy pins in git already and commits nothing for them.
	notes := map[string]*note{}
	failed := map[string]error{}
	var broken []error
	for _, g := range order {
		commit, changed, overtaken, err := e.reconcilePush(ctx, g.branch, g.kind, key, groups[g], notes, d)
		if err != nil {
			return res, fmt.Errorf("pin %s on %s: %w", img.Name, g.branch, err)
		}
		if overtaken {
			for _, t := range groups[g] {
				claimed[t.env] = Superseded
			}
			continue
		}
		for _, t := range groups[g] {
			n := notes[noteKey(t)]
			switch {
			case n != nil && n.failed != nil:
				claimed[t.env], failed[t.env.Name] = Failed, n.failed
				broken = append(broken, n.failed)
			case n != nil && n.created:
				res.Warnings = append(res.Warnings, fmt.Sprintf(
					"%s: entry created: check that `%s` matches a container image (pinroll check --env %s)", t.env.Name, img.Name, t.env.Name))
				fallthrough
			default:
				commits[t.env.Name] = commit
			}
		}
		// A redelivery after a failed attempt finds its own claim in the
		// ledger, yet this reconcile is the one that put it in git.
		for _, p := range changed {
			if env, ok := e.cfg.EnvironmentByName(p.Env); ok && p.Digest == m.Digest && claimed[env] == Unchanged {
				claimed[env] = Pinned
			}
		}
	}
	for _, env := range envs {
		r := EnvResult{Env: env.Name, Outcome: claimed[env], Commit: commits[env.Name]}
		if r.Outcome != Held {
			r.Digest = m.Digest
		}
		if err := failed[env.Name]; err != nil {
			r.Reason = err.Error()
		}
		res.Envs = append(res.Envs, r)
	}
	// A release blocked by `require: ENV` until ENV ran its digest may go now.
	for _, env := range envs {
		if o := claimed[env]; o == Pinned || o == Unchanged {
			more, err := e.retryBlocked(ctx, env.Name, img, m.Digest, d)
			if err != nil {
				return res, err
			}
			res.Envs = append(res.Envs, more...)
		}
	}
	res.Outcome = combine(res.Envs, Recorded)
	if len(broken) > 0 {
		if res.Outcome == Recorded {
			res.Outcome = Failed
		}
		return res, fmt.Errorf("pin %s: %w", img.Name, errors.Join(broken...))
	}
	return res, nil
}

// claimOutcome says what a claim of digest means for its message: held, a
// pin already in force, a new pin, or one a newer message superseded.
func claimOutcome(c ledger.Claimed, digest string) Outcome {
	switch {
	case c.Held:
		return Held
	case c.Current.Digest == digest && (!c.Applied || (c.Had && c.Before.Digest == digest)):
		return Unchanged
	case c.Applied:
		return Pinned
	default:
		return Superseded
	}
}
