package postgres

import (
	"cmp"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/audit/chain on PostgreSQL (migrations 0040
// to 0043 and 0100, under the same row-level security as the resources).
// AppendAudit costs no round trip and takes no lock: it keeps the events as
// data. Their index rows travel with the transaction's next statement or
// its COMMIT (or a group commit), like a Put's writes; the events
// themselves go to pulsewire_audit_append (0100) as the last statement
// before COMMIT (queueSeal). It locks the head of a lane of the tenant's
// chain that no other commit holds, builds each body around its link,
// hashes it and inserts the rows. So a lane's head, which orders its
// appenders, is the last lock a transaction takes and is held only while
// it commits, and commits of one tenant at the same time take different
// lanes and flush their WAL together.

var (
	_ chain.Store    = (*Store)(nil)
	_ chain.Appender = (*txn)(nil)
)

// AppendAudit queues the append of events (see chain.Appender). They are
// kept as data until the transaction's next statement or COMMIT, so that
// the events of several transactions committed in one group go into one
// multi-row statement per table with the group's resources (queueWrites).
func (t *txn) AppendAudit(_ context.Context, events []*chain.Event) error {
	for _, e := range events {
		if !fhir.ValidID(e.ID) {
			return fhir.Errorf(fhir.KindInvalid, "invalid AuditEvent id")
		}
	}
	for _, e := range events {
		t.c.audits = append(t.c.audits, auditWrite{id: e.ID, lu: storesql.Micros(e.LastUpdated), prefix: e.Prefix, suffix: e.Suffix, index: e.Index})
	}
	return nil
}

// auditWrite is one event of AppendAudit, kept as data until sent.
type auditWrite struct {
	id             string
	lu             int64
	prefix, suffix []byte
	index          []fhir.IndexEntry
}

// queueSeal queues the chaining and storing of a tenant's events, in
// order. It must be the last statement before COMMIT (see above), and a
// transaction of several tenants must seal them in tenant order (0043).
func queueSeal(b *pgx.Batch, tenant string, events []auditWrite) {
	if len(events) == 0 {
		return
	}
	n := len(events)
	ids, lus := make([]string, n), make([]int64, n)
	prefixes, suffixes := make([][]byte, n), make([][]byte, n)
	for i, e := range events {
		ids[i], lus[i], prefixes[i], suffixes[i] = e.id, e.lu, e.prefix, e.suffix
	}
	b.Queue(`SELECT pulsewire_audit_append($1, $2::text[], $3::bigint[], $4::bytea[], $5::bytea[])`,
		tenant, ids, lus, prefixes, suffixes)
}

// auditHeadsSQL reads a tenant's lane heads, each with its last chain
// entry, and the counts of stored AuditEvents and chain entries; one row
// with a NULL lane for a tenant without heads.
const auditHeadsSQL = `SELECT h.lane, coalesce(h.seq, 0), h.hash,
		(SELECT coalesce(max(c.seq), 0) FROM audit_chain c WHERE c.tenant = $1 AND c.lane = h.lane),
		(SELECT count(*) FROM resources WHERE tenant = $1 AND type = 'AuditEvent'),
		(SELECT count(*) FROM audit_chain WHERE tenant = $1)
	FROM (VALUES (1)) AS one LEFT JOIN audit_heads h ON h.tenant = $1
	ORDER BY h.lane`

// AuditHeads returns the heads of the tenant's lanes (see chain.Store).
func (s *Store) AuditHeads(ctx context.Context, tenant string) (chain.Heads, error) {
	var hs chain.Heads
	if !fhir.ValidTenant(tenant) {
		return hs, tenantNotFound()
	}
	var scanErr error
	b := &pgx.Batch{}
	// One statement: one snapshot.
	b.Queue(auditHeadsSQL, tenant).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var lane *int16
			var hash []byte
			h := chain.Head{Hash: chain.Genesis}
			if err := rows.Scan(&lane, &h.Seq, &hash, &h.Last, &hs.Stored, &hs.Entries); err != nil {
				scanErr = cmp.Or(scanErr, err)
				continue
			}
			if lane == nil {
				continue
			}
			if len(hash) != len(h.Hash) {
				scanErr = cmp.Or(scanErr, errors.New("chain head hash is not 32 bytes"))
				continue
			}
			h.Lane = int(*lane)
			copy(h.Hash[:], hash)
			hs.Lanes = append(hs.Lanes, h)
		}
		scanErr = cmp.Or(scanErr, rows.Err())
		return nil
	})
	sc := &poolScope{s: s, tenant: tenant}
	if err := sc.send(ctx, b); err != nil {
		return hs, internal("reading the audit chain heads", err)
	}
	if scanErr != nil {
		return hs, internal("reading the audit chain heads", scanErr)
	}
	return hs, nil
}

// auditEntriesSQL reads a lane's chain entries with their events' current row and
// the number of versions stored: the current row and any superseded ones
// (an AuditEvent is only ever version 1, which lives in resources).
const auditEntriesSQL = `SELECT c.seq, c.id, r.version, r.deleted, r.body,
		CASE WHEN r.id IS NULL THEN 0 ELSE 1 END
		+ (SELECT count(*) FROM resource_versions x WHERE x.tenant = c.tenant AND x.type = 'AuditEvent' AND x.id = c.id)
	FROM audit_chain c
	LEFT JOIN resources r ON r.tenant = c.tenant AND r.type = 'AuditEvent' AND r.id = c.id
	WHERE c.tenant = $1 AND c.lane = $2 AND c.seq > $3
	ORDER BY c.seq
	LIMIT $4`

// AuditEntries returns a lane's chain entries after a sequence number (see
// chain.Store).
func (s *Store) AuditEntries(ctx context.Context, tenant string, lane int, after int64, limit int) ([]chain.Entry, error) {
	if !fhir.ValidTenant(tenant) {
		return nil, tenantNotFound()
	}
	var out []chain.Entry
	var scanErr error
	b := &pgx.Batch{}
	b.Queue(auditEntriesSQL, tenant, lane, after, limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			e := chain.Entry{Lane: lane}
			var version *int64
			var deleted *int16
			var versions int64
			if err := rows.Scan(&e.Seq, &e.ID, &version, &deleted, &e.Body, &versions); err != nil {
				scanErr = cmp.Or(scanErr, err)
				continue
			}
			if version != nil {
				e.Version = *version
			}
			e.Deleted = deleted != nil && *deleted != 0
			e.Versions = int(versions)
			out = append(out, e)
		}
		scanErr = cmp.Or(scanErr, rows.Err())
		return nil
	})
	sc := &poolScope{s: s, tenant: tenant}
	if err := sc.send(ctx, b); err != nil {
		return nil, internal("reading the audit chain", err)
	}
	if scanErr != nil {
		return nil, internal("reading the audit chain", scanErr)
	}
	return out, nil
}
