package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/audit/chain on the write transaction
// (migrations 0040 and 0043): AppendAudit reads the head of the tenant's
// lane, builds each body around its link, and writes the rows on the
// writer connection, so they commit with the transaction. Transactions run
// one at a time, so no two appends see the same head.

// appendLane is the one lane appends use: a second lane would let commits
// flush together on PostgreSQL, but SQLite's single writer commits one
// transaction at a time anyway.
const appendLane = 0

var (
	_ chain.Store    = (*Store)(nil)
	_ chain.Appender = (*tx)(nil)
)

// AppendAudit appends events to the tenant's chain (see chain.Appender).
func (t *tx) AppendAudit(ctx context.Context, events []*chain.Event) error {
	if len(events) == 0 {
		return nil
	}
	seq, prev := int64(0), chain.Genesis
	var hash []byte
	err := t.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant = ? AND lane = ?`, t.tenant, appendLane).Scan(&seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return internal("reading the audit chain head", err)
	case len(hash) != len(prev):
		return internal("reading the audit chain head", errors.New("chain head hash is not 32 bytes"))
	default:
		copy(prev[:], hash)
	}
	for _, e := range events {
		if !fhir.ValidID(e.ID) {
			return fhir.Errorf(fhir.KindInvalid, "invalid AuditEvent id")
		}
		seq++
		link := chain.Link(seq, prev)
		body := make([]byte, 0, len(e.Prefix)+len(link)+len(e.Suffix))
		body = append(append(append(body, e.Prefix...), link...), e.Suffix...)
		lu := storesql.Micros(e.LastUpdated)
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
			VALUES (?, 'AuditEvent', ?, 1, ?, 0, ?)`, t.tenant, e.ID, lu, body); err != nil {
			return internal("writing audit event", err)
		}
		ins, err := storesql.InsertIndex(dialect, t.tenant, "AuditEvent", e.ID, e.Index)
		if err != nil {
			return err
		}
		if err := t.exec(ctx, ins); err != nil {
			return err
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO audit_chain (tenant, lane, seq, id) VALUES (?, ?, ?, ?)`, t.tenant, appendLane, seq, e.ID); err != nil {
			return internal("writing audit chain", err)
		}
		prev = chain.Sum(body)
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO audit_heads (tenant, lane, seq, hash) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, lane) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, t.tenant, appendLane, seq, prev[:]); err != nil {
		return internal("writing audit chain head", err)
	}
	return nil
}

// AuditHeads returns the heads of the tenant's lanes (see chain.Store).
func (s *Store) AuditHeads(ctx context.Context, tenant string) (chain.Heads, error) {
	var hs chain.Heads
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return hs, err
	}
	// One statement: one snapshot. One row with a NULL lane for a tenant
	// without heads.
	rows, err := s.r.QueryContext(ctx, `SELECT h.lane, coalesce(h.seq, 0), h.hash,
			(SELECT coalesce(max(c.seq), 0) FROM audit_chain c WHERE c.tenant = ?1 AND c.lane = h.lane),
			(SELECT COUNT(*) FROM resources WHERE tenant = ?1 AND type = 'AuditEvent'),
			(SELECT COUNT(*) FROM audit_chain WHERE tenant = ?1)
		FROM (SELECT 1) AS one LEFT JOIN audit_heads h ON h.tenant = ?1
		ORDER BY h.lane`, tenant)
	if err != nil {
		return hs, internal("reading the audit chain heads", err)
	}
	defer rows.Close()
	for rows.Next() {
		var lane sql.NullInt64
		var hash []byte
		h := chain.Head{Hash: chain.Genesis}
		if err := rows.Scan(&lane, &h.Seq, &hash, &h.Last, &hs.Stored, &hs.Entries); err != nil {
			return hs, internal("reading the audit chain heads", err)
		}
		if !lane.Valid {
			continue
		}
		if len(hash) != len(h.Hash) {
			return hs, internal("reading the audit chain heads", errors.New("chain head hash is not 32 bytes"))
		}
		h.Lane = int(lane.Int64)
		copy(h.Hash[:], hash)
		hs.Lanes = append(hs.Lanes, h)
	}
	if err := rows.Err(); err != nil {
		return hs, internal("reading the audit chain heads", err)
	}
	return hs, nil
}

// AuditEntries returns a lane's chain entries after a sequence number (see
// chain.Store).
func (s *Store) AuditEntries(ctx context.Context, tenant string, lane int, after int64, limit int) ([]chain.Entry, error) {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	// Versions: the current row and any superseded ones (an AuditEvent is
	// only ever version 1, which lives in resources).
	rows, err := s.r.QueryContext(ctx, `SELECT c.seq, c.id, r.version, r.deleted, r.body,
			(r.id IS NOT NULL) + (SELECT COUNT(*) FROM resource_versions x WHERE x.tenant = c.tenant AND x.type = 'AuditEvent' AND x.id = c.id)
		FROM audit_chain c
		LEFT JOIN resources r ON r.tenant = c.tenant AND r.type = 'AuditEvent' AND r.id = c.id
		WHERE c.tenant = ? AND c.lane = ? AND c.seq > ?
		ORDER BY c.seq
		LIMIT ?`, tenant, lane, after, limit)
	if err != nil {
		return nil, internal("reading the audit chain", err)
	}
	defer rows.Close()
	var out []chain.Entry
	for rows.Next() {
		e := chain.Entry{Lane: lane}
		var version, deleted sql.NullInt64
		if err := rows.Scan(&e.Seq, &e.ID, &version, &deleted, &e.Body, &e.Versions); err != nil {
			return nil, internal("reading the audit chain", err)
		}
		e.Version, e.Deleted = version.Int64, deleted.Int64 != 0
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("reading the audit chain", err)
	}
	return out, nil
}
