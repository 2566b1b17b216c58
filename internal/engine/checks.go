package engine

import (
	"maps"
	"sync"
	"time"
)

// OverlayCheck is the last check of an environment's overlay (`pinroll
// check`, SPEC §4.4, which serve and the function targets run at start-up):
// whether it renders each carried image at its pin, and the problems found,
// one line each with its fix.
type OverlayCheck struct {
	Time     time.Time `json:"time"`
	OK       bool      `json:"ok"`
	Problems []string  `json:"problems,omitempty"`
}

// overlayChecks holds the last check of each environment.
type overlayChecks struct {
	mu sync.Mutex
	m  map[string]OverlayCheck
}

// SetOverlayCheck records the last check of environment env.
func (e *Engine) SetOverlayCheck(env string, c OverlayCheck) {
	e.checks.mu.Lock()
	defer e.checks.mu.Unlock()
	if e.checks.m == nil {
		e.checks.m = map[string]OverlayCheck{}
	}
	e.checks.m[env] = c
}

// OverlayChecks returns the last check of each environment checked so far,
// by environment name, for the status.
func (e *Engine) OverlayChecks() map[string]OverlayCheck {
	e.checks.mu.Lock()
	defer e.checks.mu.Unlock()
	return maps.Clone(e.checks.m)
}
