// Package bolt implements [ledger.Ledger] on an embedded bbolt file
// (go.etcd.io/bbolt), pinroll's local default ledger (SPEC §5, §7).
//
// Every write is one bbolt Update transaction that loads the records it
// needs, applies the rule of package ledger ([ledger.Claim],
// [ledger.PlanCommit], [ledger.SeeDigest], [ledger.MovesTag]) and saves the
// result. Values are JSON. Keys that hold several names join them with \x00,
// which no name may contain, so a key is unambiguous and byte order sorts by
// the first name, then the next. Delivery and message ids, which may be any
// bytes, enter keys as [ledger.StorageID] (sid below); a key id that is not
// valid UTF-8 is kept in a record as "id_raw" (base64) so that it round-trips.
//
//	deliveries  sid(id)                           → {"outcome","at"}
//	expiries    at sid(id)                        → (empty): deliveries by the time handled
//	digests     image \x00 digest                 → {"image","digest","tags","first_seen","last_seen"}
//	tags        image \x00 tag                    → {"digest","key"} of the newest message carrying tag
//	pins        env \x00 image                    → {"env","image","digest","tag","key","cause","commit","time"}
//	holds       env \x00 image                    → {} while held
//	entries     pos                               → {"env","image","digest","tag","commit","cause","key","time"}
//	streams     env \x00 image \x00 at kt sid(key id) → pos: the history of one (env, image)
//	committed   env \x00 image \x00 key time \x00 sid(key id) → pos: one entry per pin key
//	promotions  image \x00 tag \x00 env           → {"env","image","tag",…,"created"}
//	squashes    branch                            → {"branch","time","report"}: the last squash
//
// The position pos of a history entry is at kt sid(key id) \x00 env \x00 image,
// where at is the entry's time and kt its key's time, 12 bytes each
// (big-endian sign-flipped Unix seconds, then nanoseconds). Byte order is
// then [ledger.HistoryOrder] reversed: a reverse cursor scan yields the
// newest entry first, a query for one (env, image) seeks its stream, and a
// [ledger.Cursor] seeks its position.
//
// A delivery id is forgotten once [ledger.DeliveryExpired] says so, as
// Firestore's TTL forgets it in the cloud: every MarkDelivery deletes at most
// [pruneBatch] expired ids, oldest first, found through the expiries index,
// so the file does not grow per message without bound and no write pays for
// more than a few deletions.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/pinroll/pinroll/internal/ledger"
)

// ErrLocked is returned by [Open] when another process holds the ledger file.
var ErrLocked = errors.New("ledger file is locked by another process")

// lockTimeout is how long Open waits for another process to release the file.
const lockTimeout = 3 * time.Second

// Bucket names.
var (
	bucketDeliveries = []byte("deliveries")
	bucketDigests    = []byte("digests")
	bucketTags       = []byte("tags")
	bucketPins       = []byte("pins")
	bucketHolds      = []byte("holds")
	bucketEntries    = []byte("entries")
	bucketStreams    = []byte("streams")
	bucketCommitted  = []byte("committed")
	bucketPromotions = []byte("promotions")
	bucketSquashes   = []byte("squashes")
	bucketExpiries   = []byte("expiries")
)

// pruneBatch bounds the expired delivery ids one MarkDelivery deletes. Above
// one, pruning outpaces any steady rate of new deliveries.
const pruneBatch = 8

// batchDelay is how long a batched write waits for concurrent ones to share
// its transaction and sync: about one fdatasync on a cloud disk.
const batchDelay = 2 * time.Millisecond

var buckets = [][]byte{
	bucketDeliveries, bucketDigests, bucketTags, bucketPins,
	bucketHolds, bucketEntries, bucketStreams, bucketCommitted, bucketPromotions,
	bucketSquashes,
}

// bucketOldHistory held the history of earlier versions (time + sequence →
// entry, unindexed); [Open] moves it into entries and streams.
var bucketOldHistory = []byte("history")

// errNUL rejects names that would make a key ambiguous.
var errNUL = errors.New("name contains a NUL byte")

// Ledger is a [ledger.Ledger] stored in one bbolt file. It is safe for
// concurrent use within one process; bbolt's file lock keeps other processes out.
type Ledger struct {
	db     *bbolt.DB
	now    func() time.Time
	closed atomic.Bool
	// marking and claiming count the MarkDelivery and RecordClaim calls
	// in flight: only concurrent ones wait to share a transaction.
	marking, claiming atomic.Int32
}

// Option configures [Open].
type Option func(*Ledger)

// WithClock makes the ledger read the time (a delivery's handled time, the
// expiry of delivery ids) from now instead of [time.Now].
func WithClock(now func() time.Time) Option { return func(l *Ledger) { l.now = now } }

var _ ledger.Ledger = (*Ledger)(nil)

// Open opens the ledger file at path, creating it and its parent directories
// if needed. It fails with [ErrLocked] after a few seconds when another process
// has the file open.
func Open(path string, opts ...Option) (*Ledger, error) {
	l := &Ledger{now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: %w (waited %s)", path, ErrLocked, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		if err := indexDeliveries(tx, l.now()); err != nil {
			return err
		}
		return migrateHistory(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	// A batched MarkDelivery or RecordClaim waits this long for others to share its
	// transaction (bbolt's default is 10 ms).
	db.MaxBatchDelay = batchDelay
	l.db = db
	return l, nil
}

// indexDeliveries gives the deliveries of an earlier version's file, which
// had no expiries index, an expiry counted from now.
func indexDeliveries(tx *bbolt.Tx, now time.Time) error {
	if tx.Bucket(bucketExpiries) != nil {
		return nil
	}
	exp, err := tx.CreateBucket(bucketExpiries)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketExpiries, err)
	}
	at := timeKey(now)
	err = tx.Bucket(bucketDeliveries).ForEach(func(k, _ []byte) error {
		return exp.Put(append(slices.Clone(at), k...), nil)
	})
	if err != nil {
		return fmt.Errorf("index deliveries: %w", err)
	}
	return nil
}

// migrateHistory moves the history of an earlier version's file into the
// indexed layout and rebuilds the committed index from it.
func migrateHistory(tx *bbolt.Tx) error {
	old := tx.Bucket(bucketOldHistory)
	if old == nil {
		return nil
	}
	if err := tx.DeleteBucket(bucketCommitted); err != nil {
		return fmt.Errorf("migrate history: %w", err)
	}
	if _, err := tx.CreateBucket(bucketCommitted); err != nil {
		return fmt.Errorf("migrate history: %w", err)
	}
	err := old.ForEach(func(k, v []byte) error {
		var rec entryRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode %x: %w", k, err)
		}
		return putEntry(tx, rec.entry())
	})
	if err != nil {
		return fmt.Errorf("migrate history: %w", err)
	}
	if err := tx.DeleteBucket(bucketOldHistory); err != nil {
		return fmt.Errorf("migrate history: %w", err)
	}
	return nil
}

// Close closes the file. Later calls return [ledger.ErrClosed].
func (l *Ledger) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", l.db.Path(), err)
	}
	return nil
}

// Commits returns how many write transactions the file has committed since it
// was created (bbolt's transaction id). Each costs two fdatasyncs, so its
// growth per pin is what a pin costs the disk (the benchmarks report it).
func (l *Ledger) Commits() (uint64, error) {
	var id int
	err := l.view(context.Background(), func(tx *bbolt.Tx) error { id = int(tx.ID()); return nil })
	if err != nil {
		return 0, fmt.Errorf("bolt: commits: %w", err)
	}
	return uint64(id), nil
}

// view runs fn in a read-only transaction.
func (l *Ledger) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := l.check(ctx); err != nil {
		return err
	}
	return l.mapErr(l.db.View(fn))
}

// batch runs fn in a read-write transaction that concurrent batch calls may
// share ([bbolt.DB.Batch]) when other calls counted by inflight are under
// way; a lone call runs at once in a transaction of its own. fn may run more
// than once, so it must be idempotent.
func (l *Ledger) batch(ctx context.Context, inflight *atomic.Int32, fn func(tx *bbolt.Tx) error) error {
	if err := l.check(ctx); err != nil {
		return err
	}
	defer inflight.Add(-1)
	if inflight.Add(1) == 1 {
		return l.mapErr(l.db.Update(fn))
	}
	return l.mapErr(l.db.Batch(fn))
}

// update runs fn in a read-write transaction, committed when fn returns nil.
func (l *Ledger) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := l.check(ctx); err != nil {
		return err
	}
	return l.mapErr(l.db.Update(fn))
}

func (l *Ledger) check(ctx context.Context) error {
	if l.closed.Load() {
		return ledger.ErrClosed
	}
	return ctx.Err()
}

func (l *Ledger) mapErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ledger.ErrClosed
	}
	return err
}

// --- deliveries ---

type deliveryRecord struct {
	Outcome string    `json:"outcome"`
	At      time.Time `json:"at,omitzero"` // when it was handled
}

// Delivery reports the outcome recorded for a delivery id, if it was handled.
func (l *Ledger) Delivery(ctx context.Context, id string) (outcome string, ok bool, err error) {
	err = l.view(ctx, func(tx *bbolt.Tx) error {
		var rec deliveryRecord
		ok, err = get(tx.Bucket(bucketDeliveries), []byte(ledger.StorageID(id)), &rec)
		outcome = rec.Outcome
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("bolt: delivery %.64q: %w", id, err)
	}
	return outcome, ok, nil
}

// MarkDelivery records each of durable as CommitPin does, then that delivery
// id was handled with outcome, in one transaction; marking the same id again
// keeps the first outcome. Concurrent calls share bbolt transactions, and so
// syncs ([bbolt.DB.Batch]); each also forgets a few expired ids
// ([ledger.DeliveryExpired]).
func (l *Ledger) MarkDelivery(ctx context.Context, id, outcome string, durable ...ledger.Committed) error {
	err := l.batch(ctx, &l.marking, func(tx *bbolt.Tx) error {
		if id == "" {
			return errors.New("empty delivery id")
		}
		for _, c := range durable {
			if err := commitPin(tx, c.Pin, c.Commit, c.At); err != nil {
				return fmt.Errorf("commit pin %s/%s at %s: %w", c.Pin.Env, c.Pin.Image, c.Commit, err)
			}
		}
		now := l.now().UTC()
		if err := pruneDeliveries(tx, now, pruneBatch); err != nil {
			return err
		}
		b, k := tx.Bucket(bucketDeliveries), []byte(ledger.StorageID(id))
		if b.Get(k) != nil {
			return nil
		}
		if err := tx.Bucket(bucketExpiries).Put(append(timeKey(now), k...), nil); err != nil {
			return err
		}
		return put(b, k, deliveryRecord{Outcome: outcome, At: now})
	})
	if err != nil {
		return fmt.Errorf("bolt: mark delivery %.64q: %w", id, err)
	}
	return nil
}

// pruneDeliveries deletes at most limit delivery ids expired at now, oldest
// first.
func pruneDeliveries(tx *bbolt.Tx, now time.Time, limit int) error {
	exp, deliveries := tx.Bucket(bucketExpiries), tx.Bucket(bucketDeliveries)
	var gone [][]byte
	c := exp.Cursor()
	for k, _ := c.First(); k != nil && len(gone) < limit; k, _ = c.Next() {
		if len(k) < 12 || !ledger.DeliveryExpired(timeOf(k[:12]), now) {
			break
		}
		gone = append(gone, slices.Clone(k))
	}
	for _, k := range gone { // deleting under a cursor skips keys
		if err := deliveries.Delete(k[12:]); err != nil {
			return fmt.Errorf("prune delivery: %w", err)
		}
		if err := exp.Delete(k); err != nil {
			return fmt.Errorf("prune delivery: %w", err)
		}
	}
	return nil
}

// --- digests and tags ---

// keyRecord is a stored [ledger.Key]; an id that is not valid UTF-8, which a
// JSON string cannot hold, is in IDRaw ([ledger.SplitID]).
type keyRecord struct {
	Time  time.Time `json:"time,omitzero"`
	ID    string    `json:"id,omitempty"`
	IDRaw []byte    `json:"id_raw,omitempty"`
}

func toKeyRecord(k ledger.Key) keyRecord {
	text, raw := ledger.SplitID(k.ID)
	return keyRecord{Time: k.Time.UTC(), ID: text, IDRaw: raw}
}

func (k keyRecord) key() ledger.Key {
	return ledger.Key{Time: k.Time, ID: ledger.JoinID(k.ID, k.IDRaw)}
}

type digestRecord struct {
	Image     string    `json:"image"`
	Digest    string    `json:"digest"`
	Tags      []string  `json:"tags,omitempty"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

func toDigestRecord(d ledger.Digest) digestRecord {
	return digestRecord{Image: d.Image, Digest: d.Digest, Tags: d.Tags, FirstSeen: d.FirstSeen.UTC(), LastSeen: d.LastSeen.UTC()}
}

func (r digestRecord) digest() ledger.Digest {
	return ledger.Digest{
		Image: r.Image, Digest: r.Digest, Tags: ledger.SortTags(r.Tags),
		FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
	}
}

type tagRecord struct {
	Digest string    `json:"digest"`
	Key    keyRecord `json:"key"`
}

// RecordDigest records that image was pushed with digest, adding tag (when not
// empty) to the digest's tags and moving the tag to digest unless a message
// not older already moved it ([ledger.SeeDigest], [ledger.MovesTag]).
func (l *Ledger) RecordDigest(ctx context.Context, image, digest, tag string, key ledger.Key) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error { return recordDigest(tx, image, digest, tag, key) })
	if err != nil {
		return fmt.Errorf("bolt: record digest %s@%s: %w", image, digest, err)
	}
	return nil
}

// RecordClaim records the digest as RecordDigest does and claims each of
// pins as ClaimPin does, in one transaction: one sync for both.
func (l *Ledger) RecordClaim(ctx context.Context, image, digest, tag string, key ledger.Key, pins []ledger.Pin) ([]ledger.Claimed, error) {
	var out []ledger.Claimed
	err := l.batch(ctx, &l.claiming, func(tx *bbolt.Tx) error {
		out = out[:0]
		if err := recordDigest(tx, image, digest, tag, key); err != nil {
			return err
		}
		for _, p := range pins {
			c, err := claimPin(tx, p)
			if err != nil {
				return fmt.Errorf("claim pin %s/%s: %w", p.Env, p.Image, err)
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: record and claim %s@%s: %w", image, digest, err)
	}
	return out, nil
}

// recordDigest is RecordDigest inside tx.
func recordDigest(tx *bbolt.Tx, image, digest, tag string, key ledger.Key) error {
	{
		dk, err := join(image, digest)
		if err != nil {
			return err
		}
		digests := tx.Bucket(bucketDigests)
		rec := digestRecord{Image: image, Digest: digest}
		found, err := get(digests, dk, &rec)
		if err != nil {
			return err
		}
		if d, changed := ledger.SeeDigest(rec.digest(), tag, key); changed || !found {
			if err := put(digests, dk, toDigestRecord(d)); err != nil {
				return err
			}
		}
		if tag == "" {
			return nil
		}
		tk, err := join(image, tag)
		if err != nil {
			return err
		}
		tags := tx.Bucket(bucketTags)
		var cur tagRecord
		found, err = get(tags, tk, &cur)
		if err != nil {
			return err
		}
		if !ledger.MovesTag(cur.Key.key(), found, key) {
			return nil
		}
		return put(tags, tk, tagRecord{Digest: digest, Key: toKeyRecord(key)})
	}
}

// Digest returns the record of one digest of image.
func (l *Ledger) Digest(ctx context.Context, image, digest string) (ledger.Digest, bool, error) {
	rec, ok, err := lookup[digestRecord](ctx, l, bucketDigests, image, digest)
	if err != nil || !ok {
		return ledger.Digest{}, false, wrapErr(err, "bolt: digest %s@%s", image, digest)
	}
	return rec.digest(), true, nil
}

// TagDigest returns the digest that tag of image names now: the one of the
// newest message that carried the tag.
func (l *Ledger) TagDigest(ctx context.Context, image, tag string) (string, bool, error) {
	rec, ok, err := lookup[tagRecord](ctx, l, bucketTags, image, tag)
	if err != nil || !ok {
		return "", false, wrapErr(err, "bolt: tag %s:%s", image, tag)
	}
	return rec.Digest, true, nil
}

// --- pins and history ---

type pinRecord struct {
	Env    string       `json:"env"`
	Image  string       `json:"image"`
	Digest string       `json:"digest"`
	Tag    string       `json:"tag,omitempty"`
	Key    keyRecord    `json:"key"`
	Cause  ledger.Cause `json:"cause"`
	Commit string       `json:"commit,omitempty"`
	Time   time.Time    `json:"time,omitzero"`
}

func toPinRecord(p ledger.Pin) pinRecord {
	return pinRecord{
		Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag, Key: toKeyRecord(p.Key),
		Cause: p.Cause, Commit: p.Commit, Time: p.Time.UTC(),
	}
}

func (r pinRecord) pin() ledger.Pin {
	return ledger.Pin{
		Env: r.Env, Image: r.Image, Digest: r.Digest, Tag: r.Tag, Key: r.Key.key(),
		Cause: r.Cause, Commit: r.Commit, Time: r.Time,
	}
}

type entryRecord struct {
	Env    string       `json:"env"`
	Image  string       `json:"image"`
	Digest string       `json:"digest"`
	Tag    string       `json:"tag,omitempty"`
	Commit string       `json:"commit"`
	Cause  ledger.Cause `json:"cause"`
	Key    keyRecord    `json:"key"`
	Time   time.Time    `json:"time,omitzero"`
}

func toEntryRecord(e ledger.Entry) entryRecord {
	return entryRecord{
		Env: e.Env, Image: e.Image, Digest: e.Digest, Tag: e.Tag, Commit: e.Commit,
		Cause: e.Cause, Key: toKeyRecord(e.Key), Time: e.Time.UTC(),
	}
}

func (r entryRecord) entry() ledger.Entry {
	return ledger.Entry{
		Env: r.Env, Image: r.Image, Digest: r.Digest, Tag: r.Tag, Commit: r.Commit,
		Cause: r.Cause, Key: r.Key.key(), Time: r.Time,
	}
}

// Pin returns the pin of (env, image).
func (l *Ledger) Pin(ctx context.Context, env, image string) (ledger.Pin, bool, error) {
	rec, ok, err := lookup[pinRecord](ctx, l, bucketPins, env, image)
	if err != nil || !ok {
		return ledger.Pin{}, false, wrapErr(err, "bolt: pin %s/%s", env, image)
	}
	return rec.pin(), true, nil
}

// Pins returns every pin, ordered by env then image.
func (l *Ledger) Pins(ctx context.Context) ([]ledger.Pin, error) {
	var pins []ledger.Pin
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPins).ForEach(func(k, v []byte) error {
			var rec pinRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			pins = append(pins, rec.pin())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: pins: %w", err)
	}
	return pins, nil
}

// ClaimPin makes p the pin of (p.Env, p.Image) as [ledger.Claim] decides,
// reading the pin and the hold in the transaction that writes the claim.
func (l *Ledger) ClaimPin(ctx context.Context, p ledger.Pin) (current ledger.Pin, applied bool, err error) {
	err = l.update(ctx, func(tx *bbolt.Tx) error {
		c, err := claimPin(tx, p)
		current, applied = c.Current, c.Applied
		if err == nil && c.Held {
			err = ledger.ErrHeld
		}
		return err
	})
	if err != nil {
		return current, false, fmt.Errorf("bolt: claim pin %s/%s: %w", p.Env, p.Image, err)
	}
	return current, applied, nil
}

// claimPin is ClaimPin inside tx; a held pair is reported in Held, not as
// an error.
func claimPin(tx *bbolt.Tx, p ledger.Pin) (ledger.Claimed, error) {
	k, err := join(p.Env, p.Image)
	if err != nil {
		return ledger.Claimed{}, err
	}
	b := tx.Bucket(bucketPins)
	var cur pinRecord
	found, err := get(b, k, &cur)
	if err != nil {
		return ledger.Claimed{}, err
	}
	held := tx.Bucket(bucketHolds).Get(k) != nil
	c := ledger.Claimed{Before: cur.pin(), Had: found}
	c.Current, c.Applied, err = ledger.Claim(cur.pin(), found, held, p)
	if errors.Is(err, ledger.ErrHeld) {
		c.Held = true
		return c, nil
	}
	if err != nil || !c.Applied {
		return c, err
	}
	next := toPinRecord(c.Current)
	c.Current = next.pin() // as stored: UTC
	return c, put(b, k, next)
}

// CommitPin records that p is durable in git at commit, as [ledger.PlanCommit]
// decides: one history entry per (p.Env, p.Image, p.Key).
func (l *Ledger) CommitPin(ctx context.Context, p ledger.Pin, commit string, at time.Time) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error { return commitPin(tx, p, commit, at) })
	if err != nil {
		return fmt.Errorf("bolt: commit pin %s/%s at %s: %w", p.Env, p.Image, commit, err)
	}
	return nil
}

// commitPin is CommitPin inside tx.
func commitPin(tx *bbolt.Tx, p ledger.Pin, commit string, at time.Time) error {
	pk, err := join(p.Env, p.Image)
	if err != nil {
		return err
	}
	ck, err := committedKey(p.Env, p.Image, p.Key)
	if err != nil {
		return err
	}
	pins := tx.Bucket(bucketPins)
	var cur pinRecord
	found, err := get(pins, pk, &cur)
	if err != nil {
		return err
	}
	committed := tx.Bucket(bucketCommitted).Get(ck) != nil
	plan := ledger.PlanCommit(cur.pin(), found, committed, p, commit, at)
	if plan.WritePin {
		if err := put(pins, pk, toPinRecord(plan.Pin)); err != nil {
			return err
		}
	}
	if !plan.WriteEntry {
		return nil
	}
	return putEntry(tx, plan.Entry)
}

// putEntry writes a history entry and its stream and committed index keys.
func putEntry(tx *bbolt.Tx, e ledger.Entry) error {
	pos, err := position(ledger.CursorOf(e))
	if err != nil {
		return err
	}
	sk, err := streamKey(e.Env, e.Image, pos)
	if err != nil {
		return err
	}
	ck, err := committedKey(e.Env, e.Image, e.Key)
	if err != nil {
		return err
	}
	if err := put(tx.Bucket(bucketEntries), pos, toEntryRecord(e)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketStreams).Put(sk, pos); err != nil {
		return err
	}
	return tx.Bucket(bucketCommitted).Put(ck, pos)
}

// timeKey encodes t in 12 bytes that sort as t does.
func timeKey(t time.Time) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(k[8:], uint32(t.Nanosecond()))
	return k
}

// timeOf decodes a [timeKey].
func timeOf(k []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(k[8:]))).UTC()
}

// position is the entries key of the entry at c (see the package comment).
func position(c ledger.Cursor) ([]byte, error) {
	names, err := join(ledger.StorageID(c.Key.ID), c.Env, c.Image)
	if err != nil {
		return nil, err
	}
	k := append(timeKey(c.Time), timeKey(c.Key.Time)...)
	return append(k, names...), nil
}

// streamPrefix is the common prefix of the streams keys of (env, image).
func streamPrefix(env, image string) ([]byte, error) {
	k, err := join(env, image)
	if err != nil {
		return nil, err
	}
	return append(k, 0), nil
}

// streamKey is the streams key of the entry at pos of (env, image): the
// stream prefix and pos up to its names, which the prefix already holds.
func streamKey(env, image string, pos []byte) ([]byte, error) {
	k, err := streamPrefix(env, image)
	if err != nil {
		return nil, err
	}
	sid := pos[24:]
	if i := bytes.IndexByte(sid, 0); i >= 0 {
		sid = sid[:i]
	}
	return append(append(k, pos[:24]...), sid...), nil
}

// committedKey is the committed key of the pin key k of (env, image).
func committedKey(env, image string, k ledger.Key) ([]byte, error) {
	return join(env, image, k.Time.UTC().Format(time.RFC3339Nano), ledger.StorageID(k.ID))
}

// History returns the entries q selects, newest first. A query with no env
// and no image walks all entries; any other merges the streams of the pairs
// it selects (one for env and image, the env's for env alone, the image's
// for image alone), so it reads only the entries it returns.
func (l *Ledger) History(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Entry, error) {
	var entries []ledger.Entry
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		all := tx.Bucket(bucketEntries)
		add := func(k, v []byte) (bool, error) {
			var rec entryRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode %x: %w", k, err)
			}
			if e := rec.entry(); q.Matches(e) {
				entries = append(entries, e)
			}
			return q.Limit > 0 && len(entries) == q.Limit, nil
		}
		if q.Env == "" && q.Image == "" {
			c := all.Cursor()
			k, v := c.Last()
			if !q.Before.IsZero() {
				pos, err := position(q.Before)
				if err != nil {
					return err
				}
				k, v = seekBefore(c, pos)
			}
			for ; k != nil; k, v = c.Prev() {
				if done, err := add(k, v); err != nil || done {
					return err
				}
			}
			return nil
		}
		heads, err := streamHeads(tx.Bucket(bucketStreams), q)
		if err != nil {
			return err
		}
		for len(heads) > 0 {
			// The newest head is the next entry in history order.
			i := 0
			for j := range heads {
				if bytes.Compare(heads[j].pos, heads[i].pos) > 0 {
					i = j
				}
			}
			h := &heads[i]
			v := all.Get(h.pos)
			if v == nil {
				return fmt.Errorf("stream %q: entry %x missing", h.k, h.pos)
			}
			if done, err := add(h.pos, v); err != nil || done {
				return err
			}
			if h.k, h.pos = h.c.Prev(); h.k == nil || !bytes.HasPrefix(h.k, h.prefix) {
				heads = slices.Delete(heads, i, i+1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: history: %w", err)
	}
	return entries, nil
}

// streamHead is a cursor over one (env, image) stream, newest first.
type streamHead struct {
	c      *bbolt.Cursor
	prefix []byte
	k, pos []byte
}

// streamHeads positions a cursor on each stream q selects, at its newest
// entry past q.Before. Streams are found by seeking from one to the next,
// never by reading their entries.
func streamHeads(streams *bbolt.Bucket, q ledger.HistoryQuery) ([]streamHead, error) {
	var from []byte
	if q.Env != "" {
		from = append([]byte(q.Env), 0)
	}
	var heads []streamHead
	seek := streams.Cursor()
	for k, _ := seek.Seek(from); k != nil && bytes.HasPrefix(k, from); {
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) < 3 {
			return nil, fmt.Errorf("stream key %q: malformed", k)
		}
		env, image := string(parts[0]), string(parts[1])
		prefix, err := streamPrefix(env, image)
		if err != nil {
			return nil, err
		}
		if q.Image == "" || q.Image == image {
			end := append(slices.Clone(prefix[:len(prefix)-1]), 1) // just past the stream
			if !q.Before.IsZero() {
				pos, err := position(q.Before)
				if err != nil {
					return nil, err
				}
				if end, err = streamKey(env, image, pos); err != nil {
					return nil, err
				}
			}
			c := streams.Cursor()
			if hk, pos := seekBefore(c, end); hk != nil && bytes.HasPrefix(hk, prefix) {
				heads = append(heads, streamHead{c: c, prefix: prefix, k: hk, pos: pos})
			}
		}
		k, _ = seek.Seek(append(slices.Clone(prefix[:len(prefix)-1]), 1))
	}
	return heads, nil
}

// seekBefore moves c to the last key before k, if any.
func seekBefore(c *bbolt.Cursor, k []byte) (key, value []byte) {
	if key, _ := c.Seek(k); key == nil {
		return c.Last()
	}
	return c.Prev()
}

// --- holds ---

// SetHold pauses (held) or resumes automatic updates of (env, image).
func (l *Ledger) SetHold(ctx context.Context, env, image string, held bool) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		k, err := join(env, image)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketHolds)
		if !held {
			return b.Delete(k)
		}
		return putHold(b, k, ledger.Hold{Env: env, Image: image})
	})
	if err != nil {
		return fmt.Errorf("bolt: set hold %s/%s=%t: %w", env, image, held, err)
	}
	return nil
}

// Held reports whether (env, image) is held.
func (l *Ledger) Held(ctx context.Context, env, image string) (bool, error) {
	var held bool
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		k, err := join(env, image)
		if err != nil {
			return err
		}
		held = tx.Bucket(bucketHolds).Get(k) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("bolt: held %s/%s: %w", env, image, err)
	}
	return held, nil
}

// holdRecord is a stored hold. Holds written by earlier versions are "{}":
// their names come from the key.
type holdRecord struct {
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// putHold stores h at k as [ledger.MergeHold] decides.
func putHold(b *bbolt.Bucket, k []byte, h ledger.Hold) error {
	var cur holdRecord
	found, err := get(b, k, &cur)
	if err != nil {
		return err
	}
	h = ledger.MergeHold(ledger.Hold{Env: h.Env, Image: h.Image, Reason: cur.Reason, Since: cur.Since}, found, h, time.Now())
	return put(b, k, holdRecord{Reason: h.Reason, Since: h.Since.UTC()})
}

// PutHold holds (h.Env, h.Image) with a reason, as [ledger.MergeHold] decides.
func (l *Ledger) PutHold(ctx context.Context, h ledger.Hold) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		k, err := join(h.Env, h.Image)
		if err != nil {
			return err
		}
		return putHold(tx.Bucket(bucketHolds), k, h)
	})
	if err != nil {
		return fmt.Errorf("bolt: put hold %s/%s: %w", h.Env, h.Image, err)
	}
	return nil
}

// Holds returns every hold, ordered by env then image.
func (l *Ledger) Holds(ctx context.Context) ([]ledger.Hold, error) {
	var holds []ledger.Hold
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketHolds).ForEach(func(k, v []byte) error {
			var rec holdRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			env, image, _ := bytes.Cut(k, []byte{0})
			holds = append(holds, ledger.Hold{Env: string(env), Image: string(image), Reason: rec.Reason, Since: rec.Since})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: holds: %w", err)
	}
	return holds, nil
}

// RepointPins moves the pins carried by replaced commits to the commits that
// carry them now, as [ledger.Repoint] decides, in one transaction (none when
// no pin moves).
func (l *Ledger) RepointPins(ctx context.Context, moved map[string]string) (int, error) {
	// Most amends move no other pin: find out in a read, which costs no sync.
	var stale []pinChange
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		stale, err = repointed(tx, moved)
		return err
	})
	if err != nil || len(stale) == 0 {
		return 0, wrapRepoint(err)
	}
	n := 0
	err = l.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		changes, err := repointed(tx, moved)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketPins)
		for _, c := range changes { // bbolt forbids writes inside ForEach
			if err := put(b, c.k, c.rec); err != nil {
				return err
			}
		}
		n = len(changes)
		return nil
	})
	if err != nil {
		return 0, wrapRepoint(err)
	}
	return n, nil
}

func wrapRepoint(err error) error {
	if err != nil {
		return fmt.Errorf("bolt: repoint pins: %w", err)
	}
	return nil
}

// pinChange is a pin record to write back.
type pinChange struct {
	k   []byte
	rec pinRecord
}

// repointed returns the pins in tx that [ledger.Repoint] moves, as moved.
func repointed(tx *bbolt.Tx, moved map[string]string) ([]pinChange, error) {
	var changes []pinChange
	err := tx.Bucket(bucketPins).ForEach(func(k, v []byte) error {
		var rec pinRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		if p, ok := ledger.Repoint(rec.pin(), moved); ok {
			changes = append(changes, pinChange{slices.Clone(k), toPinRecord(p)})
		}
		return nil
	})
	return changes, err
}

// --- promotions ---

type promotionRecord struct {
	Env        string                `json:"env"`
	Image      string                `json:"image"`
	Tag        string                `json:"tag"`
	Source     string                `json:"source,omitempty"`
	URL        string                `json:"url,omitempty"`
	Prerelease bool                  `json:"prerelease,omitempty"`
	Delivery   string                `json:"delivery,omitempty"`
	State      ledger.PromotionState `json:"state"`
	Reason     string                `json:"reason,omitempty"`
	Created    time.Time             `json:"created,omitzero"`
}

func (r promotionRecord) promotion() ledger.Promotion {
	return ledger.Promotion{
		Env: r.Env, Image: r.Image, Tag: r.Tag, Source: r.Source, URL: r.URL,
		Prerelease: r.Prerelease, Delivery: r.Delivery, State: r.State, Reason: r.Reason,
		Created: r.Created,
	}
}

// PutPromotion stores p, replacing the promotion of the same (Env, Image, Tag).
func (l *Ledger) PutPromotion(ctx context.Context, p ledger.Promotion) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		k, err := join(p.Image, p.Tag, p.Env)
		if err != nil {
			return err
		}
		return put(tx.Bucket(bucketPromotions), k, promotionRecord{
			Env: p.Env, Image: p.Image, Tag: p.Tag, Source: p.Source, URL: p.URL,
			Prerelease: p.Prerelease, Delivery: p.Delivery, State: p.State, Reason: p.Reason,
			Created: p.Created.UTC(),
		})
	})
	if err != nil {
		return fmt.Errorf("bolt: put promotion %s/%s:%s: %w", p.Env, p.Image, p.Tag, err)
	}
	return nil
}

// Promotions returns the promotions of image waiting for tag, or every
// promotion when image and tag are empty, ordered by Created. (An image alone
// selects all of its promotions.)
func (l *Ledger) Promotions(ctx context.Context, image, tag string) ([]ledger.Promotion, error) {
	var ps []ledger.Promotion
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		var prefix []byte
		if image != "" {
			names := []string{image}
			if tag != "" {
				names = append(names, tag)
			}
			k, err := join(names...)
			if err != nil {
				return err
			}
			prefix = append(k, 0)
		}
		c := tx.Bucket(bucketPromotions).Cursor()
		k, v := c.First()
		if prefix != nil {
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec promotionRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			if tag != "" && rec.Tag != tag {
				continue
			}
			ps = append(ps, rec.promotion())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: promotions %s:%s: %w", image, tag, err)
	}
	slices.SortStableFunc(ps, func(a, b ledger.Promotion) int { return a.Created.Compare(b.Created) })
	return ps, nil
}

// DeletePromotion removes the promotion of (env, image, tag), if any.
func (l *Ledger) DeletePromotion(ctx context.Context, env, image, tag string) error {
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		k, err := join(image, tag, env)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPromotions).Delete(k)
	})
	if err != nil {
		return fmt.Errorf("bolt: delete promotion %s/%s:%s: %w", env, image, tag, err)
	}
	return nil
}

// --- squashes ---

type squashRecord struct {
	Branch string          `json:"branch"`
	Time   time.Time       `json:"time"`
	Report json.RawMessage `json:"report,omitempty"`
}

// RecordSquash stores s as the last squash of its branch unless a newer one
// is stored ([ledger.KeepSquash]), and writes its history entry once, in one
// transaction.
func (l *Ledger) RecordSquash(ctx context.Context, s ledger.Squash) error {
	if len(s.Report) > 0 && !json.Valid(s.Report) {
		return fmt.Errorf("bolt: record squash of %s: the report is not JSON", s.Branch)
	}
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		k, err := join(s.Branch)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketSquashes)
		var cur squashRecord
		found, err := get(b, k, &cur)
		if err != nil {
			return err
		}
		if ledger.KeepSquash(ledger.Squash{Branch: cur.Branch, Time: cur.Time}, found, s) {
			if err := put(b, k, squashRecord{Branch: s.Branch, Time: s.Time.UTC(), Report: s.Report}); err != nil {
				return err
			}
		}
		if s.Entry == nil {
			return nil
		}
		ck, err := committedKey(s.Entry.Env, s.Entry.Image, s.Entry.Key)
		if err != nil {
			return err
		}
		if tx.Bucket(bucketCommitted).Get(ck) != nil {
			return nil
		}
		return putEntry(tx, *s.Entry)
	})
	if err != nil {
		return fmt.Errorf("bolt: record squash of %s: %w", s.Branch, err)
	}
	return nil
}

// Squashes returns the last squash of every branch, ordered by branch.
func (l *Ledger) Squashes(ctx context.Context) ([]ledger.Squash, error) {
	var out []ledger.Squash
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSquashes).ForEach(func(k, v []byte) error {
			var rec squashRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, ledger.Squash{Branch: rec.Branch, Time: rec.Time, Report: []byte(rec.Report)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: squashes: %w", err)
	}
	return out, nil
}

// --- helpers ---

// join builds a key from names separated by \x00.
func join(names ...string) ([]byte, error) {
	n := len(names) - 1
	for _, s := range names {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("%q: %w", s, errNUL)
		}
		n += len(s)
	}
	k := make([]byte, 0, n)
	for i, s := range names {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, s...)
	}
	return k, nil
}

// lookup reads, in a transaction of its own, the record of bucket at the key
// joined from names, and reports whether it was there.
func lookup[T any](ctx context.Context, l *Ledger, bucket []byte, names ...string) (rec T, ok bool, err error) {
	err = l.view(ctx, func(tx *bbolt.Tx) error {
		k, err := join(names...)
		if err != nil {
			return err
		}
		ok, err = get(tx.Bucket(bucket), k, &rec)
		return err
	})
	return rec, ok, err
}

// get decodes the value at k into v and reports whether it was there.
func get(b *bbolt.Bucket, k []byte, v any) (bool, error) {
	data := b.Get(k)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", k, err)
	}
	return true, nil
}

// put encodes v as JSON at k.
func put(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return b.Put(k, data)
}

// wrapErr wraps a non-nil err with context; it returns nil for nil.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
