package engine

import "errors"

// The errors of an operator's request (SPEC §4.3). Each maps to one HTTP
// status in the server; ErrTransient (503) is declared with the engine.
var (
	// ErrBadRequest marks a malformed request (400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound marks an unknown environment or image (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request at odds with the ledger's state, such as
	// a rollback deeper than history (409).
	ErrConflict = errors.New("conflict")
	// ErrUnprocessable marks a well-formed request that cannot apply, such
	// as a digest nobody knows (422).
	ErrUnprocessable = errors.New("cannot apply")
)
