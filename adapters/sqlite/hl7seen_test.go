package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/adtin/adtintest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestADTInbound runs the inbound ADT suite (processed-message record,
// events, duplicates, races, bed-following) on SQLite.
func TestADTInbound(t *testing.T) {
	adtintest.Run(t, func(t *testing.T) fhir.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}
