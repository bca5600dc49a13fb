package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql/storesqltest"
)

// TestDrivenSearch runs searches compiled into storesql's driven shape (the
// page chosen on the index tables, then joined to resources) on SQLite.
func TestDrivenSearch(t *testing.T) {
	storesqltest.RunDriven(t, func(t *testing.T) fhir.Store {
		s := openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
		if err := s.EnsureTenant(context.Background(), storesqltest.Tenant); err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
		return s
	})
}
