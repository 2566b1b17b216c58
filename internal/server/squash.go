package server

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gitops"
	"github.com/pinroll/pinroll/internal/logging"
)

// SquashTimeout bounds one POST /squash instead of [RequestTimeout]: on
// GitHub a squash replays each commit with two paced writes (80 a minute,
// SPEC §6.3), so a week of commits can take minutes. A squash whose writes
// would not fit reports aborted without moving anything. Cloud Run's request
// timeout of the Squash service must be at least this long.
const SquashTimeout = 10 * time.Minute

// squashRequest is the body of POST /squash (SPEC §4.3); an empty body
// squashes every branch.
type squashRequest struct {
	Env    string `json:"env"`
	DryRun bool   `json:"dry_run"`
}

// squashResponse is the answer of POST /squash.
type squashResponse struct {
	Reports []engine.SquashReport `json:"reports"`
}

// routeSquash registers POST /squash behind the ops auth on the server's mux,
// and on the mux of [Server.HandleSquash], where POST / squashes too.
func (s *Server) routeSquash() {
	h := s.auth.Require(http.HandlerFunc(s.handleSquash))
	s.mux.Handle("POST /squash", h)
	s.squash = http.NewServeMux()
	s.squash.Handle("POST /squash", h)
	s.squash.Handle("POST /{$}", h)
	s.squash.HandleFunc("GET /healthz", healthz)
}

// HandleSquash serves POST /squash alone, also at the path / (and
// /healthz), for the Squash function target (SPEC §4.5): Cloud Scheduler
// posts to the Squash service's /squash.
func (s *Server) HandleSquash(w http.ResponseWriter, r *http.Request) { s.serve(s.squash, w, r) }

// isSquash reports whether r asks for a squash, which has its own deadline.
func isSquash(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/squash"
}

func (s *Server) handleSquash(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req squashRequest
	if err := decodeBody(w, r, &req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx := r.Context()
	reps, err := s.eng.Squash(ctx, req.Env, req.DryRun)
	if err != nil {
		logging.LogEvent(ctx, logging.Event{What: "squash", Envs: envs(req.Env), Outcome: string(gitops.SquashAborted)}, time.Since(start), err)
		writeEngineError(w, err)
		return
	}
	for _, rep := range reps {
		l := logging.Logger(ctx).Info
		if rep.Outcome == gitops.SquashAborted || rep.Outcome == gitops.SquashSkipped {
			l = logging.Logger(ctx).Warn
		}
		l("squash "+rep.Branch, "branch", rep.Branch, "outcome", string(rep.Outcome), "dry_run", rep.DryRun,
			"old_tip", rep.OldTip, "commit", rep.NewTip, "backup_ref", rep.BackupRef, "folded", rep.Folded,
			"replayed", rep.Replayed, "reason", rep.Reason, "duration_ms", time.Since(start).Milliseconds())
	}
	writeJSON(w, http.StatusOK, squashResponse{Reports: reps})
}

func envs(env string) []string {
	if env == "" {
		return nil
	}
	return []string{env}
}
