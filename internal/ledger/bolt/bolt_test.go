package bolt_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/ledger/ledgertest"
)

func TestContract(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		return open(t, filepath.Join(t.TempDir(), "ledger.db"))
	})
}

func open(t testing.TB, path string) *bolt.Ledger {
	t.Helper()
	l, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOpenCreatesParentDirs(t *testing.T) {
	t.Parallel()
	l := open(t, filepath.Join(t.TempDir(), "a", "b", "ledger.db"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), ".pinroll", "ledger.db")
	now := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	p := ledger.Pin{
		Env: "dev", Image: "server", Digest: "sha256:" + strings.Repeat("a", 64), Tag: "latest",
		Key: ledger.Key{Time: now, ID: "17"}, Cause: ledger.CauseGAR, Time: now,
	}
	promo := ledger.Promotion{Env: "prod", Image: "server", Tag: "v1.0.0", State: ledger.PromotionPending, Created: now}

	l := open(t, path)
	for _, err := range []error{
		l.MarkDelivery(ctx, "d-1", "pinned"),
		l.RecordDigest(ctx, p.Image, p.Digest, p.Tag, p.Key),
		func() error { _, _, err := l.ClaimPin(ctx, p); return err }(),
		l.CommitPin(ctx, p, "c0ffee1", now.Add(time.Second)),
		l.SetHold(ctx, "prod", "server", true),
		l.PutPromotion(ctx, promo),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, path)
	defer l.Close()
	if out, ok, err := l.Delivery(ctx, "d-1"); err != nil || !ok || out != "pinned" {
		t.Errorf("Delivery after restart = %q, %v, %v", out, ok, err)
	}
	if d, ok, err := l.TagDigest(ctx, "server", "latest"); err != nil || !ok || d != p.Digest {
		t.Errorf("TagDigest after restart = %q, %v, %v", d, ok, err)
	}
	got, ok, err := l.Pin(ctx, "dev", "server")
	if err != nil || !ok || got.Commit != "c0ffee1" || !got.Key.Equal(p.Key) || got.Digest != p.Digest {
		t.Errorf("Pin after restart = %+v, %v, %v", got, ok, err)
	}
	if !got.Key.Time.Equal(now) { // bbolt keeps nanoseconds
		t.Errorf("Pin key time after restart = %v, want %v", got.Key.Time, now)
	}
	if h, err := l.History(ctx, ledger.HistoryQuery{}); err != nil || len(h) != 1 || h[0].Commit != "c0ffee1" {
		t.Errorf("History after restart = %+v, %v", h, err)
	}
	// The idempotency index survives too.
	if err := l.CommitPin(ctx, p, "c0ffee1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if h, err := l.History(ctx, ledger.HistoryQuery{}); err != nil || len(h) != 1 {
		t.Errorf("History after a repeated CommitPin = %d entries, %v; want 1", len(h), err)
	}
	if held, err := l.Held(ctx, "prod", "server"); err != nil || !held {
		t.Errorf("Held after restart = %v, %v", held, err)
	}
	if ps, err := l.Promotions(ctx, "server", "v1.0.0"); err != nil || len(ps) != 1 {
		t.Errorf("Promotions after restart = %+v, %v", ps, err)
	}
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	defer l.Close()

	// flock locks belong to the open file description, so a second Open in
	// this process is refused just as another process's would be.
	start := time.Now()
	second, err := bolt.Open(path)
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open of a locked ledger succeeded")
	}
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second Open: error %q, want bolt.ErrLocked", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("second Open took %s to fail", elapsed)
	}
	t.Logf("second Open failed after %s: %v", elapsed.Round(time.Millisecond), err)
}

func TestNamesWithNUL(t *testing.T) {
	t.Parallel()
	l := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	defer l.Close()
	if _, _, err := l.ClaimPin(t.Context(), ledger.Pin{Env: "dev\x00x", Image: "server"}); err == nil {
		t.Error("ClaimPin with a NUL in the env name succeeded")
	}
}

func BenchmarkClaimCommit(b *testing.B) {
	l := open(b, filepath.Join(b.TempDir(), "ledger.db"))
	defer l.Close()
	ctx := b.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := ledger.Pin{
			Env: "dev", Image: "server", Digest: fmt.Sprintf("sha256:%064x", i), Tag: "latest",
			Key: ledger.Key{Time: t0.Add(time.Duration(i) * time.Second), ID: fmt.Sprint(i)}, Cause: ledger.CauseGAR,
		}
		if _, applied, err := l.ClaimPin(ctx, p); err != nil || !applied {
			b.Fatalf("ClaimPin: applied=%v err=%v", applied, err)
		}
		if err := l.CommitPin(ctx, p, fmt.Sprintf("%040x", i), p.Key.Time); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestOpenMigratesOldHistory opens a file written by the previous layout
// (one unindexed history bucket keyed by time and sequence) and finds its
// history indexed, with CommitPin still idempotent for its keys.
func TestOpenMigratesOldHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	old := []ledger.Entry{
		{Env: "dev", Image: "server", Digest: "sha256:a", Tag: "latest", Commit: "c1", Cause: ledger.CauseGAR, Key: ledger.Key{Time: t0, ID: "1"}, Time: t0.Add(time.Second)},
		{Env: "prod", Image: "server", Digest: "sha256:a", Tag: "v1", Commit: "c2", Cause: ledger.CauseRelease, Key: ledger.Key{Time: t0, ID: "release"}, Time: t0.Add(2 * time.Second)},
		{Env: "dev", Image: "server", Digest: "sha256:b", Tag: "latest", Commit: "c3", Cause: ledger.CauseGAR, Key: ledger.Key{Time: t0.Add(time.Minute), ID: "2"}, Time: t0.Add(3 * time.Second)},
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		history, err := tx.CreateBucket([]byte("history"))
		if err != nil {
			return err
		}
		committed, err := tx.CreateBucket([]byte("committed"))
		if err != nil {
			return err
		}
		for i, e := range old {
			k := make([]byte, 20)
			binary.BigEndian.PutUint64(k, uint64(e.Time.Unix())^(1<<63))
			binary.BigEndian.PutUint32(k[8:], uint32(e.Time.Nanosecond()))
			binary.BigEndian.PutUint64(k[12:], uint64(i+1))
			v, err := json.Marshal(map[string]any{
				"env": e.Env, "image": e.Image, "digest": e.Digest, "tag": e.Tag, "commit": e.Commit,
				"cause": e.Cause, "key": map[string]any{"time": e.Key.Time, "id": e.Key.ID}, "time": e.Time,
			})
			if err != nil {
				return err
			}
			if err := history.Put(k, v); err != nil {
				return err
			}
			ck := strings.Join([]string{e.Env, e.Image, e.Key.Time.Format(time.RFC3339Nano), e.Key.ID}, "\x00")
			if err := committed.Put([]byte(ck), k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l := open(t, path)
	defer l.Close()
	commits := func(q ledger.HistoryQuery) string {
		t.Helper()
		h, err := l.History(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var cs []string
		for _, e := range h {
			cs = append(cs, e.Commit)
		}
		return strings.Join(cs, ",")
	}
	if got := commits(ledger.HistoryQuery{}); got != "c3,c2,c1" {
		t.Errorf("History after migration = %s, want c3,c2,c1", got)
	}
	if got := commits(ledger.HistoryQuery{Env: "dev", Image: "server"}); got != "c3,c1" {
		t.Errorf("History(dev/server) after migration = %s, want c3,c1", got)
	}
	p := ledger.Pin{Env: "dev", Image: "server", Digest: "sha256:a", Tag: "latest", Key: old[0].Key, Cause: ledger.CauseGAR}
	if err := l.CommitPin(ctx, p, "c1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := commits(ledger.HistoryQuery{}); got != "c3,c2,c1" {
		t.Errorf("History after committing a migrated key again = %s, want c3,c2,c1", got)
	}
}

// BenchmarkHistoryOnePair asks what a `require:` check asks — has this
// (env, image) run this digest? — of a ledger with a long history over many
// pairs.
func BenchmarkHistoryOnePair(b *testing.B) {
	l := open(b, filepath.Join(b.TempDir(), "ledger.db"))
	defer l.Close()
	ctx := b.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const pairs, perPair = 50, 200
	for i := range pairs * perPair {
		p := ledger.Pin{
			Env: fmt.Sprintf("env-%02d", i%pairs), Image: "server", Digest: fmt.Sprintf("sha256:%064x", i),
			Key: ledger.Key{Time: t0.Add(time.Duration(i) * time.Second), ID: fmt.Sprint(i)}, Cause: ledger.CauseGAR,
		}
		if err := l.CommitPin(ctx, p, fmt.Sprintf("%040x", i), p.Key.Time); err != nil {
			b.Fatal(err)
		}
	}
	q := ledger.HistoryQuery{Env: "env-07", Image: "server", Digest: fmt.Sprintf("sha256:%064x", pairs*perPair-pairs+7), Limit: 1}
	b.ReportAllocs()
	for b.Loop() {
		if h, err := l.History(ctx, q); err != nil || len(h) != 1 {
			b.Fatalf("History = %d entries, %v", len(h), err)
		}
	}
}

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestDeliveriesPruned moves the clock past the retention: the ids handled
// before are forgotten, a few per write, and the file's delivery buckets end
// up holding only the recent ids.
func TestDeliveriesPruned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := bolt.Open(path, bolt.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	const old = 20
	for i := range old {
		must(t, l.MarkDelivery(ctx, fmt.Sprint("old-", i), "pinned"))
	}
	clk.add(ledger.DeliveryRetention - time.Second)
	must(t, l.MarkDelivery(ctx, "recent", "pinned"))
	if _, ok, _ := l.Delivery(ctx, "old-0"); !ok {
		t.Fatal("old-0 forgotten before its retention passed")
	}
	clk.add(time.Second)
	// Each write prunes a bounded number: several writes forget them all.
	for i := range old {
		must(t, l.MarkDelivery(ctx, fmt.Sprint("new-", i), "pinned"))
	}
	for i := range old {
		if _, ok, err := l.Delivery(ctx, fmt.Sprint("old-", i)); ok || err != nil {
			t.Errorf("old-%d: remembered (%v, %v) after the retention", i, ok, err)
		}
	}
	for _, id := range []string{"recent", "new-0", "new-19"} {
		if out, ok, err := l.Delivery(ctx, id); !ok || err != nil || out != "pinned" {
			t.Errorf("%s: %q, %v, %v; want pinned", id, out, ok, err)
		}
	}
	must(t, l.Close())

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		for _, b := range []string{"deliveries", "expiries"} {
			if n := tx.Bucket([]byte(b)).Stats().KeyN; n != old+1 {
				t.Errorf("bucket %s holds %d keys, want %d", b, n, old+1)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenIndexesOldDeliveries opens a file of an earlier version, whose
// deliveries have no expiry: they expire a retention after that open.
func TestOpenIndexesOldDeliveries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("deliveries"))
		if err != nil {
			return err
		}
		return b.Put([]byte(ledger.StorageID("gar/1")), []byte(`{"outcome":"pinned"}`))
	})
	must(t, err)
	must(t, db.Close())

	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	l, err := bolt.Open(path, bolt.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	must(t, l.MarkDelivery(ctx, "gar/2", "pinned"))
	if out, ok, err := l.Delivery(ctx, "gar/1"); !ok || err != nil || out != "pinned" {
		t.Fatalf("gar/1 after open: %q, %v, %v", out, ok, err)
	}
	clk.add(ledger.DeliveryRetention)
	must(t, l.MarkDelivery(ctx, "gar/3", "pinned"))
	for _, id := range []string{"gar/1", "gar/2"} {
		if _, ok, err := l.Delivery(ctx, id); ok || err != nil {
			t.Errorf("%s remembered (%v, %v) after the retention", id, ok, err)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
