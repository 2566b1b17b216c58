package ledger_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/ledger"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func key(n int, id string) ledger.Key {
	return ledger.Key{Time: t0.Add(time.Duration(n) * time.Second), ID: id}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	cur := ledger.Pin{Env: "dev", Image: "server", Digest: "sha256:a", Key: key(5, "m5"), Cause: ledger.CauseGAR, Commit: "c1"}
	gar := func(n int, digest string) ledger.Pin {
		return ledger.Pin{Env: "dev", Image: "server", Digest: digest, Key: key(n, "m"), Cause: ledger.CauseGAR, Commit: "ignored"}
	}
	manual := gar(1, "sha256:b")
	manual.Cause = ledger.CauseManual
	tests := []struct {
		name        string
		cur         ledger.Pin
		found, held bool
		p           ledger.Pin
		wantApplied bool
		wantErr     error
		wantCommit  string // of the pin in force afterwards
		wantDigest  string
	}{
		{"first claim", ledger.Pin{}, false, false, gar(1, "sha256:b"), true, nil, "", "sha256:b"},
		{"newer key, new digest", cur, true, false, gar(6, "sha256:b"), true, nil, "", "sha256:b"},
		{"newer key, same digest keeps commit", cur, true, false, gar(6, "sha256:a"), true, nil, "c1", "sha256:a"},
		{"older key", cur, true, false, gar(4, "sha256:b"), false, nil, "c1", "sha256:a"},
		{"equal key", cur, true, false, cur, false, nil, "c1", "sha256:a"},
		{"held", cur, true, true, gar(6, "sha256:b"), false, ledger.ErrHeld, "c1", "sha256:a"},
		{"held, no pin yet", ledger.Pin{}, false, true, gar(6, "sha256:b"), false, ledger.ErrHeld, "", ""},
		{"manual, older key", cur, true, false, manual, true, nil, "", "sha256:b"},
		{"manual while held", cur, true, true, manual, true, nil, "", "sha256:b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next, applied, err := ledger.Claim(tc.cur, tc.found, tc.held, tc.p)
			if applied != tc.wantApplied || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Claim = applied %v, error %v; want %v, %v", applied, err, tc.wantApplied, tc.wantErr)
			}
			if next.Commit != tc.wantCommit || next.Digest != tc.wantDigest {
				t.Errorf("pin in force %+v, want digest %q commit %q", next, tc.wantDigest, tc.wantCommit)
			}
		})
	}
}

func TestPlanCommit(t *testing.T) {
	t.Parallel()
	p := ledger.Pin{Env: "dev", Image: "server", Digest: "sha256:a", Key: key(1, "m1"), Cause: ledger.CauseGAR}
	newer := p
	newer.Key, newer.Digest = key(2, "m2"), "sha256:b"
	at := t0.Add(time.Hour)
	tests := []struct {
		name                  string
		cur                   ledger.Pin
		found, committed      bool
		wantPin, wantEntry    bool
		wantCommit, wantDigst string
	}{
		{"pin still p", p, true, false, true, true, "c0ffee", "sha256:a"},
		{"a newer claim", newer, true, false, false, true, "", ""},
		{"no pin", ledger.Pin{}, false, false, false, true, "", ""},
		{"committed before", p, true, true, false, false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := ledger.PlanCommit(tc.cur, tc.found, tc.committed, p, "c0ffee", at)
			if plan.WritePin != tc.wantPin || plan.WriteEntry != tc.wantEntry {
				t.Fatalf("plan writes pin %v entry %v, want %v, %v", plan.WritePin, plan.WriteEntry, tc.wantPin, tc.wantEntry)
			}
			if tc.wantPin && (plan.Pin.Commit != tc.wantCommit || !plan.Pin.Time.Equal(at) || plan.Pin.Digest != tc.wantDigst) {
				t.Errorf("pin %+v", plan.Pin)
			}
			if tc.wantEntry && (plan.Entry != ledger.EntryOf(p, "c0ffee", at)) {
				t.Errorf("entry %+v", plan.Entry)
			}
		})
	}
}

func TestMovesTag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cur      ledger.Key
		found    bool
		key      ledger.Key
		wantMove bool
	}{
		{"untagged so far", ledger.Key{}, false, key(1, "a"), true},
		{"newer time", key(1, "z"), true, key(2, "a"), true},
		{"same time, larger id", key(1, "a"), true, key(1, "b"), true},
		{"same message again", key(1, "a"), true, key(1, "a"), false},
		{"older", key(2, "a"), true, key(1, "z"), false},
	}
	for _, tc := range tests {
		if got := ledger.MovesTag(tc.cur, tc.found, tc.key); got != tc.wantMove {
			t.Errorf("%s: MovesTag = %v, want %v", tc.name, got, tc.wantMove)
		}
	}
}

func TestSeeDigest(t *testing.T) {
	t.Parallel()
	d := ledger.Digest{Image: "server", Digest: "sha256:a"}
	var changed bool
	steps := []struct {
		tag         string
		n           int
		wantChanged bool
	}{
		{"v2", 5, true}, {"latest", 9, true}, {"beta", 2, true}, {"latest", 7, false}, {"", 1, true}, {"v2", 5, false},
	}
	for _, s := range steps {
		d, changed = ledger.SeeDigest(d, s.tag, key(s.n, "m"))
		if changed != s.wantChanged {
			t.Errorf("SeeDigest(%q, %d): changed %v, want %v", s.tag, s.n, changed, s.wantChanged)
		}
	}
	if got := strings.Join(d.Tags, ","); got != "beta,latest,v2" {
		t.Errorf("tags %s, want beta,latest,v2", got)
	}
	if !d.FirstSeen.Equal(key(1, "").Time) || !d.LastSeen.Equal(key(9, "").Time) {
		t.Errorf("seen %v..%v", d.FirstSeen, d.LastSeen)
	}
	// The caller's slice is not reordered.
	tags := []string{"z", "a"}
	ledger.SeeDigest(ledger.Digest{Tags: tags}, "m", key(1, ""))
	if tags[0] != "z" {
		t.Errorf("SeeDigest sorted its argument in place: %v", tags)
	}
}

func TestStorageID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 40<<10)
	readable := []struct{ id, want string }{
		{"17", "17"},
		{"gar-17", "gar-17"},
		{"a.b", "a.b"},
		{"_x", "_x"},
		{"x__", "x__"},
		{"a|b", "a|b"},
		{"gar/17", "gar%2F17"},
		{"a%2Fb", "a%252Fb"},
		{"#1", "%231"},
		{"1#", "1#"},
		{"/..", "%2F.."},
		{strings.Repeat("k", 128), strings.Repeat("k", 128)},
	}
	ids := []string{"", "a\x00b", "\xff\xfe", long, long + "x", "a/b", ".", "..", "__x__", "__", "x y", "\t", "é",
		strings.Repeat("k", 129), strings.Repeat("/", 50), "#sha256:00", ledger.StorageID("\xff\xfe")}
	for _, r := range readable {
		if got := ledger.StorageID(r.id); got != r.want {
			t.Errorf("StorageID(%q) = %q, want %q", r.id, got, r.want)
		}
		ids = append(ids, r.id)
	}
	seen := map[string]string{}
	for _, id := range ids {
		sid := ledger.StorageID(id)
		if prev, dup := seen[sid]; dup {
			t.Errorf("StorageID(%.20q) = StorageID(%.20q) = %q", id, prev, sid)
		}
		seen[sid] = id
		if sid == "" || sid == "." || sid == ".." || strings.HasPrefix(sid, "__") || strings.ContainsAny(sid, "/\x00") ||
			len(sid) > 128 || strings.ContainsFunc(sid, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Errorf("StorageID(%.20q) = %q: not storable everywhere", id, sid)
		}
	}
}

func TestSplitJoinID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "17", "a\x00b", "\xff\xfe", "é", strings.Repeat("\xff", 1000)} {
		text, raw := ledger.SplitID(id)
		if raw == nil && !utf8Valid(text) {
			t.Errorf("SplitID(%q): text %q is not UTF-8", id, text)
		}
		if got := ledger.JoinID(text, raw); got != id {
			t.Errorf("JoinID(SplitID(%q)) = %q", id, got)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestHistoryOrderAndCursor(t *testing.T) {
	t.Parallel()
	e := func(at int, k ledger.Key, env string) ledger.Entry {
		return ledger.Entry{Env: env, Image: "server", Key: k, Time: t0.Add(time.Duration(at) * time.Second)}
	}
	// Newest first: by time, key time, key id (storage form), env.
	want := []ledger.Entry{
		e(9, key(1, "a"), "dev"),
		e(5, key(3, "a"), "dev"),
		e(5, key(2, "b"), "prod"),
		e(5, key(2, "b"), "dev"),
		e(5, key(2, "a"), "dev"),
		e(5, key(2, "\xff"), "dev"), // hashed: "#sha256:…" sorts before letters
		e(1, key(9, "z"), "dev"),
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, ledger.HistoryOrder)
	if !slices.Equal(got, want) {
		t.Errorf("HistoryOrder sorted\n got  %v\n want %v", got, want)
	}
	for i := range want {
		c := ledger.CursorOf(want[i])
		for j, x := range want {
			if c.Admits(x) != (j > i) {
				t.Errorf("cursor at %d admits %d: %v", i, j, c.Admits(x))
			}
		}
	}
	if !(ledger.Cursor{}).Admits(want[0]) {
		t.Error("the zero cursor must admit every entry")
	}
}

func TestCursorText(t *testing.T) {
	t.Parallel()
	for _, c := range []ledger.Cursor{
		{},
		{Time: t0, Key: key(1, "17"), Env: "dev", Image: "server"},
		{Time: t0.Add(123456789), Key: key(2, "a\x00\xff/b"), Env: "dev eu", Image: "a/b"},
	} {
		s := c.String()
		if strings.ContainsAny(s, "/+=?&% ") {
			t.Errorf("cursor text %q is not URL-safe", s)
		}
		got, err := ledger.ParseCursor(s)
		if err != nil {
			t.Fatalf("ParseCursor(%q): %v", s, err)
		}
		if !got.Time.Equal(c.Time) || !got.Key.Equal(c.Key) || got.Env != c.Env || got.Image != c.Image {
			t.Errorf("ParseCursor(String(%+v)) = %+v", c, got)
		}
	}
	for _, bad := range []string{"!", "e30x", "bm90IGpzb24"} {
		if _, err := ledger.ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) succeeded", bad)
		}
	}
}

func TestMergeHold(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	cur := ledger.Hold{Env: "dev", Image: "server", Reason: "incident", Since: t0}
	tests := []struct {
		name  string
		cur   ledger.Hold
		found bool
		h     ledger.Hold
		want  ledger.Hold
	}{
		{"new hold starts now", ledger.Hold{}, false, ledger.Hold{Env: "dev", Image: "server", Reason: "r"}, ledger.Hold{Env: "dev", Image: "server", Reason: "r", Since: now}},
		{"new hold keeps its time", ledger.Hold{}, false, ledger.Hold{Env: "dev", Image: "server", Since: t0}, ledger.Hold{Env: "dev", Image: "server", Since: t0}},
		{"held again keeps since, takes reason", cur, true, ledger.Hold{Env: "dev", Image: "server", Reason: "new"}, ledger.Hold{Env: "dev", Image: "server", Reason: "new", Since: t0}},
		{"held again without reason keeps it", cur, true, ledger.Hold{Env: "dev", Image: "server"}, cur},
		{"old hold without since", ledger.Hold{Env: "dev", Image: "server"}, true, ledger.Hold{Env: "dev", Image: "server"}, ledger.Hold{Env: "dev", Image: "server", Since: now}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ledger.MergeHold(tc.cur, tc.found, tc.h, now); got != tc.want {
				t.Errorf("MergeHold = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRepoint(t *testing.T) {
	t.Parallel()
	moved := map[string]string{"a": "b", "b": "c", "x": "y", "y": "x", "e": ""}
	tests := []struct {
		commit, want string
		changed      bool
	}{
		{"a", "c", true},
		{"b", "c", true},
		{"c", "c", false},
		{"", "", false},
		{"x", "x", false}, // a cycle moves nothing for sure: it ends where it began
		{"e", "e", false},
	}
	for _, tc := range tests {
		got, changed := ledger.Repoint(ledger.Pin{Env: "dev", Commit: tc.commit}, moved)
		if got.Commit != tc.want || changed != tc.changed || got.Env != "dev" {
			t.Errorf("Repoint(%q) = %+v, %v; want %q, %v", tc.commit, got, changed, tc.want, tc.changed)
		}
	}
}

func TestDeliveryExpired(t *testing.T) {
	t.Parallel()
	handled := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		now  time.Time
		want bool
	}{
		{handled, false},
		{handled.Add(ledger.DeliveryRetention - time.Nanosecond), false},
		{handled.Add(ledger.DeliveryRetention), true},
		{handled.Add(30 * 24 * time.Hour), true},
		{handled.Add(-time.Hour), false}, // a clock moved back forgets nothing
	}
	for _, tc := range tests {
		if got := ledger.DeliveryExpired(handled, tc.now); got != tc.want {
			t.Errorf("DeliveryExpired(%s, %s) = %v, want %v", handled, tc.now, got, tc.want)
		}
	}
}
