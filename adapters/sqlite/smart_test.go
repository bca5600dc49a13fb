package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/smart/smarttest"
)

// TestSmartRegistry runs the SMART registry suite (clients, users, signing
// keys, tenant isolation) on SQLite.
func TestSmartRegistry(t *testing.T) {
	smarttest.Run(t, func(t *testing.T) smarttest.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}

// TestSmartState runs the registry.State suite (entries, revocations and
// their feed, expiry, purge, races, tenant isolation) on SQLite.
func TestSmartState(t *testing.T) {
	smarttest.RunState(t, func(t *testing.T) smarttest.StateStore {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}
