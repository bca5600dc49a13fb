package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/audit/audittest"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// TestAudit runs the audit suite on SQLite.
func TestAudit(t *testing.T) {
	audittest.Run(t, func(t *testing.T) (chain.Store, audittest.Tamperer) {
		s := openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
		return s, &sqliteTamperer{s: s}
	})
}

// sqliteTamperer writes on the store's writer connection directly, as
// someone with the database file could; it drops the chain's triggers
// first, as such a person would.
type sqliteTamperer struct{ s *Store }

func (p *sqliteTamperer) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	for _, trg := range []string{"audit_chain_no_update", "audit_chain_no_delete"} {
		if _, err := p.s.w.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+trg); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.s.w.ExecContext(ctx, query, args...)
	if err != nil {
		t.Fatalf("tampering (%s): %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("tampering (%s): no rows", query)
	}
}

func (p *sqliteTamperer) SetBody(t *testing.T, tenant, id string, body []byte) {
	p.exec(t, "UPDATE resources SET body = ? WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", body, tenant, id)
}

func (p *sqliteTamperer) DeleteEvent(t *testing.T, tenant, id string) {
	p.exec(t, "DELETE FROM resources WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", tenant, id)
}

func (p *sqliteTamperer) DeleteChainEntry(t *testing.T, tenant string, seq int64) {
	p.exec(t, "DELETE FROM audit_chain WHERE tenant = ? AND seq = ?", tenant, seq)
}

func (p *sqliteTamperer) SwapChainEntries(t *testing.T, tenant string, a, b int64) {
	var idA, idB string
	ctx := context.Background()
	if err := p.s.w.QueryRowContext(ctx, "SELECT id FROM audit_chain WHERE tenant = ? AND seq = ?", tenant, a).Scan(&idA); err != nil {
		t.Fatal(err)
	}
	if err := p.s.w.QueryRowContext(ctx, "SELECT id FROM audit_chain WHERE tenant = ? AND seq = ?", tenant, b).Scan(&idB); err != nil {
		t.Fatal(err)
	}
	p.exec(t, "UPDATE audit_chain SET id = ? WHERE tenant = ? AND seq = ?", idB, tenant, a)
	p.exec(t, "UPDATE audit_chain SET id = ? WHERE tenant = ? AND seq = ?", idA, tenant, b)
}

func (p *sqliteTamperer) SetHead(t *testing.T, tenant string, seq int64, hash chain.Hash) {
	p.exec(t, "UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant = ?", seq, hash[:], tenant)
}

// TestAuditChainAppendOnly: the chain table refuses updates and deletes.
func TestAuditChainAppendOnly(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	ctx := context.Background()
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	ev := &chain.Event{ID: "ae1", LastUpdated: storesql.Now(), Prefix: []byte(`{"resourceType":"AuditEvent","id":"ae1","extension":[{"url":"` + chain.ExtensionURL + `","extension":`), Suffix: []byte(`}]}`)}
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error { return tx.(chain.Appender).AppendAudit(ctx, []*chain.Event{ev}) }); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	for _, stmt := range []string{"DELETE FROM audit_chain", "UPDATE audit_chain SET seq = seq + 1"} {
		if _, err := s.w.ExecContext(ctx, stmt); err == nil {
			t.Errorf("%s succeeded, want the trigger to refuse it", stmt)
		}
	}
}

// BenchmarkAuditRecord: read events made durable per second on SQLite.
func BenchmarkAuditRecord(b *testing.B) {
	audittest.BenchRecord(b, func(b *testing.B) chain.Store {
		return openTemp(b, filepath.Join(b.TempDir(), "pulsewire.db"))
	})
}
