package sqlite

import (
	"context"
	"database/sql"
	"errors"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pulsewire/pulsewire/server/adtin/seen"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/adtin/seen on the write transaction: the
// record of applied inbound HL7 messages (migration 0021) is written on the
// same connection and in the same transaction as the resources.

var _ seen.Tx = (*tx)(nil)

// SeenHL7 returns the record of key (KindNotFound when there is none).
func (t *tx) SeenHL7(ctx context.Context, key seen.Key) (*seen.Message, error) {
	m := &seen.Message{Key: key}
	var at int64
	err := t.tx.QueryRowContext(ctx, `SELECT digest, event, ack, processed_at FROM hl7_processed
		WHERE tenant = ? AND sender = ? AND control_id = ?`, t.tenant, key.Sender, key.ControlID).
		Scan(&m.Digest, &m.Event, &m.Ack, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "no processed HL7 message with this key")
	}
	if err != nil {
		return nil, internal("reading processed HL7 message", err)
	}
	m.Processed = storesql.FromMicros(at)
	return m, nil
}

// RecordHL7 stores m; KindConflict when its key is recorded already.
func (t *tx) RecordHL7(ctx context.Context, m *seen.Message) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO hl7_processed (tenant, sender, control_id, digest, event, ack, processed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.tenant, m.Sender, m.ControlID, m.Digest, m.Event, m.Ack, storesql.Micros(m.Processed))
	if err != nil {
		var se *sqlitedrv.Error
		if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return fhir.Errorf(fhir.KindConflict, "HL7 message already recorded").Wrap(err)
		}
		return internal("recording processed HL7 message", err)
	}
	return nil
}
