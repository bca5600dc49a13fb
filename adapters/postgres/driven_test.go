package postgres

import (
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql/storesqltest"
)

// TestDrivenSearch runs searches compiled into storesql's driven shape (the
// page chosen on the index tables, then joined to resources) on PostgreSQL.
func TestDrivenSearch(t *testing.T) {
	storesqltest.RunDriven(t, func(t *testing.T) fhir.Store {
		s, _ := openTestStore(t)
		mustTenant(t, s, storesqltest.Tenant)
		return s
	})
}
