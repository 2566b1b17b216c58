package server_test

import (
	"testing"

	"github.com/pinroll/pinroll/internal/testing/emulator"
)

// TestMain stops the Firestore emulator the ops route tests may start.
func TestMain(m *testing.M) { emulator.Main(m) }
