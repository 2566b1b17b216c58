package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/semver"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/overlay"
)

// Deploy asks for a manual pin of one (environment, image) (SPEC §4.3,
// POST /deploy): exactly one of Digest, Tag or Rollback says which digest.
type Deploy struct {
	Env   string
	Image string
	// Digest pins this digest ("sha256:…"), which the ledger must know.
	Digest string
	// Tag pins the digest the tag names: the ledger first, then Artifact
	// Registry.
	Tag string
	// Rollback pins the N-th previous distinct digest of the pair in its
	// history (1 = the one before the current).
	Rollback int
	// Hold pauses automatic updates of the pair until [Engine.Resume].
	Hold bool
	// Reason says why, for people: it goes into the commit and the hold.
	Reason string
}

// OpsResult answers a deploy or a resume.
type OpsResult struct {
	Outcome Outcome `json:"outcome"`
	Env     string  `json:"env"`
	Image   string  `json:"image"`
	Digest  string  `json:"digest,omitempty"`
	Tag     string  `json:"tag,omitempty"`
	Commit  string  `json:"commit,omitempty"`
	Held    bool    `json:"held"`
	Reason  string  `json:"reason,omitempty"`
}

// Deploy pins a digest by hand with its own `manual` commit (SPEC §4.3,
// §6.4), never amended: later rolling pins append above it. A manual pin wins
// over any automatic one and is the only way a release environment goes to a
// lower version. With Hold, the pair is held first, so no automatic pin can
// land between the hold and the deploy; without it, an existing hold stays
// and the next newer automatic pin replaces this one as usual.
func (e *Engine) Deploy(ctx context.Context, d Deploy) (OpsResult, error) {
	res := OpsResult{Env: d.Env, Image: d.Image}
	env, img, err := e.pair(d.Env, d.Image)
	if err != nil {
		return res, err
	}
	n := 0
	for _, set := range []bool{d.Digest != "", d.Tag != "", d.Rollback != 0} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return res, fmt.Errorf("%w: give exactly one of digest, tag or rollback", ErrBadRequest)
	case d.Rollback < 0:
		return res, fmt.Errorf("%w: rollback %d: want 1 or more previous digests", ErrBadRequest, d.Rollback)
	case d.Digest != "" && !overlay.ValidDigest(d.Digest):
		return res, fmt.Errorf("%w: digest %q: want \"sha256:\" and 64 lowercase hex digits", ErrBadRequest, d.Digest)
	}
	cur, had, err := e.ledger.Pin(ctx, env.Name, img.Name)
	if err != nil {
		return res, fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	digest, tag, err := e.deployTarget(ctx, env, img, d, cur, had)
	if err != nil {
		return res, err
	}
	res.Digest, res.Tag = digest, tag
	d.Reason = reasonText(d.Reason)
	now := e.now().UTC()
	if d.Hold {
		// Before the claim: an automatic pin arriving meanwhile is refused.
		if err := e.ledger.PutHold(ctx, ledger.Hold{Env: env.Name, Image: img.Name, Reason: d.Reason, Since: now}); err != nil {
			return res, fmt.Errorf("%w: hold %s/%s: %w", ErrTransient, env.Name, img.Name, err)
		}
	}
	if res.Held, err = e.ledger.Held(ctx, env.Name, img.Name); err != nil {
		return res, fmt.Errorf("%w: read hold %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	if had && cur.Digest == digest && cur.Tag == tag && cur.Commit != "" {
		res.Outcome, res.Commit = Unchanged, cur.Commit
		return res, nil
	}
	// The manual key is newer than the pin it replaces, so a message older
	// than this deploy never undoes it; a newer one does, unless held.
	key := ledger.Key{Time: now, ID: "manual"}
	if had && !cur.Key.Time.Before(now) {
		key.Time = cur.Key.Time.Add(time.Microsecond)
	}
	pin := ledger.Pin{Env: env.Name, Image: img.Name, Digest: digest, Tag: tag, Key: key, Cause: ledger.CauseManual, Time: now}
	if _, _, err := e.ledger.ClaimPin(ctx, pin); err != nil {
		return res, fmt.Errorf("%w: claim pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	what := "deploy"
	if d.Rollback > 0 {
		what = "rollback"
	}
	describe := func(p ledger.Pin) (string, string) {
		subject := fmt.Sprintf("%s(%s): %s %s", what, p.Env, p.Image, gitops.ShortDigest(p.Digest))
		if p.Tag != "" {
			subject += " (" + p.Tag + ")"
		}
		text := "Manual " + what + " of " + p.Digest + "."
		if d.Reason != "" {
			text += "\nReason: " + d.Reason
		}
		if res.Held {
			text += "\nAutomatic updates of " + p.Env + "/" + p.Image + " are held until resumed."
		}
		return subject, text
	}
	commit, changed, err := e.reconcile(ctx, env.Branch, gitops.KindManual, []target{{env, img}}, describe)
	if err != nil {
		return res, fmt.Errorf("deploy %s to %s/%s: %w", gitops.ShortDigest(digest), env.Name, img.Name, err)
	}
	res.Commit, res.Outcome = commit, Unchanged
	return res.settle(changed, digest), nil
}

// MaxReason is the longest reason a deploy keeps, in bytes.
const MaxReason = 500

// reasonText is a reason as commits, holds and tables show it: one line of
// printable text (newlines and tabs become spaces, so it can never pose as a
// commit trailer), at most MaxReason bytes.
func reasonText(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// pair looks up an environment and an image it carries.
func (e *Engine) pair(envName, imageName string) (*config.Environment, *config.Image, error) {
	if envName == "" || imageName == "" {
		return nil, nil, fmt.Errorf("%w: env and image are both required", ErrBadRequest)
	}
	env, ok := e.cfg.EnvironmentByName(envName)
	if !ok {
		return nil, nil, fmt.Errorf("%w: no environment %q in the config", ErrNotFound, envName)
	}
	img, ok := e.cfg.ImageByName(imageName)
	if !ok {
		return nil, nil, fmt.Errorf("%w: no image %q in the config", ErrNotFound, imageName)
	}
	if !env.Carries(img.Name) {
		return nil, nil, fmt.Errorf("%w: environment %s does not carry image %s", ErrNotFound, env.Name, img.Name)
	}
	return env, img, nil
}

// deployTarget resolves the digest and tag a deploy asks for.
func (e *Engine) deployTarget(ctx context.Context, env *config.Environment, img *config.Image, d Deploy, cur ledger.Pin, had bool) (digest, tag string, err error) {
	switch {
	case d.Tag != "":
		digest, tag, err = e.resolve(ctx, img, d.Tag)
		if errors.Is(err, errTagNotFound) {
			return "", "", fmt.Errorf("%w: %s:%s is neither in the ledger nor in Artifact Registry", ErrUnprocessable, img.Name, d.Tag)
		}
		if err != nil {
			return "", "", fmt.Errorf("%w: resolve %s:%s: %w", ErrTransient, img.Name, d.Tag, err)
		}
		return digest, tag, nil
	case d.Rollback > 0:
		// Back from what git carries: a claim that never reached git (its
		// write failed) is not the pin to roll back from.
		if cur, had, err = e.written(ctx, env, img, cur, had); err != nil {
			return "", "", err
		}
		return e.rollbackTarget(ctx, env, img, d.Rollback, cur, had)
	}
	rec, ok, err := e.ledger.Digest(ctx, img.Name, d.Digest)
	if err != nil {
		return "", "", fmt.Errorf("%w: read digest %s of %s: %w", ErrTransient, d.Digest, img.Name, err)
	}
	if ok {
		return d.Digest, deployTag(env, rec.Tags), nil
	}
	if dr, can := e.registry.(digestRegistry); can {
		found, err := dr.HasDigest(ctx, img.Repository, d.Digest)
		if err != nil {
			return "", "", fmt.Errorf("%w: look up %s in Artifact Registry: %w", ErrTransient, gitops.ShortDigest(d.Digest), err)
		}
		if found {
			return d.Digest, "", nil
		}
	}
	return "", "", fmt.Errorf("%w: digest %s of %s is neither in the ledger nor in Artifact Registry", ErrUnprocessable, gitops.ShortDigest(d.Digest), img.Name)
}

// digestRegistry is a [Registry] that can also tell whether a digest exists
// (gar/registry does, with GetVersion).
type digestRegistry interface {
	HasDigest(ctx context.Context, repository, digest string) (bool, error)
}

// deployTag is the tag a manual pin of a digest with tags records: the
// highest release version for a release environment (its overlay's newTag),
// the tracked tag for a track environment when the digest has it.
func deployTag(env *config.Environment, tags []string) string {
	if !env.IsRelease() {
		if slices.Contains(tags, env.Track) {
			return env.Track
		}
		return ""
	}
	best := ""
	for _, t := range tags {
		if IsSemver(t) && (best == "" || semver.Compare(canonical(t), canonical(best)) > 0) {
			best = t
		}
	}
	return best
}

// rollbackPage is how many history entries a rollback reads at a time.
const rollbackPage = 100

// rollbackTarget finds the n-th previous distinct digest of (env, img) in its
// history, newest first, skipping the current digest and repeats.
func (e *Engine) rollbackTarget(ctx context.Context, env *config.Environment, img *config.Image, n int, cur ledger.Pin, had bool) (digest, tag string, err error) {
	if !had {
		return "", "", fmt.Errorf("%w: %s/%s has no pin to roll back from", ErrConflict, env.Name, img.Name)
	}
	seen := map[string]bool{cur.Digest: true}
	q := ledger.HistoryQuery{Env: env.Name, Image: img.Name, Limit: rollbackPage}
	for {
		page, err := e.ledger.History(ctx, q)
		if err != nil {
			return "", "", fmt.Errorf("%w: read history of %s/%s: %w", ErrTransient, env.Name, img.Name, err)
		}
		for _, h := range page {
			if seen[h.Digest] {
				continue
			}
			seen[h.Digest] = true
			if len(seen)-1 == n {
				return h.Digest, h.Tag, nil
			}
		}
		if len(page) < q.Limit {
			break
		}
		q.Before = ledger.CursorOf(page[len(page)-1])
	}
	return "", "", fmt.Errorf("%w: rollback %d: the history of %s/%s holds only %d earlier digest(s)", ErrConflict, n, env.Name, img.Name, len(seen)-1)
}

// Resume lifts the hold of (env, image) (SPEC §4.3, POST /resume). A track
// environment catches up at once to the digest its tag names now; a release
// environment applies the newest pending promotion above its pin.
func (e *Engine) Resume(ctx context.Context, envName, imageName string) (OpsResult, error) {
	res := OpsResult{Env: envName, Image: imageName}
	env, img, err := e.pair(envName, imageName)
	if err != nil {
		return res, err
	}
	if err := e.ledger.SetHold(ctx, env.Name, img.Name, false); err != nil {
		return res, fmt.Errorf("%w: resume %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	cur, had, err := e.ledger.Pin(ctx, env.Name, img.Name)
	if err != nil {
		return res, fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	res.Outcome, res.Digest, res.Tag, res.Commit = Unchanged, cur.Digest, cur.Tag, cur.Commit
	if env.IsRelease() {
		return e.resumeRelease(ctx, env, img, cur, had, res)
	}
	digest, ok, err := e.ledger.TagDigest(ctx, img.Name, env.Track)
	if err != nil {
		return res, fmt.Errorf("%w: read tag %s of %s: %w", ErrTransient, env.Track, img.Name, err)
	}
	if !ok || (had && cur.Digest == digest && cur.Commit != "") {
		res.Reason = "already at the digest " + img.Name + ":" + env.Track + " names"
		if !ok {
			res.Reason = img.Name + ":" + env.Track + " was never pushed: nothing to catch up"
		}
		return res, nil
	}
	// The catch-up outranks the pin in force (a manual one, typically) and
	// the newest push of the tag, so the next newer push still replaces it.
	rec, _, err := e.ledger.Digest(ctx, img.Name, digest)
	if err != nil {
		return res, fmt.Errorf("%w: read digest %s of %s: %w", ErrTransient, digest, img.Name, err)
	}
	key := ledger.Key{Time: rec.LastSeen.UTC(), ID: "resume"}
	if had && !cur.Key.Time.Before(key.Time) {
		key.Time = cur.Key.Time.Add(time.Microsecond)
	}
	pin := ledger.Pin{Env: env.Name, Image: img.Name, Digest: digest, Tag: env.Track, Key: key, Cause: ledger.CauseGAR, Time: e.now().UTC()}
	if _, _, err := e.ledger.ClaimPin(ctx, pin); errors.Is(err, ledger.ErrHeld) {
		res.Held, res.Reason = true, "held again before the catch-up"
		return res, nil
	} else if err != nil {
		return res, fmt.Errorf("%w: claim pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	kind := gitops.KindRolling
	if !env.Rolling() {
		kind = gitops.KindAppend
	}
	commit, changed, err := e.reconcile(ctx, env.Branch, kind, []target{{env, img}}, nil)
	if err != nil {
		return res, fmt.Errorf("resume %s/%s: %w", env.Name, img.Name, err)
	}
	res.Outcome, res.Digest, res.Tag, res.Commit, res.Reason = Unchanged, digest, env.Track, commit, ""
	return res.settle(changed, digest), nil
}

// resumeRelease applies the newest pending promotion of (env, img) above its
// pin, and drops the pending ones it makes obsolete.
func (e *Engine) resumeRelease(ctx context.Context, env *config.Environment, img *config.Image, cur ledger.Pin, had bool, res OpsResult) (OpsResult, error) {
	ps, err := e.ledger.Promotions(ctx, "", "")
	if err != nil {
		return res, fmt.Errorf("%w: read promotions: %w", ErrTransient, err)
	}
	var best *ledger.Promotion
	var lower []ledger.Promotion
	for i := range ps {
		p := &ps[i]
		if p.Env != env.Name || p.Image != img.Name || p.State != ledger.PromotionPending || !IsSemver(p.Tag) {
			continue
		}
		if had && IsSemver(cur.Tag) && semver.Compare(canonical(p.Tag), canonical(cur.Tag)) <= 0 {
			lower = append(lower, *p)
			continue
		}
		if best != nil && semver.Compare(canonical(p.Tag), canonical(best.Tag)) <= 0 {
			lower = append(lower, *p)
			continue
		}
		if best != nil {
			lower = append(lower, *best)
		}
		best = p
	}
	if best == nil {
		res.Reason = "no pending promotion above " + cur.Tag
		return res, nil
	}
	p := *best
	p.Reason = ""
	r, why, err := e.promote(ctx, env, img, p, "", "")
	if err != nil {
		return res, err
	}
	if r.Outcome == Pinned || r.Outcome == Unchanged {
		for _, l := range lower {
			e.drop(ctx, l, "")
		}
	}
	res.Outcome, res.Reason = r.Outcome, why
	if r.Outcome == Held {
		res.Held = true
	}
	now, ok, err := e.ledger.Pin(ctx, env.Name, img.Name)
	if err != nil {
		return res, fmt.Errorf("%w: read pin %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	if ok {
		res.Digest, res.Tag, res.Commit = now.Digest, now.Tag, now.Commit
	}
	return res, nil
}

// written returns the pin of (env, img) as git carries it: cur when it is
// committed, else the newest history entry of the pair — a claim whose git
// write failed (or is under way) is desired, not pinned. ok is false when
// nothing was ever written.
func (e *Engine) written(ctx context.Context, env *config.Environment, img *config.Image, cur ledger.Pin, had bool) (ledger.Pin, bool, error) {
	if !had || cur.Commit != "" {
		return cur, had, nil
	}
	h, err := e.ledger.History(ctx, ledger.HistoryQuery{Env: env.Name, Image: img.Name, Limit: 1})
	if err != nil {
		return cur, false, fmt.Errorf("%w: read history of %s/%s: %w", ErrTransient, env.Name, img.Name, err)
	}
	if len(h) == 0 {
		return cur, false, nil
	}
	return ledger.Pin{Env: h[0].Env, Image: h[0].Image, Digest: h[0].Digest, Tag: h[0].Tag,
		Key: h[0].Key, Cause: h[0].Cause, Commit: h[0].Commit, Time: h[0].Time}, true, nil
}

// settle says what an operator's pin of digest did, from the pins its
// reconcile committed: pinned when one of them is digest, superseded when a
// newer desired pin was committed in its place, else unchanged as set.
func (res OpsResult) settle(changed []ledger.Pin, digest string) OpsResult {
	for _, p := range changed {
		if p.Digest == digest {
			res.Outcome = Pinned
		} else {
			res.Outcome, res.Digest, res.Tag = Superseded, p.Digest, p.Tag
		}
	}
	return res
}
