package firestore

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/firestore/apiv1/firestorepb"

	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/ledgertest"
	"github.com/pinroll/pinroll/internal/testing/emulator"
)

func TestMain(m *testing.M) { emulator.Main(m) }

// open opens a ledger on project in the emulator, closed when t ends.
func open(t testing.TB, project, database string) *Ledger {
	t.Helper()
	emulator.Firestore(t)
	l, err := Open(t.Context(), project, database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestContract runs the ledger contract suite, each ledger in a project of
// its own.
func TestContract(t *testing.T) {
	emulator.Firestore(t)
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		t.Helper()
		l, err := Open(t.Context(), emulator.ProjectID(t), "")
		if err != nil {
			t.Fatal(err)
		}
		return l // the suite closes it
	})
}

var (
	base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	dA   = "sha256:" + strings.Repeat("a", 64)
	dB   = "sha256:" + strings.Repeat("b", 64)
)

func key(n int) ledger.Key {
	return ledger.Key{Time: base.Add(time.Duration(n) * time.Second), ID: fmt.Sprintf("msg-%05d", n)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDigestNamedByManyMessages records one digest from many messages (a few
// tags, every message also marked as a delivery) and checks that the digest
// stays one small document without arrays: tags and deliveries are documents
// of their own.
func TestDigestNamedByManyMessages(t *testing.T) {
	t.Parallel()
	// Measured on the emulator, two shared busy cores, 4 handlers: 2,000
	// messages took 33-63 s, 500 took 18-22 s (a cold JVM is slowest). 500
	// show the same shape; PINROLL_FIRESTORE_MESSAGES=2000 runs more.
	n := 500
	if testing.Short() {
		n = 100
	}
	if s := os.Getenv("PINROLL_FIRESTORE_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 4 {
			t.Fatalf("PINROLL_FIRESTORE_MESSAGES=%q: want a number ≥ 4", s)
		}
	}
	l := open(t, emulator.ProjectID(t), "")
	ctx := t.Context()
	tags := []string{"latest", "main", "v1.2.3", ""}

	// Messages arrive from a few concurrent handlers, as Pub/Sub pushes them;
	// they contend on the digest document, which transactions serialise.
	const workers = 4
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				id := fmt.Sprintf("delivery-%05d", i)
				if err := l.RecordDigest(ctx, "server", dA, tags[i%len(tags)], key(i)); err != nil {
					errs[w] = err
					return
				}
				if err := l.MarkDelivery(ctx, id, "recorded"); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	t.Logf("%d messages (RecordDigest + MarkDelivery) in %v", n, time.Since(start).Round(time.Millisecond))

	d, ok, err := l.Digest(ctx, "server", dA)
	if err != nil || !ok {
		t.Fatalf("Digest = %v, %v", ok, err)
	}
	if got := strings.Join(d.Tags, ","); got != "latest,main,v1.2.3" {
		t.Errorf("tags = %s, want latest,main,v1.2.3 (by name)", got)
	}
	if !d.FirstSeen.Equal(key(0).Time) || !d.LastSeen.Equal(key(n-1).Time) {
		t.Errorf("seen %v..%v, want %v..%v", d.FirstSeen, d.LastSeen, key(0).Time, key(n-1).Time)
	}
	for _, tag := range tags[:3] {
		if got, ok, err := l.TagDigest(ctx, "server", tag); err != nil || !ok || got != dA {
			t.Errorf("TagDigest(%s) = %s, %v, %v", tag, got, ok, err)
		}
	}

	// The digest document itself: small, and no arrays or maps.
	snap, err := l.digestRef("server", dA).Get(ctx)
	must(t, err)
	data := snap.Data()
	for k, v := range data {
		switch v.(type) {
		case []any, map[string]any:
			t.Errorf("digest document field %s is a %T: unbounded", k, v)
		}
	}
	if b, _ := json.Marshal(data); len(b) > 512 {
		t.Errorf("digest document is %d bytes of JSON, want a small bounded document: %s", len(b), b)
	}
	count(t, l.imageRef("server").Collection(colDigests), 1)
	count(t, l.digestRef("server", dA).Collection(colTags), 3)
	count(t, l.client.Collection(colDeliveries), n)
}

// count checks the number of documents in col, with an aggregation query.
func count(t *testing.T, col *firestore.CollectionRef, want int) {
	t.Helper()
	res, err := col.NewAggregationQuery().WithCount("n").Get(t.Context())
	must(t, err)
	v, ok := res["n"].(*firestorepb.Value)
	if !ok {
		t.Fatalf("%s: count result %T", col.Path, res["n"])
	}
	if got := v.GetIntegerValue(); got != int64(want) {
		t.Errorf("%s: %d documents, want %d", col.Path, got, want)
	}
}

// TestClaimPinTwoClients claims pins of one (env, image) from two clients
// (two Open calls on one project, as two Cloud Run instances would) at the
// same time: the pin in force ends with the newest key.
func TestClaimPinTwoClients(t *testing.T) {
	t.Parallel()
	project := emulator.ProjectID(t)
	clients := []*Ledger{open(t, project, ""), open(t, project, "")}
	ctx := t.Context()
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l := clients[i%2]
			p := ledger.Pin{
				Env: "dev", Image: "server", Digest: fmt.Sprintf("sha256:%064x", i),
				Tag: "latest", Key: key(i), Cause: ledger.CauseGAR, Time: base,
			}
			cur, _, err := l.ClaimPin(ctx, p)
			if err == nil && cur.Key.Less(p.Key) {
				err = fmt.Errorf("claim %v: pin in force %v is older", p.Key, cur.Key)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("claim %d: %v", i, err)
		}
	}
	for _, l := range clients {
		p, ok, err := l.Pin(ctx, "dev", "server")
		if err != nil || !ok {
			t.Fatalf("Pin = %v, %v", ok, err)
		}
		if !p.Key.Equal(key(n-1)) || p.Digest != fmt.Sprintf("sha256:%064x", n-1) {
			t.Errorf("pin in force: key %v digest %s, want key %v", p.Key, p.Digest, key(n-1))
		}
	}
}

// TestNamesWithSlashes uses names that are not valid document ids as they
// are: GAR paths, slashes, dots, Firestore's reserved __…__ ids.
func TestNamesWithSlashes(t *testing.T) {
	t.Parallel()
	l := open(t, emulator.ProjectID(t), "")
	ctx := t.Context()
	images := []string{
		"asia-northeast2-docker.pkg.dev/proj/backend/server",
		".", "..", "__name__", "a|b", "a%2Fb", "",
	}
	for i, image := range images {
		must(t, l.RecordDigest(ctx, image, dA, "v1/rc", key(i)))
		p := ledger.Pin{Env: "team/dev", Image: image, Digest: dA, Key: key(i), Cause: ledger.CauseGAR}
		if _, applied, err := l.ClaimPin(ctx, p); err != nil || !applied {
			t.Fatalf("ClaimPin(%q) = %v, %v", image, applied, err)
		}
		must(t, l.CommitPin(ctx, p, "c0ffee", base))
	}
	for i, image := range images {
		d, ok, err := l.Digest(ctx, image, dA)
		if err != nil || !ok || d.Image != image || !d.FirstSeen.Equal(key(i).Time) {
			t.Errorf("Digest(%q) = %+v, %v, %v", image, d, ok, err)
		}
		if got, ok, err := l.TagDigest(ctx, image, "v1/rc"); err != nil || !ok || got != dA {
			t.Errorf("TagDigest(%q) = %s, %v, %v", image, got, ok, err)
		}
		if image == "" {
			continue // an empty image in a query matches every image
		}
		if h, err := l.History(ctx, ledger.HistoryQuery{Env: "team/dev", Image: image}); err != nil || len(h) != 1 {
			t.Errorf("History(%q) = %+v, %v", image, h, err)
		}
	}
	pins, err := l.Pins(ctx)
	must(t, err)
	if len(pins) != len(images) {
		t.Errorf("%d pins, want %d", len(pins), len(images))
	}
	// "a|b" and "a%2Fb" must not collide with ("a", "b") or "a/b".
	if _, ok, err := l.Pin(ctx, "team/dev|a", "b"); err != nil || ok {
		t.Errorf("Pin(team/dev|a, b) = %v, %v; want not found", ok, err)
	}
}

func TestDocID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2000)
	names := []string{"", "%", ".", "..", "...", "__x__", "_x", "a/b", "a%2Fb", "a|b", "sha256:abc", long, long + "y"}
	seen := map[string]string{}
	for _, n := range names {
		id := capID(docID(n))
		if id == "" || id == "." || id == ".." || strings.Contains(id, "/") || len(id) > maxIDBytes ||
			(strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__")) {
			t.Errorf("docID(%.20q) = %.40q: not a valid document id", n, id)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("docID(%.20q) = docID(%.20q) = %.40q", n, prev, id)
		}
		seen[id] = n
	}
	if a, b := compositeID("a|b", "c"), compositeID("a", "b|c"); a == b {
		t.Errorf("compositeID collision: %s", a)
	}
	if got := docID("sha256:abc"); got != "sha256:abc" {
		t.Errorf("docID(sha256:abc) = %s, want it readable as is", got)
	}
}

// TestKeyNanoseconds checks that ordering keys round-trip exactly although
// Firestore timestamps keep microseconds.
func TestKeyNanoseconds(t *testing.T) {
	t.Parallel()
	l := open(t, emulator.ProjectID(t), "")
	ctx := t.Context()
	k1 := ledger.Key{Time: base.Add(123456789 * time.Nanosecond), ID: "m1"}
	k2 := ledger.Key{Time: base.Add(123456790 * time.Nanosecond), ID: "m0"} // newer by 1ns
	p := ledger.Pin{Env: "dev", Image: "server", Digest: dA, Key: k1, Cause: ledger.CauseGAR}
	cur, _, err := l.ClaimPin(ctx, p)
	must(t, err)
	if !cur.Key.Equal(k1) {
		t.Errorf("claimed key %v, want %v", cur.Key, k1)
	}
	p2 := p
	p2.Key, p2.Digest = k2, dB
	if _, applied, err := l.ClaimPin(ctx, p2); err != nil || !applied {
		t.Errorf("a key newer by 1ns: applied %v, %v", applied, err)
	}
	must(t, l.CommitPin(ctx, p2, "c0ffee", base))
	got, _, err := l.Pin(ctx, "dev", "server")
	must(t, err)
	if !got.Key.Equal(k2) || got.Commit != "c0ffee" {
		t.Errorf("pin %+v, want key %v committed", got, k2)
	}
	// A tag moved by the newer of two messages 1ns apart.
	must(t, l.RecordDigest(ctx, "server", dB, "latest", k2))
	must(t, l.RecordDigest(ctx, "server", dA, "latest", k1))
	if d, _, _ := l.TagDigest(ctx, "server", "latest"); d != dB {
		t.Errorf("latest = %s, want %s", d, dB)
	}
}

// TestHistoryLimitTies checks the limit when entries of one stream share a
// time across the limit's boundary: the newest keys come first.
func TestHistoryLimitTies(t *testing.T) {
	t.Parallel()
	l := open(t, emulator.ProjectID(t), "")
	ctx := t.Context()
	for i := range 5 {
		p := ledger.Pin{Env: "dev", Image: "server", Digest: dA, Key: key(i), Cause: ledger.CauseGAR}
		must(t, l.CommitPin(ctx, p, fmt.Sprint("c", i), base)) // all at one time
	}
	p := ledger.Pin{Env: "dev", Image: "server", Digest: dB, Key: key(9), Cause: ledger.CauseGAR}
	must(t, l.CommitPin(ctx, p, "c9", base.Add(-time.Hour))) // older
	for limit, want := range map[int]string{1: "c4", 2: "c4,c3", 5: "c4,c3,c2,c1,c0", 6: "c4,c3,c2,c1,c0,c9"} {
		h, err := l.History(ctx, ledger.HistoryQuery{Env: "dev", Limit: limit})
		must(t, err)
		var got []string
		for _, e := range h {
			got = append(got, e.Commit)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("History(limit %d) = %s, want %s", limit, strings.Join(got, ","), want)
		}
	}
	h, err := l.History(ctx, ledger.HistoryQuery{Env: "dev", Image: "server", Digest: dB, Limit: 3})
	must(t, err)
	if len(h) != 1 || h[0].Commit != "c9" {
		t.Errorf("History(digest B) = %+v", h)
	}
}

// TestNamedDatabase checks that a named database is apart from (default).
func TestNamedDatabase(t *testing.T) {
	t.Parallel()
	project := emulator.ProjectID(t)
	def, named := open(t, project, ""), open(t, project, "pinroll")
	ctx := t.Context()
	must(t, named.MarkDelivery(ctx, "d-1", "pinned"))
	if _, ok, err := def.Delivery(ctx, "d-1"); err != nil || ok {
		t.Errorf("(default) sees the named database's delivery: %v, %v", ok, err)
	}
	if out, ok, err := named.Delivery(ctx, "d-1"); err != nil || !ok || out != "pinned" {
		t.Errorf("named Delivery = %q, %v, %v", out, ok, err)
	}
}

// TestErrorsNameTheCall checks the error context of a failing call.
func TestErrorsNameTheCall(t *testing.T) {
	t.Parallel()
	l := open(t, emulator.ProjectID(t), "")
	must(t, l.Close())
	_, _, err := l.ClaimPin(t.Context(), ledger.Pin{Env: "dev", Image: "server"})
	if err == nil || !strings.Contains(err.Error(), "firestore: claim pin dev/server") {
		t.Errorf("error %v, want it to name the call", err)
	}
}

// TestClock checks that the times the ledger stamps itself (a delivery's
// "at", a hold's "since") come from the injected clock.
func TestClock(t *testing.T) {
	t.Parallel()
	emulator.Firestore(t)
	now := time.Date(2031, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	l, err := Open(t.Context(), emulator.ProjectID(t), "", WithClock(func() time.Time { return now }))
	must(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ctx := t.Context()
	must(t, l.MarkDelivery(ctx, "d-1", "pinned"))
	must(t, l.SetHold(ctx, "dev", "server", true))
	var d deliveryDoc
	if _, err := getDoc(ctx, nil, l.deliveryRef("d-1"), &d); err != nil || !d.At.Equal(now) {
		t.Errorf("delivery at %v (%v), want %v", d.At, err, now)
	}
	if want := now.Add(ledger.DeliveryRetention); !d.ExpireAt.Equal(want) {
		t.Errorf("delivery expires at %v, want %v (the TTL field holds the expiry)", d.ExpireAt, want)
	}
	var h holdDoc
	if _, err := getDoc(ctx, nil, l.holdRef("dev", "server"), &h); err != nil || !h.Since.Equal(now) {
		t.Errorf("hold since %v (%v), want %v", h.Since, err, now)
	}
}
