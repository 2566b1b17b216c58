package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/gar"
	"github.com/pinroll/pinroll/internal/logging"
)

// Pusher is the engine as the Artifact Registry edges use it.
type Pusher interface {
	Push(ctx context.Context, m engine.ImagePush) (engine.Result, error)
}

// PushGAR is the one way an Artifact Registry notification reaches the engine,
// whichever edge received it (POST /gar, the OnImagePushed function target,
// `pinroll watch`): msg is what the edge decoded and decodeErr the decoder's
// error. A message that could not be decoded is answered [engine.Rejected]
// with the error as its reason, and nothing else happens; any other message
// goes to eng.Push. Either way PushGAR writes the one log line of the event
// (SPEC §9). It returns an error only when the engine failed: the message
// is then not acknowledged.
func PushGAR(ctx context.Context, eng Pusher, msg gar.Message, decodeErr error) (engine.Result, error) {
	start := time.Now()
	var res engine.Result
	var err error
	if decodeErr != nil {
		res = engine.Result{Outcome: engine.Rejected, Reason: decodeErr.Error()}
	} else {
		res, err = eng.Push(ctx, engine.ImagePush{
			ID: msg.ID, PublishTime: msg.PublishTime, Action: msg.Action,
			Repository: msg.Repository, Digest: msg.Digest, Tag: msg.Tag,
		})
	}
	logging.LogEvent(ctx, res.Summary("gar message", msg.ID), time.Since(start), err)
	return res, err
}

// handleGAR is the POST /gar handler (SPEC §4.1).
func (s *Server) handleGAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	msg, err := gar.Decode(r, MaxBody)
	if errors.Is(err, gar.ErrUnreadable) {
		logging.Logger(ctx).Warn("gar message refused", "outcome", "unreadable", "reason", logging.ClipN(err.Error(), logging.MaxReasonBytes))
		code := http.StatusBadRequest
		if errors.Is(err, gar.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err)
		return
	}
	res, err := PushGAR(ctx, s.eng, msg, err)
	if err != nil {
		writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
