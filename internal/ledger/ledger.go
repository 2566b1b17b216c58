// Package ledger defines pinroll's durable record (SPEC §5): the digests seen per
// image, the deliveries handled, the pin of every (environment, image) with the
// ordering key that set it, holds, pending promotions and the history of pins.
//
// Two implementations satisfy [Ledger]: ledger/bolt (an embedded bbolt file, the
// local default) and ledger/firestore (Cloud Firestore). Both pass the contract
// suite in ledger/ledgertest.
package ledger

import (
	"context"
	"errors"
	"time"
)

// DeliveryRetention is how long a handled delivery id is remembered: Pub/Sub
// redelivers a message for at most its retention (7 days by default), so an id
// older than that cannot come back. Firestore's TTL policy forgets deliveries
// after it.
const DeliveryRetention = 7 * 24 * time.Hour

// DeliveryExpired reports whether a delivery id handled at handled may be
// forgotten at now: once [DeliveryRetention] has passed, Pub/Sub cannot
// deliver it again. Firestore's TTL applies the same rule to its expireAt
// field (handled + DeliveryRetention).
func DeliveryExpired(handled, now time.Time) bool {
	return !now.Before(handled.Add(DeliveryRetention))
}

// ErrClosed is returned by a ledger used after Close.
var ErrClosed = errors.New("ledger closed")

// Key orders the messages that set a pin: Pub/Sub publishTime first, then the
// message id. The zero Key is older than every other key.
type Key struct {
	Time time.Time
	ID   string
}

// Less reports whether k is older than o.
func (k Key) Less(o Key) bool {
	if !k.Time.Equal(o.Time) {
		return k.Time.Before(o.Time)
	}
	return k.ID < o.ID
}

// Equal reports whether k and o are the same key.
func (k Key) Equal(o Key) bool { return k.Time.Equal(o.Time) && k.ID == o.ID }

// IsZero reports whether k is the zero key.
func (k Key) IsZero() bool { return k.Time.IsZero() && k.ID == "" }

// Cause says who set a pin.
type Cause string

// The causes of a pin (SPEC §5, History).
const (
	CauseGAR     Cause = "gar"
	CauseRelease Cause = "release"
	CauseManual  Cause = "manual"
	CauseSquash  Cause = "squash"
)

// Digest is one image digest as seen in Artifact Registry notifications. A
// digest is one record per image, however many tags and messages name it.
type Digest struct {
	Image     string // pinroll image name (config images[].name)
	Digest    string // sha256:<64 hex>
	Tags      []string
	FirstSeen time.Time // ordering-key time of the first message naming it
	LastSeen  time.Time // ordering-key time of the newest message naming it
}

// Pin is the digest an environment runs for one image. A pin is claimed
// (Commit empty) before it is written to git, and committed afterwards.
type Pin struct {
	Env    string
	Image  string
	Digest string
	Tag    string // the tag that set it (track tag, or release version)
	Key    Key    // ordering key of the message that set it
	Cause  Cause
	Commit string    // the git commit that made the pin durable; empty while only claimed
	Time   time.Time // when the pin was claimed or committed
}

// Entry is one line of the pin history: what was committed where, and why.
type Entry struct {
	Env    string
	Image  string
	Digest string
	Tag    string
	Commit string
	Cause  Cause
	Key    Key
	Time   time.Time
}

// HistoryQuery selects history entries. Empty fields match everything; Limit 0
// means no limit. Results are newest first ([HistoryOrder]); with Before set,
// they start after that position, so paging with the [CursorOf] each page's
// last entry has no gaps or overlaps.
type HistoryQuery struct {
	Env    string
	Image  string
	Digest string
	Limit  int
	Before Cursor
}

// Promotion is a release waiting for, or blocked from, its environment
// (SPEC §4.2): the release's tag had no known digest yet, or a rule blocked it.
type Promotion struct {
	Env        string
	Image      string
	Tag        string // the release tag as published, e.g. v1.2.3
	Source     string // owner/name of the GitHub repository
	URL        string // the release's HTML URL
	Prerelease bool
	Delivery   string // X-GitHub-Delivery of the webhook that asked for it
	State      PromotionState
	Reason     string // why it is blocked, for people
	Created    time.Time
}

// Hold pauses automatic updates of one (environment, image) (SPEC §4.3).
type Hold struct {
	Env    string
	Image  string
	Reason string    // why, for people; may be empty
	Since  time.Time // when the hold started
}

// Squash is the record of a branch's last squash (SPEC §6.3), kept for
// GET /status (branches[].last_squash).
type Squash struct {
	Branch string
	Time   time.Time // when the squash ran
	Report []byte    // the squash's report as JSON; the ledger keeps it as given
	// Entry, when set, is the history entry recording the fold (cause
	// squash), written once per (Env, Image, Key) like a pin's. Squashes
	// returns records without it.
	Entry *Entry
}

// PromotionState is the state of a [Promotion].
type PromotionState string

// Promotion states.
const (
	PromotionPending PromotionState = "pending" // waiting for the image to be pushed
	PromotionBlocked PromotionState = "blocked" // a rule (e.g. require) stopped it
)

// Committed is a pin made durable in git at Commit, for [Ledger.MarkDelivery]
// to record as [Ledger.CommitPin](Pin, Commit, At) does.
type Committed struct {
	Pin    Pin
	Commit string
	At     time.Time
}

// Claimed is what one claim of [Ledger.RecordClaim] found and did.
type Claimed struct {
	Before  Pin  // the pin before the claim, when Had
	Had     bool // whether (env, image) had a pin
	Current Pin  // the pin in force afterwards
	Applied bool // whether the claim was applied
	Held    bool // the pair is held: the automatic claim was not applied ([ErrHeld])
}

// Ledger is pinroll's durable record. Every method is safe for concurrent use,
// and every write is atomic.
type Ledger interface {
	// Delivery reports the outcome recorded for a delivery id, if it was
	// handled. An id may be any bytes of any length ([StorageID]).
	Delivery(ctx context.Context, id string) (outcome string, ok bool, err error)
	// MarkDelivery records each of durable as CommitPin does, then that
	// delivery id was handled with outcome, in one transaction: a delivery
	// is acknowledged with one write, never marked handled without the pins
	// that made it so (SPEC §5). Marking the same id again keeps the first
	// outcome (durable is still recorded).
	MarkDelivery(ctx context.Context, id, outcome string, durable ...Committed) error

	// RecordDigest records that image was pushed with digest, adding tag (when
	// not empty) to the digest's tags. The tag then names this digest, unless
	// a message with a newer key already moved the tag to another digest
	// ([SeeDigest], [MovesTag]). key.ID may be any bytes.
	RecordDigest(ctx context.Context, image, digest, tag string, key Key) error
	// Digest returns the record of one digest of image, its tags in
	// [SortTags] order.
	Digest(ctx context.Context, image, digest string) (Digest, bool, error)
	// TagDigest returns the digest that tag of image names now: the one of the
	// newest message that carried the tag.
	TagDigest(ctx context.Context, image, tag string) (string, bool, error)

	// Pin returns the pin of (env, image).
	Pin(ctx context.Context, env, image string) (Pin, bool, error)
	// Pins returns every pin, ordered by env then image.
	Pins(ctx context.Context) ([]Pin, error)
	// ClaimPin makes p the pin of (p.Env, p.Image) unless the current pin's key
	// is not older than p.Key; a pin with Cause manual always applies. A claim
	// that keeps the current digest keeps its Commit. It returns the pin in
	// force afterwards and whether p was applied. An automatic claim of a held
	// (env, image) fails with [ErrHeld], decided in the same transaction as
	// the claim ([Claim]), with the pin in force.
	ClaimPin(ctx context.Context, p Pin) (current Pin, applied bool, err error)
	// RecordClaim does RecordDigest(image, digest, tag, key), then ClaimPin
	// for each of pins, in one transaction, and returns what each claim
	// found and did, in the order of pins. A held pair is reported in
	// [Claimed.Held], not as an error.
	RecordClaim(ctx context.Context, image, digest, tag string, key Key, pins []Pin) ([]Claimed, error)
	// CommitPin records that p is durable in git at commit: the pin's Commit is
	// set when its key still equals p.Key, and one history entry is written
	// for (p.Env, p.Image, p.Key) — calling it again changes nothing more
	// ([PlanCommit]).
	CommitPin(ctx context.Context, p Pin, commit string, at time.Time) error
	// History returns the entries q selects, newest first ([HistoryOrder]).
	History(ctx context.Context, q HistoryQuery) ([]Entry, error)

	// SetHold pauses (held) or resumes automatic updates of (env, image).
	SetHold(ctx context.Context, env, image string, held bool) error
	// Held reports whether (env, image) is held.
	Held(ctx context.Context, env, image string) (bool, error)
	// PutHold holds (h.Env, h.Image) with a reason, as [MergeHold] decides:
	// a pair held already keeps its Since, and takes h.Reason when it is not
	// empty. A zero h.Since means now. Claims honour it like [SetHold]'s.
	PutHold(ctx context.Context, h Hold) error
	// Holds returns every hold, ordered by env then image.
	Holds(ctx context.Context) ([]Hold, error)

	// RepointPins sets the Commit of every pin whose Commit is a key of moved
	// to that key's value ([Repoint]): after an amend or a squash, the commit
	// that carries the pin now. It returns how many pins changed. History
	// entries keep the commit that was written first.
	RepointPins(ctx context.Context, moved map[string]string) (int, error)

	// RecordSquash stores s as the last squash of s.Branch unless a newer
	// one is stored already ([KeepSquash]), and writes s.Entry to history
	// when it is set and its (Env, Image, Key) has no entry yet, in one
	// transaction.
	RecordSquash(ctx context.Context, s Squash) error
	// Squashes returns the last squash of every branch, ordered by branch.
	Squashes(ctx context.Context) ([]Squash, error)

	// PutPromotion stores p, replacing the promotion of the same (Env, Image, Tag).
	PutPromotion(ctx context.Context, p Promotion) error
	// Promotions returns the promotions of image waiting for tag, or every
	// promotion when image and tag are empty, ordered by Created.
	Promotions(ctx context.Context, image, tag string) ([]Promotion, error)
	// DeletePromotion removes the promotion of (env, image, tag), if any.
	DeletePromotion(ctx context.Context, env, image, tag string) error

	// Close releases the ledger's resources.
	Close() error
}
