package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/retry"
	"github.com/pinroll/pinroll/internal/server"
)

func init() {
	commands["watch"] = command{
		summary: "Pull Artifact Registry notifications from a Pub/Sub subscription and pin them (pull mode).",
		usage:   "--subscription projects/P/subscriptions/S [--concurrency N] [--config F]",
		run:     watch,
	}
}

// watchGrace is how long messages being handled when watch is asked to stop
// (SIGTERM, SIGINT) may take to finish before their work is cancelled and
// they are left to redelivery.
const watchGrace = 9 * time.Second

// nackDelay holds a message that failed transiently before it is nacked, so
// that a subscription without a retry policy does not redeliver it in a hot
// loop while git or the ledger is down.
const nackDelay = time.Second

func watch(ctx context.Context, env *cliEnv, args []string) error {
	fs := flags(env, "watch")
	cfgPath := configFlag(fs)
	subName := fs.String("subscription", "", "the pull subscription to the gcr topic, projects/P/subscriptions/S (required)")
	concurrency := fs.Int("concurrency", 4, "messages handled at once")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if *subName == "" {
		return usageError{"--subscription is required"}
	}
	project, err := config.ProjectOf(*subName, "subscriptions")
	if err != nil {
		return usageError{"--subscription " + err.Error()}
	}
	if *concurrency < 1 {
		return usageError{fmt.Sprintf("--concurrency %d: want at least 1", *concurrency)}
	}
	a, log, err := openApp(ctx, env, *cfgPath)
	if err != nil {
		return err
	}
	defer a.Close()

	// The client outlives the signal: acks of messages finishing during the
	// grace period still have to reach Pub/Sub.
	client, err := pubsub.NewClient(context.WithoutCancel(ctx), project)
	if err != nil {
		return fmt.Errorf("pubsub client for project %s: %w", project, err)
	}
	defer client.Close()
	sub := client.Subscriber(*subName)
	sub.ReceiveSettings.NumGoroutines = 1
	sub.ReceiveSettings.MaxOutstandingMessages = *concurrency
	// No ShutdownOptions: the default shutdown waits for every callback to
	// return and flushes their acks before Receive returns, which a timed
	// one does not (it returns at once and leaves the callbacks running).
	// watchGrace bounds the callbacks instead: Receive cancels their context
	// as soon as ctx is done, so they get a context of their own that lasts
	// watchGrace longer, and a pin in flight at SIGTERM can still finish.
	work, cancelWork := context.WithCancel(logging.WithLogger(context.WithoutCancel(ctx), log))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		log.Info("pinroll watch stopping: finishing the messages in flight", "grace_s", watchGrace.Seconds())
		time.AfterFunc(watchGrace, cancelWork)
	})
	defer stopGrace()

	w := &watcher{eng: a.Engine, log: log, stop: ctx}
	log.Info("pinroll watching", "subscription", *subName, "concurrency", *concurrency, "repo", a.Config.Git.Repo, "ledger", a.Config.Ledger)
	if err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) { w.handle(work, m) }); err != nil {
		return fmt.Errorf("receive from %s: %w", *subName, err)
	}
	log.Info("pinroll watch stopped", "subscription", *subName)
	return nil
}

// watcher handles the messages of one subscription.
type watcher struct {
	eng  server.Pusher
	log  *slog.Logger
	stop context.Context // done once watch is asked to stop
}

// handle applies one message and acks or nacks it by the ack rule (SPEC §5):
// ack when the engine returns without error, whatever the outcome, malformed
// data included; nack a failure worth redelivering.
func (w *watcher) handle(ctx context.Context, m *pubsub.Message) {
	ctx = logging.WithLogger(ctx, w.log)
	if w.stop.Err() != nil {
		// Pulled before the stop but not started: leave it to the next run.
		w.log.Info("gar message left for redelivery: stopping", "delivery", logging.Clip(m.ID))
		m.Nack()
		return
	}
	// Malformed data is rejected and acknowledged: redelivering cannot help.
	msg, err := gar.ParseData(m.Data)
	msg.ID, msg.PublishTime = m.ID, m.PublishTime.UTC()
	if _, err := server.PushGAR(ctx, w.eng, msg, err); err != nil {
		_ = retry.Sleep(w.stop, nackDelay) // cut short by the stop: nack at once
		m.Nack()
		return
	}
	m.Ack()
}
