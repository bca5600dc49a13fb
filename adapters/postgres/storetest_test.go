package postgres

import (
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir/storetest"
)

// TestStore runs the suite both stores pass, each subtest on a store in a
// fresh schema.
func TestStore(t *testing.T) {
	storetest.Run(t, newStore)
}
