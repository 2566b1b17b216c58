package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/retry"
)

// Registry resolves an image tag to a digest in Artifact Registry: ok is false
// when the tag does not exist; an error means the lookup failed.
type Registry interface {
	TagDigest(ctx context.Context, repository, tag string) (digest string, ok bool, err error)
}

// errTagNotFound is resolve's answer for a tag neither the ledger nor the
// registry knows.
var errTagNotFound = errors.New("tag not found")

// Release is a GitHub release event (SPEC §4.2).
type Release struct {
	Delivery    string // X-GitHub-Delivery
	Action      string // published, released, edited, ...
	Repository  string // owner/name
	Tag         string // the release's tag_name, e.g. v1.2.3
	Draft       bool
	Prerelease  bool
	URL         string // the release's html_url
	PublishedAt time.Time
}

// Release handles a GitHub release event: for every release environment
// carrying an image whose source is the event's repository, it pins the
// release's tag and digest, or stores a pending promotion when the digest is
// not known yet (the GAR push of that tag completes it).
func (e *Engine) Release(ctx context.Context, rel Release) (Result, error) {
	res := Result{Tag: rel.Tag}
	if rel.Delivery == "" {
		return e.release(ctx, rel, res)
	}
	return e.once(ctx, "github/"+rel.Delivery, res, func(res Result, _ *durable) (Result, error) { return e.release(ctx, rel, res) })
}

func (e *Engine) release(ctx context.Context, rel Release, res Result) (Result, error) {
	switch {
	case rel.Action != "published" && rel.Action != "released":
		res.Outcome, res.Reason = Ignored, "release action "+logging.Quote(rel.Action)+" does not promote (only published and released do)"
		return res, nil
	case rel.Draft:
		res.Outcome, res.Reason = Ignored, "draft releases are never promoted"
		return res, nil
	case !IsSemver(rel.Tag):
		res.Outcome, res.Reason = Ignored, "tag "+logging.Quote(rel.Tag)+" is not a semantic version (vX.Y.Z)"
		return res, nil
	}
	var images []*config.Image
	for i := range e.cfg.Images {
		if im := &e.cfg.Images[i]; im.Source != "" && strings.EqualFold(im.Source, rel.Repository) {
			images = append(images, im)
		}
	}
	if len(images) == 0 {
		res.Outcome, res.Reason = Ignored, "no configured image has source "+logging.Quote(rel.Repository)
		return res, nil
	}
	at := rel.PublishedAt
	if at.IsZero() {
		at = e.now()
	}
	var errs []error
	for _, img := range images {
		res.Image = img.Name
		for i := range e.cfg.Environments {
			env := &e.cfg.Environments[i]
			if !env.IsRelease() || !env.Carries(img.Name) {
				continue
			}
			if rel.Prerelease && !env.Release.Prerelease {
				res.Envs = append(res.Envs, EnvResult{Env: env.Name, Outcome: Ignored})
				res.Reason = "prerelease " + rel.Tag + " is not promoted to " + env.Name + " (release.prerelease: false)"
				continue
			}
			p := ledger.Promotion{
				Env: env.Name, Image: img.Name, Tag: rel.Tag, Source: rel.Repository, URL: rel.URL,
				Prerelease: rel.Prerelease, Delivery: rel.Delivery, State: ledger.PromotionPending, Created: at.UTC(),
			}
			r, why, err := e.promote(ctx, env, img, p, "", "")
			if err != nil {
				// The other environments go on (SPEC §6.1).
				errs = append(errs, err)
				res.Envs = append(res.Envs, EnvResult{Env: env.Name, Outcome: Failed, Reason: err.Error()})
				continue
			}
			res.Envs = append(res.Envs, r)
			if why != "" {
				res.Reason = why
			}
			if r.Digest != "" {
				res.Digest = r.Digest
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	res.Outcome = combine(res.Envs, Ignored)
	if len(res.Envs) == 0 && res.Reason == "" {
		res.Reason = "no release environment carries " + images[0].Name
	}
	return res, nil
}

// promote applies one release promotion to env (SPEC §4.2): resolve the tag's
// digest (unless the GAR push of imageTag just gave it), apply the rules, and
// commit. It returns the outcome and, when it did not pin, why.
//
// A promotion that must wait is stored first and the condition checked again
// afterwards, so that a GAR push (or dev pin) handled in between — which
// looks for stored promotions — cannot slip past it unseen.
func (e *Engine) promote(ctx context.Context, env *config.Environment, img *config.Image, p ledger.Promotion, digest, imageTag string) (EnvResult, string, error) {
	r := EnvResult{Env: env.Name}
	if digest == "" {
		d, t, err := e.resolve(ctx, img, p.Tag)
		if errors.Is(err, errTagNotFound) {
			p.State = ledger.PromotionPending
			if err := e.ledger.PutPromotion(ctx, p); err != nil {
				return r, "", fmt.Errorf("%w: store pending promotion %s/%s %s: %w", ErrTransient, env.Name, img.Name, p.Tag, err)
			}
			if d, t, err = e.resolveLedger(ctx, img, p.Tag); errors.Is(err, errTagNotFound) {
				r.Outcome = Pending
				return r, img.Name + ":" + p.Tag + " is not in Artifact Registry yet: the promotion waits for its push", nil
			}
		}
		if err != nil {
			// Keep the promotion: GitHub does not redeliver, so the GAR
			// push of the tag (or a later retry) must be able to complete it.
			if perr := e.ledger.PutPromotion(ctx, p); perr != nil {
				err = errors.Join(err, perr)
			}
			return r, "", fmt.Errorf("%w: resolve %s:%s: %w", ErrTransient, img.Name, p.Tag, err)
		}
		digest, imageTag = d, t
	}
	r.Digest = digest
	if older, why, err := e.olderThanPinned(ctx, env, img, p.Tag); err != nil || older {
		if older {
			r.Outcome = Ignored
			why = e.drop(ctx, p, why)
		}
		return r, why, err
	}
	if req := env.Release.Require; req != "" {
		soaked, err := e.soaked(ctx, req, img, digest)
		if err != nil {
			return r, "", err
		}
		if !soaked {
			// Blocked, not lost: when req pins this digest, the promotion
			// is tried again (retryBlocked).
			p.State = ledger.PromotionBlocked
			p.Reason = fmt.Sprintf("%s %s (%s) was never pinned in %s (release.require: %s)", img.Name, p.Tag, gitops.ShortDigest(digest), req, req)
			if err := e.ledger.PutPromotion(ctx, p); err != nil {
				return r, "", fmt.Errorf("%w: record blocked promotion: %w", ErrTransient, err)
			}
			if soaked, err = e.soaked(ctx, req, img, digest); err != nil || !soaked {
				r.Outcome = Blocked
				return r, p.Reason, err
			}
		}
	}
	// Claim by compare-and-swap on the pin: the key is derived from the pin
	// read, so of two releases racing from the same pin only one claim
	// applies; the other re-reads and re-checks the version. Versions, not
	// publication times, order a release environment. Every lost claim is
	// another release's win, so this ends; a bound and the request's
	// deadline make sure of it.
	var done bool // the loop decided the outcome: r and why say it
	var why string
	err := retry.Policy{Attempts: maxClaimAttempts}.Do(ctx, func(attempt int) error {
		cur, had, err := e.ledger.Pin(ctx, env.Name, img.Name)
		if err != nil {
			return fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
		}
		if had && IsSemver(cur.Tag) {
			c := semver.Compare(canonical(p.Tag), canonical(cur.Tag))
			if c < 0 {
				r.Outcome, done = Ignored, true
				why = e.drop(ctx, p, fmt.Sprintf("%s is older than %s pinned in %s: only a manual deploy goes back", p.Tag, cur.Tag, env.Name))
				return nil
			}
			if c == 0 && cur.Digest == digest {
				if cur.Commit != "" {
					r.Outcome, r.Commit, done = Unchanged, cur.Commit, true
					why = e.drop(ctx, p, "")
				}
				return nil // or claimed by an earlier attempt that did not reach git: commit it now
			}
		}
		key := ledger.Key{Time: time.Unix(0, 0).UTC(), ID: "release"}
		if had {
			key.Time = cur.Key.Time.Add(time.Microsecond)
		}
		pin := ledger.Pin{Env: env.Name, Image: img.Name, Digest: digest, Tag: imageTag,
			Key: key, Cause: ledger.CauseRelease, Time: e.now()}
		_, applied, err := e.ledger.ClaimPin(ctx, pin)
		if errors.Is(err, ledger.ErrHeld) {
			// Not committed while held: the promotion waits for a resume.
			p.State, p.Reason = ledger.PromotionPending, env.Name+" is held"
			if err := e.ledger.PutPromotion(ctx, p); err != nil {
				return fmt.Errorf("%w: store held promotion %s/%s %s: %w", ErrTransient, env.Name, img.Name, p.Tag, err)
			}
			r.Outcome, done = Held, true
			why = fmt.Sprintf("%s is held for %s: %s waits for a resume", env.Name, img.Name, p.Tag)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: claim pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
		}
		if applied {
			return nil
		}
		return retry.Again(fmt.Errorf("%w: claim pin %s/%s: %d other releases won meanwhile", ErrTransient, env.Name, img.Name, attempt))
	})
	if err != nil || done {
		return r, why, err
	}
	mine := func(pin ledger.Pin) bool { return pin.Digest == digest && slices.Contains(tagVariants(p.Tag), pin.Tag) }
	describe := func(pin ledger.Pin) (string, string) {
		if !mine(pin) {
			// A higher release became the desired pin meanwhile: name it
			// by what the ledger knows, without guessing its page.
			return fmt.Sprintf("release(%s): %s %s", pin.Env, pin.Image, pin.Tag), "Digest: " + pin.Digest
		}
		text := "Digest: " + pin.Digest
		if p.URL != "" {
			text = "Release: " + p.URL + "\n" + text
		}
		return fmt.Sprintf("release(%s): %s %s", pin.Env, pin.Image, p.Tag), text
	}
	commit, changed, err := e.reconcile(ctx, env.Branch, gitops.KindRelease, []target{{env, img}}, describe)
	if err != nil {
		return r, "", fmt.Errorf("promote %s %s to %s: %w", img.Name, p.Tag, env.Name, err)
	}
	r.Commit, r.Outcome = commit, Unchanged
	switch {
	case len(changed) > 0 && mine(changed[0]):
		r.Outcome = Pinned
	case len(changed) > 0:
		r.Outcome, r.Digest = Superseded, changed[0].Digest
	}
	return r, e.drop(ctx, p, ""), nil
}

// maxClaimAttempts bounds the release claim loop: each lost attempt is a
// release published at the same moment, so reaching it takes that many. A
// lost claim is retried at once: the winner is done, not busy.
const maxClaimAttempts = 100

// olderThanPinned reports whether tag is a lower version than the one env
// pins for img, and says so.
func (e *Engine) olderThanPinned(ctx context.Context, env *config.Environment, img *config.Image, tag string) (bool, string, error) {
	cur, had, err := e.ledger.Pin(ctx, env.Name, img.Name)
	if err != nil {
		return false, "", fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	if had && IsSemver(cur.Tag) && semver.Compare(canonical(tag), canonical(cur.Tag)) < 0 {
		return true, fmt.Sprintf("%s is older than %s pinned in %s: only a manual deploy goes back", tag, cur.Tag, env.Name), nil
	}
	return false, "", nil
}

// soaked reports whether env pinned digest of img before (release.require).
func (e *Engine) soaked(ctx context.Context, env string, img *config.Image, digest string) (bool, error) {
	h, err := e.ledger.History(ctx, ledger.HistoryQuery{Env: env, Image: img.Name, Digest: digest, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("%w: read %s history: %w", ErrTransient, env, err)
	}
	return len(h) > 0, nil
}

// drop removes a promotion that is settled and passes why through. A failure
// to delete is only logged: a leftover promotion is re-evaluated by the same
// rules and changes nothing.
func (e *Engine) drop(ctx context.Context, p ledger.Promotion, why string) string {
	if err := e.ledger.DeletePromotion(ctx, p.Env, p.Image, p.Tag); err != nil {
		logging.Logger(ctx).Warn("delete settled promotion failed", "env", p.Env, "image", p.Image, "tag", p.Tag, "error", err.Error())
	}
	return why
}

// resolve finds the digest a release tag names, and the image tag that
// names it: the ledger first (GAR told us), then Artifact Registry. A release
// v1.2.3 also matches an image tag 1.2.3 and the other way round; the
// overlay's newTag is the image tag, so it exists in the registry.
func (e *Engine) resolve(ctx context.Context, img *config.Image, tag string) (digest, imageTag string, err error) {
	digest, imageTag, err = e.resolveLedger(ctx, img, tag)
	if !errors.Is(err, errTagNotFound) || e.registry == nil {
		return digest, imageTag, err
	}
	for _, t := range tagVariants(tag) {
		d, ok, err := e.registry.TagDigest(ctx, img.Repository, t)
		if err != nil {
			return "", "", err
		}
		if ok {
			return d, t, nil
		}
	}
	return "", "", errTagNotFound
}

// resolveLedger is resolve without Artifact Registry: what GAR pushes told us.
func (e *Engine) resolveLedger(ctx context.Context, img *config.Image, tag string) (digest, imageTag string, err error) {
	for _, t := range tagVariants(tag) {
		d, ok, err := e.ledger.TagDigest(ctx, img.Name, t)
		if err != nil {
			return "", "", fmt.Errorf("ledger: %w", err)
		}
		if ok {
			return d, t, nil
		}
	}
	return "", "", errTagNotFound
}

// completePromotions finishes the pending promotions waiting for tag of img,
// now that a GAR push of it was recorded.
func (e *Engine) completePromotions(ctx context.Context, img *config.Image, tag string) ([]EnvResult, error) {
	if !IsSemver(tag) {
		return nil, nil // releases are semver: nothing can wait for this tag
	}
	// The digest the tag names now: a late, older push of the same tag must
	// not complete a promotion with a digest the tag no longer names.
	digest, ok, err := e.ledger.TagDigest(ctx, img.Name, tag)
	if err != nil {
		return nil, fmt.Errorf("%w: read tag %s of %s: %w", ErrTransient, tag, img.Name, err)
	}
	if !ok {
		return nil, nil
	}
	var out []EnvResult
	for _, t := range tagVariants(tag) {
		ps, err := e.ledger.Promotions(ctx, img.Name, t)
		if err != nil {
			return out, fmt.Errorf("%w: read promotions: %w", ErrTransient, err)
		}
		for _, p := range ps {
			env, ok := e.cfg.EnvironmentByName(p.Env)
			if p.State != ledger.PromotionPending || !ok || !env.IsRelease() {
				continue
			}
			r, err := e.settle(ctx, env, img, p, digest, tag)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// retryBlocked tries again the promotions of img that release.require
// blocked on env, now that env pinned digest.
func (e *Engine) retryBlocked(ctx context.Context, env string, img *config.Image, digest string, d *durable) ([]EnvResult, error) {
	waits := false
	for _, rel := range e.cfg.Environments {
		waits = waits || (rel.IsRelease() && rel.Release.Require == env && rel.Carries(img.Name))
	}
	if !waits {
		return nil, nil
	}
	// The rule reads env's history: record what this delivery made durable
	// first, rather than with its mark.
	if err := e.commitDurable(ctx, d); err != nil {
		return nil, err
	}
	d.pins = nil
	ps, err := e.ledger.Promotions(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("%w: read promotions: %w", ErrTransient, err)
	}
	var out []EnvResult
	for _, p := range ps {
		rel, ok := e.cfg.EnvironmentByName(p.Env)
		if p.State != ledger.PromotionBlocked || p.Image != img.Name || !ok || !rel.IsRelease() || rel.Release.Require != env {
			continue
		}
		d, t, err := e.resolve(ctx, img, p.Tag)
		if errors.Is(err, errTagNotFound) || (err == nil && d != digest) {
			continue // not this digest (or unknown): it stays blocked
		}
		if err != nil {
			// An outage must not leave it blocked unseen: redeliver.
			return out, fmt.Errorf("%w: resolve blocked promotion %s/%s %s: %w", ErrTransient, p.Env, p.Image, p.Tag, err)
		}
		p.State, p.Reason = ledger.PromotionPending, ""
		r, err := e.settle(ctx, rel, img, p, d, t)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// settle promotes a stored promotion and logs why when it did not pin.
func (e *Engine) settle(ctx context.Context, env *config.Environment, img *config.Image, p ledger.Promotion, digest, imageTag string) (EnvResult, error) {
	r, why, err := e.promote(ctx, env, img, p, digest, imageTag)
	if err == nil && why != "" {
		logging.Logger(ctx).Info("stored promotion settled", "env", p.Env, "image", p.Image, "tag", p.Tag, "outcome", string(r.Outcome), "reason", why)
	}
	return r, err
}

// IsSemver reports whether tag is a full semantic version X.Y.Z (with optional
// pre-release and build suffixes), with or without the leading v (SPEC §4.2).
// x/mod/semver alone also accepts the shorthands v1 and v1.2, which are not
// release versions.
func IsSemver(tag string) bool {
	v := canonical(tag)
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	return semver.IsValid(v) && strings.Count(core, ".") == 2
}

func canonical(tag string) string {
	if strings.HasPrefix(tag, "v") {
		return tag
	}
	return "v" + tag
}

// tagVariants is tag, then the same version with the leading v toggled.
func tagVariants(tag string) []string {
	if t, ok := strings.CutPrefix(tag, "v"); ok {
		return []string{tag, t}
	}
	return []string{tag, "v" + tag}
}

// combine is the most significant of the environments' outcomes, or def.
func combine(envs []EnvResult, def Outcome) Outcome {
	out := def
	best := 0
	for _, r := range envs {
		if rank[r.Outcome] > best {
			best, out = rank[r.Outcome], r.Outcome
		}
	}
	return out
}
