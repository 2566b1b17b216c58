package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrProtected is returned by [Repo.UpdateRefs] when the host refuses to
// force-move a protected branch.
var ErrProtected = errors.New("protected branch refuses a force-move")

// SquashOutcome says what a squash did (SPEC §6.3).
type SquashOutcome string

// The outcomes of a squash.
const (
	SquashSquashed SquashOutcome = "squashed" // folded (or, in a dry run, would fold)
	SquashNothing  SquashOutcome = "nothing"  // no bot commits to fold
	SquashSkipped  SquashOutcome = "skipped"  // a rule forbids this squash; a person must act
	SquashAborted  SquashOutcome = "aborted"  // something failed or raced; the next run retries
)

// SquashReport is the report of one branch's squash (SPEC §6.3).
type SquashReport struct {
	Branch    string        `json:"branch"`
	Outcome   SquashOutcome `json:"outcome"`
	DryRun    bool          `json:"dry_run"`
	Base      string        `json:"base"`
	OldTip    string        `json:"old_tip"`
	NewTip    string        `json:"new_tip"`
	BackupRef string        `json:"backup_ref"`
	Folded    int           `json:"folded"`   // bot pin commits folded
	Replayed  int           `json:"replayed"` // other commits replayed
	Pins      []Pin         `json:"pins"`     // the pins the new rolling commit carries
	Reason    string        `json:"reason"`
	// Rewritten maps each replayed commit to its replacement, and every
	// folded commit to the new rolling commit, once the branch has moved:
	// what the ledger needs to point its pins at the commits that now
	// carry them.
	Rewritten map[string]string `json:"-"`
}

// ResetPins sets the track environments' pinned image fields in files (a
// commit's overlay files, by path) back to their values in base (the files
// at the squash's base commit) and returns the result, with every path of
// files. touched reports whether the commit itself changed a pinned field:
// whether files and parent (its parent's overlay files) differ in one.
type ResetPins func(files, parent, base map[string][]byte) (out map[string][]byte, touched bool, err error)

// SquashInput is what [PlanSquash] plans from.
type SquashInput struct {
	// History is the branch's first-parent history, newest first, with the
	// overlay files at each commit, down to the first commit that may not be
	// rewritten (as [Repo.History] returns it with [FoldStop]).
	History  []Snapshot
	Cutoff   time.Time // commits whose committer date is before it are not rewritten
	BotEmail string    // author email of the bot's commits
	Rewrite  bool      // fold across other commits; false folds only the bot commits at the tip
	Reset    ResetPins
}

// Replay is one commit to rewrite: the original, and the overlay files whose
// content changes (its pinned fields set back to the base's values).
type Replay struct {
	Commit Commit
	Files  map[string][]byte
}

// SquashPlan is what a squash writes: on Base, each Replay in order, then one
// rolling commit with Rolling as its message, whose tree is the last
// replayed tree with the old tip's overlay files.
type SquashPlan struct {
	// Outcome is SquashNothing or SquashSkipped when there is nothing to
	// write, with Reason; else it is empty.
	Outcome SquashOutcome
	Reason  string
	OldTip  Snapshot
	Base    Snapshot
	Folded  []Commit // newest first
	Replays []Replay // oldest first
	Rolling Message
}

// IsPinCommit reports whether c is one of the bot's rolling or append pin
// commits, which a squash folds.
func IsPinCommit(c Commit, botEmail string) bool {
	if !strings.EqualFold(c.Author.Email, botEmail) {
		return false
	}
	k := ParseMessage(c.Message).Kind
	return k == KindRolling || k == KindAppend
}

// foldable reports whether a squash may rewrite c: committed since cutoff,
// neither a merge nor a root, and unsigned.
func foldable(c Commit, cutoff time.Time) bool {
	return len(c.Parents) == 1 && !c.Signed && !c.Committer.When.Before(cutoff)
}

// FoldStop is the stop function for [Repo.History] of a squash: the walk ends
// at the first commit it may not rewrite, which is returned too (it may be
// the base).
func FoldStop(cutoff time.Time) func(Commit) bool {
	return func(c Commit) bool { return !foldable(c, cutoff) }
}

// PlanSquash plans the squash of in.History (SPEC §6.3). It is pure: it
// calls only in.Reset.
func PlanSquash(in SquashInput) (SquashPlan, error) {
	h := in.History
	if len(h) == 0 {
		return SquashPlan{}, errors.New("plan squash: empty history")
	}
	p := SquashPlan{OldTip: h[0]}
	// The range that may be rewritten: h[:n]; h[n] is the first commit that
	// may not be (or the oldest one read).
	n := 0
	for n < len(h)-1 && foldable(h[n].Commit, in.Cutoff) {
		if h[n].Commit.Parents[0] != h[n+1].Commit.SHA {
			return SquashPlan{}, fmt.Errorf("plan squash: history is not first-parent: %s follows %s", short(h[n+1].Commit.SHA), short(h[n].Commit.SHA))
		}
		n++
	}
	if !in.Rewrite {
		run := 0
		for run < n && IsPinCommit(h[run].Commit, in.BotEmail) {
			run++
		}
		n = run
	}
	oldest := -1
	for i := range n {
		if IsPinCommit(h[i].Commit, in.BotEmail) {
			oldest = i
		}
	}
	if oldest < 0 {
		p.Outcome, p.Reason = SquashNothing, "no bot pin commits to fold"
		return p, nil
	}
	p.Base = h[oldest+1]
	for i := oldest; i >= 0; i-- {
		c := h[i]
		if IsPinCommit(c.Commit, in.BotEmail) {
			p.Folded = append([]Commit{c.Commit}, p.Folded...)
			continue
		}
		out, touched, err := in.Reset(c.Files, h[i+1].Files, p.Base.Files)
		if err != nil {
			return SquashPlan{}, fmt.Errorf("plan squash: reset pins of %s: %w", short(c.Commit.SHA), err)
		}
		if touched {
			p.Outcome = SquashSkipped
			p.Reason = fmt.Sprintf("commit %s (%q) changes a track environment's pinned image field; fold by hand or wait until it leaves the window",
				short(c.Commit.SHA), subject(c.Commit.Message))
			return p, nil
		}
		r := Replay{Commit: c.Commit}
		for path, b := range out {
			if old, ok := c.Files[path]; !ok || !bytes.Equal(old, b) {
				if r.Files == nil {
					r.Files = map[string][]byte{}
				}
				r.Files[path] = b
			}
		}
		p.Replays = append(p.Replays, r)
	}
	if len(p.Folded) == 1 && len(p.Replays) == 0 {
		p.Outcome, p.Reason = SquashNothing, "the only bot pin commit is already the tip"
		return p, nil
	}
	var pins []Pin
	for _, c := range p.Folded {
		pins = append(pins, ParseMessage(c.Message).Pins...)
	}
	p.Rolling = Message{
		Kind: KindRolling,
		Text: fmt.Sprintf("Weekly squash: folds %d bot commits since %s; %d other commits replayed.",
			len(p.Folded), short(p.Base.Commit.SHA), len(p.Replays)),
		Pins: pins,
	}
	if len(pins) > 0 {
		p.Rolling.Subject = fmt.Sprintf("chore(%s): pin %s %s", pins[0].Env, pins[0].Image, ShortDigest(pins[0].Digest))
	} else {
		p.Rolling.Subject = fmt.Sprintf("chore: fold %d pin commits", len(p.Folded))
	}
	return p, nil
}

// short abbreviates a commit SHA for messages.
func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// subject is the first line of a commit message.
func subject(msg string) string {
	s, _, _ := strings.Cut(msg, "\n")
	return s
}
