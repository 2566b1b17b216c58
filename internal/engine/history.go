package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/pinroll/pinroll/internal/ledger"
)

// History paging limits (SPEC §4.3, GET /history).
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// HistoryQuery selects a page of history: newest first, optionally one
// environment and one image, Limit entries (0 = DefaultHistoryLimit) after
// the cursor Before (the Next of the previous page).
type HistoryQuery struct {
	Env    string
	Image  string
	Limit  int
	Before string
}

// HistoryPage is one page of history. Next is the cursor of the following
// page; empty on the last one.
type HistoryPage struct {
	Entries []HistoryEntry `json:"entries"`
	Next    string         `json:"next,omitempty"`
}

// HistoryEntry is one pin made durable in git: what was committed where,
// when and why.
type HistoryEntry struct {
	Env    string       `json:"env"`
	Image  string       `json:"image"`
	Digest string       `json:"digest"`
	Tag    string       `json:"tag,omitempty"`
	Commit string       `json:"commit"`
	Cause  ledger.Cause `json:"cause"`
	Time   time.Time    `json:"time"`
}

// History returns one page of history, newest first, without gaps or
// overlaps between pages.
func (e *Engine) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	page := HistoryPage{Entries: []HistoryEntry{}}
	if q.Env != "" {
		if _, ok := e.cfg.EnvironmentByName(q.Env); !ok {
			return page, fmt.Errorf("%w: no environment %q in the config", ErrNotFound, q.Env)
		}
	}
	if q.Image != "" {
		if _, ok := e.cfg.ImageByName(q.Image); !ok {
			return page, fmt.Errorf("%w: no image %q in the config", ErrNotFound, q.Image)
		}
	}
	switch {
	case q.Limit < 0:
		return page, fmt.Errorf("%w: limit %d: want 1 to %d", ErrBadRequest, q.Limit, MaxHistoryLimit)
	case q.Limit == 0:
		q.Limit = DefaultHistoryLimit
	case q.Limit > MaxHistoryLimit:
		q.Limit = MaxHistoryLimit
	}
	before, err := ledger.ParseCursor(q.Before)
	if err != nil {
		return page, fmt.Errorf("%w: before: not a cursor this server made: %w", ErrBadRequest, err)
	}
	// One more than asked tells whether a next page exists.
	got, err := e.ledger.History(ctx, ledger.HistoryQuery{Env: q.Env, Image: q.Image, Limit: q.Limit + 1, Before: before})
	if err != nil {
		return page, fmt.Errorf("%w: read history: %w", ErrTransient, err)
	}
	if len(got) > q.Limit {
		got = got[:q.Limit]
		page.Next = ledger.CursorOf(got[len(got)-1]).String()
	}
	for _, h := range got {
		page.Entries = append(page.Entries, HistoryEntry{Env: h.Env, Image: h.Image, Digest: h.Digest, Tag: h.Tag, Commit: h.Commit, Cause: h.Cause, Time: h.Time})
	}
	return page, nil
}
