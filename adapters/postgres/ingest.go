package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/ingest/tables on a transaction: the
// ingestion tables (migration 0010, under the same row-level security) are
// written through the transaction's pipelined connection, so they commit
// with the resources.

var _ tables.Store = (*Store)(nil)

// IngestTx runs fn in one transaction with the ingestion tables of the same
// transaction (see tables.Store). It retries like Tx.
func (s *Store) IngestTx(ctx context.Context, tenant string, fn func(fhir.Tx, tables.Tables) error) error {
	return s.Tx(ctx, tenant, func(ft fhir.Tx) error {
		t, ok := ft.(*txn)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "unexpected transaction type")
		}
		return fn(t, ingestTables{t})
	})
}

// ingestTables implements tables.Tables on a txn.
type ingestTables struct{ t *txn }

func nullMicros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := storesql.Micros(t)
	return &v
}

func fromNullMicros(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return storesql.FromMicros(*v)
}

// exec sends one statement now and returns its command tag.
func (it ingestTables) exec(ctx context.Context, doing, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	b := &pgx.Batch{}
	b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	if err := it.t.c.send(ctx, b); err != nil {
		return tag, internal(doing, err)
	}
	return tag, nil
}

// query sends one query now and calls scan for each row. Scan errors are
// collected, not returned from the callback (a failing callback makes pgx
// drop its statement cache).
func (it ingestTables) query(ctx context.Context, doing string, scan func(pgx.Rows) error, sql string, args ...any) error {
	var scanErr error
	b := &pgx.Batch{}
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if scanErr == nil {
				scanErr = scan(rows)
			}
		}
		if scanErr == nil {
			scanErr = rows.Err()
		}
		return nil
	})
	if err := it.t.c.send(ctx, b); err != nil {
		return internal(doing, err)
	}
	if scanErr != nil {
		return internal(doing, scanErr)
	}
	return nil
}

func (it ingestTables) HoldReading(ctx context.Context, h *tables.Held) error {
	_, err := it.exec(ctx, "holding reading", `INSERT INTO held_readings (tenant, id, device, reading_time, measurement, source, received)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, id) DO NOTHING`,
		it.t.tenant, h.ID, h.Device, storesql.Micros(h.Time), h.Measurement, h.Source, storesql.Micros(h.Received))
	return err
}

func (it ingestTables) HeldReadings(ctx context.Context, device string) ([]*tables.Held, error) {
	var out []*tables.Held
	err := it.query(ctx, "listing held readings", func(rows pgx.Rows) error {
		var h tables.Held
		var rt, rc int64
		if err := rows.Scan(&h.ID, &h.Device, &rt, &h.Measurement, &h.Source, &rc); err != nil {
			return err
		}
		h.Time, h.Received = storesql.FromMicros(rt), storesql.FromMicros(rc)
		out = append(out, &h)
		return nil
	}, `SELECT id, device, reading_time, measurement, source, received FROM held_readings
		WHERE tenant = $1 AND device = $2 ORDER BY reading_time, id`, it.t.tenant, device)
	return out, err
}

func (it ingestTables) HeldDevices(ctx context.Context) ([]string, error) {
	var out []string
	err := it.query(ctx, "listing held devices", func(rows pgx.Rows) error {
		var d string
		if err := rows.Scan(&d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	}, `SELECT DISTINCT device FROM held_readings WHERE tenant = $1 ORDER BY device`, it.t.tenant)
	return out, err
}

func (it ingestTables) DeleteHeld(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := it.exec(ctx, "deleting held readings", `DELETE FROM held_readings WHERE tenant = $1 AND id = ANY($2::text[])`, it.t.tenant, ids)
	return err
}

func (it ingestTables) AddDeadLetter(ctx context.Context, d *tables.DeadLetter) error {
	_, err := it.exec(ctx, "adding dead letter", `INSERT INTO dead_letters (tenant, id, source, reason, payload, received, replayed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		it.t.tenant, d.ID, d.Source, d.Reason, d.Payload, storesql.Micros(d.Received), nullMicros(d.ReplayedAt))
	return err
}

func (it ingestTables) DeadLetters(ctx context.Context, offset, limit int) ([]*tables.DeadLetter, error) {
	var out []*tables.DeadLetter
	err := it.query(ctx, "listing dead letters", func(rows pgx.Rows) error {
		var d tables.DeadLetter
		var rc int64
		var rp *int64
		if err := rows.Scan(&d.ID, &d.Source, &d.Reason, &rc, &rp); err != nil {
			return err
		}
		d.Received, d.ReplayedAt = storesql.FromMicros(rc), fromNullMicros(rp)
		out = append(out, &d)
		return nil
	}, `SELECT id, source, reason, received, replayed_at FROM dead_letters
		WHERE tenant = $1 ORDER BY received, id LIMIT $2 OFFSET $3`, it.t.tenant, limit, offset)
	return out, err
}

func (it ingestTables) DeadLetter(ctx context.Context, id string) (*tables.DeadLetter, error) {
	var found *tables.DeadLetter
	err := it.query(ctx, "reading dead letter", func(rows pgx.Rows) error {
		var d tables.DeadLetter
		var rc int64
		var rp *int64
		if err := rows.Scan(&d.ID, &d.Source, &d.Reason, &d.Payload, &rc, &rp); err != nil {
			return err
		}
		d.Received, d.ReplayedAt = storesql.FromMicros(rc), fromNullMicros(rp)
		found = &d
		return nil
	}, `SELECT id, source, reason, payload, received, replayed_at FROM dead_letters WHERE tenant = $1 AND id = $2`, it.t.tenant, id)
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "dead letter %s not found", id)
	}
	return found, nil
}

func (it ingestTables) MarkReplayed(ctx context.Context, id string, at time.Time) error {
	tag, err := it.exec(ctx, "marking dead letter replayed", `UPDATE dead_letters SET replayed_at = $3 WHERE tenant = $1 AND id = $2`,
		it.t.tenant, id, storesql.Micros(at))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fhir.Errorf(fhir.KindNotFound, "dead letter %s not found", id)
	}
	return nil
}

func (it ingestTables) AddDeviceKey(ctx context.Context, k *tables.DeviceKey) error {
	devs, err := json.Marshal(k.Devices)
	if err != nil {
		return internal("encoding device list", err)
	}
	_, err = it.exec(ctx, "adding device key", `INSERT INTO device_keys (tenant, id, hash, devices, created, revoked) VALUES ($1, $2, $3, $4, $5, $6)`,
		it.t.tenant, k.ID, k.Hash, string(devs), storesql.Micros(k.Created), nullMicros(k.Revoked))
	if pgCode(err) == "23505" {
		return fhir.Errorf(fhir.KindConflict, "device key %s already exists", k.ID)
	}
	return err
}

func (it ingestTables) DeviceKeyByHash(ctx context.Context, hash string) (*tables.DeviceKey, error) {
	var found *tables.DeviceKey
	err := it.query(ctx, "reading device key", func(rows pgx.Rows) error {
		var k tables.DeviceKey
		var devs string
		var created int64
		var revoked *int64
		if err := rows.Scan(&k.ID, &k.Hash, &devs, &created, &revoked); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(devs), &k.Devices); err != nil {
			return err
		}
		k.Created, k.Revoked = storesql.FromMicros(created), fromNullMicros(revoked)
		found = &k
		return nil
	}, `SELECT id, hash, devices, created, revoked FROM device_keys WHERE tenant = $1 AND hash = $2`, it.t.tenant, hash)
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "device key not found")
	}
	return found, nil
}

// LegacyIDsBefore reads the time migration 0080 recorded (see tables.Store).
func (s *Store) LegacyIDsBefore(ctx context.Context) (time.Time, error) {
	var v *int64
	if err := s.pool.QueryRow(ctx, `SELECT legacy_before FROM observation_ids`).Scan(&v); err != nil {
		return time.Time{}, internal("reading observation_ids", err)
	}
	return fromNullMicros(v), nil
}
