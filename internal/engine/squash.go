package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/overlay"
)

// SquashReport is the report of one branch's squash (SPEC §6.3), with the
// time it ran.
type SquashReport struct {
	gitops.SquashReport
	Time time.Time `json:"time"`
}

// Squash folds the bot's pin commits of the branch of env, or of every branch
// that carries a track environment (rolling or append) when env is empty,
// with one report per branch (SPEC §6.3). With dryRun it only reports. An
// unknown env is [ErrNotFound]; an env whose branch carries no track
// environment is [ErrUnprocessable].
//
// Each branch is squashed under its lock, like a pin, so that no pin of this
// process interleaves with it; other processes are excluded by the
// compare-and-swap that moves the branch. After a move, the ledger's pins
// point at the commits that carry them now, and one history entry with cause
// squash records the fold; every report that is not a dry run is kept as
// the branch's last squash for GET /status.
//
// A branch whose history cannot be read gets an aborted report; the error is
// returned only when no branch got a report of its squash.
func (e *Engine) Squash(ctx context.Context, env string, dryRun bool) ([]SquashReport, error) {
	branches := e.squashBranches()
	if env != "" {
		en, ok := e.cfg.EnvironmentByName(env)
		if !ok {
			return nil, fmt.Errorf("%w: no environment %q in the config", ErrNotFound, env)
		}
		if !slices.Contains(branches, en.Branch) {
			return nil, fmt.Errorf("%w: environment %s follows releases and its branch %s carries no track environment: nothing to squash", ErrUnprocessable, env, en.Branch)
		}
		branches = []string{en.Branch}
	}
	reports := []SquashReport{}
	var errs []error
	for _, b := range branches {
		rep, err := e.squashBranch(ctx, b, dryRun)
		if err != nil {
			errs = append(errs, err)
			rep = SquashReport{SquashReport: gitops.SquashReport{Branch: b, Outcome: gitops.SquashAborted, DryRun: dryRun, Pins: []gitops.Pin{}, Reason: err.Error()}, Time: e.now().UTC()}
			if !dryRun {
				e.keepReport(ctx, rep)
			}
		}
		reports = append(reports, rep)
	}
	if len(errs) == len(branches) && len(errs) > 0 {
		return nil, fmt.Errorf("%w: squash: %w", ErrTransient, errors.Join(errs...))
	}
	return reports, nil
}

// squashBranches are the branches that carry a track environment, in the
// config's order.
func (e *Engine) squashBranches() []string {
	var out []string
	for _, env := range e.cfg.Environments {
		if !env.IsRelease() && !slices.Contains(out, env.Branch) {
			out = append(out, env.Branch)
		}
	}
	return out
}

// squashBranch squashes one branch under its lock and brings the ledger up
// to date with the result.
func (e *Engine) squashBranch(ctx context.Context, branch string, dryRun bool) (SquashReport, error) {
	unlock, err := e.locks.lock(ctx, branch)
	if err != nil {
		return SquashReport{}, fmt.Errorf("wait for branch %s: %w", branch, err)
	}
	defer unlock()

	var envs []*config.Environment
	var paths []string
	for i := range e.cfg.Environments {
		env := &e.cfg.Environments[i]
		if env.Branch == branch && !env.IsRelease() {
			envs = append(envs, env)
			paths = append(paths, env.Kustomizations()...)
		}
	}
	now := e.now()
	s := &gitops.Squasher{
		Repo:        e.writer.Repo,
		Author:      e.writer.Author,
		Paths:       paths,
		Reset:       e.resetPins(envs),
		Window:      e.cfg.Squash.Window.Duration,
		Rewrite:     e.cfg.Squash.Rewrite == nil || *e.cfg.Squash.Rewrite,
		KeepBackups: e.cfg.Squash.KeepBackups,
		Now:         func() time.Time { return now },
	}
	r, err := s.Squash(ctx, branch, dryRun)
	if err != nil {
		return SquashReport{}, err
	}
	rep := SquashReport{SquashReport: r, Time: now.UTC()}
	if dryRun {
		return rep, nil
	}
	if r.Outcome == gitops.SquashSquashed && r.NewTip != "" {
		e.amends.note(r.Rewritten) // a recording still under way follows
		if _, err := e.ledger.RepointPins(ctx, r.Rewritten); err != nil {
			// Git moved: the report stands. Status corrects the pins of the
			// tip's rolling commit anyway; the others name their old commits
			// until the next pin.
			logging.Logger(ctx).Warn("repoint pins after a squash failed", "branch", branch, "error", err.Error())
			rep.Reason = joinReason(rep.Reason, fmt.Sprintf("the ledger's pins still name the old commits: %v", err))
		}
	}
	e.keepReport(ctx, rep)
	return rep, nil
}

// keepReport stores rep as the last squash of its branch and, when the
// branch moved, the history entry of the fold. A failure is logged: it
// costs status its last_squash, not the squash.
func (e *Engine) keepReport(ctx context.Context, rep SquashReport) {
	data, err := json.Marshal(rep)
	if err != nil {
		logging.Logger(ctx).Warn("encode squash report failed", "branch", rep.Branch, "error", err.Error())
		return
	}
	rec := ledger.Squash{Branch: rep.Branch, Time: rep.Time, Report: data}
	if rep.Outcome == gitops.SquashSquashed && rep.NewTip != "" {
		rec.Entry = &ledger.Entry{
			Commit: rep.NewTip, Cause: ledger.CauseSquash, Time: rep.Time,
			Key: ledger.Key{Time: rep.Time, ID: "squash/" + rep.Branch + "/" + rep.OldTip},
		}
	}
	if err := e.ledger.RecordSquash(ctx, rec); err != nil {
		logging.Logger(ctx).Warn("record squash failed", "branch", rep.Branch, "error", err.Error())
	}
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// resetPins is the [gitops.ResetPins] of a squash of the branch carrying
// envs (its track environments): in each of their kustomizations it sets the
// digest of every image the environment carries back to its value at the
// squash's base, and reports whether the commit itself changed one. A digest
// the base does not have (the entry came later) is left as it is: the
// overlay package edits pins, it never removes them.
func (e *Engine) resetPins(envs []*config.Environment) gitops.ResetPins {
	imagesOf := map[string][]string{} // kustomization path → images pinned there
	for _, env := range envs {
		for _, im := range e.cfg.Images {
			if env.Carries(im.Name) {
				for _, p := range env.Kustomizations() {
					imagesOf[p] = append(imagesOf[p], im.Name)
				}
			}
		}
	}
	return func(files, parent, base map[string][]byte) (map[string][]byte, bool, error) {
		out := make(map[string][]byte, len(files))
		touched := false
		for p, b := range files {
			out[p] = b
			for _, name := range imagesOf[p] {
				cur, err := pinnedDigest(b, name)
				if err != nil {
					return nil, false, fmt.Errorf("%s: %w", p, err)
				}
				if par, ok := parent[p]; ok {
					before, err := pinnedDigest(par, name)
					if err != nil {
						return nil, false, fmt.Errorf("%s in the parent: %w", p, err)
					}
					touched = touched || before != cur
				}
				want, err := pinnedDigest(base[p], name)
				if err != nil {
					return nil, false, fmt.Errorf("%s at the base: %w", p, err)
				}
				if want == "" || want == cur {
					continue
				}
				if out[p], _, err = overlay.Apply(out[p], overlay.Edit{Name: name, Digest: want}); err != nil {
					return nil, false, fmt.Errorf("%s: reset %s: %w", p, name, err)
				}
			}
		}
		return out, touched, nil
	}
}

// pinnedDigest is the digest of image name in the kustomization src; "" when
// src is empty or has no such entry.
func pinnedDigest(src []byte, name string) (string, error) {
	if len(src) == 0 {
		return "", nil
	}
	im, ok, err := overlay.Find(src, name)
	if err != nil || !ok {
		return "", err
	}
	return im.Digest, nil
}
