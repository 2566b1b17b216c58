package gitops

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pinroll/pinroll/internal/retry"
)

// ErrContention is returned by [Writer.Apply] when the branch kept moving
// under it for every allowed attempt. It is transient: retry later.
var ErrContention = errors.New("compare-and-swap contention: branch kept moving")

// Change is what an edit wants committed on top of the files it was shown.
type Change struct {
	// Files holds the new content of every file that changes. No files means
	// there is nothing to commit.
	Files map[string][]byte
	// Kind is the commit's kind. KindRolling amends the tip when the tip is
	// the bot's rolling commit; every other kind appends.
	Kind Kind
	// Subject and Text are the commit's subject and free text. A rolling
	// commit that leaves Subject empty gets "chore(ENV): pin IMAGE sha256:…"
	// naming its newest pin.
	Subject string
	Text    string
	// Pins are the pins this change makes, newest first.
	Pins []Pin
}

// Result says what [Writer.Apply] did.
type Result struct {
	Commit   string // the branch tip after the call: the new commit, or the tip read when nothing changed
	Changed  bool   // a commit was written and the branch moved
	Attempts int    // compare-and-swap attempts, 1 when there was no contention
	// Replaced is the rolling commit the new commit amended (it left the
	// branch; its pins are carried by Commit now), or "".
	Replaced string
}

// Writer commits changes to a branch by compare-and-swap (SPEC §6.2).
type Writer struct {
	Repo Repo
	// Author identifies the bot; its Email marks the bot's own commits.
	Author Signature
	// Attempts bounds the read-edit-write cycles of one Apply (default 10).
	Attempts int
	// Backoff is the base of the jittered exponential wait between attempts
	// (default 20ms, capped at 1s).
	Backoff time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	tips map[string]tip // by branch: the commit this Writer last moved it to
}

// tip is a commit a Writer wrote and moved its branch to, with the files it
// knows there: a Snapshot that needs no read while the branch stays put. Its
// content is exact (a commit SHA fixes its tree); only whether it is still
// the tip is unknown, and the compare-and-swap decides that.
type tip struct {
	snap  Snapshot
	paths map[string]bool // every path whose content (or absence) snap knows
}

// TreeWriter is implemented by a [Repo] whose WriteCommit can also say the
// root tree of the commit it wrote. With it, [Writer.Apply] remembers the tip
// it wrote and skips the next Apply's read of the branch.
type TreeWriter interface {
	WriteCommitTree(ctx context.Context, c NewCommit) (commit, tree string, err error)
}

// Apply reads the tip of branch and the files at paths, asks edit for the
// change, and moves the branch to a commit carrying it only if the branch still
// points at the tip it read; when it moved, Apply starts again from the read.
// edit must be a pure function of the snapshot and of state it re-reads
// itself; it may be called more than once per attempt.
//
// When the tip is the commit this Writer last moved branch to (and it knows
// every path asked for), Apply skips the read: the compare-and-swap proves
// the remembered tip still holds, and a refusal forgets it and falls back to
// a read. A remembered tip never decides that nothing changes: only a read
// does.
func (w *Writer) Apply(ctx context.Context, branch string, paths []string, edit func(Snapshot) (Change, error)) (Result, error) {
	var res Result
	err := w.policy().Do(ctx, func(attempt int) error {
		res.Attempts = attempt
		snap, ch, err := w.edit(ctx, branch, paths, edit)
		if err != nil {
			return err
		}
		if len(ch.Files) == 0 {
			res.Commit = snap.Commit.SHA
			return nil
		}
		c := w.plan(snap.Commit, ch)
		sha, tree, err := w.write(ctx, c)
		if err != nil {
			return fmt.Errorf("write commit on %s: %w", branch, err)
		}
		err = w.Repo.MoveBranch(ctx, branch, snap.Commit.SHA, sha)
		if err != nil {
			w.forget(branch, snap.Commit.SHA)
		}
		if errors.Is(err, ErrConflict) {
			return retry.Again(err)
		}
		if err != nil {
			return fmt.Errorf("move %s: %w", branch, err)
		}
		w.remember(branch, paths, snap, c, sha, tree)
		res.Commit, res.Changed, res.Replaced = sha, true, ""
		if len(c.Parents) != 1 || c.Parents[0] != snap.Commit.SHA {
			res.Replaced = snap.Commit.SHA
		}
		return nil
	})
	if errors.Is(err, ErrConflict) {
		return res, fmt.Errorf("move %s after %d attempts: %w (last: %w)", branch, res.Attempts, ErrContention, err)
	}
	return res, err
}

// edit runs edit on the remembered tip of branch, else on a read of it. A
// remembered tip that leaves nothing to change is read again: only git may
// say that nothing changes.
func (w *Writer) edit(ctx context.Context, branch string, paths []string, edit func(Snapshot) (Change, error)) (Snapshot, Change, error) {
	if snap, ok := w.remembered(branch, paths); ok {
		ch, err := edit(snap)
		if err != nil || len(ch.Files) > 0 {
			return snap, ch, err
		}
	}
	snap, err := w.Repo.Read(ctx, branch, paths...)
	if err != nil {
		return Snapshot{}, Change{}, fmt.Errorf("read %s: %w", branch, err)
	}
	ch, err := edit(snap)
	return snap, ch, err
}

// write writes c, and says its root tree when the backend can ("" if not).
func (w *Writer) write(ctx context.Context, c NewCommit) (sha, tree string, err error) {
	if tw, ok := w.Repo.(TreeWriter); ok {
		return tw.WriteCommitTree(ctx, c)
	}
	sha, err = w.Repo.WriteCommit(ctx, c)
	return sha, "", err
}

// remembered returns the tip this Writer last moved branch to, when it knows
// every one of paths there.
func (w *Writer) remembered(branch string, paths []string) (Snapshot, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.tips[branch]
	if !ok {
		return Snapshot{}, false
	}
	for _, p := range paths {
		if !t.paths[p] {
			return Snapshot{}, false
		}
	}
	return Snapshot{Commit: t.snap.Commit, Files: maps.Clone(t.snap.Files)}, true
}

// remember records that branch now points at sha, the commit c written on
// top of what snap showed, with root tree tree.
func (w *Writer) remember(branch string, paths []string, snap Snapshot, c NewCommit, sha, tree string) {
	if tree == "" {
		w.forget(branch, "")
		return
	}
	files := maps.Clone(snap.Files)
	if files == nil {
		files = map[string][]byte{}
	}
	known := make(map[string]bool, len(paths)+len(c.Files))
	for _, p := range paths {
		known[p] = true
	}
	for p, b := range c.Files {
		files[p], known[p] = b, true
		if b == nil {
			delete(files, p)
		}
	}
	for p := range files {
		if !known[p] {
			delete(files, p) // only what was asked for, or written, is known
		}
	}
	t := tip{
		snap: Snapshot{Commit: Commit{
			SHA: sha, Tree: tree, Parents: slices.Clone(c.Parents), Message: c.Message,
			Author: c.Author, Committer: c.Committer,
		}, Files: files},
		paths: known,
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tips == nil {
		w.tips = map[string]tip{}
	}
	w.tips[branch] = t
}

// forget drops the remembered tip of branch, when it is sha or sha is "":
// the next Apply reads the branch. (Another Apply may have remembered a newer
// tip meanwhile; that one stays.)
func (w *Writer) forget(branch, sha string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.tips[branch]; ok && (sha == "" || t.snap.Commit.SHA == sha) {
		delete(w.tips, branch)
	}
}

// policy is the retry policy of Apply's compare-and-swap loop.
func (w *Writer) policy() retry.Policy {
	p := retry.Policy{Attempts: w.Attempts, Base: w.Backoff, Max: time.Second}
	if p.Attempts <= 0 {
		p.Attempts = 10
	}
	if p.Base <= 0 {
		p.Base = 20 * time.Millisecond
	}
	return p
}

// plan builds the commit for ch on top of tip: an amend of the bot's rolling
// commit (same parent, its pins kept) or an ordinary child of tip.
func (w *Writer) plan(tip Commit, ch Change) NewCommit {
	now := w.now()
	msg := Message{Kind: ch.Kind, Subject: ch.Subject, Text: ch.Text, Pins: ch.Pins}
	parents := []string{tip.SHA}
	if ch.Kind == KindRolling {
		// Parsed once: the tip's message is bounded (MaxListedPins), but
		// this runs on every attempt.
		if prev := ParseMessage(tip.Message); w.isRolling(tip, prev) {
			msg.Pins = append(append([]Pin(nil), ch.Pins...), prev.Pins...)
			msg.Earlier, msg.Since, msg.Carry = prev.Earlier, prev.Since, prev.Carried()
			parents = tip.Parents
		}
	}
	if msg.Subject == "" && len(msg.Pins) > 0 {
		p := msg.Pins[0]
		msg.Subject = fmt.Sprintf("chore(%s): pin %s %s", p.Env, p.Image, ShortDigest(p.Digest))
	}
	sig := w.Author
	sig.When = now
	return NewCommit{
		BaseTree:  tip.Tree,
		Files:     ch.Files,
		Parents:   parents,
		Message:   msg.String(),
		Author:    sig,
		Committer: sig,
	}
}

// isRolling reports whether c, whose message parses to m, is the bot's
// rolling commit, which may be amended.
func (w *Writer) isRolling(c Commit, m Message) bool {
	return len(c.Parents) == 1 && c.Author.Email == w.Author.Email && m.Kind == KindRolling
}

func (w *Writer) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}
