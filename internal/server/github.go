package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/logging"
)

// HandleGitHub is the POST /github handler (SPEC §4.2), exported for the
// OnGitHubWebhook function target. The signature is verified before anything
// else is looked at; an unset secret refuses every delivery.
func (s *Server) HandleGitHub(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	log := logging.Logger(ctx)
	delivery := github.DeliveryID(r)
	if s.webhookSecret == "" {
		log.Error("github webhook refused: PINROLL_WEBHOOK_SECRET is not set", "delivery", logging.Clip(delivery))
		writeError(w, http.StatusUnauthorized, errors.New("webhook secret not configured"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, errors.New("body too large"))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	if err := checkSignature(r.Header.Get(github.SHA256SignatureHeader), body, s.webhookSecret); err != nil {
		log.Warn("github webhook refused", "delivery", logging.Clip(delivery), "reason", err.Error())
		writeError(w, http.StatusUnauthorized, err)
		return
	}
	payload, err := webhookPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
		log.Warn("github webhook refused", "delivery", logging.Clip(delivery), "reason", err.Error())
		writeError(w, http.StatusUnsupportedMediaType, err)
		return
	}
	kind := github.WebHookType(r)
	if kind == "ping" {
		log.Info("github webhook", "event", kind, "delivery", logging.Clip(delivery), "outcome", "pong")
		writeJSON(w, http.StatusOK, map[string]string{"outcome": "pong"})
		return
	}
	if kind != "release" {
		res := engine.Result{Outcome: engine.Ignored, Reason: logging.Quote(kind) + " events are not used"}
		logging.LogEvent(ctx, res.Summary("github webhook", delivery), time.Since(start), nil)
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
		logging.LogEvent(ctx, res.Summary("github webhook", delivery), time.Since(start), nil)
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
	logging.LogEvent(ctx, res.Summary("github release", delivery), time.Since(start), err)
	switch {
	case err != nil:
		writeEngineError(w, err)
	case res.Outcome == engine.Pending:
		writeJSON(w, http.StatusAccepted, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// signaturePrefix starts every X-Hub-Signature-256 value.
const signaturePrefix = "sha256="

// checkSignature verifies X-Hub-Signature-256 (sig) over body with secret
// (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):
// exactly "sha256=" and 64 hex digits, compared in constant time. Nothing
// else is accepted: a value naming another hash (sha1=, sha512=) must not
// let a weaker or different MAC through, as go-github's
// ValidatePayloadFromBody, which picks the hash from the prefix, would.
func checkSignature(sig string, body []byte, secret string) error {
	if sig == "" {
		return errors.New("missing " + github.SHA256SignatureHeader)
	}
	hexSum, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok || len(hexSum) != 2*sha256.Size {
		return errors.New(github.SHA256SignatureHeader + " is not sha256= and 64 hex digits")
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return errors.New(github.SHA256SignatureHeader + " is not sha256= and 64 hex digits")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature does not match")
	}
	return nil
}

// webhookPayload returns the event JSON of a verified body: the body itself
// for application/json, the payload field for
// application/x-www-form-urlencoded (GitHub's two content types).
func webhookPayload(contentType string, body []byte) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(contentType)
	switch ct {
	case "application/json":
		return body, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("form body: %w", err)
		}
		return []byte(form.Get("payload")), nil
	default:
		return nil, fmt.Errorf("content type %s: want application/json or application/x-www-form-urlencoded", logging.Quote(ct))
	}
}
