// Package firestore implements [ledger.Ledger] on Cloud Firestore in Native
// mode (cloud.google.com/go/firestore), pinroll's ledger in the cloud
// (SPEC §5, ledger: firestore://PROJECT[/DATABASE]).
//
// Every read-modify-write is one Firestore transaction (RunTransaction) that
// reads the documents it needs, applies the rule of package ledger and writes
// the result: recording a digest and moving its tag ([ledger.SeeDigest],
// [ledger.MovesTag]), claiming a pin (the ordering check and the hold,
// [ledger.Claim]), committing a pin (its idempotent history entry,
// [ledger.PlanCommit]). Marking a delivery is one Create, whose "must not
// exist" precondition keeps the first outcome.
//
// Document layout. Names are escaped into document ids with url.PathEscape
// (so "/" never splits a path; "|" joins the parts of a composite id and is
// always escaped inside a part); see [docID]. Delivery and message ids, which
// may be any bytes, become ids with [ledger.StorageID]. Times are Firestore
// timestamps (microsecond precision); an ordering key is stored as keyTime
// (timestamp), keyNanos (the nanoseconds a timestamp drops, so keys
// round-trip exactly) and keyID, or keyIDRaw (bytes) for an id that is not
// valid UTF-8, which a Firestore string cannot hold ([ledger.SplitID]).
//
//	deliveries/{sid(id)}                         outcome, at
//	images/{image}/digests/{digest}              image, digest, firstSeen, lastSeen
//	images/{image}/digests/{digest}/tags/{tag}   tag, keyTime… of the first message naming it
//	images/{image}/tags/{tag}                    image, tag, digest, keyTime… of the newest message carrying it
//	pins/{env|image}                             env, image, digest, tag, keyTime…, cause, commit, time
//	holds/{env|image}                            env, image, since
//	history/{env|image}                          env, image (one stream per pinned (env, image))
//	history/{env|image}/entries/{keyTime|sid(keyID)}  env, image, digest, tag, commit, cause, keyTime…, time
//	promotions/{env|image|tag}                   env, image, tag, source, url, prerelease, delivery, state, reason, created
//	squashes/{branch}                            branch, time, report (JSON text): the last squash
//
// No document holds an unbounded array: a digest named by any number of
// messages is one small document, its tags one document each below it, every
// delivery and every history entry a document of its own. A history entry's
// id derives from (env, image, key), so writing it twice writes one document.
//
// Indexes: no query needs a composite index, so a new database works with
// Firestore's automatic single-field indexes. The queries are: history
// entries of one stream ordered by time (descending) with a limit, or with
// time == t (ties at the limit), or with digest == d; promotions with
// image == i (and tag == t: equality filters only, which Firestore serves by
// merging single-field indexes). Small sets are read whole and filtered and
// sorted in memory: pins (Pins), all promotions (Promotions("", "")) and the
// list of history streams, each bounded by the number of environments,
// images and waiting releases.
//
// The deliveries collection grows by one small document per message; a
// Firestore TTL policy on its field "expireAt" keeps it in check without code.
// Firestore's TTL deletes a document once the time in that field has passed,
// so the field holds the expiry (handled at + [ledger.DeliveryRetention]), not
// the time handled: a TTL on "at" would forget a delivery within a day.
package firestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pinroll/pinroll/internal/ledger"
)

// maxAttempts bounds the tries of one transaction under contention (Firestore
// aborts one of two transactions writing the same document; the client backs
// off and retries). Past it the error is transient for the caller.
const maxAttempts = 12

// Collection names.
const (
	colDeliveries = "deliveries"
	colImages     = "images"
	colDigests    = "digests"
	colTags       = "tags"
	colPins       = "pins"
	colHolds      = "holds"
	colHistory    = "history"
	colEntries    = "entries"
	colPromotions = "promotions"
	colSquashes   = "squashes"
)

// Ledger is a [ledger.Ledger] stored in a Firestore database. It is safe for
// concurrent use, also by several processes sharing the database.
type Ledger struct {
	client *firestore.Client
	now    func() time.Time
	closed atomic.Bool
}

var _ ledger.Ledger = (*Ledger)(nil)

// Option configures [Open].
type Option func(*config)

type config struct {
	now     func() time.Time
	clients []option.ClientOption
}

// WithClock makes the ledger read the time (a delivery's "at", a hold's
// "since") from now instead of [time.Now].
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithClientOptions passes opts to the Firestore client, e.g. credentials
// ([option.WithCredentialsFile]).
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(c *config) { c.clients = append(c.clients, opts...) }
}

// Open connects to the Firestore database of project ("" or "(default)" for
// the default database) with Application Default Credentials, unless
// [WithClientOptions] says otherwise. Like every Firestore client it uses the
// emulator at FIRESTORE_EMULATOR_HOST when that is set. See
// [firestore.NewClientWithDatabase].
func Open(ctx context.Context, project, database string, opts ...Option) (*Ledger, error) {
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if database == "" {
		database = firestore.DefaultDatabaseID
	}
	c, err := firestore.NewClientWithDatabase(ctx, project, database, cfg.clients...)
	if err != nil {
		return nil, fmt.Errorf("firestore: open %s/%s: %w", project, database, err)
	}
	return &Ledger{client: c, now: cfg.now}, nil
}

// Close closes the client. Later calls return [ledger.ErrClosed].
func (l *Ledger) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	if err := l.client.Close(); err != nil {
		return fmt.Errorf("firestore: close: %w", err)
	}
	return nil
}

// check fails on a closed ledger or a done context.
func (l *Ledger) check(ctx context.Context) error {
	if l.closed.Load() {
		return ledger.ErrClosed
	}
	return ctx.Err()
}

// wrap adds context to a non-nil err, turning the errors of a client closed
// meanwhile into [ledger.ErrClosed].
func (l *Ledger) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if l.closed.Load() && !errors.Is(err, ledger.ErrClosed) {
		err = fmt.Errorf("%w (%v)", ledger.ErrClosed, err)
	}
	return fmt.Errorf("firestore: "+format+": %w", append(args, err)...)
}

// runTx runs fn in a read-write transaction.
func (l *Ledger) runTx(ctx context.Context, fn func(context.Context, *firestore.Transaction) error) error {
	if err := l.check(ctx); err != nil {
		return err
	}
	return l.client.RunTransaction(ctx, fn, firestore.MaxAttempts(maxAttempts))
}

// --- document ids --------------------------------------------------------------

// maxIDBytes is Firestore's limit on a document id.
const maxIDBytes = 1500

// docID escapes a name into a document id: url.PathEscape, so that "/" and
// "|" never appear unescaped, with the ids Firestore forbids (empty, ".",
// "..", "__…") and over-long ones mapped apart. Distinct names give distinct
// ids. The original names are stored as fields; ids are never decoded.
func docID(s string) string {
	if s == "" {
		return "%" // PathEscape never yields a lone %
	}
	id := url.PathEscape(s)
	switch {
	case id == "." || id == "..":
		id = strings.ReplaceAll(id, ".", "%2E")
	case strings.HasPrefix(id, "__"):
		id = "%5F" + id[1:]
	}
	return id
}

// compositeID joins escaped names with "|" into one document id, hashing it
// when it is too long.
func compositeID(names ...string) string {
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = docID(n)
	}
	return capID(strings.Join(ids, "|"))
}

// capID returns id, or a hash of it when it exceeds Firestore's id limit
// ("%h" never appears in an escaped name).
func capID(id string) string {
	if len(id) <= maxIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "%hsha256-" + hex.EncodeToString(sum[:])
}

func (l *Ledger) deliveryRef(id string) *firestore.DocumentRef {
	return l.client.Collection(colDeliveries).Doc(ledger.StorageID(id))
}

func (l *Ledger) imageRef(image string) *firestore.DocumentRef {
	return l.client.Collection(colImages).Doc(capID(docID(image)))
}

func (l *Ledger) digestRef(image, digest string) *firestore.DocumentRef {
	return l.imageRef(image).Collection(colDigests).Doc(capID(docID(digest)))
}

func (l *Ledger) digestTagRef(image, digest, tag string) *firestore.DocumentRef {
	return l.digestRef(image, digest).Collection(colTags).Doc(capID(docID(tag)))
}

func (l *Ledger) tagRef(image, tag string) *firestore.DocumentRef {
	return l.imageRef(image).Collection(colTags).Doc(capID(docID(tag)))
}

func (l *Ledger) pinRef(env, image string) *firestore.DocumentRef {
	return l.client.Collection(colPins).Doc(compositeID(env, image))
}

func (l *Ledger) holdRef(env, image string) *firestore.DocumentRef {
	return l.client.Collection(colHolds).Doc(compositeID(env, image))
}

func (l *Ledger) streamRef(env, image string) *firestore.DocumentRef {
	return l.client.Collection(colHistory).Doc(compositeID(env, image))
}

// entryRef is the history entry of (env, image, key): one id per key, so the
// entry is written once however often the pin is committed.
func (l *Ledger) entryRef(env, image string, k ledger.Key) *firestore.DocumentRef {
	ts := k.Time.UTC().Format("20060102T150405.000000000Z")
	return l.streamRef(env, image).Collection(colEntries).Doc(ts + "|" + ledger.StorageID(k.ID))
}

func (l *Ledger) promotionRef(env, image, tag string) *firestore.DocumentRef {
	return l.client.Collection(colPromotions).Doc(compositeID(env, image, tag))
}

// --- documents -------------------------------------------------------------------

// keyNanos returns the nanoseconds of t that a Firestore timestamp drops.
func keyNanos(t time.Time) int64 { return int64(t.Nanosecond() % 1000) }

// keyOf rebuilds a key from its stored fields.
func keyOf(t time.Time, nanos int64, id string, raw []byte) ledger.Key {
	k := ledger.Key{ID: ledger.JoinID(id, raw)}
	if !t.IsZero() || nanos != 0 {
		k.Time = t.Add(time.Duration(nanos))
	}
	return k
}

// keyFields holds the stored fields of a key, embedded in the documents
// that have one.
type keyFields struct {
	KeyTime  time.Time `firestore:"keyTime"`
	KeyNanos int64     `firestore:"keyNanos"`
	KeyID    string    `firestore:"keyID"`
	KeyIDRaw []byte    `firestore:"keyIDRaw,omitempty"`
}

func toKeyFields(k ledger.Key) keyFields {
	text, raw := ledger.SplitID(k.ID)
	return keyFields{KeyTime: utc(k.Time), KeyNanos: keyNanos(k.Time), KeyID: text, KeyIDRaw: raw}
}

func (f keyFields) key() ledger.Key { return keyOf(f.KeyTime, f.KeyNanos, f.KeyID, f.KeyIDRaw) }

// utc returns t in UTC truncated to microseconds, as a Firestore timestamp
// keeps it (the service would round it), keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

type deliveryDoc struct {
	Outcome  string    `firestore:"outcome"`
	At       time.Time `firestore:"at"`
	ExpireAt time.Time `firestore:"expireAt"` // the TTL field: At + ledger.DeliveryRetention
}

type digestDoc struct {
	Image     string    `firestore:"image"`
	Digest    string    `firestore:"digest"`
	FirstSeen time.Time `firestore:"firstSeen"`
	LastSeen  time.Time `firestore:"lastSeen"`
}

// digestTagDoc is one tag of a digest, with the key of the oldest message
// naming it.
type digestTagDoc struct {
	Tag string `firestore:"tag"`
	keyFields
}

type tagDoc struct {
	Image  string `firestore:"image"`
	Tag    string `firestore:"tag"`
	Digest string `firestore:"digest"`
	keyFields
}

type pinDoc struct {
	Env    string `firestore:"env"`
	Image  string `firestore:"image"`
	Digest string `firestore:"digest"`
	Tag    string `firestore:"tag"`
	keyFields
	Cause  string    `firestore:"cause"`
	Commit string    `firestore:"commit"`
	Time   time.Time `firestore:"time"`
}

func toPinDoc(p ledger.Pin) pinDoc {
	return pinDoc{
		Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag, keyFields: toKeyFields(p.Key),
		Cause: string(p.Cause), Commit: p.Commit, Time: utc(p.Time),
	}
}

func (d pinDoc) pin() ledger.Pin {
	return ledger.Pin{
		Env: d.Env, Image: d.Image, Digest: d.Digest, Tag: d.Tag, Key: d.key(),
		Cause: ledger.Cause(d.Cause), Commit: d.Commit, Time: utc(d.Time),
	}
}

type holdDoc struct {
	Env    string    `firestore:"env"`
	Image  string    `firestore:"image"`
	Since  time.Time `firestore:"since"`
	Reason string    `firestore:"reason,omitempty"`
}

type streamDoc struct {
	Env   string `firestore:"env"`
	Image string `firestore:"image"`
}

type entryDoc struct {
	Env    string `firestore:"env"`
	Image  string `firestore:"image"`
	Digest string `firestore:"digest"`
	Tag    string `firestore:"tag"`
	Commit string `firestore:"commit"`
	Cause  string `firestore:"cause"`
	keyFields
	Time time.Time `firestore:"time"`
}

func toEntryDoc(e ledger.Entry) entryDoc {
	return entryDoc{
		Env: e.Env, Image: e.Image, Digest: e.Digest, Tag: e.Tag, Commit: e.Commit,
		Cause: string(e.Cause), keyFields: toKeyFields(e.Key), Time: utc(e.Time),
	}
}

func (d entryDoc) entry() ledger.Entry {
	return ledger.Entry{
		Env: d.Env, Image: d.Image, Digest: d.Digest, Tag: d.Tag, Commit: d.Commit,
		Cause: ledger.Cause(d.Cause), Key: d.key(), Time: utc(d.Time),
	}
}

type promotionDoc struct {
	Env        string    `firestore:"env"`
	Image      string    `firestore:"image"`
	Tag        string    `firestore:"tag"`
	Source     string    `firestore:"source"`
	URL        string    `firestore:"url"`
	Prerelease bool      `firestore:"prerelease"`
	Delivery   string    `firestore:"delivery"`
	State      string    `firestore:"state"`
	Reason     string    `firestore:"reason"`
	Created    time.Time `firestore:"created"`
}

func (d promotionDoc) promotion() ledger.Promotion {
	return ledger.Promotion{
		Env: d.Env, Image: d.Image, Tag: d.Tag, Source: d.Source, URL: d.URL,
		Prerelease: d.Prerelease, Delivery: d.Delivery, State: ledger.PromotionState(d.State),
		Reason: d.Reason, Created: utc(d.Created),
	}
}

// notFound reports whether err says a document does not exist.
func notFound(err error) bool { return status.Code(err) == codes.NotFound }

// getDoc reads ref into v (inside tx when tx is not nil) and reports whether
// the document exists.
func getDoc(ctx context.Context, tx *firestore.Transaction, ref *firestore.DocumentRef, v any) (bool, error) {
	var (
		snap *firestore.DocumentSnapshot
		err  error
	)
	if tx != nil {
		snap, err = tx.Get(ref)
	} else {
		snap, err = ref.Get(ctx)
	}
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", ref.Path, err)
	}
	if err := snap.DataTo(v); err != nil {
		return true, fmt.Errorf("decode %s: %w", ref.Path, err)
	}
	return true, nil
}

// decode decodes snap into v, if the document exists, and reports whether
// it does.
func decode(snap *firestore.DocumentSnapshot, v any) (bool, error) {
	if !snap.Exists() {
		return false, nil
	}
	if err := snap.DataTo(v); err != nil {
		return true, fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
	}
	return true, nil
}

// all decodes every document of it into T.
func all[T any](it *firestore.DocumentIterator) ([]T, error) {
	defer it.Stop()
	var out []T
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var v T
		if err := snap.DataTo(&v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
		}
		out = append(out, v)
	}
}

// --- deliveries ------------------------------------------------------------------

// Delivery reports the outcome recorded for a delivery id, if it was handled.
func (l *Ledger) Delivery(ctx context.Context, id string) (outcome string, ok bool, err error) {
	if err := l.check(ctx); err != nil {
		return "", false, l.wrap(err, "delivery %.64q", id)
	}
	var d deliveryDoc
	ok, err = getDoc(ctx, nil, l.deliveryRef(id), &d)
	if err != nil {
		return "", false, l.wrap(err, "delivery %.64q", id)
	}
	return d.Outcome, ok, nil
}

// MarkDelivery records each of durable as CommitPin does, then that delivery
// id was handled with outcome, in one transaction. Marking the same id again
// keeps the first outcome: the document is created only if it does not exist
// yet. Without durable pins it is one Create, no transaction.
func (l *Ledger) MarkDelivery(ctx context.Context, id, outcome string, durable ...ledger.Committed) error {
	if err := l.check(ctx); err != nil {
		return l.wrap(err, "mark delivery %.64q", id)
	}
	if id == "" {
		return l.wrap(errors.New("empty delivery id"), "mark delivery")
	}
	at := utc(l.now())
	doc := deliveryDoc{Outcome: outcome, At: at, ExpireAt: at.Add(ledger.DeliveryRetention)}
	if len(durable) == 0 {
		_, err := l.deliveryRef(id).Create(ctx, doc)
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return l.wrap(err, "mark delivery %.64q", id)
	}
	// One transaction: the delivery's reads and every pin's in one round
	// trip, then the writes. A document is written once per transaction: a
	// pin listed twice (same pair and key) is recorded once, and a pair's
	// stream document is set once.
	dRef := l.deliveryRef(id)
	refs := []*firestore.DocumentRef{dRef}
	var applies []commitApply
	seen := map[string]bool{}
	for _, c := range durable {
		eRef := l.entryRef(c.Pin.Env, c.Pin.Image, c.Pin.Key)
		if !seen[eRef.Path] {
			seen[eRef.Path] = true
			r, apply := l.commitPin(c.Pin, c.Commit, c.At)
			refs = append(refs, r...)
			applies = append(applies, apply)
		}
	}
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		streams := map[string]bool{}
		for i, apply := range applies {
			if err := apply(tx, snaps[1+2*i:3+2*i], streams); err != nil {
				return err
			}
		}
		if snaps[0].Exists() {
			return nil
		}
		return tx.Create(dRef, doc)
	})
	return l.wrap(err, "mark delivery %.64q", id)
}

// --- digests and tags ----------------------------------------------------------

// RecordDigest records that image was pushed with digest, adding tag (when not
// empty) to the digest's tags. The tag then names this digest, unless a
// message with a newer key already moved it to another digest.
func (l *Ledger) RecordDigest(ctx context.Context, image, digest, tag string, key ledger.Key) error {
	refs, apply := l.recordDigest(image, digest, tag, key)
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		// Reads first, in one round trip: a transaction cannot read after
		// it wrote.
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		return apply(tx, snaps)
	})
	return l.wrap(err, "record digest %s@%s", image, digest)
}

// RecordClaim records the digest as RecordDigest does and claims each of
// pins as ClaimPin does, in one transaction whose reads share one round trip.
func (l *Ledger) RecordClaim(ctx context.Context, image, digest, tag string, key ledger.Key, pins []ledger.Pin) ([]ledger.Claimed, error) {
	refs, apply := l.recordDigest(image, digest, tag, key)
	n := len(refs)
	for _, p := range pins {
		refs = append(refs, l.pinRef(p.Env, p.Image), l.holdRef(p.Env, p.Image))
	}
	var out []ledger.Claimed
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = out[:0]
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		if err := apply(tx, snaps[:n]); err != nil {
			return err
		}
		for i, p := range pins {
			c, err := claimPin(tx, snaps[n+2*i], snaps[n+2*i+1], p)
			if err != nil {
				return fmt.Errorf("claim pin %s/%s: %w", p.Env, p.Image, err)
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, l.wrap(err, "record and claim %s@%s", image, digest)
	}
	return out, nil
}

// recordDigest returns the documents RecordDigest reads and the function
// that applies it in a transaction, given their snapshots.
func (l *Ledger) recordDigest(image, digest, tag string, key ledger.Key) ([]*firestore.DocumentRef, func(*firestore.Transaction, []*firestore.DocumentSnapshot) error) {
	dRef := l.digestRef(image, digest)
	refs := []*firestore.DocumentRef{dRef}
	var dtRef, tRef *firestore.DocumentRef
	if tag != "" {
		dtRef, tRef = l.digestTagRef(image, digest, tag), l.tagRef(image, tag)
		refs = append(refs, dtRef, tRef)
	}
	kt := utc(key.Time)
	return refs, func(tx *firestore.Transaction, snaps []*firestore.DocumentSnapshot) error {
		d := digestDoc{Image: image, Digest: digest}
		dFound, err := decode(snaps[0], &d)
		if err != nil {
			return err
		}
		var (
			dtFound, tFound bool
			dt              digestTagDoc
			t               tagDoc
		)
		if tag != "" {
			if dtFound, err = decode(snaps[1], &dt); err != nil {
				return err
			}
			if tFound, err = decode(snaps[2], &t); err != nil {
				return err
			}
		}

		// Tags are documents of their own: the rule sees the seen times.
		seen, changed := ledger.SeeDigest(ledger.Digest{FirstSeen: d.FirstSeen, LastSeen: d.LastSeen}, "", ledger.Key{Time: kt})
		if changed || !dFound {
			d.FirstSeen, d.LastSeen = seen.FirstSeen, seen.LastSeen
			if err := tx.Set(dRef, d); err != nil {
				return err
			}
		}
		if tag == "" {
			return nil
		}
		if !dtFound || key.Less(dt.key()) {
			if err := tx.Set(dtRef, digestTagDoc{Tag: tag, keyFields: toKeyFields(key)}); err != nil {
				return err
			}
		}
		if !ledger.MovesTag(t.key(), tFound, key) {
			return nil
		}
		return tx.Set(tRef, tagDoc{Image: image, Tag: tag, Digest: digest, keyFields: toKeyFields(key)})
	}
}

// Digest returns the record of one digest of image, its tags in
// [ledger.SortTags] order.
func (l *Ledger) Digest(ctx context.Context, image, digest string) (ledger.Digest, bool, error) {
	if err := l.check(ctx); err != nil {
		return ledger.Digest{}, false, l.wrap(err, "digest %s@%s", image, digest)
	}
	ref := l.digestRef(image, digest)
	var d digestDoc
	ok, err := getDoc(ctx, nil, ref, &d)
	if err != nil || !ok {
		return ledger.Digest{}, false, l.wrap(err, "digest %s@%s", image, digest)
	}
	tags, err := all[digestTagDoc](ref.Collection(colTags).Documents(ctx))
	if err != nil {
		return ledger.Digest{}, false, l.wrap(err, "digest %s@%s: tags", image, digest)
	}
	out := ledger.Digest{Image: d.Image, Digest: d.Digest, FirstSeen: utc(d.FirstSeen), LastSeen: utc(d.LastSeen)}
	for _, t := range tags {
		out.Tags = append(out.Tags, t.Tag)
	}
	out.Tags = ledger.SortTags(out.Tags)
	return out, true, nil
}

// TagDigest returns the digest that tag of image names now: the one of the
// newest message that carried the tag.
func (l *Ledger) TagDigest(ctx context.Context, image, tag string) (string, bool, error) {
	if err := l.check(ctx); err != nil {
		return "", false, l.wrap(err, "tag %s:%s", image, tag)
	}
	if tag == "" {
		return "", false, nil
	}
	var t tagDoc
	ok, err := getDoc(ctx, nil, l.tagRef(image, tag), &t)
	if err != nil || !ok {
		return "", false, l.wrap(err, "tag %s:%s", image, tag)
	}
	return t.Digest, true, nil
}

// --- pins and history ------------------------------------------------------------

// Pin returns the pin of (env, image).
func (l *Ledger) Pin(ctx context.Context, env, image string) (ledger.Pin, bool, error) {
	if err := l.check(ctx); err != nil {
		return ledger.Pin{}, false, l.wrap(err, "pin %s/%s", env, image)
	}
	var d pinDoc
	ok, err := getDoc(ctx, nil, l.pinRef(env, image), &d)
	if err != nil || !ok {
		return ledger.Pin{}, false, l.wrap(err, "pin %s/%s", env, image)
	}
	return d.pin(), true, nil
}

// Pins returns every pin, ordered by env then image. The pins collection
// holds one document per (env, image) and is read whole.
func (l *Ledger) Pins(ctx context.Context) ([]ledger.Pin, error) {
	if err := l.check(ctx); err != nil {
		return nil, l.wrap(err, "pins")
	}
	docs, err := all[pinDoc](l.client.Collection(colPins).Documents(ctx))
	if err != nil {
		return nil, l.wrap(err, "pins")
	}
	pins := make([]ledger.Pin, len(docs))
	for i, d := range docs {
		pins[i] = d.pin()
	}
	slices.SortFunc(pins, func(a, b ledger.Pin) int {
		if c := strings.Compare(a.Env, b.Env); c != 0 {
			return c
		}
		return strings.Compare(a.Image, b.Image)
	})
	return pins, nil
}

// ClaimPin makes p the pin of (p.Env, p.Image) as [ledger.Claim] decides,
// reading the pin and the hold in the transaction that writes the claim (a
// hold set meanwhile aborts and retries it).
func (l *Ledger) ClaimPin(ctx context.Context, p ledger.Pin) (current ledger.Pin, applied bool, err error) {
	ref, hRef := l.pinRef(p.Env, p.Image), l.holdRef(p.Env, p.Image)
	err = l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll([]*firestore.DocumentRef{ref, hRef})
		if err != nil {
			return err
		}
		c, err := claimPin(tx, snaps[0], snaps[1], p)
		current, applied = c.Current, c.Applied
		if err == nil && c.Held {
			err = ledger.ErrHeld
		}
		return err
	})
	if err != nil {
		return current, false, l.wrap(err, "claim pin %s/%s", p.Env, p.Image)
	}
	return current, applied, nil
}

// claimPin applies [ledger.Claim] in tx, given the snapshots of the pin and
// of the hold; a held pair is reported in Held, not as an error.
func claimPin(tx *firestore.Transaction, pin, hold *firestore.DocumentSnapshot, p ledger.Pin) (ledger.Claimed, error) {
	var cur pinDoc
	found, err := decode(pin, &cur)
	if err != nil {
		return ledger.Claimed{}, err
	}
	c := ledger.Claimed{Before: cur.pin(), Had: found}
	c.Current, c.Applied, err = ledger.Claim(cur.pin(), found, hold.Exists(), p)
	if errors.Is(err, ledger.ErrHeld) {
		c.Held = true
		return c, nil
	}
	if err != nil || !c.Applied {
		return c, err
	}
	next := toPinDoc(c.Current)
	c.Current = next.pin() // as stored: UTC, microseconds
	return c, tx.Set(pin.Ref, next)
}

// CommitPin records that p is durable in git at commit: the pin's Commit and
// Time (at) are set when its key still equals p.Key, and one history entry is
// written for (p.Env, p.Image, p.Key). Once that entry exists, calling it
// again changes nothing.
func (l *Ledger) CommitPin(ctx context.Context, p ledger.Pin, commit string, at time.Time) error {
	refs, apply := l.commitPin(p, commit, at)
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		return apply(tx, snaps, map[string]bool{})
	})
	return l.wrap(err, "commit pin %s/%s at %s", p.Env, p.Image, commit)
}

// commitApply applies one CommitPin in tx, given the snapshots of the
// documents it read; streams holds the paths of the history streams the
// transaction set already (each is set once).
type commitApply func(tx *firestore.Transaction, snaps []*firestore.DocumentSnapshot, streams map[string]bool) error

// commitPin returns the two documents CommitPin reads, in the order its apply
// takes their snapshots, and that apply.
func (l *Ledger) commitPin(p ledger.Pin, commit string, at time.Time) ([]*firestore.DocumentRef, commitApply) {
	pRef := l.pinRef(p.Env, p.Image)
	sRef := l.streamRef(p.Env, p.Image)
	eRef := l.entryRef(p.Env, p.Image, p.Key)
	return []*firestore.DocumentRef{eRef, pRef}, func(tx *firestore.Transaction, snaps []*firestore.DocumentSnapshot, streams map[string]bool) error {
		var cur pinDoc
		found, err := decode(snaps[1], &cur)
		if err != nil {
			return err
		}
		plan := ledger.PlanCommit(cur.pin(), found, snaps[0].Exists(), p, commit, at)
		if plan.WritePin {
			if err := tx.Set(pRef, toPinDoc(plan.Pin)); err != nil {
				return err
			}
		}
		if !plan.WriteEntry {
			return nil
		}
		if !streams[sRef.Path] {
			streams[sRef.Path] = true
			if err := tx.Set(sRef, streamDoc{Env: p.Env, Image: p.Image}); err != nil {
				return err
			}
		}
		return tx.Create(eRef, toEntryDoc(plan.Entry))
	}
}

// History returns the entries q selects, newest first ([ledger.HistoryOrder]).
//
// Entries live in one stream per (env, image). The streams the query selects
// are found by reading the small history collection; each is then queried
// alone (ordered by time with the limit and from the cursor, or by digest)
// and the results are merged in memory.
func (l *Ledger) History(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Entry, error) {
	if err := l.check(ctx); err != nil {
		return nil, l.wrap(err, "history")
	}
	entries, err := l.history(ctx, q)
	if err != nil {
		return nil, l.wrap(err, "history %+v", q)
	}
	return entries, nil
}

func (l *Ledger) history(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Entry, error) {
	var streams []streamDoc
	if q.Env != "" && q.Image != "" {
		streams = []streamDoc{{Env: q.Env, Image: q.Image}}
	} else {
		found, err := all[streamDoc](l.client.Collection(colHistory).Documents(ctx))
		if err != nil {
			return nil, err
		}
		for _, s := range found {
			if (q.Env == "" || s.Env == q.Env) && (q.Image == "" || s.Image == q.Image) {
				streams = append(streams, s)
			}
		}
	}
	var docs []entryDoc
	for _, s := range streams {
		got, err := l.stream(ctx, s, q)
		if err != nil {
			return nil, err
		}
		docs = append(docs, got...)
	}
	var entries []ledger.Entry
	for _, d := range docs {
		if e := d.entry(); q.Matches(e) && q.Before.Admits(e) {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, ledger.HistoryOrder)
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
	}
	return entries, nil
}

// stream returns the entries of one stream that can be among the first
// q.Limit results of q (the caller filters and sorts): all those of
// q.Digest, or those at the cursor's time plus the newest q.Limit older than
// it, plus any that tie with the last of them.
func (l *Ledger) stream(ctx context.Context, s streamDoc, q ledger.HistoryQuery) ([]entryDoc, error) {
	col := l.streamRef(s.Env, s.Image).Collection(colEntries)
	if q.Digest != "" {
		return all[entryDoc](col.Where("digest", "==", q.Digest).Documents(ctx))
	}
	if q.Limit <= 0 {
		return all[entryDoc](col.Documents(ctx))
	}
	var docs []entryDoc
	page := col.OrderBy("time", firestore.Desc)
	if !q.Before.IsZero() {
		at := utc(q.Before.Time)
		ties, err := all[entryDoc](col.Where("time", "==", at).Documents(ctx))
		if err != nil {
			return nil, err
		}
		docs = ties
		page = col.Where("time", "<", at).OrderBy("time", firestore.Desc)
	}
	older, err := all[entryDoc](page.Limit(q.Limit).Documents(ctx))
	if err != nil || len(older) < q.Limit {
		return append(docs, older...), err
	}
	last := older[len(older)-1].Time
	ties, err := all[entryDoc](col.Where("time", "==", last).Documents(ctx))
	if err != nil {
		return nil, err
	}
	docs = append(docs, ties...) // every entry at last, so none of older at last
	for _, d := range older {
		if !d.Time.Equal(last) {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// --- holds -----------------------------------------------------------------------

// SetHold pauses (held) or resumes automatic updates of (env, image).
func (l *Ledger) SetHold(ctx context.Context, env, image string, held bool) error {
	ref := l.holdRef(env, image)
	// A transaction, retried when aborted: claims read the hold document in
	// theirs, and under contention a lone write can lose the lock race.
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil && !notFound(err) {
			return err
		}
		switch {
		case !held:
			return tx.Delete(ref)
		case snap.Exists():
			return nil // held already: keep the time it started
		}
		return tx.Create(ref, holdDoc{Env: env, Image: image, Since: utc(l.now())})
	})
	return l.wrap(err, "set hold %s/%s=%t", env, image, held)
}

// Held reports whether (env, image) is held.
func (l *Ledger) Held(ctx context.Context, env, image string) (bool, error) {
	if err := l.check(ctx); err != nil {
		return false, l.wrap(err, "held %s/%s", env, image)
	}
	var d holdDoc
	ok, err := getDoc(ctx, nil, l.holdRef(env, image), &d)
	if err != nil {
		return false, l.wrap(err, "held %s/%s", env, image)
	}
	return ok, nil
}

// PutHold holds (h.Env, h.Image) with a reason, as [ledger.MergeHold] decides.
func (l *Ledger) PutHold(ctx context.Context, h ledger.Hold) error {
	ref := l.holdRef(h.Env, h.Image)
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		var cur holdDoc
		found, err := getDoc(ctx, tx, ref, &cur)
		if err != nil {
			return err
		}
		next := ledger.MergeHold(ledger.Hold{Env: cur.Env, Image: cur.Image, Reason: cur.Reason, Since: cur.Since}, found, h, utc(l.now()))
		return tx.Set(ref, holdDoc{Env: h.Env, Image: h.Image, Since: utc(next.Since), Reason: next.Reason})
	})
	return l.wrap(err, "put hold %s/%s", h.Env, h.Image)
}

// Holds returns every hold, ordered by env then image. The holds collection
// holds one small document per held pair and is read whole.
func (l *Ledger) Holds(ctx context.Context) ([]ledger.Hold, error) {
	if err := l.check(ctx); err != nil {
		return nil, l.wrap(err, "holds")
	}
	docs, err := all[holdDoc](l.client.Collection(colHolds).Documents(ctx))
	if err != nil {
		return nil, l.wrap(err, "holds")
	}
	holds := make([]ledger.Hold, len(docs))
	for i, d := range docs {
		holds[i] = ledger.Hold{Env: d.Env, Image: d.Image, Reason: d.Reason, Since: d.Since}
	}
	slices.SortFunc(holds, func(a, b ledger.Hold) int {
		if c := strings.Compare(a.Env, b.Env); c != 0 {
			return c
		}
		return strings.Compare(a.Image, b.Image)
	})
	return holds, nil
}

// RepointPins moves the pins carried by replaced commits to the commits that
// carry them now, as [ledger.Repoint] decides, in one transaction over the
// (small) pins collection.
func (l *Ledger) RepointPins(ctx context.Context, moved map[string]string) (int, error) {
	n := 0
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		n = 0
		it := tx.Documents(l.client.Collection(colPins))
		defer it.Stop()
		type change struct {
			ref *firestore.DocumentRef
			doc pinDoc
		}
		var changes []change
		for {
			snap, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return err
			}
			var d pinDoc
			if err := snap.DataTo(&d); err != nil {
				return fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
			}
			if p, ok := ledger.Repoint(d.pin(), moved); ok {
				changes = append(changes, change{snap.Ref, toPinDoc(p)})
			}
		}
		for _, c := range changes {
			if err := tx.Set(c.ref, c.doc); err != nil {
				return err
			}
		}
		n = len(changes)
		return nil
	})
	if err != nil {
		return 0, l.wrap(err, "repoint pins")
	}
	return n, nil
}

// --- promotions ------------------------------------------------------------------

// PutPromotion stores p, replacing the promotion of the same (Env, Image, Tag).
func (l *Ledger) PutPromotion(ctx context.Context, p ledger.Promotion) error {
	if err := l.check(ctx); err != nil {
		return l.wrap(err, "put promotion %s/%s:%s", p.Env, p.Image, p.Tag)
	}
	_, err := l.promotionRef(p.Env, p.Image, p.Tag).Set(ctx, promotionDoc{
		Env: p.Env, Image: p.Image, Tag: p.Tag, Source: p.Source, URL: p.URL,
		Prerelease: p.Prerelease, Delivery: p.Delivery, State: string(p.State),
		Reason: p.Reason, Created: utc(p.Created),
	})
	return l.wrap(err, "put promotion %s/%s:%s", p.Env, p.Image, p.Tag)
}

// Promotions returns the promotions of image waiting for tag, or every
// promotion when image and tag are empty, ordered by Created (then env,
// image, tag). An image alone selects all of its promotions.
func (l *Ledger) Promotions(ctx context.Context, image, tag string) ([]ledger.Promotion, error) {
	if err := l.check(ctx); err != nil {
		return nil, l.wrap(err, "promotions %s:%s", image, tag)
	}
	q := l.client.Collection(colPromotions).Query
	if image != "" {
		q = q.Where("image", "==", image)
	}
	if tag != "" {
		q = q.Where("tag", "==", tag)
	}
	docs, err := all[promotionDoc](q.Documents(ctx))
	if err != nil {
		return nil, l.wrap(err, "promotions %s:%s", image, tag)
	}
	ps := make([]ledger.Promotion, len(docs))
	for i, d := range docs {
		ps[i] = d.promotion()
	}
	slices.SortFunc(ps, func(a, b ledger.Promotion) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(compositeID(a.Env, a.Image, a.Tag), compositeID(b.Env, b.Image, b.Tag))
	})
	return ps, nil
}

// DeletePromotion removes the promotion of (env, image, tag), if any.
func (l *Ledger) DeletePromotion(ctx context.Context, env, image, tag string) error {
	if err := l.check(ctx); err != nil {
		return l.wrap(err, "delete promotion %s/%s:%s", env, image, tag)
	}
	_, err := l.promotionRef(env, image, tag).Delete(ctx)
	return l.wrap(err, "delete promotion %s/%s:%s", env, image, tag)
}

// --- squashes ----------------------------------------------------------------------

type squashDoc struct {
	Branch string    `firestore:"branch"`
	Time   time.Time `firestore:"time"`
	Report string    `firestore:"report"`
}

func (l *Ledger) squashRef(branch string) *firestore.DocumentRef {
	return l.client.Collection(colSquashes).Doc(capID(docID(branch)))
}

// RecordSquash stores s as the last squash of its branch unless a newer one
// is stored ([ledger.KeepSquash]), and writes its history entry once, in one
// transaction.
func (l *Ledger) RecordSquash(ctx context.Context, s ledger.Squash) error {
	ref := l.squashRef(s.Branch)
	refs := []*firestore.DocumentRef{ref}
	if s.Entry != nil {
		refs = append(refs, l.entryRef(s.Entry.Env, s.Entry.Image, s.Entry.Key))
	}
	err := l.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		var cur squashDoc
		found, err := decode(snaps[0], &cur)
		if err != nil {
			return err
		}
		if ledger.KeepSquash(ledger.Squash{Branch: cur.Branch, Time: utc(cur.Time)}, found, s) {
			if err := tx.Set(ref, squashDoc{Branch: s.Branch, Time: utc(s.Time), Report: string(s.Report)}); err != nil {
				return err
			}
		}
		if s.Entry == nil || snaps[1].Exists() {
			return nil
		}
		e := *s.Entry
		if err := tx.Set(l.streamRef(e.Env, e.Image), streamDoc{Env: e.Env, Image: e.Image}); err != nil {
			return err
		}
		return tx.Create(refs[1], toEntryDoc(e))
	})
	return l.wrap(err, "record squash of %s", s.Branch)
}

// Squashes returns the last squash of every branch, ordered by branch.
func (l *Ledger) Squashes(ctx context.Context) ([]ledger.Squash, error) {
	if err := l.check(ctx); err != nil {
		return nil, l.wrap(err, "squashes")
	}
	docs, err := all[squashDoc](l.client.Collection(colSquashes).Documents(ctx))
	if err != nil {
		return nil, l.wrap(err, "squashes")
	}
	out := make([]ledger.Squash, 0, len(docs))
	for _, d := range docs {
		out = append(out, ledger.Squash{Branch: d.Branch, Time: utc(d.Time), Report: []byte(d.Report)})
	}
	slices.SortFunc(out, func(a, b ledger.Squash) int { return strings.Compare(a.Branch, b.Branch) })
	return out, nil
}
