package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/pinroll/pinroll/internal/engine"
)

// HandleGitHub is the POST /github handler (SPEC §4.2), exported for the
// OnGitHubWebhook function target. The signature is verified before anything
// else is looked at; an unset secret refuses every delivery.
func (s *Server) HandleGitHub(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	log := engine.Logger(ctx)
	delivery := github.DeliveryID(r)
	if s.webhookSecret == "" {
		log.Error("github webhook refused: PINROLL_WEBHOOK_SECRET is not set", "delivery", delivery)
		writeError(w, http.StatusUnauthorized, errors.New("webhook secret not configured"))
		return
	}
	sig := r.Header.Get(github.SHA256SignatureHeader)
	if sig == "" {
		log.Warn("github webhook refused: no X-Hub-Signature-256", "delivery", delivery)
		writeError(w, http.StatusUnauthorized, errors.New("missing X-Hub-Signature-256"))
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	payload, err := github.ValidatePayloadFromBody(ct, http.MaxBytesReader(w, r.Body, MaxBody), sig, []byte(s.webhookSecret))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, errors.New("body too large"))
			return
		}
		log.Warn("github webhook refused: bad signature", "delivery", delivery, "reason", err.Error())
		writeError(w, http.StatusUnauthorized, errors.New("signature does not match"))
		return
	}
	kind := github.WebHookType(r)
	if kind == "ping" {
		log.Info("github webhook", "event", kind, "delivery", delivery, "outcome", "pong")
		writeJSON(w, http.StatusOK, map[string]string{"outcome": "pong"})
		return
	}
	if kind != "release" {
		res := engine.Result{Outcome: engine.Ignored, Reason: fmt.Sprintf("%q events are not used", kind)}
		engine.LogEvent(ctx, "github webhook", delivery, res, time.Since(start), nil)
		writeJSON(w, http.StatusOK, res)
		return
	}
	ev, err := github.ParseWebHook(kind, payload)
	rel, ok := ev.(*github.ReleaseEvent)
	if err != nil || !ok || rel.Release == nil || rel.Repo == nil {
		res := engine.Result{Outcome: engine.Rejected, Reason: "release payload unreadable"}
		if err != nil {
			res.Reason += ": " + err.Error()
		}
		engine.LogEvent(ctx, "github webhook", delivery, res, time.Since(start), nil)
		writeJSON(w, http.StatusBadRequest, res)
		return
	}
	in := engine.Release{
		Delivery:   delivery,
		Action:     rel.GetAction(),
		Repository: rel.Repo.GetFullName(),
		Tag:        strings.TrimSpace(rel.Release.GetTagName()),
		Draft:      rel.Release.GetDraft(),
		Prerelease: rel.Release.GetPrerelease(),
		URL:        rel.Release.GetHTMLURL(),
	}
	if t := rel.Release.PublishedAt; t != nil {
		in.PublishedAt = t.Time
	}
	res, err := s.eng.Release(ctx, in)
	engine.LogEvent(ctx, "github release", delivery, res, time.Since(start), err)
	switch {
	case err != nil:
		writeEngineError(w, err)
	case res.Outcome == engine.Pending:
		writeJSON(w, http.StatusAccepted, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
