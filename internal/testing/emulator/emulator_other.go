//go:build !unix

package emulator

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// The emulators are started in their own process group, which this platform
// does not offer: their tests skip here (CI runs on Linux).

// Firestore skips the test: the emulators need a Unix machine.
func Firestore(t testing.TB) string {
	t.Skip("the Firestore emulator helper needs a Unix machine")
	return ""
}

// PubSub skips the test: the emulators need a Unix machine.
func PubSub(t testing.TB) string {
	t.Skip("the Pub/Sub emulator helper needs a Unix machine")
	return ""
}

// Main runs the tests.
func Main(m *testing.M) { os.Exit(m.Run()) }

var seq atomic.Int64

// ProjectID returns a project id no other call in this binary returns.
func ProjectID(t testing.TB) string { return fmt.Sprintf("t-%d-%d", os.Getpid(), seq.Add(1)) }
