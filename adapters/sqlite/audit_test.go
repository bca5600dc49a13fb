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
	if n := p.execAny(t, query, args...); n == 0 {
		t.Fatalf("tampering (%s): no rows", query)
	}
}

// execAny runs a statement that may change no row and returns how many
// it changed.
func (p *sqliteTamperer) execAny(t *testing.T, query string, args ...any) int64 {
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
	n, _ := res.RowsAffected()
	return n
}

func (p *sqliteTamperer) SetBody(t *testing.T, tenant, id string, body []byte, history bool) {
	p.exec(t, "UPDATE resources SET body = ? WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", body, tenant, id)
	if history {
		p.exec(t, "UPDATE resource_versions SET body = ? WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", body, tenant, id)
	}
}

func (p *sqliteTamperer) DeleteEvent(t *testing.T, tenant, id string) {
	p.exec(t, "DELETE FROM resources WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", tenant, id)
	p.exec(t, "DELETE FROM resource_versions WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", tenant, id)
}

func (p *sqliteTamperer) InsertEvent(t *testing.T, tenant, id string, body []byte) {
	for _, table := range []string{"resources", "resource_versions"} {
		p.exec(t, "INSERT INTO "+table+" (tenant, type, id, version, last_updated, deleted, body) VALUES (?, 'AuditEvent', ?, 1, 0, 0, ?)", tenant, id, body)
	}
}

func (p *sqliteTamperer) DeleteChainEntry(t *testing.T, tenant string, at audittest.At) {
	p.exec(t, "DELETE FROM audit_chain WHERE tenant = ? AND lane = ? AND seq = ?", tenant, at.Lane, at.Seq)
}

func (p *sqliteTamperer) InsertChainEntry(t *testing.T, tenant string, at audittest.At, id string) {
	// Through negative numbers: moving the entries up in place would
	// collide with the next one's key. There may be none to move.
	p.execAny(t, "UPDATE audit_chain SET seq = -seq - 1 WHERE tenant = ? AND lane = ? AND seq >= ?", tenant, at.Lane, at.Seq)
	p.execAny(t, "UPDATE audit_chain SET seq = -seq WHERE tenant = ? AND lane = ? AND seq < 0", tenant, at.Lane)
	p.exec(t, "INSERT INTO audit_chain (tenant, lane, seq, id) VALUES (?, ?, ?, ?)", tenant, at.Lane, at.Seq, id)
}

func (p *sqliteTamperer) SwapChainEntries(t *testing.T, tenant string, a, b audittest.At) {
	var idA, idB string
	ctx := context.Background()
	const q = "SELECT id FROM audit_chain WHERE tenant = ? AND lane = ? AND seq = ?"
	if err := p.s.w.QueryRowContext(ctx, q, tenant, a.Lane, a.Seq).Scan(&idA); err != nil {
		t.Fatal(err)
	}
	if err := p.s.w.QueryRowContext(ctx, q, tenant, b.Lane, b.Seq).Scan(&idB); err != nil {
		t.Fatal(err)
	}
	p.exec(t, "UPDATE audit_chain SET id = ? WHERE tenant = ? AND lane = ? AND seq = ?", idB, tenant, a.Lane, a.Seq)
	p.exec(t, "UPDATE audit_chain SET id = ? WHERE tenant = ? AND lane = ? AND seq = ?", idA, tenant, b.Lane, b.Seq)
}

func (p *sqliteTamperer) SetHead(t *testing.T, tenant string, lane int, seq int64, hash chain.Hash) {
	p.exec(t, "UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant = ? AND lane = ?", seq, hash[:], tenant, lane)
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
