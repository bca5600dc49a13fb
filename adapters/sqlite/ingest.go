package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/ingest/tables on the write transaction: the
// ingestion tables (migration 0010) are written on the same connection and
// in the same transaction as the resources.

var _ tables.Store = (*Store)(nil)

// IngestTx runs fn in one write transaction with the ingestion tables of
// the same transaction (see tables.Store).
func (s *Store) IngestTx(ctx context.Context, tenant string, fn func(fhir.Tx, tables.Tables) error) error {
	return s.Tx(ctx, tenant, func(ft fhir.Tx) error {
		t, ok := ft.(*tx)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "unexpected transaction type")
		}
		return fn(t, ingestTables{t})
	})
}

// ingestTables implements tables.Tables on a tx.
type ingestTables struct{ t *tx }

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return storesql.Micros(t)
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return storesql.FromMicros(v.Int64)
}

func (it ingestTables) HoldReading(ctx context.Context, h *tables.Held) error {
	_, err := it.t.tx.ExecContext(ctx, `INSERT INTO held_readings (tenant, id, device, reading_time, measurement, source, received)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO NOTHING`,
		it.t.tenant, h.ID, h.Device, storesql.Micros(h.Time), h.Measurement, h.Source, storesql.Micros(h.Received))
	if err != nil {
		return internal("holding reading", err)
	}
	return nil
}

func (it ingestTables) HeldReadings(ctx context.Context, device string) ([]*tables.Held, error) {
	rows, err := it.t.tx.QueryContext(ctx, `SELECT id, device, reading_time, measurement, source, received FROM held_readings
		WHERE tenant = ? AND device = ? ORDER BY reading_time, id`, it.t.tenant, device)
	if err != nil {
		return nil, internal("listing held readings", err)
	}
	defer rows.Close()
	var out []*tables.Held
	for rows.Next() {
		var h tables.Held
		var rt, rc int64
		if err := rows.Scan(&h.ID, &h.Device, &rt, &h.Measurement, &h.Source, &rc); err != nil {
			return nil, internal("reading held reading", err)
		}
		h.Time, h.Received = storesql.FromMicros(rt), storesql.FromMicros(rc)
		out = append(out, &h)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing held readings", err)
	}
	return out, nil
}

func (it ingestTables) HeldDevices(ctx context.Context) ([]string, error) {
	rows, err := it.t.tx.QueryContext(ctx, `SELECT DISTINCT device FROM held_readings WHERE tenant = ? ORDER BY device`, it.t.tenant)
	if err != nil {
		return nil, internal("listing held devices", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, internal("reading held device", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing held devices", err)
	}
	return out, nil
}

func (it ingestTables) DeleteHeld(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if _, err := it.t.tx.ExecContext(ctx, `DELETE FROM held_readings WHERE tenant = ? AND id = ?`, it.t.tenant, id); err != nil {
			return internal("deleting held reading", err)
		}
	}
	return nil
}

func (it ingestTables) AddDeadLetter(ctx context.Context, d *tables.DeadLetter) error {
	_, err := it.t.tx.ExecContext(ctx, `INSERT INTO dead_letters (tenant, id, source, reason, payload, received, replayed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		it.t.tenant, d.ID, d.Source, d.Reason, d.Payload, storesql.Micros(d.Received), nullMicros(d.ReplayedAt))
	if err != nil {
		return internal("adding dead letter", err)
	}
	return nil
}

func (it ingestTables) DeadLetters(ctx context.Context, offset, limit int) ([]*tables.DeadLetter, error) {
	rows, err := it.t.tx.QueryContext(ctx, `SELECT id, source, reason, received, replayed_at FROM dead_letters
		WHERE tenant = ? ORDER BY received, id LIMIT ? OFFSET ?`, it.t.tenant, limit, offset)
	if err != nil {
		return nil, internal("listing dead letters", err)
	}
	defer rows.Close()
	var out []*tables.DeadLetter
	for rows.Next() {
		var d tables.DeadLetter
		var rc int64
		var rp sql.NullInt64
		if err := rows.Scan(&d.ID, &d.Source, &d.Reason, &rc, &rp); err != nil {
			return nil, internal("reading dead letter", err)
		}
		d.Received, d.ReplayedAt = storesql.FromMicros(rc), fromNullMicros(rp)
		out = append(out, &d)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing dead letters", err)
	}
	return out, nil
}

func (it ingestTables) DeadLetter(ctx context.Context, id string) (*tables.DeadLetter, error) {
	var d tables.DeadLetter
	var rc int64
	var rp sql.NullInt64
	err := it.t.tx.QueryRowContext(ctx, `SELECT id, source, reason, payload, received, replayed_at FROM dead_letters
		WHERE tenant = ? AND id = ?`, it.t.tenant, id).Scan(&d.ID, &d.Source, &d.Reason, &d.Payload, &rc, &rp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "dead letter %s not found", id)
	}
	if err != nil {
		return nil, internal("reading dead letter", err)
	}
	d.Received, d.ReplayedAt = storesql.FromMicros(rc), fromNullMicros(rp)
	return &d, nil
}

func (it ingestTables) MarkReplayed(ctx context.Context, id string, at time.Time) error {
	res, err := it.t.tx.ExecContext(ctx, `UPDATE dead_letters SET replayed_at = ? WHERE tenant = ? AND id = ?`,
		storesql.Micros(at), it.t.tenant, id)
	if err != nil {
		return internal("marking dead letter replayed", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fhir.Errorf(fhir.KindNotFound, "dead letter %s not found", id)
	}
	return nil
}

func (it ingestTables) AddDeviceKey(ctx context.Context, k *tables.DeviceKey) error {
	devs, err := json.Marshal(k.Devices)
	if err != nil {
		return internal("encoding device list", err)
	}
	_, err = it.t.tx.ExecContext(ctx, `INSERT INTO device_keys (tenant, id, hash, devices, created, revoked) VALUES (?, ?, ?, ?, ?, ?)`,
		it.t.tenant, k.ID, k.Hash, string(devs), storesql.Micros(k.Created), nullMicros(k.Revoked))
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return fhir.Errorf(fhir.KindConflict, "device key %s already exists", k.ID)
		}
		return internal("adding device key", err)
	}
	return nil
}

func (it ingestTables) DeviceKeyByHash(ctx context.Context, hash string) (*tables.DeviceKey, error) {
	var k tables.DeviceKey
	var devs string
	var created int64
	var revoked sql.NullInt64
	err := it.t.tx.QueryRowContext(ctx, `SELECT id, hash, devices, created, revoked FROM device_keys WHERE tenant = ? AND hash = ?`,
		it.t.tenant, hash).Scan(&k.ID, &k.Hash, &devs, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "device key not found")
	}
	if err != nil {
		return nil, internal("reading device key", err)
	}
	if err := json.Unmarshal([]byte(devs), &k.Devices); err != nil {
		return nil, internal("decoding device list", err)
	}
	k.Created, k.Revoked = storesql.FromMicros(created), fromNullMicros(revoked)
	return &k, nil
}

// LegacyIDsBefore reads the time migration 0080 recorded (see tables.Store).
func (s *Store) LegacyIDsBefore(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT legacy_before FROM observation_ids`).Scan(&v); err != nil {
		return time.Time{}, internal("reading observation_ids", err)
	}
	return fromNullMicros(v), nil
}
