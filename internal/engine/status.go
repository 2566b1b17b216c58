package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/pinroll/pinroll/internal/logging"
	"slices"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
)

// Status is what pinroll runs where (SPEC §4.3, GET /status).
type Status struct {
	Environments []EnvStatus       `json:"environments"`
	Promotions   []PromotionStatus `json:"promotions"`
	Branches     []BranchStatus    `json:"branches"`
}

// EnvStatus is one environment and its pins.
type EnvStatus struct {
	Name    string      `json:"name"`
	Path    string      `json:"path"`
	Branch  string      `json:"branch"`
	Trigger string      `json:"trigger"` // "track:TAG" or "release"
	Pins    []PinStatus `json:"pins"`
	// Check is the last check of the overlay (pinroll check, run at
	// start-up); absent before one ran.
	Check *OverlayCheck `json:"check,omitempty"`
}

// PinStatus is the pin of one image in an environment. Commit is the commit
// that carries it now: after an amend or a squash, the new one.
type PinStatus struct {
	Image  string       `json:"image"`
	Digest string       `json:"digest,omitempty"`
	Tag    string       `json:"tag,omitempty"`
	Commit string       `json:"commit,omitempty"`
	Time   time.Time    `json:"time,omitzero"`
	Cause  ledger.Cause `json:"cause,omitempty"`
	Held   bool         `json:"held"`
	Hold   *HoldStatus  `json:"hold,omitempty"`
	// Pending is a digest claimed for the pair that git does not carry yet
	// (its write failed or is under way); the fields above say what git
	// carries.
	Pending string `json:"pending,omitempty"`
}

// HoldStatus says since when and why a pair is held.
type HoldStatus struct {
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// PromotionStatus is a release waiting for (pending) or stopped from
// (blocked) its environment.
type PromotionStatus struct {
	Env        string    `json:"env"`
	Image      string    `json:"image"`
	Tag        string    `json:"tag"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Source     string    `json:"source,omitempty"`
	URL        string    `json:"url,omitempty"`
	Prerelease bool      `json:"prerelease,omitempty"`
	Created    time.Time `json:"created,omitzero"`
}

// BranchStatus is one branch pinroll writes: its tip and, when the tip is
// the bot's rolling commit, the pins that commit carries.
type BranchStatus struct {
	Name    string         `json:"name"`
	Tip     string         `json:"tip"`
	Rolling *RollingStatus `json:"rolling,omitempty"`
	// LastSquash is the report of the branch's last squash (a
	// [SquashReport], as the ledger keeps it); omitted before the first.
	LastSquash json.RawMessage `json:"last_squash,omitempty"`
}

// RollingStatus is the rolling commit at a branch's tip.
type RollingStatus struct {
	Commit string       `json:"commit"`
	Pins   []RollingPin `json:"pins"`
}

// RollingPin is one pin a rolling commit carries (its Pinroll-Pin trailers).
type RollingPin struct {
	Env    string `json:"env"`
	Image  string `json:"image"`
	Digest string `json:"digest"`
	Tag    string `json:"tag,omitempty"`
}

// Status reports every environment's pins, holds and promotions and every
// written branch's tip, from the ledger and one read of each branch.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	var st Status
	pins, err := e.ledger.Pins(ctx)
	if err != nil {
		return st, fmt.Errorf("%w: read pins: %w", ErrTransient, err)
	}
	holds, err := e.ledger.Holds(ctx)
	if err != nil {
		return st, fmt.Errorf("%w: read holds: %w", ErrTransient, err)
	}
	proms, err := e.ledger.Promotions(ctx, "", "")
	if err != nil {
		return st, fmt.Errorf("%w: read promotions: %w", ErrTransient, err)
	}
	// The branches first: a pin the tip's rolling commit carries is carried
	// by that commit, whatever the ledger recorded before an amend.
	carriedBy := map[string]string{} // env/image=digest → commit
	for _, env := range e.cfg.Environments {
		if slices.ContainsFunc(st.Branches, func(b BranchStatus) bool { return b.Name == env.Branch }) {
			continue
		}
		b, err := e.branchStatus(ctx, env.Branch)
		if err != nil {
			return st, err
		}
		if b.Rolling != nil {
			for _, p := range b.Rolling.Pins {
				carriedBy[p.Env+"/"+p.Image+"="+p.Digest] = b.Tip
			}
		}
		st.Branches = append(st.Branches, b)
	}
	if err := e.lastSquashes(ctx, st.Branches); err != nil {
		return st, err
	}
	checks := e.OverlayChecks()
	for _, env := range e.cfg.Environments {
		es := EnvStatus{Name: env.Name, Path: env.Path, Branch: env.Branch, Trigger: "release", Pins: []PinStatus{}}
		if c, ok := checks[env.Name]; ok {
			es.Check = &c
		}
		if !env.IsRelease() {
			es.Trigger = "track:" + env.Track
		}
		for _, img := range e.cfg.Images {
			if !env.Carries(img.Name) {
				continue
			}
			ps := PinStatus{Image: img.Name}
			i := slices.IndexFunc(pins, func(p ledger.Pin) bool { return p.Env == env.Name && p.Image == img.Name })
			if i >= 0 {
				p, wrote, err := e.written(ctx, &env, &img, pins[i], true)
				if err != nil {
					return st, err
				}
				if p.Commit == "" || p.Digest != pins[i].Digest {
					ps.Pending = pins[i].Digest
				}
				if wrote {
					ps.Digest, ps.Tag, ps.Commit, ps.Time, ps.Cause = p.Digest, p.Tag, p.Commit, p.Time, p.Cause
				}
				if c, ok := carriedBy[p.Env+"/"+p.Image+"="+p.Digest]; ok {
					ps.Commit = c
				}
			}
			if j := slices.IndexFunc(holds, func(h ledger.Hold) bool { return h.Env == env.Name && h.Image == img.Name }); j >= 0 {
				ps.Held, ps.Hold = true, &HoldStatus{Since: holds[j].Since, Reason: holds[j].Reason}
			}
			if i >= 0 || ps.Held {
				es.Pins = append(es.Pins, ps)
			}
		}
		st.Environments = append(st.Environments, es)
	}
	st.Promotions = []PromotionStatus{}
	for _, p := range proms {
		st.Promotions = append(st.Promotions, PromotionStatus{
			Env: p.Env, Image: p.Image, Tag: p.Tag, State: string(p.State), Reason: p.Reason,
			Source: p.Source, URL: p.URL, Prerelease: p.Prerelease, Created: p.Created,
		})
	}
	return st, nil
}

// lastSquashes fills in the last squash report of each of branches.
func (e *Engine) lastSquashes(ctx context.Context, branches []BranchStatus) error {
	squashes, err := e.ledger.Squashes(ctx)
	if err != nil {
		return fmt.Errorf("%w: read squashes: %w", ErrTransient, err)
	}
	for _, sq := range squashes {
		i := slices.IndexFunc(branches, func(b BranchStatus) bool { return b.Name == sq.Branch })
		if i >= 0 && json.Valid(sq.Report) {
			branches[i].LastSquash = json.RawMessage(sq.Report)
		}
	}
	return nil
}

// branchStatus reads the tip of branch and, when it is the bot's rolling
// commit, the pins it carries.
func (e *Engine) branchStatus(ctx context.Context, branch string) (BranchStatus, error) {
	snap, err := e.writer.Repo.Read(ctx, branch)
	if err != nil {
		return BranchStatus{}, fmt.Errorf("%w: read branch %s: %w", ErrTransient, branch, err)
	}
	b := BranchStatus{Name: branch, Tip: snap.Commit.SHA}
	tip := snap.Commit
	if m := gitops.ParseMessage(tip.Message); m.Kind == gitops.KindRolling && len(tip.Parents) == 1 && tip.Author.Email == e.cfg.Git.Author.Email {
		r := &RollingStatus{Commit: tip.SHA, Pins: []RollingPin{}}
		for _, p := range m.Carried() {
			r.Pins = append(r.Pins, RollingPin{Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag})
		}
		b.Rolling = r
	}
	return b, nil
}

// repoint records that each value of moved replaced its key (an amend), so
// that the pins the old commit carried name the commit that carries them now.
// A failure only costs status its precision until the next amend, and
// [Engine.Status] corrects the pins of the tip's rolling commit anyway: it is
// logged, not returned.
func (e *Engine) repoint(ctx context.Context, moved map[string]string) {
	if _, err := e.ledger.RepointPins(ctx, moved); err != nil {
		for old, commit := range moved {
			logging.Logger(ctx).Warn("repoint pins after an amend failed", "old", old, "commit", commit, "error", err.Error())
		}
	}
}
