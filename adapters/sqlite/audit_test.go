package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/audit"
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

func (p *sqliteTamperer) SetBody(t *testing.T, tenant, id string, body []byte) {
	p.exec(t, "UPDATE resources SET body = ? WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", body, tenant, id)
}

func (p *sqliteTamperer) DeleteEvent(t *testing.T, tenant, id string) {
	p.exec(t, "DELETE FROM resources WHERE tenant = ? AND type = 'AuditEvent' AND id = ?", tenant, id)
}

func (p *sqliteTamperer) InsertEvent(t *testing.T, tenant, id string, body []byte) {
	p.exec(t, "INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body) VALUES (?, 'AuditEvent', ?, 1, 0, 0, ?)", tenant, id, body)
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

// TestAuditMigrationToLanes: a chain written before migration 0043 (one
// head per tenant, as the store wrote it then) verifies after it as lane
// 0, its bodies unchanged, and appends go on in lane 0.
func TestAuditMigrationToLanes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pulsewire.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The migrations before 0043, recorded as Open records them.
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, name := range names {
		if name >= "migrations/0043" {
			break
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, 0)`, name); err != nil {
			t.Fatal(err)
		}
	}
	// Three events chained in the 0040 layout.
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	exec(`INSERT INTO tenants (id, created_at) VALUES ('acme', 0)`)
	prev := chain.Genesis
	var bodies [][]byte
	for seq := int64(1); seq <= 3; seq++ {
		id := fmt.Sprintf("old-%d", seq)
		body := []byte(`{"resourceType":"AuditEvent","id":"` + id + `","extension":[{"url":"` + chain.ExtensionURL + `","extension":` +
			string(chain.Link(seq, prev)) + `}]}`)
		for _, table := range []string{"resources", "resource_versions"} {
			exec(`INSERT INTO `+table+` (tenant, type, id, version, last_updated, deleted, body) VALUES ('acme', 'AuditEvent', ?, 1, 0, 0, ?)`, id, body)
		}
		exec(`INSERT INTO audit_chain (tenant, seq, id) VALUES ('acme', ?, ?)`, seq, id)
		bodies, prev = append(bodies, body), chain.Sum(body)
	}
	exec(`INSERT INTO audit_heads (tenant, seq, hash) VALUES ('acme', 3, ?)`, prev[:])
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTemp(t, path)
	r, err := audit.Verify(ctx, s, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := chain.Heads{Lanes: []chain.Head{{Lane: 0, Seq: 3, Hash: prev, Last: 3}}, Stored: 3, Entries: 3}
	if r.Break != nil || r.Verified != 3 {
		t.Fatalf("Verify after 0043: %d verified, broken at %v; want 3, intact", r.Verified, r.Break)
	}
	if d := cmp.Diff(want, r.Heads); d != "" {
		t.Errorf("heads after 0043 (-want +got):\n%s", d)
	}
	es, err := s.AuditEntries(ctx, "acme", 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, e := range es {
		got = append(got, e.Body)
	}
	if d := cmp.Diff(bodies, got); d != "" {
		t.Errorf("lane 0's bodies after 0043 (-before +after):\n%s", d)
	}

	ev := &chain.Event{ID: "new-4", LastUpdated: storesql.Now(), Prefix: []byte(`{"resourceType":"AuditEvent","id":"new-4","extension":[{"url":"` + chain.ExtensionURL + `","extension":`), Suffix: []byte(`}]}`)}
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error { return tx.(chain.Appender).AppendAudit(ctx, []*chain.Event{ev}) }); err != nil {
		t.Fatalf("AppendAudit after 0043: %v", err)
	}
	r, err = audit.Verify(ctx, s, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if r.Break != nil || r.Verified != 4 || len(r.Heads.Lanes) != 1 || r.Heads.Lanes[0].Seq != 4 {
		t.Errorf("after one more append: %d verified, heads %+v, broken at %v; want lane 0 at 4, intact", r.Verified, r.Heads.Lanes, r.Break)
	}
}
