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
