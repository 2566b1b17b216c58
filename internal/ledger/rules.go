package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds the ledger's rules as pure functions over plain values.
// The backends (ledger/bolt, ledger/firestore) load the records a call needs
// inside their own transaction, call the rule, and save what it returns: the
// rules are written once, here.

// ErrHeld is returned by [Ledger.ClaimPin] when the (env, image) of an
// automatic claim is held (SPEC §4.3): the claim is refused in the same
// transaction that reads the hold.
var ErrHeld = errors.New("automatic updates are held")

// Claim decides a [Ledger.ClaimPin] of p, given the pin in force (cur, when
// found) and whether the pair is held. A manual pin always applies; an
// automatic one is refused with [ErrHeld] on a held pair, and applies only
// when its key is newer than the current pin's. A claim keeping the current
// digest keeps its Commit; one with a new digest has none yet. It returns the
// pin in force afterwards and whether p applied (then the caller stores next).
func Claim(cur Pin, found, held bool, p Pin) (next Pin, applied bool, err error) {
	if p.Cause != CauseManual {
		if held {
			return cur, false, ErrHeld
		}
		if found && !cur.Key.Less(p.Key) {
			return cur, false, nil
		}
	}
	next = p
	next.Commit = ""
	if found && cur.Digest == p.Digest {
		next.Commit = cur.Commit
	}
	return next, true, nil
}

// MergeHold decides a [Ledger.PutHold] of h, given the hold in force (cur,
// when found): a pair held already keeps the time its hold started, and
// takes the new reason when one is given. A hold with no Since starts at now.
func MergeHold(cur Hold, found bool, h Hold, now time.Time) Hold {
	if h.Since.IsZero() {
		h.Since = now
	}
	if !found {
		return h
	}
	if !cur.Since.IsZero() {
		h.Since = cur.Since
	}
	if h.Reason == "" {
		h.Reason = cur.Reason
	}
	return h
}

// Repoint decides a [Ledger.RepointPins] for one pin: a pin whose commit was
// replaced (moved maps an old commit to the one that carries its pins now)
// takes the new commit. Chains are followed (a→b, b→c gives c) and a cycle
// stops at the last commit not seen yet. It reports whether p changed.
func Repoint(p Pin, moved map[string]string) (Pin, bool) {
	seen := map[string]bool{}
	c := p.Commit
	for c != "" && !seen[c] {
		next, ok := moved[c]
		if !ok || next == "" {
			break
		}
		seen[c] = true
		c = next
	}
	if c == p.Commit {
		return p, false
	}
	p.Commit = c
	return p, true
}

// KeepSquash decides a [Ledger.RecordSquash] of s, given the last squash
// stored for its branch (cur, when found): s replaces it unless cur is newer,
// so a slow process cannot hide a later squash behind an earlier report.
func KeepSquash(cur Squash, found bool, s Squash) bool {
	return !found || !s.Time.Before(cur.Time)
}

// CommitPlan is what a [Ledger.CommitPin] writes: the pin to store, when it
// changes, and the history entry, when there is none for its key yet.
type CommitPlan struct {
	Pin        Pin
	WritePin   bool
	Entry      Entry
	WriteEntry bool
}

// PlanCommit decides a [Ledger.CommitPin] of p at commit, given the pin in
// force (cur, when found) and whether (p.Env, p.Image, p.Key) has a history
// entry already. Once it has, nothing changes: CommitPin is idempotent. The
// pin's Commit and Time are set only while its key is still p.Key (a newer
// claim keeps its own state); the history entry is written either way.
func PlanCommit(cur Pin, found, committed bool, p Pin, commit string, at time.Time) CommitPlan {
	if committed {
		return CommitPlan{}
	}
	plan := CommitPlan{Entry: EntryOf(p, commit, at), WriteEntry: true}
	if found && cur.Key.Equal(p.Key) {
		plan.Pin, plan.WritePin = cur, true
		plan.Pin.Commit, plan.Pin.Time = commit, at
	}
	return plan
}

// EntryOf returns the history entry of p made durable at commit, at time at.
func EntryOf(p Pin, commit string, at time.Time) Entry {
	return Entry{
		Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag, Commit: commit,
		Cause: p.Cause, Key: p.Key, Time: at,
	}
}

// MovesTag reports whether a message with key moves its tag, which the
// message of cur last moved (when found): only a newer message does. An
// equal key is the same message again and changes nothing.
func MovesTag(cur Key, found bool, key Key) bool { return !found || cur.Less(key) }

// SeeDigest merges one message naming d (with key, and tag when not empty)
// into d: FirstSeen is the oldest key time and LastSeen the newest, whatever
// the arrival order, and Tags holds each tag once, in [SortTags] order. It
// reports whether d changed.
func SeeDigest(d Digest, tag string, key Key) (Digest, bool) {
	changed := false
	if t := key.Time; !t.IsZero() {
		if d.FirstSeen.IsZero() || t.Before(d.FirstSeen) {
			d.FirstSeen, changed = t, true
		}
		if t.After(d.LastSeen) {
			d.LastSeen, changed = t, true
		}
	}
	d.Tags = slices.Clone(d.Tags)
	if tag != "" && !slices.Contains(d.Tags, tag) {
		d.Tags, changed = append(d.Tags, tag), true
	}
	d.Tags = SortTags(d.Tags)
	return d, changed
}

// SortTags puts the tags of a digest in their one defined order, by name,
// and returns them.
func SortTags(tags []string) []string {
	slices.Sort(tags)
	return tags
}

// HistoryOrder compares entries in history order, newest first: by Time,
// then by key time, by the storage form of the key id ([StorageID]), by env
// and by image, each descending. No two entries of a ledger compare equal
// (one entry per (env, image, key)), so a [Cursor] splits history exactly.
func HistoryOrder(a, b Entry) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := b.Key.Time.Compare(a.Key.Time); c != 0 {
		return c
	}
	if c := strings.Compare(StorageID(b.Key.ID), StorageID(a.Key.ID)); c != 0 {
		return c
	}
	if c := strings.Compare(b.Env, a.Env); c != 0 {
		return c
	}
	return strings.Compare(b.Image, a.Image)
}

// Cursor is a position in history: the entry a page ended with. A query
// with Before set to it returns the entries after it in [HistoryOrder]
// (older), so consecutive pages have no gaps and no overlaps.
type Cursor struct {
	Time  time.Time
	Key   Key
	Env   string
	Image string
}

// CursorOf returns the position of e.
func CursorOf(e Entry) Cursor { return Cursor{Time: e.Time, Key: e.Key, Env: e.Env, Image: e.Image} }

// IsZero reports whether c is the zero cursor, which means "from the newest".
func (c Cursor) IsZero() bool { return c == Cursor{} }

// Admits reports whether e lies past c in history order; every entry lies
// past the zero cursor.
func (c Cursor) Admits(e Entry) bool {
	if c.IsZero() {
		return true
	}
	at := Entry{Time: c.Time, Key: c.Key, Env: c.Env, Image: c.Image}
	return HistoryOrder(at, e) < 0
}

// cursorText is the encoded form of a Cursor: times as Unix seconds and
// nanoseconds (any time encodes, so encoding cannot fail), the key id as
// bytes, so that any id round-trips through JSON.
type cursorText struct {
	Time    [2]int64 `json:"t"`
	KeyTime [2]int64 `json:"kt"`
	KeyID   []byte   `json:"k"`
	Env     string   `json:"e"`
	Image   string   `json:"i"`
}

func unixPair(t time.Time) [2]int64 { return [2]int64{t.Unix(), int64(t.Nanosecond())} }

func fromUnixPair(p [2]int64) time.Time { return time.Unix(p[0], p[1]).UTC() }

// String encodes c as an opaque, URL-safe token (for a `before` query
// parameter); [ParseCursor] decodes it. The zero cursor is "".
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	data, _ := json.Marshal(cursorText{Time: unixPair(c.Time), KeyTime: unixPair(c.Key.Time), KeyID: []byte(c.Key.ID), Env: c.Env, Image: c.Image}) // ints, bytes and strings always encode
	return base64.RawURLEncoding.EncodeToString(data)
}

// ParseCursor decodes a token made by [Cursor.String]; "" is the zero cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("parse history cursor: %w", err)
	}
	var t cursorText
	if err := json.Unmarshal(data, &t); err != nil {
		return Cursor{}, fmt.Errorf("parse history cursor: %w", err)
	}
	return Cursor{Time: fromUnixPair(t.Time), Key: Key{Time: fromUnixPair(t.KeyTime), ID: string(t.KeyID)}, Env: t.Env, Image: t.Image}, nil
}

// Matches reports whether e matches the filters of q (not its cursor or limit).
func (q HistoryQuery) Matches(e Entry) bool {
	return (q.Env == "" || e.Env == q.Env) && (q.Image == "" || e.Image == q.Image) &&
		(q.Digest == "" || e.Digest == q.Digest)
}

// maxKeptID is the longest readable storage id.
const maxKeptID = 128

// hashedIDPrefix starts every hashed storage id; a readable one never starts
// with "#", so the two cannot collide.
const hashedIDPrefix = "#sha256:"

// StorageID maps a delivery or message id of any bytes and length to a key
// every backend can store: a bbolt key (far below its size limit) and a
// Firestore document id (no "/", not "." or "..", not "__…", at most 1500
// bytes, valid UTF-8). A short id of printable ASCII is kept readable, with
// "%", "/" and a leading "#" percent-escaped ("gar/17" → "gar%2F17"); any
// other id becomes "#sha256:" and the hex SHA-256 of its bytes, which no
// readable form starts with. Distinct ids give distinct storage ids.
func StorageID(id string) string {
	if s, ok := readableID(id); ok {
		return s
	}
	sum := sha256.Sum256([]byte(id))
	return hashedIDPrefix + hex.EncodeToString(sum[:])
}

// readableID returns the readable storage id of id, if it has one.
func readableID(id string) (string, bool) {
	if id == "" || len(id) > maxKeptID || id == "." || id == ".." || strings.HasPrefix(id, "__") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c <= ' ' || c > '~':
			return "", false
		case c == '%' || c == '/' || (c == '#' && i == 0):
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > maxKeptID {
		return "", false
	}
	return b.String(), true
}

// SplitID splits an id of any bytes into what a store that keeps only valid
// UTF-8 strings (JSON, Firestore) can hold: the id itself when it is valid
// UTF-8 (raw nil), else raw holds its bytes and text is empty. [JoinID]
// reverses it.
func SplitID(id string) (text string, raw []byte) {
	if utf8.ValidString(id) {
		return id, nil
	}
	return "", []byte(id)
}

// JoinID rebuilds the id that [SplitID] split.
func JoinID(text string, raw []byte) string {
	if raw != nil {
		return string(raw)
	}
	return text
}
