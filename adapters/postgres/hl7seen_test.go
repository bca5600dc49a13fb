package postgres

import (
	"testing"

	"github.com/pulsewire/pulsewire/server/adtin/adtintest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestADTInbound runs the inbound ADT suite on PostgreSQL, each subtest in
// a fresh schema: the racing subtests run on several pooled connections, so
// they exercise the advisory locks and the record's row-level security.
func TestADTInbound(t *testing.T) {
	adtintest.Run(t, func(t *testing.T) fhir.Store {
		s, _ := openTestStore(t)
		return s
	})
}
