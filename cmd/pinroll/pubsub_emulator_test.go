package main

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/testing/emulator"
)

// pubsubProject is a project of its own on the Pub/Sub emulator, started or
// found by internal/testing/emulator (skipped without gcloud, failing under
// CI=true).
type pubsubProject struct {
	id     string
	client *pubsub.Client
}

func newPubSubProject(t *testing.T) *pubsubProject {
	t.Helper()
	emulator.PubSub(t)
	id := emulator.ProjectID(t)
	c, err := pubsub.NewClient(context.Background(), id)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &pubsubProject{id: id, client: c}
}

func (p *pubsubProject) topic(name string) string { return "projects/" + p.id + "/topics/" + name }
func (p *pubsubProject) subscription(name string) string {
	return "projects/" + p.id + "/subscriptions/" + name
}

// createTopic creates topic name and returns its full name.
func (p *pubsubProject) createTopic(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	topic, err := p.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: p.topic(name)})
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return topic.GetName()
}

// createSubscription creates subscription name on topic, a push subscription
// to endpoint unless endpoint is "", and returns its full name. Failed pushes
// are retried after a short backoff, as a retry policy on the real service
// would.
func (p *pubsubProject) createSubscription(t *testing.T, name, topic, endpoint string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := &pubsubpb.Subscription{
		Name:               p.subscription(name),
		Topic:              topic,
		AckDeadlineSeconds: 10,
		RetryPolicy: &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(time.Second),
			MaximumBackoff: durationpb.New(2 * time.Second),
		},
	}
	if endpoint != "" {
		s.PushConfig = &pubsubpb.PushConfig{PushEndpoint: endpoint}
	}
	sub, err := p.client.SubscriptionAdminClient.CreateSubscription(ctx, s)
	if err != nil {
		t.Fatalf("create subscription %s: %v", name, err)
	}
	return sub.GetName()
}

// publish publishes data on topic and returns the message id.
func (p *pubsubProject) publish(t *testing.T, topic string, data []byte) string {
	t.Helper()
	pub := p.client.Publisher(topic)
	defer pub.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	id, err := pub.Publish(ctx, &pubsub.Message{Data: data}).Get(ctx)
	if err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	return id
}

// garData is message.data as Artifact Registry publishes it for an INSERT of
// repo@digest tagged tag.
func garData(t *testing.T, repo, digest, tag string) []byte {
	t.Helper()
	b, err := gar.EncodeData(gar.Message{Action: gar.ActionInsert, Repository: repo, Digest: digest, Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitPinned polls until dev pins want for image, failing after timeout.
func (w *world) waitPinned(t *testing.T, image, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := w.pinned(t, image)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev pins %q for %s after %v, want %q", got, image, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
