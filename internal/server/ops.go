package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/logging"
	"github.com/pinroll/pinroll/internal/statuspage"
)

// PageHistory is how many history entries the status page shows.
const PageHistory = 25

// deployRequest is the body of POST /deploy (SPEC §4.3).
type deployRequest struct {
	Env      string `json:"env"`
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Tag      string `json:"tag"`
	Rollback int    `json:"rollback"`
	Hold     bool   `json:"hold"`
	Reason   string `json:"reason"`
}

// resumeRequest is the body of POST /resume.
type resumeRequest struct {
	Env   string `json:"env"`
	Image string `json:"image"`
}

// routeOps registers the ops routes behind the ops auth, on the server's mux
// and on the ops-only mux of [Server.HandleOps].
func (s *Server) routeOps() {
	s.ops = http.NewServeMux()
	for _, mux := range []*http.ServeMux{s.mux, s.ops} {
		mux.Handle("POST /deploy", s.auth.Require(http.HandlerFunc(s.handleDeploy)))
		mux.Handle("POST /resume", s.auth.Require(http.HandlerFunc(s.handleResume)))
		mux.Handle("GET /status", s.auth.Require(http.HandlerFunc(s.handleStatus)))
		mux.Handle("GET /history", s.auth.Require(http.HandlerFunc(s.handleHistory)))
		mux.Handle("GET /{$}", s.auth.Require(http.HandlerFunc(s.handlePage)))
	}
	s.ops.HandleFunc("GET /healthz", healthz)
}

// HandleOps serves the ops routes alone (deploy, resume, status, history,
// the page and /healthz), for the Ops function target (SPEC §4.5): the other
// routes are not found there.
func (s *Server) HandleOps(w http.ResponseWriter, r *http.Request) { s.serve(s.ops, w, r) }

func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req deployRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := s.eng.Deploy(r.Context(), engine.Deploy{Env: req.Env, Image: req.Image, Digest: req.Digest, Tag: req.Tag,
		Rollback: req.Rollback, Hold: req.Hold, Reason: req.Reason})
	s.answerOps(w, r, "manual deploy", start, res, err)
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req resumeRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := s.eng.Resume(r.Context(), req.Env, req.Image)
	s.answerOps(w, r, "resume", start, res, err)
}

// answerOps logs the one line of a deploy or resume and answers it.
func (s *Server) answerOps(w http.ResponseWriter, r *http.Request, what string, start time.Time, res engine.OpsResult, err error) {
	ev := logging.Event{What: what, Image: logging.Clip(res.Image), Digest: res.Digest, Tag: res.Tag,
		Envs: []string{logging.Clip(res.Env)}, Commit: res.Commit, Outcome: string(res.Outcome), Reason: res.Reason}
	logErr := err
	if refused(err) {
		// The caller's mistake, not the server's: INFO, with the reason.
		ev.Outcome, ev.Reason, logErr = "refused", err.Error(), nil
	}
	logging.LogEvent(r.Context(), ev, time.Since(start), logErr)
	if err != nil {
		writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.eng.Status(r.Context())
	if err != nil {
		writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hq := engine.HistoryQuery{Env: q.Get("env"), Image: q.Get("image"), Before: q.Get("before")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %s: want a number from 1 to %d", logging.Quote(l), engine.MaxHistoryLimit))
			return
		}
		hq.Limit = n
	}
	page, err := s.eng.History(r.Context(), hq)
	if err != nil {
		writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// handlePage serves the status page (GET /): read-only HTML.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.eng.Status(ctx)
	if err != nil {
		writeEngineError(w, err)
		return
	}
	h, err := s.eng.History(ctx, engine.HistoryQuery{Limit: PageHistory})
	if err != nil {
		writeEngineError(w, err)
		return
	}
	var b bytes.Buffer
	if err := statuspage.Render(&b, statuspage.Data{Status: st, History: h.Entries, Repo: s.eng.Config().Git.Repo}); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
	_, _ = b.WriteTo(w)
}

// decodeBody reads a JSON object of at most MaxBody bytes into v; unknown
// fields and trailing data are errors, so a typo is not silently ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON body: more than one JSON value")
	}
	return nil
}

// refused reports whether err is an operator's request the engine refused
// (4xx), rather than a failure.
func refused(err error) bool {
	for _, e := range []error{engine.ErrBadRequest, engine.ErrNotFound, engine.ErrConflict, engine.ErrUnprocessable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
