package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/search"
)

// AuditConfig configures the audit trail (server/audit). Writes are
// always audited, each in its own transaction, whichever door they came
// through; so is every denial and every missing or invalid token.
type AuditConfig struct {
	// Reads audits every read, vread, search, history and $lastn of the
	// FHIR API too (pulsewire serve's default): each is one AuditEvent,
	// committed in batches shortly after the response.
	Reads bool
}

// The auditor fits what the FHIR API consumes.
var _ rest.Auditor = (*audit.Auditor)(nil)

// auditCloseTimeout bounds how long shutting down waits for queued audit
// records to commit.
const auditCloseTimeout = 10 * time.Second

// setupAudit starts the auditor over store and adds its write hook, so
// every write from then on commits with its AuditEvent. Called before the
// store serves any write.
func setupAudit(cfg Config, store fhir.Store, reg *search.Registry) (*audit.Auditor, error) {
	hooked, ok := store.(fhir.Hooked)
	if !ok {
		return nil, errors.New("the store runs no write hooks: writes could not be audited")
	}
	aud, err := audit.New(audit.Config{Store: store, Registry: reg, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("setting up the audit trail: %w", err)
	}
	hooked.AddWriteHook(aud.Hook())
	return aud, nil
}

// restAudit makes the FHIR API record through aud.
func restAudit(c *rest.Config, aud *audit.Auditor, ac AuditConfig) {
	c.Auditor, c.AuditReads = aud, ac.Reads
}

// closeAudit stops the auditor once nothing records any more (the HTTP
// server and the runners have stopped): it commits what is queued, giving
// up after auditCloseTimeout.
func closeAudit(aud *audit.Auditor) error {
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	if err := aud.Close(ctx); err != nil {
		return fmt.Errorf("closing the audit trail (queued records were dropped): %w", err)
	}
	return nil
}

// Auditor is the audit trail (tests flush it before they look for the
// records of reads).
func (a *App) Auditor() *audit.Auditor { return a.audit }

// newAuditCollector exports audit.Stats on /metrics as
// pulsewire_audit_<field> (counters end in _total; Queued is a gauge).
func newAuditCollector(aud *audit.Auditor) prometheus.Collector {
	return newStatsCollectorAs(statSource{"audit", func() any { return aud.Stats() }},
		"pulsewire_audit_", "audit trail", func(f reflect.StructField) bool { return f.Name == "Queued" })
}
