package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/pinroll/pinroll/internal/engine"
	"github.com/pinroll/pinroll/internal/kustomize"
)

// checkTimeout bounds the overlay check at start-up: a slow repository delays
// the start by at most this much.
const checkTimeout = 20 * time.Second

// checkOverlays runs `pinroll check` on every environment (SPEC §4.4) and
// logs each problem as a WARNING; it never stops pinroll from starting. The
// engine keeps each environment's result for the status.
func (a *App) checkOverlays(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	rep, err := kustomize.Check(ctx, a.Repo, a.Config)
	if err != nil {
		log.Warn("overlay check could not run: run pinroll check", "error", err.Error())
		return
	}
	now := time.Now().UTC()
	for _, e := range rep.Envs {
		c := engine.OverlayCheck{Time: now, OK: e.OK}
		for _, p := range e.Problems {
			c.Problems = append(c.Problems, p.Message)
			log.Warn("overlay check: "+e.Env+": "+p.Message, "env", e.Env, "kind", p.Kind, "finding", string(p.Severity))
		}
		a.Engine.SetOverlayCheck(e.Env, c)
	}
	if rep.OK() {
		log.Info("overlay check passed", "environments", len(rep.Envs), "reads", rep.Reads)
	}
}
