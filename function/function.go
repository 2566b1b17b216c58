// Package function holds pinroll's Cloud Run functions targets (SPEC §4.5),
// registered with the Functions Framework for Go
// (https://github.com/GoogleCloudPlatform/functions-framework-go) in init.
// One container image serves any of them; FUNCTION_TARGET picks the one it
// serves (see cmd/function).
//
// The targets hold no logic: they decode their input, call the engine that
// `pinroll serve` shares, and log one line per event (SPEC §9). The app is
// built from $PINROLL_CONFIG on the first event and reused after that.
//
// Targets:
//   - OnImagePushed (CloudEvent): an Artifact Registry notification delivered
//     by Eventarc as google.cloud.pubsub.topic.v1.messagePublished (SPEC §4.1).
//   - OnGitHubWebhook (HTTP): a GitHub webhook, verified by its HMAC signature
//     (SPEC §4.2); the release event promotes to release environments.
//   - Squash (HTTP): POST /squash, also at /, behind the ops auth: the
//     weekly squash Cloud Scheduler calls with an OIDC token (SPEC §4.3, §6.3).
//   - Ops (HTTP): the ops routes (deploy, resume, status, history and the
//     status page), behind the ops auth (SPEC §4.3).
package function

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pinroll/pinroll/internal/app"
	"github.com/pinroll/pinroll/internal/config"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/server"
)

func init() {
	functions.CloudEvent("OnImagePushed", OnImagePushed)
	functions.HTTP("OnGitHubWebhook", OnGitHubWebhook)
	functions.HTTP("Squash", Squash)
	functions.HTTP("Ops", Ops)
}

// Squash serves POST /squash exactly as `pinroll serve` does, at /squash and
// at / (SPEC §4.3, §6.3), behind the ops auth, with its own deadline
// ([server.SquashTimeout]; the Cloud Run service's request timeout must be
// at least as long).
func Squash(w http.ResponseWriter, r *http.Request) {
	t, err := defaultTarget.get(r.Context())
	if err != nil {
		http.Error(w, `{"error":"pinroll is not ready"}`, http.StatusServiceUnavailable)
		return
	}
	t.srv.HandleSquash(w, r)
}

// Ops serves the ops routes exactly as `pinroll serve` does (SPEC §4.3):
// POST /deploy and /resume, GET /status, /history and the status page /,
// behind the ops auth (PINROLL_OPS_TOKEN, or a Google ID token of one of
// PINROLL_OIDC_INVOKERS for PINROLL_OIDC_AUDIENCE).
func Ops(w http.ResponseWriter, r *http.Request) {
	t, err := defaultTarget.get(r.Context())
	if err != nil {
		http.Error(w, `{"error":"pinroll is not ready"}`, http.StatusServiceUnavailable)
		return
	}
	t.srv.HandleOps(w, r)
}

// OnGitHubWebhook handles a GitHub webhook delivery exactly as POST /github
// of `pinroll serve` does (SPEC §4.2): signature first, then the release.
func OnGitHubWebhook(w http.ResponseWriter, r *http.Request) {
	t, err := defaultTarget.get(r.Context())
	if err != nil {
		http.Error(w, `{"error":"pinroll is not ready"}`, http.StatusServiceUnavailable)
		return
	}
	t.onGitHubWebhook(w, r)
}

// onGitHubWebhook is OnGitHubWebhook over t.
func (t *target) onGitHubWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, `{"error":"POST only"}`, http.StatusMethodNotAllowed)
		return
	}
	t.srv.HandleGitHub(w, r.WithContext(logging.WithLogger(r.Context(), t.log)))
}

// OnImagePushed handles one Artifact Registry notification, a Pub/Sub
// messagePublished CloudEvent (https://cloud.google.com/eventarc/docs/cloudevents),
// with the engine: it pins the digest in every environment tracking its tag.
//
// It returns an error only when the message is worth a redelivery (the
// engine failed, or the app could not be built), so that Eventarc retries it;
// a message that does not apply, malformed ones included, returns nil and is
// acknowledged (SPEC §4.1, §5).
func OnImagePushed(ctx context.Context, ev event.Event) error {
	t, err := defaultTarget.get(ctx)
	if err != nil {
		return err
	}
	return t.onImagePushed(ctx, ev)
}

// target is what the handlers share: the engine and the logger.
type target struct {
	eng server.Pusher
	srv *server.Server
	log *slog.Logger
}

// onImagePushed is OnImagePushed over t. An event that cannot be decoded,
// unreadable or rejected, is acknowledged: redelivering it cannot help.
func (t *target) onImagePushed(ctx context.Context, ev event.Event) error {
	ctx = logging.WithLogger(ctx, t.log)
	msg, err := decode(ctx, ev)
	if msg.ID == "" {
		msg.ID = ev.ID()
	}
	if _, err := server.PushGAR(ctx, t.eng, msg, err); err != nil {
		return fmt.Errorf("gar message %s: %w", logging.Clip(msg.ID), err)
	}
	return nil
}

// decode turns the CloudEvent back into the HTTP request Eventarc sent
// (binary content mode) and decodes it as POST /gar does, so that the
// function and the server read notifications the same way.
func decode(ctx context.Context, ev event.Event) (gar.Message, error) {
	req, err := cehttp.NewHTTPRequestFromEvent(ctx, "http://function.invalid/", ev)
	if err != nil {
		return gar.Message{}, fmt.Errorf("%w: encode CloudEvent %s: %w", gar.ErrUnreadable, logging.Clip(ev.ID()), err)
	}
	return gar.Decode(req, 0)
}

// defaultTarget is the target the registered functions use, built from the
// environment on first use.
var defaultTarget = &lazyTarget{open: openTarget}

// lazyTarget builds a target once. Unlike a sync.Once it tries again after a
// failure: an instance whose first build hit a passing outage (the ledger
// unreachable) must not fail every event until the platform recycles it.
type lazyTarget struct {
	open func(ctx context.Context) (*target, error)

	mu sync.Mutex
	t  *target
}

func (l *lazyTarget) get(ctx context.Context) (*target, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		return l.t, nil
	}
	t, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.t = t
	return t, nil
}

// openTarget loads the config named by $PINROLL_CONFIG (else ./pinroll.yaml)
// and opens the app it describes. The app lives as long as the instance.
func openTarget(ctx context.Context) (*target, error) {
	log := logging.New(os.Stdout, slog.LevelInfo)
	cfg, err := config.Load(config.Path("", os.Getenv), os.Getenv)
	if err != nil {
		log.Error("pinroll function: load config", "error", err.Error())
		return nil, fmt.Errorf("pinroll function: %w", err)
	}
	// The app outlives the first event: don't let its cancellation reach
	// clients that keep the context they were opened with.
	a, err := app.Open(context.WithoutCancel(ctx), cfg, os.Getenv, log)
	if err != nil {
		log.Error("pinroll function: open app", "error", err.Error())
		return nil, fmt.Errorf("pinroll function: %w", err)
	}
	log.Info("pinroll function ready", "repo", cfg.Git.Repo, "ledger", cfg.Ledger)
	auth := &server.Auth{OpsToken: cfg.Secrets.OpsToken, Audience: cfg.Secrets.OIDCAudience, Invokers: cfg.Secrets.OIDCInvokers}
	srv := server.New(server.Options{Engine: a.Engine, Logger: log, Auth: auth, WebhookSecret: cfg.Secrets.WebhookSecret})
	return &target{eng: a.Engine, srv: srv, log: log}, nil
}
