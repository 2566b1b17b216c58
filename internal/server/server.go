// Package server exposes the engine over HTTP (SPEC §4): POST /gar for
// Artifact Registry notifications, POST /github for release webhooks, the ops
// routes (POST /squash, POST /deploy, POST /resume, GET /status, GET /history and the status
// page GET /) and GET /healthz. It owns authentication, body limits, the mapping from outcomes and
// errors to status codes, and the one log line per handled event (SPEC §9).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/logging"
)

// RequestTimeout bounds the handling of one event: a wait GitHub asks for that
// does not fit becomes a 503, and Pub/Sub redelivers later (the Cloud Run
// functions default timeout is the same 60 s).
const RequestTimeout = 60 * time.Second

// MaxBody is the largest request body accepted, in bytes. GAR notifications
// are well under 1 KiB and GitHub caps webhook payloads at 25 MiB, of which a
// release event uses a few KiB.
const MaxBody = 1 << 20

// Options configures a [Server].
type Options struct {
	Engine *engine.Engine
	Logger *slog.Logger
	Auth   *Auth
	// WebhookSecret verifies GitHub webhooks; empty refuses them all.
	WebhookSecret string
	// Project is the Google Cloud project, used to link log lines to traces.
	Project string
}

// Server is pinroll's HTTP front.
type Server struct {
	eng           *engine.Engine
	log           *slog.Logger
	auth          *Auth
	webhookSecret string
	project       string
	mux           *http.ServeMux
	ops           *http.ServeMux // the ops routes alone (HandleOps)
	squash        *http.ServeMux // POST /squash alone (HandleSquash)
}

// New returns a server routing to the engine.
func New(o Options) *Server {
	s := &Server{eng: o.Engine, log: o.Logger, auth: o.Auth, webhookSecret: o.WebhookSecret, project: o.Project, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.auth == nil {
		s.auth = &Auth{}
	}
	s.mux.HandleFunc("GET /healthz", healthz)
	s.mux.Handle("POST /gar", s.auth.Require(http.HandlerFunc(s.handleGAR)))
	// The public webhook is authenticated by its HMAC signature, not IAM.
	s.mux.HandleFunc("POST /github", s.HandleGitHub)
	s.routeOps()
	s.routeSquash()
	return s
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(s.mux, w, r) }

// serve routes r with mux, with the request's logger and deadline.
func (s *Server) serve(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	l := s.log
	if tr := logging.Trace(r, s.project); tr != "" {
		l = l.With(logging.TraceKey, tr)
	}
	timeout := RequestTimeout
	if isSquash(r) || mux == s.squash {
		timeout = SquashTimeout
	}
	ctx, cancel := context.WithTimeout(logging.WithLogger(r.Context(), l), timeout)
	defer cancel()
	mux.ServeHTTP(w, r.WithContext(ctx))
}

// writeEngineError answers an engine error with its status. This is the one
// place errors map to statuses (SPEC §4.3): a malformed request 400, an
// unknown environment or image 404, a conflict with the ledger's state 409, a
// request that cannot apply 422, a transient failure 503 (Pub/Sub and people
// retry); anything else 500 (still not acknowledged: it needs a human, e.g. a
// broken overlay, and must not be lost meanwhile).
func writeEngineError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, engine.ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, engine.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, engine.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, engine.ErrUnprocessable):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, engine.ErrTransient):
		w.Header().Set("Retry-After", "1")
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
