// Package events publishes pin events (SPEC §3 `events.topic`): one JSON
// [engine.Event] per pin that changed git, on a Pub/Sub topic, with
// cloud.google.com/go/pubsub/v2
// (https://pkg.go.dev/cloud.google.com/go/pubsub/v2). It honours
// PUBSUB_EMULATOR_HOST as the client library does.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/engine"
)

// PublishTimeout bounds how long [Publisher.Publish] waits for Pub/Sub to
// accept one event. A pin is already durable when its event is published, so
// a slow topic must not hold up the delivery that made it.
const PublishTimeout = 10 * time.Second

// Attributes set on every event message, so that subscriptions can filter
// (https://cloud.google.com/pubsub/docs/subscription-message-filter).
const (
	AttrEnv   = "env"
	AttrImage = "image"
	AttrCause = "cause"
)

// Publisher publishes pin events on one topic. It implements
// [engine.Publisher] and is safe for concurrent use.
type Publisher struct {
	client *pubsub.Client
	pub    *pubsub.Publisher
	topic  string
}

var _ engine.Publisher = (*Publisher)(nil)

// New returns a publisher for topic, a full name projects/PROJECT/topics/TOPIC.
// It does not check that the topic exists; publishing to a missing topic
// fails. opts are passed to pubsub.NewClient.
func New(ctx context.Context, topic string, opts ...option.ClientOption) (*Publisher, error) {
	project, err := config.ProjectOf(topic, "topics")
	if err != nil {
		return nil, fmt.Errorf("events.topic %w", err)
	}
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("events: pubsub client for %s: %w", topic, err)
	}
	return &Publisher{client: c, pub: c.Publisher(topic), topic: topic}, nil
}

// Topic returns the full name of the topic events go to.
func (p *Publisher) Topic() string { return p.topic }

// Publish sends ev as one JSON message and waits, at most [PublishTimeout],
// until Pub/Sub has accepted it.
func (p *Publisher) Publish(ctx context.Context, ev engine.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events: encode %s/%s event: %w", ev.Env, ev.Image, err)
	}
	ctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	res := p.pub.Publish(ctx, &pubsub.Message{
		Data:       data,
		Attributes: map[string]string{AttrEnv: ev.Env, AttrImage: ev.Image, AttrCause: string(ev.Cause)},
	})
	if _, err := res.Get(ctx); err != nil {
		return fmt.Errorf("events: publish %s/%s=%s to %s: %w", ev.Env, ev.Image, ev.Digest, p.topic, err)
	}
	return nil
}

// Close flushes the events still being sent and releases the client.
func (p *Publisher) Close() error {
	p.pub.Stop()
	if err := p.client.Close(); err != nil {
		return fmt.Errorf("events: close pubsub client: %w", err)
	}
	return nil
}
