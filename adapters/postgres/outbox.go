package postgres

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/delivery/outbox on PostgreSQL (migration
// 0020, under the same row-level security as the resources): Enqueue on a
// transaction, pipelined like its Puts, and the worker's calls on the pool,
// each one batch (an implicit transaction that first sets pulsewire.tenant).

var (
	_ outbox.Store    = (*Store)(nil)
	_ outbox.Enqueuer = (*txn)(nil)
)

// Enqueue queues the entries' INSERT behind the transaction's next
// statement or its COMMIT (see outbox.Enqueuer): a write hook that enqueues
// costs no round trip.
func (t *txn) Enqueue(_ context.Context, at time.Time, items ...outbox.Item) error {
	if len(items) == 0 {
		return nil
	}
	n := len(items)
	dest, patient, typ, rid, event := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	version := make([]int64, n)
	for i, it := range items {
		dest[i], patient[i], typ[i], rid[i], event[i], version[i] = it.Destination, it.Patient, it.Type, it.ResourceID, string(it.Event), it.Version
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO outbox (tenant, destination, patient, res_type, res_id, version, event, next_attempt, created, updated)
		SELECT $1, u.d, u.p, u.t, u.r, u.v, u.e, $2, $2, $2
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) WITH ORDINALITY AS u(d, p, t, r, v, e, n)
		ORDER BY u.n`,
		t.tenant, storesql.Micros(at), dest, patient, typ, rid, version, event)
	t.c.later(b)
	return nil
}

const outboxColumns = `id, seq, tenant, destination, patient, res_type, res_id, version, event, state,
	attempts, next_attempt, lease_until, last_error, replays, created, updated`

// outboxStates maps the state column (0, 1, 2) to outbox.State.
var outboxStates = [...]outbox.State{outbox.Pending, outbox.Done, outbox.Dead}

func outboxStateCode(s outbox.State) (int16, bool) {
	for i, v := range outboxStates {
		if v == s {
			return int16(i), true
		}
	}
	return 0, false
}

func scanOutboxEntry(rows pgx.Rows) (*outbox.Entry, error) {
	var e outbox.Entry
	var event string
	var state int16
	var next, lease, created, updated int64
	if err := rows.Scan(&e.ID, &e.Seq, &e.Tenant, &e.Destination, &e.Patient, &e.Type, &e.ResourceID, &e.Version, &event, &state,
		&e.Attempts, &next, &lease, &e.LastError, &e.Replays, &created, &updated); err != nil {
		return nil, err
	}
	if int(state) >= len(outboxStates) || state < 0 {
		return nil, errors.New("unknown outbox state")
	}
	e.Event, e.State = outbox.Event(event), outboxStates[state]
	e.NextAttempt, e.Created, e.Updated = storesql.FromMicros(next), storesql.FromMicros(created), storesql.FromMicros(updated)
	if lease > 0 {
		e.LeaseUntil = storesql.FromMicros(lease)
	}
	return &e, nil
}

// outboxScope returns the scope of one outbox call. Writes check first that
// the tenant is registered (cached after the first time): a batch's own
// check would run in the same implicit transaction as the write, which
// would already be committed.
func (s *Store) outboxScope(ctx context.Context, tenant string, write bool) (*poolScope, error) {
	if !fhir.ValidTenant(tenant) {
		return nil, tenantNotFound()
	}
	if write {
		ok, err := s.TenantExists(ctx, tenant)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, tenantNotFound()
		}
	}
	return &poolScope{s: s, tenant: tenant, checked: write}, nil
}

// outboxEntries runs b (whose last statement returns outboxColumns rows)
// and collects its rows.
func (s *Store) outboxEntries(ctx context.Context, p *poolScope, doing string, b *pgx.Batch, q *pgx.QueuedQuery) ([]*outbox.Entry, error) {
	var out []*outbox.Entry
	var scanErr error
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if scanErr != nil {
				continue
			}
			var e *outbox.Entry
			if e, scanErr = scanOutboxEntry(rows); scanErr == nil {
				out = append(out, e)
			}
		}
		if scanErr == nil {
			scanErr = rows.Err()
		}
		return nil
	})
	if err := p.send(ctx, b); err != nil {
		return nil, internal(doing, err)
	}
	if scanErr != nil {
		return nil, internal(doing, scanErr)
	}
	return out, nil
}

// claimSQL lists the destination's patients with pending entries (a loose
// index scan: two index probes per patient, whatever the queue's depth),
// takes each one's oldest pending entry when it is due and not leased
// (heads, the $4 oldest), then each such patient's first $5 pending
// entries, cut before the first that is not due or leased, then the first
// $4 of those, oldest head first, and leases them. Claims of one
// destination are serialized by an advisory lock taken first in the same
// implicit transaction, so a second claimer's snapshot sees the first
// one's leases.
const claimSQL = `WITH RECURSIVE pats(patient) AS (
	SELECT (SELECT e.patient FROM outbox e WHERE e.tenant = $1 AND e.destination = $2 AND e.state = 0
		ORDER BY e.patient LIMIT 1)
	UNION ALL
	SELECT (SELECT e.patient FROM outbox e WHERE e.tenant = $1 AND e.destination = $2 AND e.state = 0
		AND e.patient > p.patient ORDER BY e.patient LIMIT 1)
	FROM pats p WHERE p.patient IS NOT NULL
), heads AS (
	SELECT h.patient, h.seq FROM pats p CROSS JOIN LATERAL (
		SELECT e.patient, e.seq, e.next_attempt, e.lease_until FROM outbox e
		WHERE e.tenant = $1 AND e.destination = $2 AND e.state = 0 AND e.patient = p.patient
		ORDER BY e.seq LIMIT 1) h
	WHERE h.next_attempt <= $3 AND h.lease_until <= $3
		AND NOT EXISTS (SELECT 1 FROM outbox_destinations d WHERE d.tenant = $1 AND d.destination = $2 AND d.paused = 1)
	ORDER BY h.seq LIMIT $4
), cand AS (
	SELECT r.id, h.seq AS head, r.seq, bool_and(r.ready) OVER (PARTITION BY r.patient ORDER BY r.seq) AS ok
	FROM heads h CROSS JOIN LATERAL (
		SELECT e.id, e.seq, e.patient, (e.next_attempt <= $3 AND e.lease_until <= $3) AS ready
		FROM outbox e WHERE e.tenant = $1 AND e.destination = $2 AND e.state = 0 AND e.patient = h.patient
		ORDER BY e.seq LIMIT $5) r
), pick AS (
	SELECT id FROM cand WHERE ok ORDER BY head, seq LIMIT $4
)
UPDATE outbox o SET lease_until = $6 FROM pick WHERE o.tenant = $1 AND o.id = pick.id
RETURNING ` + "o.id, o.seq, o.tenant, o.destination, o.patient, o.res_type, o.res_id, o.version, o.event, o.state, " +
	"o.attempts, o.next_attempt, o.lease_until, o.last_error, o.replays, o.created, o.updated"

// Claim leases due entries (see outbox.Store).
func (s *Store) Claim(ctx context.Context, tenant, destination string, now time.Time, opts outbox.ClaimOptions) ([]*outbox.Entry, error) {
	if opts.Limit < 1 || opts.PerPatient < 1 || opts.Lease <= 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "claim needs a positive limit, per-patient limit and lease")
	}
	p, err := s.outboxScope(ctx, tenant, true)
	if err != nil {
		return nil, err
	}
	at := storesql.Micros(now)
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", tenant+"\noutbox:"+destination)
	q := b.Queue(claimSQL, tenant, destination, at, opts.Limit, opts.PerPatient, at+opts.Lease.Microseconds())
	out, err := s.outboxEntries(ctx, p, "claiming outbox entries", b, q)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// Settle applies outcomes in one implicit transaction (see outbox.Store).
func (s *Store) Settle(ctx context.Context, tenant string, now time.Time, outcomes []outbox.Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	p, err := s.outboxScope(ctx, tenant, true)
	if err != nil {
		return err
	}
	var done, release, retryID, deadID []int64
	var retryNext []int64
	var retryErr, deadErr []string
	for _, o := range outcomes {
		switch o.Result {
		case outbox.Delivered:
			done = append(done, o.ID)
		case outbox.Release:
			release = append(release, o.ID)
		case outbox.Retry:
			retryID, retryNext, retryErr = append(retryID, o.ID), append(retryNext, storesql.Micros(o.NextAttempt)), append(retryErr, o.Error)
		case outbox.DeadLetter:
			deadID, deadErr = append(deadID, o.ID), append(deadErr, o.Error)
		default:
			return fhir.Errorf(fhir.KindInvalid, "unknown outbox result %d", o.Result)
		}
	}
	at := storesql.Micros(now)
	b := &pgx.Batch{}
	if len(done) > 0 {
		b.Queue(`UPDATE outbox SET state = 1, attempts = attempts + 1, lease_until = 0, updated = $3
			WHERE tenant = $1 AND id = ANY($2::bigint[]) AND state = 0`, tenant, done, at)
	}
	if len(release) > 0 {
		b.Queue(`UPDATE outbox SET lease_until = 0 WHERE tenant = $1 AND id = ANY($2::bigint[]) AND state = 0`, tenant, release)
	}
	if len(retryID) > 0 {
		b.Queue(`UPDATE outbox o SET attempts = o.attempts + 1, next_attempt = u.next, last_error = u.err, lease_until = 0, updated = $2
			FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS u(id, next, err)
			WHERE o.tenant = $1 AND o.id = u.id AND o.state = 0`, tenant, at, retryID, retryNext, retryErr)
	}
	if len(deadID) > 0 {
		b.Queue(`UPDATE outbox o SET state = 2, attempts = o.attempts + 1, last_error = u.err, lease_until = 0, updated = $2
			FROM unnest($3::bigint[], $4::text[]) AS u(id, err)
			WHERE o.tenant = $1 AND o.id = u.id AND o.state = 0`, tenant, at, deadID, deadErr)
	}
	if err := p.send(ctx, b); err != nil {
		return internal("settling outbox entries", err)
	}
	return nil
}

// Entries lists entries in one state (see outbox.Store).
func (s *Store) Entries(ctx context.Context, tenant string, f outbox.Filter) ([]*outbox.Entry, error) {
	state, ok := outboxStateCode(f.State)
	if !ok {
		return nil, fhir.Errorf(fhir.KindInvalid, "unknown outbox state %q", f.State)
	}
	if f.Limit <= 0 {
		return nil, nil
	}
	p, err := s.outboxScope(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	q := b.Queue(`SELECT `+outboxColumns+` FROM outbox WHERE tenant = $1 AND state = $2 AND ($3 = '' OR destination = $3)
		ORDER BY id LIMIT $4 OFFSET $5`, tenant, state, f.Destination, f.Limit, max(f.Offset, 0))
	return s.outboxEntries(ctx, p, "listing outbox entries", b, q)
}

// Entry returns one entry; KindNotFound when there is none.
func (s *Store) Entry(ctx context.Context, tenant string, id int64) (*outbox.Entry, error) {
	p, err := s.outboxScope(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	q := b.Queue(`SELECT `+outboxColumns+` FROM outbox WHERE tenant = $1 AND id = $2`, tenant, id)
	out, err := s.outboxEntries(ctx, p, "reading outbox entry", b, q)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fhir.Errorf(fhir.KindNotFound, "outbox entry %d not found", id)
	}
	return out[0], nil
}

// Replay makes a dead letter pending again (see outbox.Store).
func (s *Store) Replay(ctx context.Context, tenant string, id int64, now time.Time) error {
	p, err := s.outboxScope(ctx, tenant, true)
	if err != nil {
		return err
	}
	state := int16(-1)
	b := &pgx.Batch{}
	b.Queue(`SELECT state FROM outbox WHERE tenant = $1 AND id = $2`, tenant, id).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&state); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	b.Queue(`UPDATE outbox SET state = 0, seq = nextval('outbox_seq'), next_attempt = $3, lease_until = 0, attempts = 0,
		replays = replays + 1, updated = $3 WHERE tenant = $1 AND id = $2 AND state = 2`, tenant, id, storesql.Micros(now))
	if err := p.send(ctx, b); err != nil {
		return internal("replaying outbox entry", err)
	}
	switch state {
	case -1:
		return fhir.Errorf(fhir.KindNotFound, "outbox entry %d not found", id)
	case 2:
		return nil
	}
	return fhir.Errorf(fhir.KindConflict, "outbox entry %d is %s, not a dead letter", id, outboxStates[state])
}

// SetPaused pauses or resumes a destination (see outbox.Store).
func (s *Store) SetPaused(ctx context.Context, tenant, destination string, paused bool, now time.Time) error {
	p, err := s.outboxScope(ctx, tenant, true)
	if err != nil {
		return err
	}
	v := int16(0)
	if paused {
		v = 1
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO outbox_destinations (tenant, destination, paused, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant, destination) DO UPDATE SET paused = excluded.paused, updated = excluded.updated`,
		tenant, destination, v, storesql.Micros(now))
	if err := p.send(ctx, b); err != nil {
		return internal("pausing destination", err)
	}
	return nil
}

// Stats describes every destination's queue (see outbox.Store).
func (s *Store) Stats(ctx context.Context, tenant string, now time.Time) ([]outbox.DestinationStats, error) {
	p, err := s.outboxScope(ctx, tenant, false)
	if err != nil {
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
	var scanErr error
	b := &pgx.Batch{}
	b.Queue(`SELECT destination, count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 0 AND lease_until > $2),
			count(*) FILTER (WHERE state = 2), min(created) FILTER (WHERE state = 0)
		FROM outbox WHERE tenant = $1 AND state IN (0, 2) GROUP BY destination`, tenant, storesql.Micros(now)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var d string
			var pending, inflight, dead int64
			var oldest *int64
			if err := rows.Scan(&d, &pending, &inflight, &dead, &oldest); err != nil {
				scanErr = err
				continue
			}
			st := get(d)
			st.Pending, st.InFlight, st.Dead = pending, inflight, dead
			if oldest != nil {
				st.Oldest = storesql.FromMicros(*oldest)
			}
		}
		if scanErr == nil {
			scanErr = rows.Err()
		}
		return nil
	})
	b.Queue(`SELECT destination, paused FROM outbox_destinations WHERE tenant = $1`, tenant).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var d string
			var paused int16
			if err := rows.Scan(&d, &paused); err != nil {
				scanErr = err
				continue
			}
			get(d).Paused = paused != 0
		}
		if scanErr == nil {
			scanErr = rows.Err()
		}
		return nil
	})
	if err := p.send(ctx, b); err != nil {
		return nil, internal("reading outbox stats", err)
	}
	if scanErr != nil {
		return nil, internal("reading outbox stats", scanErr)
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
	p, err := s.outboxScope(ctx, tenant, true)
	if err != nil {
		return 0, err
	}
	var n int64
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM outbox WHERE tenant = $1 AND id IN (
			SELECT id FROM outbox WHERE tenant = $1 AND state = 1 AND updated < $2 LIMIT $3)`,
		tenant, storesql.Micros(before), limit).Exec(func(ct pgconn.CommandTag) error { n = ct.RowsAffected(); return nil })
	if err := p.send(ctx, b); err != nil {
		return 0, internal("purging outbox entries", err)
	}
	return int(n), nil
}

// Load reads many resources in one round trip (see outbox.Store): one
// primary-key probe per key (of resources and of resource_versions for a
// key with a version). The probes are written as "the first row at or
// after the key, in primary-key order" so that only the primary key serves
// them: on a table without statistics yet (a new schema, before autovacuum
// analyzes it) an equality probe costs the same through the (tenant, type,
// last_updated) indexes, and the planner may pick one and scan the type.
func (s *Store) Load(ctx context.Context, tenant string, keys []outbox.ResourceKey) (map[outbox.ResourceKey]*fhir.Resource, error) {
	out := make(map[outbox.ResourceKey]*fhir.Resource, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	p, err := s.outboxScope(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var vType, vID, cType, cID []string
	var vVersion []int64
	for _, k := range keys {
		if k.Version > 0 {
			vType, vID, vVersion = append(vType, k.Type), append(vID, k.ID), append(vVersion, k.Version)
		} else {
			cType, cID = append(cType, k.Type), append(cID, k.ID)
		}
	}
	var scanErr error
	collect := func(current bool) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			for rows.Next() {
				if scanErr != nil {
					continue
				}
				var r *fhir.Resource
				if r, scanErr = storesql.ScanResource(rows); scanErr == nil {
					k := outbox.ResourceKey{Type: r.Type, ID: r.ID}
					if !current {
						k.Version = r.VersionID
					}
					out[k] = r
				}
			}
			if scanErr == nil {
				scanErr = rows.Err()
			}
			return nil
		}
	}
	b := &pgx.Batch{}
	if len(vType) > 0 {
		// A version is the current row or a superseded one: one probe of
		// each table, at most one of which has it.
		b.Queue(`SELECT v.* FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(t, i, n) CROSS JOIN LATERAL (
				(SELECT `+storesql.Columns+` FROM resources
				WHERE tenant = $1 AND type = k.t AND id >= k.i ORDER BY id LIMIT 1)
				UNION ALL
				(SELECT `+storesql.Columns+` FROM resource_versions
				WHERE tenant = $1 AND type = k.t AND id = k.i AND version >= k.n ORDER BY version LIMIT 1)) v
			WHERE v.id = k.i AND v.version = k.n AND v.deleted = 0`,
			tenant, vType, vID, vVersion).Query(collect(false))
	}
	if len(cType) > 0 {
		b.Queue(`SELECT r.* FROM unnest($2::text[], $3::text[]) AS k(t, i) CROSS JOIN LATERAL (
				SELECT `+storesql.Columns+` FROM resources
				WHERE tenant = $1 AND type = k.t AND id >= k.i ORDER BY id LIMIT 1) r
			WHERE r.id = k.i AND r.deleted = 0`,
			tenant, cType, cID).Query(collect(true))
	}
	if err := p.send(ctx, b); err != nil {
		return nil, internal("loading resources", err)
	}
	if scanErr != nil {
		return nil, internal("loading resources", scanErr)
	}
	return out, nil
}
