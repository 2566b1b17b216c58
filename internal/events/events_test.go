package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/events"
	"github.com/pinroll/pinroll/internal/gitops/local"
	"github.com/pinroll/pinroll/internal/ledger"
	"github.com/pinroll/pinroll/internal/ledger/bolt"
	"github.com/pinroll/pinroll/internal/testing/emulator"
	"github.com/pinroll/pinroll/internal/testing/gittest"
)

func TestMain(m *testing.M) { emulator.Main(m) }

const serverRepo = "asia-northeast2-docker.pkg.dev/PROJECT/backend/server"

func TestNewRejectsBadTopic(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"", "pinroll-events", "projects/p/subscriptions/s", "projects//topics/t", "projects/p/topics/"} {
		if _, err := events.New(t.Context(), topic); err == nil || !strings.Contains(err.Error(), "events.topic") {
			t.Errorf("New(%q) = %v, want an error naming events.topic", topic, err)
		}
	}
}

// TestPinPublishesOneEvent wires the publisher into an engine over a demo
// GitOps repo and checks that each pin that changes git publishes exactly one
// JSON event on the Pub/Sub emulator, and a duplicate none.
func TestPinPublishesOneEvent(t *testing.T) {
	t.Parallel()
	emulator.PubSub(t)
	project := emulator.ProjectID(t)
	topic := "projects/" + project + "/topics/pinroll-events"
	subName := "projects/" + project + "/subscriptions/reader"
	admin := client(t, project)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: subName, Topic: topic}); err != nil {
		t.Fatal(err)
	}

	pub, err := events.New(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	eng := newEngine(t, pub)

	d1, d2 := digest(1), digest(2)
	var commits []string
	for _, m := range []engine.ImagePush{push("m1", d1, 1), push("m1", d1, 1), push("m2", d2, 2)} {
		res, err := eng.Push(ctx, m)
		if err != nil {
			t.Fatalf("push %s: %v", m.ID, err)
		}
		if !res.Duplicate {
			commits = append(commits, res.Commit())
		}
	}

	got := receive(t, admin.Subscriber(subName), 2, time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2 (one per pin, none for the duplicate): %+v", len(got), got)
	}
	slices.SortFunc(got, func(a, b received) int { return strings.Compare(a.ev.Digest, b.ev.Digest) })
	for i, want := range []engine.Event{
		{Env: "dev", Image: "server", Digest: d1, Tag: "latest", Commit: commits[0], Cause: ledger.CauseGAR},
		{Env: "dev", Image: "server", Digest: d2, Tag: "latest", Commit: commits[1], Cause: ledger.CauseGAR},
	} {
		ev := got[i].ev
		if ev.Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
		ev.Time = time.Time{}
		if ev != want {
			t.Errorf("event %d = %+v, want %+v", i, ev, want)
		}
		wantAttrs := map[string]string{events.AttrEnv: "dev", events.AttrImage: "server", events.AttrCause: "gar"}
		for k, v := range wantAttrs {
			if got[i].attrs[k] != v {
				t.Errorf("event %d attribute %s = %q, want %q", i, k, got[i].attrs[k], v)
			}
		}
	}
}

// TestPublishToMissingTopicFails checks that a failure to publish is returned,
// within the publish timeout, for the engine to log.
func TestPublishToMissingTopicFails(t *testing.T) {
	t.Parallel()
	emulator.PubSub(t)
	topic := "projects/" + emulator.ProjectID(t) + "/topics/missing"
	pub, err := events.New(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	start := time.Now()
	err = pub.Publish(t.Context(), engine.Event{Env: "dev", Image: "server", Digest: digest(1)})
	if err == nil || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Publish = %v, want an error naming %s", err, topic)
	}
	if d := time.Since(start); d > events.PublishTimeout+5*time.Second {
		t.Errorf("Publish took %v, want at most about %v", d, events.PublishTimeout)
	}
}

func client(t *testing.T, project string) *pubsub.Client {
	t.Helper()
	c, err := pubsub.NewClient(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newEngine returns an engine over a demo GitOps repo and a bolt ledger whose
// dev environment tracks latest, publishing its pin events with pub.
func newEngine(t *testing.T, pub engine.Publisher) *engine.Engine {
	t.Helper()
	repoDir, yaml := gittest.SeedDemo(t)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	l, err := bolt.Open(strings.TrimPrefix(cfg.Ledger, "bolt://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	repo, err := local.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(engine.Options{Config: cfg, Ledger: l, Repo: repo, Events: pub})
}

type received struct {
	ev    engine.Event
	attrs map[string]string
}

// receive reads messages from sub until it has want of them and quiet has
// passed without another, or 30s have passed.
func receive(t *testing.T, sub *pubsub.Subscriber, want int, quiet time.Duration) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []received
	var settle *time.Timer
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		var ev engine.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("event %s is not a JSON engine.Event: %v: %s", m.ID, err, m.Data)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, received{ev: ev, attrs: m.Attributes})
		if len(got) == want {
			settle = time.AfterFunc(quiet, cancel)
		}
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if settle != nil {
		settle.Stop()
	}
	return got
}

func push(id, digest string, sec int) engine.ImagePush {
	return engine.ImagePush{ID: id, PublishTime: time.Date(2026, 11, 23, 9, 0, sec, 0, time.UTC), Action: "INSERT",
		Repository: serverRepo, Digest: digest, Tag: "latest"}
}

func digest(n int) string { return fmt.Sprintf("sha256:%064x", 0xe0_0000+n) }
