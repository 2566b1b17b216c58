package gitops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BackupPrefix is where a squash keeps the old tips of branch, one ref each:
// refs/pinroll/backup/<branch>/<unix-time>[-n].
func BackupPrefix(branch string) string { return "refs/pinroll/backup/" + branch + "/" }

// writeTimer is implemented by backends that pace their writes (GitHub): the
// least time n commit writes take from now.
type writeTimer interface {
	WriteTime(commits int) time.Duration
}

// Squasher folds the bot's pin commits of a branch into one rolling commit
// (SPEC §6.3): it reads the history, plans with [PlanSquash], writes the
// replayed commits and the rolling commit, checks the new tip's tree, and
// moves the branch together with a backup ref in one compare-and-swap.
type Squasher struct {
	Repo Repo
	// Author is the bot: its Email marks the commits to fold, and it signs
	// the new rolling commit.
	Author Signature
	// Paths are the overlay files (kustomization.yaml) of the track
	// environments written to the branch, handed to Reset.
	Paths []string
	Reset ResetPins
	// Window is how far back commits may be rewritten (squash.window).
	Window time.Duration
	// Rewrite folds bot commits across other commits (squash.rewrite);
	// false folds only the run of bot pin commits at the tip.
	Rewrite bool
	// KeepBackups is how many backup refs of a branch are kept (default 8).
	KeepBackups int
	// MaxCommits bounds the history read (default 10000).
	MaxCommits int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Squash squashes branch, or with dryRun only reports what it would do. It
// returns an error only when no report can be made (the history could not
// be read or planned); a failure after that is an aborted report.
func (s *Squasher) Squash(ctx context.Context, branch string, dryRun bool) (SquashReport, error) {
	rep := SquashReport{Branch: branch, DryRun: dryRun, Pins: []Pin{}}
	if s.Reset == nil {
		return rep, errors.New("squash: no ResetPins function")
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	cutoff := now.Add(-s.Window)
	limit := s.MaxCommits
	if limit <= 0 {
		limit = 10000
	}
	read, foldStop := 0, FoldStop(cutoff)
	stop := func(c Commit) bool {
		read++
		return foldStop(c) || read >= limit
	}
	hist, err := s.Repo.History(ctx, branch, stop, s.Paths...)
	if err != nil {
		return rep, fmt.Errorf("squash %s: read history: %w", branch, err)
	}
	plan, err := PlanSquash(SquashInput{History: hist, Cutoff: cutoff, BotEmail: s.Author.Email, Rewrite: s.Rewrite, Reset: s.Reset})
	if err != nil {
		return rep, fmt.Errorf("squash %s: %w", branch, err)
	}
	rep.OldTip = plan.OldTip.Commit.SHA
	rep.Base = plan.Base.Commit.SHA
	rep.Folded, rep.Replayed = len(plan.Folded), len(plan.Replays)
	if plan.Outcome != "" {
		rep.Outcome, rep.Reason = plan.Outcome, plan.Reason
		rep.Folded, rep.Replayed = 0, 0
		return rep, nil
	}
	rep.Pins = plan.Rolling.Carried()
	rep.Outcome = SquashSquashed
	if dryRun {
		rep.Reason = "dry run: nothing written or moved"
		return rep, nil
	}
	abort := func(format string, args ...any) (SquashReport, error) {
		rep.Outcome, rep.Reason, rep.NewTip, rep.BackupRef, rep.Rewritten = SquashAborted, fmt.Sprintf(format, args...), "", "", nil
		return rep, nil
	}
	if wt, ok := s.Repo.(writeTimer); ok {
		if dl, ok := ctx.Deadline(); ok {
			need := wt.WriteTime(len(plan.Replays) + 1)
			if left := time.Until(dl); need > left {
				return abort("%d commit writes need at least %s at the paced rate, more than the %s left before the deadline", len(plan.Replays)+1, need.Round(time.Second), left.Round(time.Second))
			}
		}
	}

	rep.Rewritten = map[string]string{}
	parent := plan.Base.Commit.SHA
	baseTree := plan.Base.Commit.Tree
	for _, r := range plan.Replays {
		c := r.Commit
		sha, err := s.Repo.WriteCommit(ctx, NewCommit{
			BaseTree: c.Tree, Files: r.Files, Parents: []string{parent},
			Message: c.Message, Author: c.Author, Committer: c.Committer,
		})
		if err != nil {
			return abort("replay %s: %v", short(c.SHA), err)
		}
		rep.Rewritten[c.SHA] = sha
		parent, baseTree = sha, c.Tree
	}
	tipFiles := map[string][]byte{}
	for p, b := range plan.OldTip.Files {
		tipFiles[p] = b
	}
	bot := s.Author
	bot.When = now
	newTip, err := s.Repo.WriteCommit(ctx, NewCommit{
		BaseTree: baseTree, Files: tipFiles, Parents: []string{parent},
		Message: plan.Rolling.String(), Author: bot, Committer: bot,
	})
	if err != nil {
		return abort("write the rolling commit: %v", err)
	}
	for _, c := range plan.Folded {
		rep.Rewritten[c.SHA] = newTip
	}
	got, err := s.Repo.ReadCommit(ctx, newTip)
	if err != nil {
		return abort("read back the new tip %s: %v", short(newTip), err)
	}
	if got.Commit.Tree != plan.OldTip.Commit.Tree {
		return abort("the new tip's tree %s differs from the old tip's tree %s: a folded commit changed more than the overlay files", short(got.Commit.Tree), short(plan.OldTip.Commit.Tree))
	}

	prefix := BackupPrefix(branch)
	backups, err := s.Repo.ListRefs(ctx, prefix)
	if err != nil {
		return abort("list backup refs: %v", err)
	}
	for ref := range backups {
		if strings.Contains(ref[len(prefix):], "/") {
			delete(backups, ref) // a backup of branch/…, another branch
		}
	}
	backup := backupName(prefix, now, backups)
	err = s.Repo.UpdateRefs(ctx, []RefUpdate{
		{Ref: backup, From: "", To: plan.OldTip.Commit.SHA},
		{Ref: "refs/heads/" + branch, From: plan.OldTip.Commit.SHA, To: newTip},
	})
	switch {
	case errors.Is(err, ErrProtected):
		rep.Outcome, rep.Reason, rep.Rewritten = SquashSkipped, fmt.Sprintf("the branch is protected against force-moves: %v", err), nil
		return rep, nil
	case errors.Is(err, ErrConflict):
		return abort("the branch moved during the squash (the next run retries): %v", err)
	case err != nil:
		return abort("move the branch: %v", err)
	}
	rep.NewTip, rep.BackupRef = newTip, backup
	backups[backup] = plan.OldTip.Commit.SHA
	if err := s.prune(ctx, backups); err != nil {
		rep.Reason = fmt.Sprintf("squashed; deleting old backup refs failed: %v", err)
	}
	return rep, nil
}

// backupName is prefix + the unix time of now, with "-1", "-2"… appended
// when a backup of that second exists.
func backupName(prefix string, now time.Time, existing map[string]string) string {
	name := prefix + strconv.FormatInt(now.Unix(), 10)
	if _, ok := existing[name]; !ok {
		return name
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s-%d", name, i)
		if _, ok := existing[n]; !ok {
			return n
		}
	}
}

// backupKey parses the "<unix>[-n]" ending of a backup ref name.
func backupKey(ref string) (unix, n int64, ok bool) {
	name := ref[strings.LastIndexByte(ref, '/')+1:]
	u, suffix, has := strings.Cut(name, "-")
	unix, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if has {
		if n, err = strconv.ParseInt(suffix, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return unix, n, true
}

// prune deletes the backups beyond the newest KeepBackups, in one update.
// Refs whose names it does not recognise are left alone.
func (s *Squasher) prune(ctx context.Context, backups map[string]string) error {
	keep := s.KeepBackups
	if keep <= 0 {
		keep = 8
	}
	type backup struct {
		ref     string
		unix, n int64
	}
	var all []backup
	for ref := range backups {
		if u, n, ok := backupKey(ref); ok {
			all = append(all, backup{ref, u, n})
		}
	}
	if len(all) <= keep {
		return nil
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].unix != all[j].unix {
			return all[i].unix > all[j].unix
		}
		return all[i].n > all[j].n
	})
	var del []RefUpdate
	for _, b := range all[keep:] {
		del = append(del, RefUpdate{Ref: b.ref, From: backups[b.ref]})
	}
	return s.Repo.UpdateRefs(ctx, del)
}
