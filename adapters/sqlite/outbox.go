package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"time"

	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/delivery/outbox on SQLite (migration 0020):
// Enqueue on the write transaction, and the worker's calls each in one
// write transaction on the writer connection (reads on the read pool). One
// writer serializes claims, so no lock is needed to keep them apart.

var (
	_ outbox.Store    = (*Store)(nil)
	_ outbox.Enqueuer = (*tx)(nil)
)

// Enqueue inserts the entries in the write transaction (see
// outbox.Enqueuer). seq is MAX(seq) + 1: the store has one writer.
func (t *tx) Enqueue(ctx context.Context, at time.Time, items ...outbox.Item) error {
	us := storesql.Micros(at)
	for _, it := range items {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO outbox (tenant, seq, destination, patient, res_type, res_id, version, event, next_attempt, created, updated)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox), ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.tenant, it.Destination, it.Patient, it.Type, it.ResourceID, it.Version, string(it.Event), us, us, us); err != nil {
			return internal("enqueuing outbox entry", err)
		}
	}
	return nil
}

const outboxColumns = `id, seq, tenant, destination, patient, res_type, res_id, version, event, state,
	attempts, next_attempt, lease_until, last_error, replays, created, updated`

// outboxStates maps the state column (0, 1, 2) to outbox.State.
var outboxStates = [...]outbox.State{outbox.Pending, outbox.Done, outbox.Dead}

func outboxStateCode(s outbox.State) (int, bool) {
	for i, v := range outboxStates {
		if v == s {
			return i, true
		}
	}
	return 0, false
}

type rowScanner interface{ Scan(dest ...any) error }

func scanOutboxEntry(r rowScanner) (*outbox.Entry, error) {
	var e outbox.Entry
	var event string
	var state int
	var next, lease, created, updated int64
	if err := r.Scan(&e.ID, &e.Seq, &e.Tenant, &e.Destination, &e.Patient, &e.Type, &e.ResourceID, &e.Version, &event, &state,
		&e.Attempts, &next, &lease, &e.LastError, &e.Replays, &created, &updated); err != nil {
		return nil, err
	}
	if state < 0 || state >= len(outboxStates) {
		return nil, errors.New("unknown outbox state")
	}
	e.Event, e.State = outbox.Event(event), outboxStates[state]
	e.NextAttempt, e.Created, e.Updated = storesql.FromMicros(next), storesql.FromMicros(created), storesql.FromMicros(updated)
	if lease > 0 {
		e.LeaseUntil = storesql.FromMicros(lease)
	}
	return &e, nil
}

func scanOutboxEntries(rows *sql.Rows) ([]*outbox.Entry, error) {
	defer rows.Close()
	var out []*outbox.Entry
	for rows.Next() {
		e, err := scanOutboxEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// outboxWrite runs fn in a write transaction for a registered tenant.
func (s *Store) outboxWrite(ctx context.Context, tenant, doing string, fn func(*sql.Tx) error) error {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return err
	}
	if err := s.inWriteTx(ctx, fn); err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			return err
		}
		return internal(doing, err)
	}
	return nil
}

// patientsSQL lists the patients with pending entries of a destination
// (none when it is paused) by a loose index scan: one index probe per
// patient, whatever the queue's depth.
const patientsSQL = `WITH RECURSIVE pats(patient) AS (
	SELECT (SELECT e.patient FROM outbox e WHERE e.tenant = ?1 AND e.destination = ?2 AND e.state = 0
		ORDER BY e.patient LIMIT 1)
	UNION ALL
	SELECT (SELECT e.patient FROM outbox e WHERE e.tenant = ?1 AND e.destination = ?2 AND e.state = 0
		AND e.patient > p.patient ORDER BY e.patient LIMIT 1)
	FROM pats p WHERE p.patient IS NOT NULL
)
SELECT patient FROM pats WHERE patient IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM outbox_destinations d WHERE d.tenant = ?1 AND d.destination = ?2 AND d.paused = 1)`

// Claim leases due entries (see outbox.Store): for every patient with
// pending entries, its first PerPatient ones cut before the first that is
// not due or leased (nothing when that is the oldest); then the first Limit
// of those, oldest first entry first.
func (s *Store) Claim(ctx context.Context, tenant, destination string, now time.Time, opts outbox.ClaimOptions) ([]*outbox.Entry, error) {
	if opts.Limit < 1 || opts.PerPatient < 1 || opts.Lease <= 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "claim needs a positive limit, per-patient limit and lease")
	}
	at := storesql.Micros(now)
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	// Most claims of an idle destination find nothing: ask the read pool
	// first, so that they do not take the one writer.
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM outbox WHERE tenant = ? AND destination = ? AND state = 0
		AND next_attempt <= ? AND lease_until <= ? LIMIT 1`, tenant, destination, at, at).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("claiming outbox entries", err)
	}
	var out []*outbox.Entry
	err = s.outboxWrite(ctx, tenant, "claiming outbox entries", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, patientsSQL, tenant, destination)
		if err != nil {
			return err
		}
		var patients []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			patients = append(patients, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		type cand struct{ id, seq int64 }
		var prefixes [][]cand // one per patient whose oldest entry is ready
		for _, p := range patients {
			rows, err := tx.QueryContext(ctx, `SELECT id, seq, next_attempt <= ?3 AND lease_until <= ?3 FROM outbox
				WHERE tenant = ?1 AND destination = ?2 AND state = 0 AND patient = ?4 ORDER BY seq LIMIT ?5`,
				tenant, destination, at, p, opts.PerPatient)
			if err != nil {
				return err
			}
			var prefix []cand
			for rows.Next() {
				var c cand
				var ready bool
				if err := rows.Scan(&c.id, &c.seq, &ready); err != nil {
					rows.Close()
					return err
				}
				if !ready {
					break
				}
				prefix = append(prefix, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(prefix) > 0 {
				prefixes = append(prefixes, prefix)
			}
		}
		sort.Slice(prefixes, func(i, j int) bool { return prefixes[i][0].seq < prefixes[j][0].seq })
		if len(prefixes) > opts.Limit {
			prefixes = prefixes[:opts.Limit]
		}
		var cands []cand
		for _, p := range prefixes {
			cands = append(cands, p...)
		}
		if len(cands) > opts.Limit {
			cands = cands[:opts.Limit]
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].seq < cands[j].seq })
		lease := at + opts.Lease.Microseconds()
		for _, c := range cands {
			e, err := scanOutboxEntry(tx.QueryRowContext(ctx, `UPDATE outbox SET lease_until = ? WHERE id = ? RETURNING `+outboxColumns, lease, c.id))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Settle applies outcomes in one write transaction (see outbox.Store).
func (s *Store) Settle(ctx context.Context, tenant string, now time.Time, outcomes []outbox.Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	for _, o := range outcomes {
		if o.Result < outbox.Delivered || o.Result > outbox.Release {
			return fhir.Errorf(fhir.KindInvalid, "unknown outbox result %d", o.Result)
		}
	}
	at := storesql.Micros(now)
	return s.outboxWrite(ctx, tenant, "settling outbox entries", func(tx *sql.Tx) error {
		for _, o := range outcomes {
			var err error
			switch o.Result {
			case outbox.Delivered:
				_, err = tx.ExecContext(ctx, `UPDATE outbox SET state = 1, attempts = attempts + 1, lease_until = 0, updated = ?
					WHERE tenant = ? AND id = ? AND state = 0`, at, tenant, o.ID)
			case outbox.Release:
				_, err = tx.ExecContext(ctx, `UPDATE outbox SET lease_until = 0 WHERE tenant = ? AND id = ? AND state = 0`, tenant, o.ID)
			case outbox.Retry:
				_, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?, lease_until = 0, updated = ?
					WHERE tenant = ? AND id = ? AND state = 0`, storesql.Micros(o.NextAttempt), o.Error, at, tenant, o.ID)
			case outbox.DeadLetter:
				_, err = tx.ExecContext(ctx, `UPDATE outbox SET state = 2, attempts = attempts + 1, last_error = ?, lease_until = 0, updated = ?
					WHERE tenant = ? AND id = ? AND state = 0`, o.Error, at, tenant, o.ID)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Entries lists entries in one state (see outbox.Store).
func (s *Store) Entries(ctx context.Context, tenant string, f outbox.Filter) ([]*outbox.Entry, error) {
	state, ok := outboxStateCode(f.State)
	if !ok {
		return nil, fhir.Errorf(fhir.KindInvalid, "unknown outbox state %q", f.State)
	}
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	if f.Limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE tenant = ?1 AND state = ?2 AND (?3 = '' OR destination = ?3)
		ORDER BY id LIMIT ?4 OFFSET ?5`, tenant, state, f.Destination, f.Limit, max(f.Offset, 0))
	if err != nil {
		return nil, internal("listing outbox entries", err)
	}
	out, err := scanOutboxEntries(rows)
	if err != nil {
		return nil, internal("listing outbox entries", err)
	}
	return out, nil
}

// Entry returns one entry; KindNotFound when there is none.
func (s *Store) Entry(ctx context.Context, tenant string, id int64) (*outbox.Entry, error) {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	e, err := scanOutboxEntry(s.r.QueryRowContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE tenant = ? AND id = ?`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "outbox entry %d not found", id)
	}
	if err != nil {
		return nil, internal("reading outbox entry", err)
	}
	return e, nil
}

// Replay makes a dead letter pending again (see outbox.Store).
func (s *Store) Replay(ctx context.Context, tenant string, id int64, now time.Time) error {
	return s.outboxWrite(ctx, tenant, "replaying outbox entry", func(tx *sql.Tx) error {
		var state int
		err := tx.QueryRowContext(ctx, `SELECT state FROM outbox WHERE tenant = ? AND id = ?`, tenant, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fhir.Errorf(fhir.KindNotFound, "outbox entry %d not found", id)
		}
		if err != nil {
			return err
		}
		if state != 2 {
			return fhir.Errorf(fhir.KindConflict, "outbox entry %d is %s, not a dead letter", id, outboxStates[state])
		}
		at := storesql.Micros(now)
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET state = 0, seq = (SELECT MAX(seq) + 1 FROM outbox), next_attempt = ?,
			lease_until = 0, attempts = 0, replays = replays + 1, updated = ? WHERE tenant = ? AND id = ?`, at, at, tenant, id)
		return err
	})
}

// SetPaused pauses or resumes a destination (see outbox.Store).
func (s *Store) SetPaused(ctx context.Context, tenant, destination string, paused bool, now time.Time) error {
	return s.outboxWrite(ctx, tenant, "pausing destination", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO outbox_destinations (tenant, destination, paused, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, destination) DO UPDATE SET paused = excluded.paused, updated = excluded.updated`,
			tenant, destination, paused, storesql.Micros(now))
		return err
	})
}

// Stats describes every destination's queue (see outbox.Store).
func (s *Store) Stats(ctx context.Context, tenant string, now time.Time) ([]outbox.DestinationStats, error) {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	byDest := map[string]*outbox.DestinationStats{}
	get := func(d string) *outbox.DestinationStats {
		st := byDest[d]
		if st == nil {
			st = &outbox.DestinationStats{Destination: d}
			byDest[d] = st
		}
		return st
	}
	rows, err := s.r.QueryContext(ctx, `SELECT destination, SUM(state = 0), SUM(state = 0 AND lease_until > ?2), SUM(state = 2),
			MIN(CASE WHEN state = 0 THEN created END)
		FROM outbox WHERE tenant = ?1 AND state IN (0, 2) GROUP BY destination`, tenant, storesql.Micros(now))
	if err != nil {
		return nil, internal("reading outbox stats", err)
	}
	for rows.Next() {
		var d string
		var pending, inflight, dead int64
		var oldest sql.NullInt64
		if err := rows.Scan(&d, &pending, &inflight, &dead, &oldest); err != nil {
			rows.Close()
			return nil, internal("reading outbox stats", err)
		}
		st := get(d)
		st.Pending, st.InFlight, st.Dead = pending, inflight, dead
		if oldest.Valid {
			st.Oldest = storesql.FromMicros(oldest.Int64)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, internal("reading outbox stats", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT destination, paused FROM outbox_destinations WHERE tenant = ?`, tenant)
	if err != nil {
		return nil, internal("reading destination settings", err)
	}
	for rows.Next() {
		var d string
		var paused bool
		if err := rows.Scan(&d, &paused); err != nil {
			rows.Close()
			return nil, internal("reading destination settings", err)
		}
		get(d).Paused = paused
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, internal("reading destination settings", err)
	}
	out := make([]outbox.DestinationStats, 0, len(byDest))
	for _, st := range byDest {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}

// Purge deletes done entries last updated before before (see outbox.Store).
func (s *Store) Purge(ctx context.Context, tenant string, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	err := s.outboxWrite(ctx, tenant, "purging outbox entries", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox WHERE tenant = ? AND state = 1 AND updated < ? LIMIT ?)`, tenant, storesql.Micros(before), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Load reads many resources on the read pool (see outbox.Store).
func (s *Store) Load(ctx context.Context, tenant string, keys []outbox.ResourceKey) (map[outbox.ResourceKey]*fhir.Resource, error) {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	out := make(map[outbox.ResourceKey]*fhir.Resource, len(keys))
	for _, k := range keys {
		var r *fhir.Resource
		var err error
		if k.Version > 0 {
			r, err = s.VRead(ctx, tenant, k.Type, k.ID, k.Version)
		} else {
			r, err = s.Read(ctx, tenant, k.Type, k.ID)
		}
		switch {
		case err == nil:
			out[k] = r
		case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
		default:
			return nil, err
		}
	}
	return out, nil
}
