package engine_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinroll/pinroll/internal/demo"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops/github"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/testing/fakegithub"
)

// scaledLimits are GitHub's two content-creation windows (80 a minute, 500
// an hour) shrunk to seconds, so that a stream of a few seconds crosses
// both.
var scaledLimits = []fakegithub.Window{{Limit: 8, Per: 6 * time.Second}, {Limit: 14, Per: 12 * time.Second}}

// TestSustainedStreamStaysUnderTheWriteLimit streams pins through the engine
// for 8 s, 4 at a time, with git.min_interval far too short to keep the fake
// GitHub's (scaled-down) secondary write limit by itself. pinroll's own
// pacing keeps it: not one request is refused, every delivery succeeds and
// the newest pin lands. The same stream from an unpaced client trips the
// limit, so the limit is real, and still lands the newest pin by honouring
// Retry-After.
func TestSustainedStreamStaysUnderTheWriteLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("an 8 s stream")
	}
	t.Parallel()
	for _, tc := range []struct {
		name  string
		paced bool
	}{
		{"paced", true},
		{"unpaced", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gh := fakegithub.New(t, "acme", "cloud-provisioning", "main", demo.Files())
			gh.SetContentLimits(scaledLimits...)
			o := github.Options{Repo: gh.RepoURL(), APIURL: gh.URL(), Token: gh.Token(), WritesPerMinute: -1}
			if tc.paced {
				o.WritesPerMinute = 0
				for _, w := range scaledLimits {
					o.WriteLimits = append(o.WriteLimits, github.WriteLimit{N: w.Limit, Per: w.Per})
				}
			}
			repo, err := github.New(o)
			if err != nil {
				t.Fatal(err)
			}
			l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			eng := engine.New(engine.Options{Config: burstConfig(t, gh.RepoURL(), "100ms"), Ledger: l, Repo: repo})

			const n = 80 // one every 100 ms
			outcomes, errs, took := deliver(eng, n, 4, 100*time.Millisecond)
			calls := gh.Calls()
			t.Logf("%s: %d pins in %s: %v; %d ref moves, %d content writes, %d refused",
				tc.name, n, took.Round(time.Millisecond), outcomes, calls[fakegithub.EndpointGraphQLMutation], gh.ContentWrites(), gh.RateLimited())

			if got, want := string(gh.File("main", devKustomization)), msg("", n, "").Digest; !strings.Contains(got, "digest: "+want) {
				t.Errorf("dev is not pinned to the newest digest %s:\n%s", want, got)
			}
			// More writes than one short window holds: the stream outlasted
			// it, so the limit was in play.
			if w := gh.ContentWrites(); w <= scaledLimits[0].Limit {
				t.Errorf("%d content writes, want more than %d", w, scaledLimits[0].Limit)
			}
			if !tc.paced {
				if gh.RateLimited() == 0 {
					t.Error("the unpaced client was never refused: the fake's limit is not real")
				}
				return
			}
			if got := gh.RateLimited(); got != 0 {
				t.Errorf("%d requests refused for the write limit, want 0", got)
			}
			for _, err := range errs {
				t.Error(err)
			}
			if got := outcomes[engine.Pinned] + outcomes[engine.Superseded] + outcomes[engine.Unchanged]; got != n {
				t.Errorf("outcomes %v: want every message pinned, superseded or unchanged", outcomes)
			}
		})
	}
}
