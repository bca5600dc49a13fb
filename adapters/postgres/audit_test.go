package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/audit/audittest"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// TestAudit runs the audit suite on PostgreSQL, each store in a fresh
// schema.
func TestAudit(t *testing.T) {
	audittest.Run(t, func(t *testing.T) (chain.Store, audittest.Tamperer) {
		s, schema := openTestStore(t)
		return s, &pgTamperer{conn: adminIn(t, schema), schema: schema}
	})
}

// adminIn connects as the test server's login role (a superuser, which
// bypasses row-level security) with schema as the search path and
// triggers switched off: an insider with the database's keys.
func adminIn(t *testing.T, schema string) *pgx.Conn {
	t.Helper()
	conn := pgtest.AdminConn(t)
	ctx := context.Background()
	for _, stmt := range []string{"SET search_path TO " + pgx.Identifier{schema}.Sanitize(), "SET session_replication_role = replica"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return conn
}

type pgTamperer struct {
	conn   *pgx.Conn
	schema string
}

var _ audittest.LaneHolder = (*pgTamperer)(nil)

func (p *pgTamperer) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if n := p.execAny(t, sql, args...); n == 0 {
		t.Fatalf("tampering (%s): no rows", sql)
	}
}

// execAny runs a statement that may change no row and returns how many
// it changed.
func (p *pgTamperer) execAny(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	ct, err := p.conn.Exec(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("tampering (%s): %v", sql, err)
	}
	return ct.RowsAffected()
}

func (p *pgTamperer) SetBody(t *testing.T, tenant, id string, body []byte) {
	p.exec(t, "UPDATE resources SET body = $3 WHERE tenant = $1 AND type = 'AuditEvent' AND id = $2", tenant, id, body)
}

func (p *pgTamperer) DeleteEvent(t *testing.T, tenant, id string) {
	p.exec(t, "DELETE FROM resources WHERE tenant = $1 AND type = 'AuditEvent' AND id = $2", tenant, id)
}

func (p *pgTamperer) InsertEvent(t *testing.T, tenant, id string, body []byte) {
	p.exec(t, "INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body) VALUES ($1, 'AuditEvent', $2, 1, 0, 0, $3)", tenant, id, body)
}

func (p *pgTamperer) DeleteChainEntry(t *testing.T, tenant string, at audittest.At) {
	p.exec(t, "DELETE FROM audit_chain WHERE tenant = $1 AND lane = $2 AND seq = $3", tenant, at.Lane, at.Seq)
}

func (p *pgTamperer) InsertChainEntry(t *testing.T, tenant string, at audittest.At, id string) {
	// Through negative numbers: moving the entries up in place would
	// collide with the next one's key. There may be none to move.
	p.execAny(t, "UPDATE audit_chain SET seq = -seq - 1 WHERE tenant = $1 AND lane = $2 AND seq >= $3", tenant, at.Lane, at.Seq)
	p.execAny(t, "UPDATE audit_chain SET seq = -seq WHERE tenant = $1 AND lane = $2 AND seq < 0", tenant, at.Lane)
	p.exec(t, "INSERT INTO audit_chain (tenant, lane, seq, id) VALUES ($1, $2, $3, $4)", tenant, at.Lane, at.Seq, id)
}

func (p *pgTamperer) SwapChainEntries(t *testing.T, tenant string, a, b audittest.At) {
	p.exec(t, `UPDATE audit_chain c SET id = o.id FROM audit_chain o
		WHERE c.tenant = $1 AND o.tenant = $1 AND (c.lane, c.seq, o.lane, o.seq) IN (($2, $3, $4, $5), ($4, $5, $2, $3))`,
		tenant, a.Lane, a.Seq, b.Lane, b.Seq)
}

func (p *pgTamperer) SetHead(t *testing.T, tenant string, lane int, seq int64, hash chain.Hash) {
	p.exec(t, "UPDATE audit_heads SET seq = $3, hash = $4 WHERE tenant = $1 AND lane = $2", tenant, lane, seq, hash[:])
}

// HoldLanes locks the lanes' heads in a transaction of its own, as a
// committing transaction does, until release.
func (p *pgTamperer) HoldLanes(t *testing.T, tenant string, lanes ...int) (release func()) {
	t.Helper()
	release, _ = holdLanes(t, p.schema, tenant, lanes...)
	return release
}

// holdLanes locks lanes of the tenant's chain (which must exist) from a
// connection of its own until release is called, and returns that
// connection's backend pid.
func holdLanes(t *testing.T, schema, tenant string, lanes ...int) (release func(), pid uint32) {
	t.Helper()
	ctx := context.Background()
	conn := adminIn(t, schema)
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM audit_heads
		WHERE tenant = $1 AND lane = ANY($2) FOR UPDATE) AS h`, tenant, lanes).Scan(&held); err != nil || held != len(lanes) {
		t.Fatalf("holding lanes %v of %s: %d held, %v", lanes, tenant, held, err)
	}
	return func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Errorf("releasing lanes %v: %v", lanes, err)
		}
	}, pid
}

// TestAuditAppendOnlyInDatabase: running as the application role, the
// database itself refuses to update or delete AuditEvent rows (trigger)
// and chain entries (no privilege), to delete lane heads or move them to
// another tenant or lane (no privilege: only seq and hash move forward),
// whatever code tries it.
func TestAuditAppendOnlyInDatabase(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	ev := &chain.Event{ID: "ae1", LastUpdated: storesql.Now(), Prefix: []byte(`{"resourceType":"AuditEvent","id":"ae1","extension":[{"url":"` + chain.ExtensionURL + `","extension":`), Suffix: []byte(`}]}`)}
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error { return tx.(chain.Appender).AppendAudit(ctx, []*chain.Event{ev}) }); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, tc := range []struct{ stmt, code string }{
		{"UPDATE resources SET body = NULL WHERE type = 'AuditEvent'", "42501"},
		{"DELETE FROM resources WHERE type = 'AuditEvent'", "42501"},
		// An AuditEvent is never superseded: no row of one belongs in
		// resource_versions.
		{`INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
			SELECT tenant, type, id, version, last_updated, deleted, body FROM resources WHERE type = 'AuditEvent'`, "42501"},
		{"DELETE FROM audit_chain", "42501"},
		{"UPDATE audit_chain SET seq = seq + 1", "42501"},
		{"UPDATE audit_chain SET lane = lane + 1", "42501"},
		{"DELETE FROM audit_heads", "42501"},
		{"UPDATE audit_heads SET lane = lane + 1", "42501"},
		{"UPDATE audit_heads SET tenant = 'globex'", "42501"},
	} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, setTenantSQL, "acme"); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, tc.stmt)
		if code := pgCode(err); code != tc.code {
			t.Errorf("%s as the application role: %v (SQLSTATE %q), want SQLSTATE %s", tc.stmt, err, code, tc.code)
		}
		_ = tx.Rollback(ctx)
	}
}

// BenchmarkAuditRecord: read events made durable per second on PostgreSQL.
func BenchmarkAuditRecord(b *testing.B) {
	audittest.BenchRecord(b, func(b *testing.B) chain.Store {
		s, _ := openTestStoreConns(b, 32)
		return s
	})
}

// TestAuditSealReadsOnlyItsOwnQueue: the seal's reads of audit_pending
// cost the same however many events were queued before. Without a vacuum
// (autovacuum may be off, or behind) every event ever queued leaves a dead
// index entry; a seal that scanned the queue from a tenant's first entry
// read a page per few hundred of them at every commit (0041; 0042 starts
// at the transaction's own first row). Index pages read by one small
// append after 30,000 dead entries are counted from pg_statio.
func TestAuditSealReadsOnlyItsOwnQueue(t *testing.T) {
	s, schema := openTestStore(t)
	ctx := context.Background()
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.AdminConn(t)
	if _, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	// inTx runs statements (without arguments, or one with) in one
	// transaction of tenant acme.
	inTx := func(stmts []string, args ...any) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, setTenantSQL, "acme"); err != nil {
			t.Fatal(err)
		}
		for _, sql := range stmts {
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	// indexPages flushes this session's statistics and returns the index
	// pages of audit_pending read so far.
	indexPages := func() int64 {
		t.Helper()
		for _, q := range []string{"SELECT pg_stat_force_next_flush()", "SELECT 1"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var n int64
		if err := pgtest.AdminConn(t).QueryRow(ctx, `SELECT coalesce(sum(idx_blks_hit + idx_blks_read), 0)::bigint
			FROM pg_statio_user_indexes WHERE schemaname = $1 AND relname = 'audit_pending'`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// 30,000 rows queued and removed in one committed transaction (its
	// seal finds them gone): dead entries to the left of everything queued
	// later.
	inTx([]string{`INSERT INTO audit_pending (tenant, id, lu, prefix, suffix)
			SELECT 'acme', 'dead-' || g, g, '\x7b'::bytea, '\x7d'::bytea FROM generate_series(1, 30000) g`,
		`DELETE FROM audit_pending WHERE id LIKE 'dead-%'`})
	// The first append after them marks the dead entries it meets.
	append := func(id string) {
		t.Helper()
		inTx([]string{`INSERT INTO audit_pending (tenant, id, lu, prefix, suffix) VALUES ('acme', $1, 1, $2, $3)`}, id,
			[]byte(`{"resourceType":"AuditEvent","id":"`+id+`","extension":[{"url":"`+chain.ExtensionURL+`","extension":`), []byte(`}]}`))
	}
	append("ae-warm")
	before := indexPages()
	append("ae-1")
	read := indexPages() - before
	t.Logf("one append after 30,000 dead queue entries read %d index pages", read)
	if read > 20 {
		t.Errorf("one append read %d index pages of audit_pending: the seal scans dead entries", read)
	}
	var chained int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_chain WHERE tenant = 'acme'").Scan(&chained); err != nil || chained != 2 {
		t.Fatalf("chain entries: %d (%v), want 2", chained, err)
	}
}
