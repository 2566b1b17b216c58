package gitops

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
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
	Attempts int    // reads of the branch, 1 when there was no contention
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
}

// Apply reads the tip of branch and the files at paths, asks edit for the
// change, and moves the branch to a commit carrying it only if the branch still
// points at the tip it read; when it moved, Apply starts again from the read.
// edit is called once per attempt and must be a pure function of the snapshot
// and of state it re-reads itself.
func (w *Writer) Apply(ctx context.Context, branch string, paths []string, edit func(Snapshot) (Change, error)) (Result, error) {
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 10
	}
	var res Result
	for res.Attempts < attempts {
		res.Attempts++
		snap, err := w.Repo.Read(ctx, branch, paths...)
		if err != nil {
			return res, fmt.Errorf("read %s: %w", branch, err)
		}
		ch, err := edit(snap)
		if err != nil {
			return res, err
		}
		if len(ch.Files) == 0 {
			res.Commit = snap.Commit.SHA
			return res, nil
		}
		c := w.plan(snap.Commit, ch)
		sha, err := w.Repo.WriteCommit(ctx, c)
		if err != nil {
			return res, fmt.Errorf("write commit on %s: %w", branch, err)
		}
		err = w.Repo.MoveBranch(ctx, branch, snap.Commit.SHA, sha)
		if err == nil {
			res.Commit, res.Changed = sha, true
			return res, nil
		}
		if !errors.Is(err, ErrConflict) {
			return res, fmt.Errorf("move %s: %w", branch, err)
		}
		if err := w.wait(ctx, res.Attempts); err != nil {
			return res, err
		}
	}
	return res, fmt.Errorf("move %s after %d attempts: %w", branch, res.Attempts, ErrContention)
}

// plan builds the commit for ch on top of tip: an amend of the bot's rolling
// commit (same parent, its pins kept) or an ordinary child of tip.
func (w *Writer) plan(tip Commit, ch Change) NewCommit {
	now := w.now()
	msg := Message{Kind: ch.Kind, Subject: ch.Subject, Text: ch.Text, Pins: ch.Pins}
	parents := []string{tip.SHA}
	if ch.Kind == KindRolling && w.isRolling(tip) {
		prev := ParseMessage(tip.Message)
		msg.Pins = append(append([]Pin(nil), ch.Pins...), prev.Pins...)
		parents = tip.Parents
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

// isRolling reports whether c is the bot's rolling commit, which may be amended.
func (w *Writer) isRolling(c Commit) bool {
	return len(c.Parents) == 1 &&
		c.Author.Email == w.Author.Email &&
		ParseMessage(c.Message).Kind == KindRolling
}

func (w *Writer) wait(ctx context.Context, attempt int) error {
	base := w.Backoff
	if base <= 0 {
		base = 20 * time.Millisecond
	}
	d := base << min(attempt-1, 6)
	d = min(d, time.Second)
	d = d/2 + rand.N(d/2+1) // jitter: half fixed, half random
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait to retry: %w", context.Cause(ctx))
	case <-t.C:
		return nil
	}
}

func (w *Writer) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}
