// Package ledgertest is the contract suite of [ledger.Ledger] (SPEC §5): every
// implementation runs [Run] against fresh, empty ledgers and must pass it.
//
// The suite tests only what the interface's doc comments promise. It keeps to a
// few hundred ledger calls so that it stays quick against the Firestore
// emulator, and its times are truncated to microseconds (Firestore's precision)
// and compared with [time.Time.Equal].
package ledgertest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/ledger"
)

// base is the time every key and timestamp of the suite is derived from.
var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at returns base plus n seconds, truncated to microseconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second).Truncate(time.Microsecond) }

// key returns the ordering key of a message published n seconds after base.
func key(n int) ledger.Key { return ledger.Key{Time: at(n), ID: fmt.Sprintf("msg-%04d", n)} }

// Digests used throughout the suite.
const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digestC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

// Run runs the ledger contract. Each call of open returns a new, empty ledger
// (the suite closes it).
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Helper()
	s := &suite{open: open}
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Delivery", s.deliveryCases()},
		{"Digest", s.digestCases()},
		{"Tag", s.tagCases()},
		{"ClaimPin", s.claimCases()},
		{"RecordClaim", s.recordClaimCases()},
		{"CommitPin", s.commitCases()},
		{"History", s.historyCases()},
		{"Pins", s.pinsCases()},
		{"Hold", s.holdCases()},
		{"Promotion", s.promotionCases()},
		{"Close", s.closeCases()},
		{"AnyID", s.anyIDCases()},
		{"Paging", s.pagingCases()},
		{"HoldReason", s.holdReasonCases()},
		{"RepointPins", s.repointCases()},
		{"Squash", s.squashCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t)
				})
			}
		})
	}
}

// testCase is one leaf subtest of the suite.
type testCase struct {
	name string
	run  func(t *testing.T)
}

// suite holds the ledger factory shared by the cases.
type suite struct {
	open func(t *testing.T) ledger.Ledger
}

// ledger opens a fresh ledger that is closed when t ends.
func (s *suite) ledger(t *testing.T) ledger.Ledger {
	t.Helper()
	l := s.open(t)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// --- Delivery ---------------------------------------------------------------

func (s *suite) deliveryCases() []testCase {
	return []testCase{
		{"Unknown", func(t *testing.T) {
			l := s.ledger(t)
			checkDelivery(t, l, "never-seen", "", false)
		}},
		{"MarkThenDelivery", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.MarkDelivery(ctx, "d-1", "pinned"))
			must(t, l.MarkDelivery(ctx, "d-2", "recorded"))
			checkDelivery(t, l, "d-1", "pinned", true)
			checkDelivery(t, l, "d-2", "recorded", true)
			checkDelivery(t, l, "d-3", "", false)
		}},
		{"MarkRecordsDurablePins", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			p, old, w := pin(2, digestB), pin(1, digestA), pin(2, digestB)
			w.Image = "worker"
			claim(t, l, old, old, true)
			claim(t, l, p, p, true)
			claim(t, l, w, w, true)
			// The pins of one commit, and an older claim git carried too.
			must(t, l.MarkDelivery(ctx, "d-1", "pinned",
				ledger.Committed{Pin: p, Commit: "c0ffee1", At: at(10)},
				ledger.Committed{Pin: w, Commit: "c0ffee1", At: at(10)},
				ledger.Committed{Pin: old, Commit: "0dd0dd0", At: at(9)}))
			checkDelivery(t, l, "d-1", "pinned", true)
			wantP, wantW := p, w
			wantP.Commit, wantP.Time = "c0ffee1", at(10)
			wantW.Commit, wantW.Time = "c0ffee1", at(10)
			checkPin(t, l, wantP)
			checkPin(t, l, wantW)
			checkHistory(t, l, ledger.HistoryQuery{Image: "server"}, []ledger.Entry{entry(p, "c0ffee1", at(10)), entry(old, "0dd0dd0", at(9))})
			// Another delivery the same round answered records nothing more,
			// and marking d-1 again keeps its outcome.
			must(t, l.MarkDelivery(ctx, "d-2", "superseded", ledger.Committed{Pin: p, Commit: "c0ffee1", At: at(20)}))
			must(t, l.MarkDelivery(ctx, "d-1", "unchanged", ledger.Committed{Pin: p, Commit: "c0ffee1", At: at(30)}))
			checkDelivery(t, l, "d-1", "pinned", true)
			checkDelivery(t, l, "d-2", "superseded", true)
			checkPin(t, l, wantP)
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{entry(w, "c0ffee1", at(10)), entry(p, "c0ffee1", at(10)), entry(old, "0dd0dd0", at(9))})
		}},
		{"FailedMarkRecordsNothing", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			p := pin(1, digestA)
			claim(t, l, p, p, true)
			if err := l.MarkDelivery(ctx, "", "pinned", ledger.Committed{Pin: p, Commit: "c0ffee1", At: at(10)}); err == nil {
				t.Fatal("MarkDelivery with an empty id: no error")
			}
			checkPin(t, l, p)
			checkHistory(t, l, ledger.HistoryQuery{}, nil)
		}},
		{"MarkTwiceKeepsFirst", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.MarkDelivery(ctx, "d-1", "pinned"))
			must(t, l.MarkDelivery(ctx, "d-1", "unchanged"))
			checkDelivery(t, l, "d-1", "pinned", true)
		}},
		{"ConcurrentMarkKeepsOne", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			const n = 16
			seen := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if err := l.MarkDelivery(ctx, "d-race", fmt.Sprintf("outcome-%d", i)); err != nil {
						errs[i] = err
						return
					}
					// Our own mark is durable, so the outcome is fixed from now on.
					out, ok, err := l.Delivery(ctx, "d-race")
					if err == nil && !ok {
						err = errors.New("Delivery after MarkDelivery: not found")
					}
					seen[i], errs[i] = out, err
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("goroutine %d: %v", i, err)
				}
			}
			first := seen[0]
			var marked bool
			for i := range n {
				marked = marked || first == fmt.Sprintf("outcome-%d", i)
			}
			if !marked {
				t.Fatalf("outcome %q is not one of the marked outcomes", first)
			}
			for i, o := range seen {
				if o != first {
					t.Errorf("goroutine %d read outcome %q, goroutine 0 read %q: more than one outcome kept", i, o, first)
				}
			}
			checkDelivery(t, l, "d-race", first, true)
		}},
	}
}

func checkDelivery(t *testing.T, l ledger.Ledger, id, want string, wantOK bool) {
	t.Helper()
	got, ok, err := l.Delivery(t.Context(), id)
	if err != nil {
		t.Fatalf("Delivery(%q): %v", id, err)
	}
	if ok != wantOK || got != want {
		t.Errorf("Delivery(%q) = %q, %v; want %q, %v", id, got, ok, want, wantOK)
	}
}

// --- RecordDigest / Digest --------------------------------------------------

func (s *suite) digestCases() []testCase {
	return []testCase{
		{"Unknown", func(t *testing.T) {
			l := s.ledger(t)
			if d, ok, err := l.Digest(t.Context(), "server", digestA); err != nil || ok {
				t.Errorf("Digest of an unknown digest = %+v, %v, %v; want not found", d, ok, err)
			}
		}},
		{"OneRecordPerImageDigest", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			// One push with three tags: one message per tag, any order, one
			// redelivered; plus an untagged message for the same digest.
			must(t, l.RecordDigest(ctx, "server", digestA, "v1.2.3", key(2)))
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			must(t, l.RecordDigest(ctx, "server", digestA, "main", key(3)))
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			must(t, l.RecordDigest(ctx, "server", digestA, "", key(4)))
			checkDigest(t, l, ledger.Digest{
				Image: "server", Digest: digestA,
				Tags:      []string{"latest", "main", "v1.2.3"},
				FirstSeen: at(1), LastSeen: at(4),
			})
		}},
		{"UntaggedPush", func(t *testing.T) {
			l := s.ledger(t)
			must(t, l.RecordDigest(t.Context(), "server", digestA, "", key(1)))
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, FirstSeen: at(1), LastSeen: at(1)})
			checkTag(t, l, "server", "", "", false)
		}},
		{"TagsAccumulateWithoutDuplicates", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest"}, FirstSeen: at(1), LastSeen: at(1)})
			must(t, l.RecordDigest(ctx, "server", digestA, "v1", key(2)))
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(3)))
			must(t, l.RecordDigest(ctx, "server", digestA, "v1", key(4)))
			// latest moves on to B; A keeps having been tagged latest.
			must(t, l.RecordDigest(ctx, "server", digestB, "latest", key(5)))
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest", "v1"}, FirstSeen: at(1), LastSeen: at(4)})
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestB, Tags: []string{"latest"}, FirstSeen: at(5), LastSeen: at(5)})
		}},
		{"TagsOrderedByName", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			// Arrival order and key order both differ from name order.
			must(t, l.RecordDigest(ctx, "server", digestA, "v2", key(1)))
			must(t, l.RecordDigest(ctx, "server", digestA, "main", key(3)))
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(2)))
			must(t, l.RecordDigest(ctx, "server", digestA, "beta", key(9)))
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"beta", "latest", "main", "v2"}, FirstSeen: at(1), LastSeen: at(9)})
		}},
		{"SeenFollowsKeys", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			// Messages arrive out of order: FirstSeen is the oldest key's
			// time and LastSeen the newest, whatever the arrival order.
			for _, n := range []int{5, 9, 2, 7} {
				must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(n)))
			}
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest"}, FirstSeen: at(2), LastSeen: at(9)})
		}},
		{"SameDigestTwoImages", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			must(t, l.RecordDigest(ctx, "worker", digestA, "v2", key(2)))
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest"}, FirstSeen: at(1), LastSeen: at(1)})
			checkDigest(t, l, ledger.Digest{Image: "worker", Digest: digestA, Tags: []string{"v2"}, FirstSeen: at(2), LastSeen: at(2)})
			if d, ok, err := l.Digest(ctx, "frontend", digestA); err != nil || ok {
				t.Errorf("Digest(frontend) = %+v, %v, %v; want not found", d, ok, err)
			}
		}},
	}
}

// checkDigest compares the stored record of want.Image/want.Digest with want;
// tags in their one order, by name (ledger.SortTags).
func checkDigest(t *testing.T, l ledger.Ledger, want ledger.Digest) {
	t.Helper()
	got, ok, err := l.Digest(t.Context(), want.Image, want.Digest)
	if err != nil {
		t.Fatalf("Digest(%s, %s): %v", want.Image, want.Digest, err)
	}
	if !ok {
		t.Fatalf("Digest(%s, %s): not found", want.Image, want.Digest)
	}
	if got.Image != want.Image || got.Digest != want.Digest || !slices.Equal(got.Tags, want.Tags) ||
		!got.FirstSeen.Equal(want.FirstSeen) || !got.LastSeen.Equal(want.LastSeen) {
		t.Errorf("Digest(%s, %s)\n got  %+v\n want %+v", want.Image, want.Digest, got, want)
	}
}

// --- TagDigest --------------------------------------------------------------

func (s *suite) tagCases() []testCase {
	return []testCase{
		{"Unknown", func(t *testing.T) {
			l := s.ledger(t)
			must(t, l.RecordDigest(t.Context(), "server", digestA, "latest", key(1)))
			checkTag(t, l, "server", "v9", "", false)
			checkTag(t, l, "worker", "latest", "", false)
		}},
		{"NewestKeyNamesDigest", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			checkTag(t, l, "server", "latest", digestA, true)
			must(t, l.RecordDigest(ctx, "server", digestB, "latest", key(2)))
			checkTag(t, l, "server", "latest", digestB, true)
			// The tag can come back to an earlier digest with a newer message.
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(3)))
			checkTag(t, l, "server", "latest", digestA, true)
		}},
		{"LateOlderMessageDoesNotMoveTag", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.RecordDigest(ctx, "server", digestB, "latest", key(5)))
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(3)))
			checkTag(t, l, "server", "latest", digestB, true)
			// Same publish time, smaller message id: still older.
			must(t, l.RecordDigest(ctx, "server", digestC, "latest", ledger.Key{Time: at(5), ID: "msg-0000"}))
			checkTag(t, l, "server", "latest", digestB, true)
			// The late digest is recorded all the same, with its tag.
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest"}, FirstSeen: at(3), LastSeen: at(3)})
		}},
		{"PerImage", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.RecordDigest(ctx, "server", digestA, "latest", key(1)))
			must(t, l.RecordDigest(ctx, "worker", digestB, "latest", key(2)))
			checkTag(t, l, "server", "latest", digestA, true)
			checkTag(t, l, "worker", "latest", digestB, true)
		}},
	}
}

func checkTag(t *testing.T, l ledger.Ledger, image, tag, want string, wantOK bool) {
	t.Helper()
	got, ok, err := l.TagDigest(t.Context(), image, tag)
	if err != nil {
		t.Fatalf("TagDigest(%s, %q): %v", image, tag, err)
	}
	if got != want || ok != wantOK {
		t.Errorf("TagDigest(%s, %q) = %q, %v; want %q, %v", image, tag, got, ok, want, wantOK)
	}
}

// --- ClaimPin / Pin ---------------------------------------------------------

// pin returns a claimed GAR pin of dev/server set by the message of key(n).
func pin(n int, digest string) ledger.Pin {
	return ledger.Pin{
		Env: "dev", Image: "server", Digest: digest, Tag: "latest",
		Key: key(n), Cause: ledger.CauseGAR, Time: at(n + 1),
	}
}

func (s *suite) claimCases() []testCase {
	return []testCase{
		{"Unknown", func(t *testing.T) {
			l := s.ledger(t)
			if p, ok, err := l.Pin(t.Context(), "dev", "server"); err != nil || ok {
				t.Errorf("Pin of an empty ledger = %+v, %v, %v; want not found", p, ok, err)
			}
		}},
		{"FirstClaimApplies", func(t *testing.T) {
			l := s.ledger(t)
			p := pin(1, digestA)
			claim(t, l, p, p, true)
			checkPin(t, l, p)
		}},
		{"NewerKeyReplaces", func(t *testing.T) {
			l := s.ledger(t)
			claim(t, l, pin(1, digestA), pin(1, digestA), true)
			claim(t, l, pin(2, digestB), pin(2, digestB), true)
			// Same publish time, larger message id: newer.
			p := pin(2, digestC)
			p.Key.ID = "msg-9999"
			claim(t, l, p, p, true)
			checkPin(t, l, p)
		}},
		{"OlderKeyNeverReplaces", func(t *testing.T) {
			l := s.ledger(t)
			claim(t, l, pin(5, digestB), pin(5, digestB), true)
			claim(t, l, pin(3, digestA), pin(5, digestB), false)
			claim(t, l, pin(4, digestB), pin(5, digestB), false)
			p := pin(5, digestA)
			p.Key.ID = "msg-0000" // same publish time, smaller id: older
			claim(t, l, p, pin(5, digestB), false)
			checkPin(t, l, pin(5, digestB))
		}},
		{"EqualKeyDoesNotApplyTwice", func(t *testing.T) {
			l := s.ledger(t)
			claim(t, l, pin(1, digestA), pin(1, digestA), true)
			claim(t, l, pin(1, digestA), pin(1, digestA), false)
			checkPin(t, l, pin(1, digestA))
		}},
		{"ManualAlwaysApplies", func(t *testing.T) {
			l := s.ledger(t)
			claim(t, l, pin(5, digestB), pin(5, digestB), true)
			manual := pin(1, digestA) // an older key: a rollback by hand
			manual.Cause, manual.Tag = ledger.CauseManual, ""
			claim(t, l, manual, manual, true)
			checkPin(t, l, manual)
			// Even the same key again.
			again := manual
			again.Time = at(50)
			claim(t, l, again, again, true)
			checkPin(t, l, again)
		}},
		{"SameDigestKeepsCommit", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			claim(t, l, pin(1, digestA), pin(1, digestA), true)
			must(t, l.CommitPin(ctx, pin(1, digestA), "c0ffee1", at(10)))
			// A newer message for the same digest.
			want := pin(2, digestA)
			want.Commit = "c0ffee1"
			claim(t, l, pin(2, digestA), want, true)
			checkPin(t, l, want)
			// A manual claim of the same digest keeps it too.
			manual := pin(3, digestA)
			manual.Cause = ledger.CauseManual
			want = manual
			want.Commit = "c0ffee1"
			claim(t, l, manual, want, true)
			checkPin(t, l, want)
		}},
		{"NewDigestClearsCommit", func(t *testing.T) {
			l := s.ledger(t)
			claim(t, l, pin(1, digestA), pin(1, digestA), true)
			must(t, l.CommitPin(t.Context(), pin(1, digestA), "c0ffee1", at(10)))
			claim(t, l, pin(2, digestB), pin(2, digestB), true)
			checkPin(t, l, pin(2, digestB))
		}},
		{"IndependentPerEnvImage", func(t *testing.T) {
			l := s.ledger(t)
			dev := pin(5, digestA)
			worker := pin(1, digestB)
			worker.Image = "worker"
			prod := pin(2, digestC)
			prod.Env, prod.Cause, prod.Tag = "prod", ledger.CauseRelease, "v1.0.0"
			claim(t, l, dev, dev, true)
			claim(t, l, worker, worker, true)
			claim(t, l, prod, prod, true)
			checkPin(t, l, dev)
			checkPin(t, l, worker)
			checkPin(t, l, prod)
		}},
		{"Concurrent", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			const n = 16
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					p := pin(i, fmt.Sprintf("sha256:%064x", i))
					cur, _, err := l.ClaimPin(ctx, p)
					if err == nil && cur.Key.Less(p.Key) {
						err = fmt.Errorf("ClaimPin(%v) returned an older pin in force: %v", p.Key, cur.Key)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("goroutine %d: %v", i, err)
				}
			}
			checkPin(t, l, pin(n-1, fmt.Sprintf("sha256:%064x", n-1)))
		}},
	}
}

// claim claims p and checks the pin in force afterwards and whether p applied.
func claim(t *testing.T, l ledger.Ledger, p, wantCurrent ledger.Pin, wantApplied bool) {
	t.Helper()
	cur, applied, err := l.ClaimPin(t.Context(), p)
	if err != nil {
		t.Fatalf("ClaimPin(%s/%s %s %v): %v", p.Env, p.Image, p.Digest, p.Key, err)
	}
	if applied != wantApplied {
		t.Errorf("ClaimPin(%s/%s %s %v): applied = %v, want %v", p.Env, p.Image, p.Digest, p.Key, applied, wantApplied)
	}
	if !samePin(cur, wantCurrent) {
		t.Errorf("ClaimPin(%s/%s %s %v): current\n got  %+v\n want %+v", p.Env, p.Image, p.Digest, p.Key, cur, wantCurrent)
	}
}

// checkPin checks the stored pin of (want.Env, want.Image).
func checkPin(t *testing.T, l ledger.Ledger, want ledger.Pin) {
	t.Helper()
	got, ok, err := l.Pin(t.Context(), want.Env, want.Image)
	if err != nil {
		t.Fatalf("Pin(%s, %s): %v", want.Env, want.Image, err)
	}
	if !ok {
		t.Fatalf("Pin(%s, %s): not found", want.Env, want.Image)
	}
	if !samePin(got, want) {
		t.Errorf("Pin(%s, %s)\n got  %+v\n want %+v", want.Env, want.Image, got, want)
	}
}

func samePin(a, b ledger.Pin) bool {
	return a.Env == b.Env && a.Image == b.Image && a.Digest == b.Digest && a.Tag == b.Tag &&
		a.Key.Equal(b.Key) && a.Cause == b.Cause && a.Commit == b.Commit && a.Time.Equal(b.Time)
}

// --- CommitPin --------------------------------------------------------------

// --- RecordClaim ------------------------------------------------------------

func (s *suite) recordClaimCases() []testCase {
	prod := func(n int, digest string) ledger.Pin {
		p := pin(n, digest)
		p.Env = "prod"
		return p
	}
	return []testCase{
		{"RecordsAndClaims", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			_, _, err := l.ClaimPin(ctx, pin(1, digestA))
			must(t, err)
			must(t, l.SetHold(ctx, "stage", "server", true))
			stage := pin(2, digestB)
			stage.Env = "stage"
			got, err := l.RecordClaim(ctx, "server", digestB, "latest", key(2), []ledger.Pin{pin(2, digestB), prod(2, digestB), stage})
			must(t, err)
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestB, Tags: []string{"latest"}, FirstSeen: at(2), LastSeen: at(2)})
			checkTag(t, l, "server", "latest", digestB, true)
			if len(got) != 3 {
				t.Fatalf("RecordClaim returned %d claims, want 3", len(got))
			}
			want := []struct {
				had, applied, held bool
				before, current    string
			}{
				{true, true, false, digestA, digestB},
				{false, true, false, "", digestB},
				{false, false, true, "", ""},
			}
			for i, w := range want {
				c := got[i]
				if c.Had != w.had || c.Applied != w.applied || c.Held != w.held || c.Before.Digest != w.before || c.Current.Digest != w.current {
					t.Errorf("claim %d = %+v; want had %v applied %v held %v before %q current %q", i, c, w.had, w.applied, w.held, w.before, w.current)
				}
			}
			checkPin(t, l, pin(2, digestB))
			checkPin(t, l, prod(2, digestB))
			if p, ok, err := l.Pin(ctx, "stage", "server"); err != nil || ok {
				t.Errorf("held pair pinned: %+v, %v, %v", p, ok, err)
			}
		}},
		{"OlderKeyRecordsOnly", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			_, err := l.RecordClaim(ctx, "server", digestB, "latest", key(5), []ledger.Pin{pin(5, digestB)})
			must(t, err)
			got, err := l.RecordClaim(ctx, "server", digestA, "latest", key(3), []ledger.Pin{pin(3, digestA)})
			must(t, err)
			if len(got) != 1 || got[0].Applied || got[0].Current.Digest != digestB || !got[0].Had {
				t.Errorf("older claim = %+v; want not applied, %s in force", got, digestB)
			}
			checkPin(t, l, pin(5, digestB))
			checkTag(t, l, "server", "latest", digestB, true)
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, Tags: []string{"latest"}, FirstSeen: at(3), LastSeen: at(3)})
		}},
		{"NoPins", func(t *testing.T) {
			l := s.ledger(t)
			got, err := l.RecordClaim(t.Context(), "server", digestA, "", key(1), nil)
			if err != nil || len(got) != 0 {
				t.Fatalf("RecordClaim without pins = %+v, %v", got, err)
			}
			checkDigest(t, l, ledger.Digest{Image: "server", Digest: digestA, FirstSeen: at(1), LastSeen: at(1)})
		}},
	}
}

func (s *suite) commitCases() []testCase {
	return []testCase{
		{"SetsCommitWhenKeyMatches", func(t *testing.T) {
			l := s.ledger(t)
			p := pin(1, digestA)
			claim(t, l, p, p, true)
			must(t, l.CommitPin(t.Context(), p, "c0ffee1", at(10)))
			want := p
			want.Commit, want.Time = "c0ffee1", at(10)
			checkPin(t, l, want)
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{entry(p, "c0ffee1", at(10))})
		}},
		{"StaleKeyLeavesPin", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			old, cur := pin(1, digestA), pin(2, digestB)
			claim(t, l, old, old, true)
			claim(t, l, cur, cur, true)
			// The older claim made it to git after all: history says so, the
			// pin stays the newer claim.
			must(t, l.CommitPin(ctx, old, "0dd0dd0", at(10)))
			checkPin(t, l, cur)
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{entry(old, "0dd0dd0", at(10))})
		}},
		{"OneHistoryEntryPerKey", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			p := pin(1, digestA)
			claim(t, l, p, p, true)
			for range 3 {
				must(t, l.CommitPin(ctx, p, "c0ffee1", at(10)))
			}
			// A redelivery after a crash commits again, later: nothing more.
			must(t, l.CommitPin(ctx, p, "c0ffee1", at(20)))
			want := p
			want.Commit, want.Time = "c0ffee1", at(10)
			checkPin(t, l, want)
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{entry(p, "c0ffee1", at(10))})
			// The same key for another (env, image) is another entry.
			w := p
			w.Image = "worker"
			must(t, l.CommitPin(ctx, w, "c0ffee2", at(11)))
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{entry(w, "c0ffee2", at(11)), entry(p, "c0ffee1", at(10))})
		}},
	}
}

// entry is the history entry CommitPin(p, commit, when) writes.
func entry(p ledger.Pin, commit string, when time.Time) ledger.Entry {
	return ledger.Entry{
		Env: p.Env, Image: p.Image, Digest: p.Digest, Tag: p.Tag,
		Commit: commit, Cause: p.Cause, Key: p.Key, Time: when,
	}
}

func checkHistory(t *testing.T, l ledger.Ledger, q ledger.HistoryQuery, want []ledger.Entry) {
	t.Helper()
	got, err := l.History(t.Context(), q)
	if err != nil {
		t.Fatalf("History(%+v): %v", q, err)
	}
	if !slices.EqualFunc(got, want, sameEntry) {
		t.Errorf("History(%+v)\n got  %s\n want %s", q, fmtEntries(got), fmtEntries(want))
	}
}

func sameEntry(a, b ledger.Entry) bool {
	return a.Env == b.Env && a.Image == b.Image && a.Digest == b.Digest && a.Tag == b.Tag &&
		a.Commit == b.Commit && a.Cause == b.Cause && a.Key.Equal(b.Key) && a.Time.Equal(b.Time)
}

func fmtEntries(es []ledger.Entry) string {
	s := fmt.Sprintf("%d entries", len(es))
	for _, e := range es {
		s += fmt.Sprintf("\n    %s/%s %.19s %s %s %s key=%s@%s time=%s",
			e.Env, e.Image, e.Digest, e.Tag, e.Commit, e.Cause, e.Key.ID, e.Key.Time.Format(time.RFC3339Nano), e.Time.Format(time.RFC3339Nano))
	}
	return s
}

// --- History ----------------------------------------------------------------

// commitHistory commits, in time order, six pins over two environments, two
// images and three digests, and returns their entries newest first.
func commitHistory(t *testing.T, l ledger.Ledger) []ledger.Entry {
	t.Helper()
	ctx := t.Context()
	pins := []ledger.Pin{
		{Env: "dev", Image: "server", Digest: digestA, Tag: "latest", Cause: ledger.CauseGAR},
		{Env: "dev", Image: "worker", Digest: digestB, Tag: "latest", Cause: ledger.CauseGAR},
		{Env: "prod", Image: "server", Digest: digestA, Tag: "v1.0.0", Cause: ledger.CauseRelease},
		{Env: "dev", Image: "server", Digest: digestB, Tag: "latest", Cause: ledger.CauseGAR},
		{Env: "dev", Image: "server", Digest: digestA, Cause: ledger.CauseManual},
		{Env: "prod", Image: "server", Digest: digestC, Tag: "v1.1.0", Cause: ledger.CauseRelease},
	}
	var entries []ledger.Entry
	for i, p := range pins {
		p.Key, p.Time = key(10*i), at(10*i+1)
		commit := fmt.Sprintf("%07x", 0xc0000+i)
		must(t, l.CommitPin(ctx, p, commit, at(10*i+2)))
		entries = append(entries, entry(p, commit, at(10*i+2)))
	}
	slices.Reverse(entries)
	return entries
}

func (s *suite) historyCases() []testCase {
	return []testCase{
		{"Empty", func(t *testing.T) {
			l := s.ledger(t)
			checkHistory(t, l, ledger.HistoryQuery{}, nil)
		}},
		{"NewestFirst", func(t *testing.T) {
			l := s.ledger(t)
			all := commitHistory(t, l)
			checkHistory(t, l, ledger.HistoryQuery{}, all)
		}},
		{"Filters", func(t *testing.T) {
			l := s.ledger(t)
			all := commitHistory(t, l)
			for _, q := range []ledger.HistoryQuery{
				{Env: "dev"},
				{Env: "prod"},
				{Image: "worker"},
				{Digest: digestA},
				{Env: "dev", Image: "server"},
				{Env: "dev", Image: "server", Digest: digestA},
				{Env: "prod", Image: "worker"},
				{Env: "staging"},
			} {
				var want []ledger.Entry
				for _, e := range all {
					if (q.Env == "" || e.Env == q.Env) && (q.Image == "" || e.Image == q.Image) && (q.Digest == "" || e.Digest == q.Digest) {
						want = append(want, e)
					}
				}
				checkHistory(t, l, q, want)
			}
		}},
		{"Limit", func(t *testing.T) {
			l := s.ledger(t)
			all := commitHistory(t, l)
			checkHistory(t, l, ledger.HistoryQuery{Limit: 2}, all[:2])
			checkHistory(t, l, ledger.HistoryQuery{Limit: 100}, all)
			devServer := []ledger.Entry{all[1], all[2], all[5]}
			checkHistory(t, l, ledger.HistoryQuery{Env: "dev", Image: "server", Limit: 2}, devServer[:2])
			checkHistory(t, l, ledger.HistoryQuery{Env: "dev", Image: "server", Limit: 1}, devServer[:1])
		}},
	}
}

// --- Pins -------------------------------------------------------------------

func (s *suite) pinsCases() []testCase {
	return []testCase{
		{"Empty", func(t *testing.T) {
			l := s.ledger(t)
			if ps, err := l.Pins(t.Context()); err != nil || len(ps) != 0 {
				t.Errorf("Pins of an empty ledger = %+v, %v; want none", ps, err)
			}
		}},
		{"OrderedByEnvThenImage", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			// Claimed out of order; "dev" < "dev-eu" and "web" < "web2" check
			// that a name that prefixes another sorts first.
			order := []struct{ env, image string }{
				{"prod", "web"}, {"dev-eu", "api"}, {"dev", "web2"}, {"dev", "api"},
				{"prod", "api"}, {"dev", "web"},
			}
			want := make(map[string]ledger.Pin)
			for i, o := range order {
				p := pin(i, digestA)
				p.Env, p.Image = o.env, o.image
				claim(t, l, p, p, true)
				want[o.env+"/"+o.image] = p
			}
			must(t, l.CommitPin(ctx, want["dev/web"], "c0ffee1", at(100)))
			dw := want["dev/web"]
			dw.Commit, dw.Time = "c0ffee1", at(100)
			want["dev/web"] = dw
			got, err := l.Pins(ctx)
			if err != nil {
				t.Fatalf("Pins: %v", err)
			}
			wantOrder := []string{"dev/api", "dev/web", "dev/web2", "dev-eu/api", "prod/api", "prod/web"}
			if len(got) != len(wantOrder) {
				t.Fatalf("Pins returned %d pins, want %d: %+v", len(got), len(wantOrder), got)
			}
			for i, name := range wantOrder {
				if !samePin(got[i], want[name]) {
					t.Errorf("Pins()[%d]\n got  %+v\n want %+v", i, got[i], want[name])
				}
			}
		}},
	}
}

// --- Holds ------------------------------------------------------------------

// claimHeld claims p on a held pair and checks that it is refused with
// ledger.ErrHeld, returning the pin in force (wantCurrent, or none).
func claimHeld(t *testing.T, l ledger.Ledger, p, wantCurrent ledger.Pin) {
	t.Helper()
	cur, applied, err := l.ClaimPin(t.Context(), p)
	if !errors.Is(err, ledger.ErrHeld) || applied {
		t.Fatalf("ClaimPin(%s/%s %s %v) of a held pair: applied %v, error %v; want ledger.ErrHeld", p.Env, p.Image, p.Cause, p.Key, applied, err)
	}
	if !samePin(cur, wantCurrent) {
		t.Errorf("ClaimPin of a held pair: current\n got  %+v\n want %+v", cur, wantCurrent)
	}
}

func (s *suite) holdCases() []testCase {
	return []testCase{
		{"HeldRefusesAutomaticClaims", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.SetHold(ctx, "dev", "server", true))
			claimHeld(t, l, pin(1, digestA), ledger.Pin{}) // no pin yet
			if p, ok, err := l.Pin(ctx, "dev", "server"); err != nil || ok {
				t.Errorf("Pin after a refused claim = %+v, %v, %v; want none", p, ok, err)
			}
			must(t, l.SetHold(ctx, "dev", "server", false))
			claim(t, l, pin(2, digestA), pin(2, digestA), true)
			must(t, l.SetHold(ctx, "dev", "server", true))
			claimHeld(t, l, pin(3, digestB), pin(2, digestA))
			release := pin(4, digestB)
			release.Cause, release.Tag = ledger.CauseRelease, "v1.0.0"
			claimHeld(t, l, release, pin(2, digestA))
			checkPin(t, l, pin(2, digestA))
			// Another pair is not held.
			other := pin(5, digestC)
			other.Env = "prod"
			claim(t, l, other, other, true)
		}},
		{"ManualClaimsWhileHeld", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			claim(t, l, pin(5, digestA), pin(5, digestA), true)
			must(t, l.SetHold(ctx, "dev", "server", true))
			manual := pin(1, digestB) // deploy --hold: a manual pin of a held pair
			manual.Cause, manual.Tag = ledger.CauseManual, ""
			claim(t, l, manual, manual, true)
			checkPin(t, l, manual)
			checkHeld(t, l, "dev", "server", true)
		}},
		{"HoldBeatsConcurrentClaims", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			// Claims race with SetHold: every claim that starts after SetHold
			// returned must be refused, whichever claims won before it.
			const workers, perWorker = 4, 6
			var holdSet sync.WaitGroup
			holdSet.Add(1)
			var after [workers]int // claims each worker started after the hold
			errs := make([]error, workers)
			var wg sync.WaitGroup
			var held atomic.Bool
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						n := 1 + i*workers + w
						started := held.Load()
						_, applied, err := l.ClaimPin(ctx, pin(n, fmt.Sprintf("sha256:%064x", n)))
						switch {
						case errors.Is(err, ledger.ErrHeld):
						case err != nil:
							errs[w] = err
							return
						case applied && started:
							errs[w] = fmt.Errorf("claim %d started after SetHold returned and applied", n)
							return
						}
						if started {
							after[w]++
						}
						if i == perWorker/2 && w == 0 {
							holdSet.Wait()
						}
					}
				})
			}
			must(t, l.SetHold(ctx, "dev", "server", true))
			held.Store(true)
			holdSet.Done()
			wg.Wait()
			for w, err := range errs {
				if err != nil {
					t.Fatalf("worker %d: %v", w, err)
				}
			}
			if after[0] == 0 {
				t.Fatal("no claim started after the hold: the case tested nothing")
			}
		}},
		{"SetAndResume", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			checkHeld(t, l, "dev", "server", false)
			must(t, l.SetHold(ctx, "dev", "server", true))
			checkHeld(t, l, "dev", "server", true)
			must(t, l.SetHold(ctx, "dev", "server", true))
			checkHeld(t, l, "dev", "server", true)
			must(t, l.SetHold(ctx, "dev", "server", false))
			checkHeld(t, l, "dev", "server", false)
			must(t, l.SetHold(ctx, "dev", "server", false))
			checkHeld(t, l, "dev", "server", false)
		}},
		{"IndependentPerEnvImage", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.SetHold(ctx, "dev", "server", true))
			must(t, l.SetHold(ctx, "prod", "worker", true))
			checkHeld(t, l, "dev", "server", true)
			checkHeld(t, l, "dev", "worker", false)
			checkHeld(t, l, "prod", "server", false)
			checkHeld(t, l, "prod", "worker", true)
			must(t, l.SetHold(ctx, "dev", "server", false))
			checkHeld(t, l, "dev", "server", false)
			checkHeld(t, l, "prod", "worker", true)
		}},
	}
}

func (s *suite) holdReasonCases() []testCase {
	return []testCase{
		{"PutKeepsSinceTakesReason", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			must(t, l.PutHold(ctx, ledger.Hold{Env: "prod", Image: "server", Reason: "incident 42", Since: at(1)}))
			must(t, l.PutHold(ctx, ledger.Hold{Env: "dev", Image: "web", Since: at(2)}))
			checkHeld(t, l, "prod", "server", true)
			claimHeld(t, l, ledger.Pin{Env: "prod", Image: "server", Digest: digestA, Key: key(3), Cause: ledger.CauseGAR, Time: at(3)}, ledger.Pin{})
			// Held again: the start stays, a new reason replaces the old one,
			// an empty reason keeps it.
			must(t, l.PutHold(ctx, ledger.Hold{Env: "prod", Image: "server", Reason: "incident 43", Since: at(9)}))
			must(t, l.PutHold(ctx, ledger.Hold{Env: "dev", Image: "web", Reason: "freeze", Since: at(9)}))
			must(t, l.PutHold(ctx, ledger.Hold{Env: "prod", Image: "server", Since: at(10)}))
			checkHolds(t, l, []ledger.Hold{
				{Env: "dev", Image: "web", Reason: "freeze", Since: at(2)},
				{Env: "prod", Image: "server", Reason: "incident 43", Since: at(1)},
			})
			must(t, l.SetHold(ctx, "prod", "server", false))
			checkHeld(t, l, "prod", "server", false)
			checkHolds(t, l, []ledger.Hold{{Env: "dev", Image: "web", Reason: "freeze", Since: at(2)}})
		}},
		{"SetHoldIsListed", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			checkHolds(t, l, nil)
			must(t, l.SetHold(ctx, "dev", "server", true))
			hs, err := l.Holds(ctx)
			if err != nil || len(hs) != 1 || hs[0].Env != "dev" || hs[0].Image != "server" || hs[0].Reason != "" {
				t.Errorf("Holds after SetHold = %+v, %v; want dev/server without a reason", hs, err)
			}
			must(t, l.PutHold(ctx, ledger.Hold{Env: "dev", Image: "server", Reason: "why"}))
			if hs, err := l.Holds(ctx); err != nil || len(hs) != 1 || hs[0].Reason != "why" || hs[0].Since.IsZero() {
				t.Errorf("Holds after PutHold = %+v, %v; want the reason and a start time", hs, err)
			}
		}},
	}
}

func checkHolds(t *testing.T, l ledger.Ledger, want []ledger.Hold) {
	t.Helper()
	got, err := l.Holds(t.Context())
	if err != nil {
		t.Fatalf("Holds: %v", err)
	}
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Env == w.Env && g.Image == w.Image && g.Reason == w.Reason && g.Since.Equal(w.Since)
	}
	if !same {
		t.Errorf("Holds\n got  %+v\n want %+v", got, want)
	}
}

// --- RepointPins ------------------------------------------------------------

func (s *suite) repointCases() []testCase {
	return []testCase{
		{"AmendAndSquash", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			pins := map[string]ledger.Pin{}
			for i, name := range []string{"dev/server", "dev/web", "prod/server", "qa/server"} {
				p := pin(i, digestA)
				p.Env, p.Image, _ = strings.Cut(name, "/")
				claim(t, l, p, p, true)
				pins[name] = p
			}
			commits := map[string]string{"dev/server": "c1", "dev/web": "c2", "prod/server": "r1"}
			for name, c := range commits {
				must(t, l.CommitPin(ctx, pins[name], c, at(50)))
				p := pins[name]
				p.Commit, p.Time = c, at(50)
				pins[name] = p
			}
			// c1 was amended into c2, and a squash then replaced c2 by s2.
			n, err := l.RepointPins(ctx, map[string]string{"c1": "c2", "c2": "s2", "zz": "yy"})
			if err != nil || n != 2 {
				t.Fatalf("RepointPins = %d, %v; want 2 pins moved", n, err)
			}
			for name, want := range map[string]string{"dev/server": "s2", "dev/web": "s2", "prod/server": "r1", "qa/server": ""} {
				p := pins[name]
				p.Commit = want
				checkPin(t, l, p)
			}
			// History keeps the commits first written.
			checkHistory(t, l, ledger.HistoryQuery{Env: "dev", Image: "server"}, []ledger.Entry{entry(pins["dev/server"], "c1", at(50))})
			if n, err := l.RepointPins(ctx, map[string]string{"c1": "c2"}); err != nil || n != 0 {
				t.Errorf("RepointPins again = %d, %v; want nothing moved", n, err)
			}
		}},
	}
}

// --- RecordSquash -----------------------------------------------------------

func (s *suite) squashCases() []testCase {
	fold := func(n int, branch, commit string) *ledger.Entry {
		return &ledger.Entry{Commit: commit, Cause: ledger.CauseSquash,
			Key: ledger.Key{Time: at(n), ID: "squash/" + branch + "/" + commit}, Time: at(n)}
	}
	return []testCase{
		{"Empty", func(t *testing.T) {
			checkSquashes(t, s.ledger(t), nil)
		}},
		{"LastPerBranchNewestWins", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			main1 := ledger.Squash{Branch: "main", Time: at(10), Report: []byte(`{"outcome":"squashed","new_tip":"s1"}`), Entry: fold(10, "main", "s1")}
			main2 := ledger.Squash{Branch: "main", Time: at(20), Report: []byte(`{"outcome":"nothing"}`)}
			rel := ledger.Squash{Branch: "release/1", Time: at(15), Report: []byte(`{"outcome":"aborted","reason":"raced"}`)}
			must(t, l.RecordSquash(ctx, main1))
			must(t, l.RecordSquash(ctx, main2))
			must(t, l.RecordSquash(ctx, rel))
			// An older report arriving late keeps the newer one, yet its fold
			// is history all the same.
			late := ledger.Squash{Branch: "main", Time: at(5), Report: []byte(`{"outcome":"squashed","new_tip":"s0"}`), Entry: fold(5, "main", "s0")}
			must(t, l.RecordSquash(ctx, late))
			checkSquashes(t, l, []ledger.Squash{main2, rel})
			// One entry per fold, however often it is recorded.
			must(t, l.RecordSquash(ctx, main1))
			checkHistory(t, l, ledger.HistoryQuery{}, []ledger.Entry{*main1.Entry, *late.Entry})
			checkHistory(t, l, ledger.HistoryQuery{Env: "dev"}, nil)
		}},
	}
}

func checkSquashes(t *testing.T, l ledger.Ledger, want []ledger.Squash) {
	t.Helper()
	got, err := l.Squashes(t.Context())
	if err != nil {
		t.Fatalf("Squashes: %v", err)
	}
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Branch == w.Branch && g.Time.Equal(w.Time) && string(g.Report) == string(w.Report) && g.Entry == nil
	}
	if !same {
		t.Errorf("Squashes\n got  %+v\n want %+v", got, want)
	}
}

func checkHeld(t *testing.T, l ledger.Ledger, env, image string, want bool) {
	t.Helper()
	got, err := l.Held(t.Context(), env, image)
	if err != nil {
		t.Fatalf("Held(%s, %s): %v", env, image, err)
	}
	if got != want {
		t.Errorf("Held(%s, %s) = %v, want %v", env, image, got, want)
	}
}

// --- Promotions -------------------------------------------------------------

// promotion returns a pending promotion of image to prod for tag, created at(n).
func promotion(n int, image, tag string) ledger.Promotion {
	return ledger.Promotion{
		Env: "prod", Image: image, Tag: tag, Source: "acme/backend",
		URL:      "https://github.com/acme/backend/releases/tag/" + tag,
		Delivery: fmt.Sprintf("delivery-%d", n), State: ledger.PromotionPending,
		Created: at(n),
	}
}

func (s *suite) promotionCases() []testCase {
	return []testCase{
		{"Empty", func(t *testing.T) {
			l := s.ledger(t)
			checkPromotions(t, l, "", "", nil)
			checkPromotions(t, l, "server", "v1.0.0", nil)
		}},
		{"PutReplacesSameEnvImageTag", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			first := promotion(1, "server", "v1.0.0")
			must(t, l.PutPromotion(ctx, first))
			checkPromotions(t, l, "server", "v1.0.0", []ledger.Promotion{first})
			second := promotion(2, "server", "v1.0.0")
			second.State, second.Reason, second.Prerelease = ledger.PromotionBlocked, "not pinned in dev", true
			must(t, l.PutPromotion(ctx, second))
			checkPromotions(t, l, "server", "v1.0.0", []ledger.Promotion{second})
			checkPromotions(t, l, "", "", []ledger.Promotion{second})
		}},
		{"FilterByImageAndTag", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			prodA := promotion(3, "server", "v1.0.0")
			stagingA := promotion(1, "server", "v1.0.0")
			stagingA.Env = "staging"
			other := []ledger.Promotion{
				promotion(2, "server", "v1.1.0"),
				promotion(4, "worker", "v1.0.0"),
			}
			for _, p := range append([]ledger.Promotion{prodA, stagingA}, other...) {
				must(t, l.PutPromotion(ctx, p))
			}
			checkPromotions(t, l, "server", "v1.0.0", []ledger.Promotion{stagingA, prodA})
			checkPromotions(t, l, "worker", "v1.0.0", []ledger.Promotion{other[1]})
			checkPromotions(t, l, "server", "v2.0.0", nil)
			checkPromotions(t, l, "frontend", "v1.0.0", nil)
		}},
		{"AllOrderedByCreated", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			ps := []ledger.Promotion{
				promotion(5, "server", "v1.0.0"),
				promotion(1, "worker", "v3.0.0"),
				promotion(3, "api", "v0.1.0"),
				promotion(2, "server", "v1.1.0"),
			}
			for _, p := range ps {
				must(t, l.PutPromotion(ctx, p))
			}
			checkPromotions(t, l, "", "", []ledger.Promotion{ps[1], ps[3], ps[2], ps[0]})
		}},
		{"Delete", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			a, b := promotion(1, "server", "v1.0.0"), promotion(2, "server", "v1.1.0")
			staging := promotion(3, "server", "v1.0.0")
			staging.Env = "staging"
			for _, p := range []ledger.Promotion{a, b, staging} {
				must(t, l.PutPromotion(ctx, p))
			}
			must(t, l.DeletePromotion(ctx, "prod", "server", "v1.0.0"))
			checkPromotions(t, l, "", "", []ledger.Promotion{b, staging})
			checkPromotions(t, l, "server", "v1.0.0", []ledger.Promotion{staging})
			// Deleting what is not there is not an error.
			must(t, l.DeletePromotion(ctx, "prod", "server", "v1.0.0"))
			must(t, l.DeletePromotion(ctx, "prod", "nothing", "v0"))
			checkPromotions(t, l, "", "", []ledger.Promotion{b, staging})
		}},
	}
}

func checkPromotions(t *testing.T, l ledger.Ledger, image, tag string, want []ledger.Promotion) {
	t.Helper()
	got, err := l.Promotions(t.Context(), image, tag)
	if err != nil {
		t.Fatalf("Promotions(%q, %q): %v", image, tag, err)
	}
	if !slices.EqualFunc(got, want, samePromotion) {
		t.Errorf("Promotions(%q, %q)\n got  %+v\n want %+v", image, tag, got, want)
	}
}

func samePromotion(a, b ledger.Promotion) bool {
	ca, cb := a.Created, b.Created
	a.Created, b.Created = time.Time{}, time.Time{}
	return a == b && ca.Equal(cb)
}

// --- Close ------------------------------------------------------------------

func (s *suite) closeCases() []testCase {
	return []testCase{
		{"UseAfterCloseIsErrClosed", func(t *testing.T) {
			l := s.open(t) // closed here, not by cleanup
			ctx := t.Context()
			must(t, l.MarkDelivery(ctx, "d-1", "pinned"))
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			calls := map[string]error{}
			_, _, calls["Delivery"] = l.Delivery(ctx, "d-1")
			calls["MarkDelivery"] = l.MarkDelivery(ctx, "d-2", "pinned")
			_, _, calls["ClaimPin"] = l.ClaimPin(ctx, pin(1, digestA))
			_, calls["Pins"] = l.Pins(ctx)
			for name, err := range calls {
				if !errors.Is(err, ledger.ErrClosed) {
					t.Errorf("%s after Close: error %v, want ledger.ErrClosed", name, err)
				}
			}
		}},
	}
}

// --- Any delivery or message id ---------------------------------------------

// oddIDs are ids a store cannot take as they are: a NUL, bytes that are not
// UTF-8, a 40 KB id (over bbolt's key limit and Firestore's id limit), "/",
// "." and "..", Firestore's reserved __…__, and the hashed form of another.
var oddIDs = []string{
	"a\x00b", "\xff\xfe", strings.Repeat("m", 40<<10), "a/b", "..", ".", "__x__",
	ledger.StorageID("\xff\xfe"), "x y", "",
}

func (s *suite) anyIDCases() []testCase {
	return []testCase{
		{"Delivery", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			for i, id := range oddIDs[:len(oddIDs)-1] {
				must(t, l.MarkDelivery(ctx, id, fmt.Sprintf("outcome-%d", i)))
				must(t, l.MarkDelivery(ctx, id, "again"))
			}
			for i, id := range oddIDs[:len(oddIDs)-1] {
				checkDelivery(t, l, id, fmt.Sprintf("outcome-%d", i), true)
			}
			// Near misses were never marked.
			for _, id := range []string{"a", "a\x00c", "\xff", strings.Repeat("m", 40<<10) + "m", "a%2Fb", "a\\b"} {
				checkDelivery(t, l, id, "", false)
			}
		}},
		{"Keys", func(t *testing.T) {
			l := s.ledger(t)
			ctx := t.Context()
			for i, id := range oddIDs {
				k := ledger.Key{Time: at(i), ID: id}
				p := pin(i, fmt.Sprintf("sha256:%064x", i))
				p.Key = k
				must(t, l.RecordDigest(ctx, "server", p.Digest, "latest", k))
				claim(t, l, p, p, true)
				got, _, err := l.Pin(ctx, "dev", "server")
				must(t, err)
				if got.Key.ID != id {
					t.Errorf("key id %.20q came back as %.20q", id, got.Key.ID)
				}
				must(t, l.CommitPin(ctx, p, fmt.Sprintf("c%06d", i), at(100+i)))
				must(t, l.CommitPin(ctx, p, fmt.Sprintf("c%06d", i), at(200+i))) // idempotent
				want := p
				want.Commit, want.Time = fmt.Sprintf("c%06d", i), at(100+i)
				checkPin(t, l, want)
				checkTag(t, l, "server", "latest", p.Digest, true)
				// The same key again is not newer, whatever its bytes.
				claim(t, l, p, want, false)
			}
			h, err := l.History(ctx, ledger.HistoryQuery{Env: "dev", Image: "server"})
			must(t, err)
			if len(h) != len(oddIDs) {
				t.Fatalf("History: %d entries, want %d (one per key)", len(h), len(oddIDs))
			}
			for i, e := range h {
				if want := oddIDs[len(oddIDs)-1-i]; e.Key.ID != want {
					t.Errorf("History[%d].Key.ID = %.20q, want %.20q", i, e.Key.ID, want)
				}
			}
			// Keys that differ only in their id order by the id's bytes.
			must(t, l.RecordDigest(ctx, "worker", digestA, "latest", ledger.Key{Time: at(1), ID: "\xff\xfe"}))
			must(t, l.RecordDigest(ctx, "worker", digestB, "latest", ledger.Key{Time: at(1), ID: "a\x00b"}))
			checkTag(t, l, "worker", "latest", digestA, true)
		}},
	}
}

// --- Paging -----------------------------------------------------------------

// commitTies adds, to the history of commitHistory, four dev/server entries
// that share one time, with key ids the backends store hashed.
func commitTies(t *testing.T, l ledger.Ledger) []ledger.Entry {
	t.Helper()
	all := commitHistory(t, l)
	for i, id := range []string{"\xff\xfe", "tie-b", strings.Repeat("z", 300), "tie-a"} {
		p := ledger.Pin{Env: "dev", Image: "server", Digest: digestC, Cause: ledger.CauseGAR,
			Key: ledger.Key{Time: at(25), ID: id}, Time: at(26)}
		if i == 3 {
			p.Env = "prod"
		}
		must(t, l.CommitPin(t.Context(), p, fmt.Sprintf("7e%05d", i), at(25)))
		all = append(all, entry(p, fmt.Sprintf("7e%05d", i), at(25)))
	}
	slices.SortFunc(all, ledger.HistoryOrder)
	return all
}

func (s *suite) pagingCases() []testCase {
	return []testCase{
		{"NoGapsNoOverlaps", func(t *testing.T) {
			l := s.ledger(t)
			all := commitTies(t, l)
			for _, q := range []ledger.HistoryQuery{
				{}, {Env: "dev"}, {Env: "dev", Image: "server"}, {Digest: digestC}, {Image: "server"},
			} {
				var want []ledger.Entry
				for _, e := range all {
					if q.Matches(e) {
						want = append(want, e)
					}
				}
				checkHistory(t, l, q, want)
				for _, limit := range []int{2, 3} {
					q := q
					q.Limit = limit
					var got []ledger.Entry
					for page := 0; ; page++ {
						if page > len(all) {
							t.Fatalf("History(%+v): paging does not end", q)
						}
						h, err := l.History(t.Context(), q)
						must(t, err)
						if len(h) > limit {
							t.Fatalf("History(%+v): %d entries, over the limit", q, len(h))
						}
						got = append(got, h...)
						if len(h) < limit {
							break
						}
						q.Before = ledger.CursorOf(h[len(h)-1])
					}
					if !slices.EqualFunc(got, want, sameEntry) {
						t.Errorf("History(env %q image %q digest %.12q) in pages of %d\n got  %s\n want %s",
							q.Env, q.Image, q.Digest, limit, fmtEntries(got), fmtEntries(want))
					}
				}
			}
		}},
		{"BeforeTheOldestIsEmpty", func(t *testing.T) {
			l := s.ledger(t)
			all := commitHistory(t, l)
			checkHistory(t, l, ledger.HistoryQuery{Before: ledger.CursorOf(all[len(all)-1])}, nil)
			checkHistory(t, l, ledger.HistoryQuery{Before: ledger.CursorOf(all[0]), Limit: 2}, all[1:3])
		}},
	}
}

// must fails the test at once on an error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
