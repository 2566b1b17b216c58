package main

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

func TestScratchTwoReceives(t *testing.T) {
	ps := newPubSubProject(t)
	topic := ps.createTopic(t, "gcr")
	sub := ps.createSubscription(t, "sub-a", topic, "")
	for i := range 3 {
		c, err := pubsub.NewClient(context.Background(), ps.id)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan string, 10)
		done := make(chan error, 1)
		s := c.Subscriber(sub)
		s.ReceiveSettings.NumGoroutines = 1
		s.ReceiveSettings.MaxOutstandingMessages = 2
		go func() {
			done <- s.Receive(ctx, func(_ context.Context, m *pubsub.Message) { m.Ack(); got <- m.ID })
		}()
		start := time.Now()
		ps.publish(t, topic, []byte("x"))
		select {
		case id := <-got:
			t.Logf("round %d: got %s after %v", i, id, time.Since(start))
		case <-time.After(25 * time.Second):
			t.Logf("round %d: nothing after 25s", i)
		}
		cancel()
		t.Logf("receive: %v", <-done)
		c.Close()
	}
}
