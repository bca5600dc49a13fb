package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/adtin/seen"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/adtin/seen on a transaction: the record of
// applied inbound HL7 messages (migration 0021, under the same row-level
// security) is read and written through the transaction's pipelined
// connection, so it commits with the resources the message changed.

var _ seen.Tx = (*txn)(nil)

// SeenHL7 reads the record of key now (one round trip, carrying the writes
// pipelined before it). KindNotFound when there is none.
func (t *txn) SeenHL7(ctx context.Context, key seen.Key) (*seen.Message, error) {
	var found *seen.Message
	var scanErr error
	b := &pgx.Batch{}
	b.Queue(`SELECT digest, event, ack, processed_at FROM hl7_processed
		WHERE tenant = $1 AND sender = $2 AND control_id = $3`, t.tenant, key.Sender, key.ControlID).
		QueryRow(func(row pgx.Row) error {
			m := &seen.Message{Key: key}
			var at int64
			// A scan error is kept, not returned: a failing callback makes
			// pgx drop its statement cache.
			switch err := row.Scan(&m.Digest, &m.Event, &m.Ack, &at); {
			case err == nil:
				m.Processed = storesql.FromMicros(at)
				found = m
			case !errors.Is(err, pgx.ErrNoRows):
				scanErr = err
			}
			return nil
		})
	if err := t.c.send(ctx, b); err != nil {
		return nil, internal("reading processed HL7 message", err)
	}
	if scanErr != nil {
		return nil, internal("reading processed HL7 message", scanErr)
	}
	if found == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "no processed HL7 message with this key")
	}
	return found, nil
}

// RecordHL7 queues the insert of m behind the transaction's next statement
// or its COMMIT (no round trip of its own). A key recorded already fails the
// commit with a unique violation (see seen.Tx).
func (t *txn) RecordHL7(_ context.Context, m *seen.Message) error {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO hl7_processed (tenant, sender, control_id, digest, event, ack, processed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.tenant, m.Sender, m.ControlID, m.Digest, m.Event, m.Ack, storesql.Micros(m.Processed))
	t.c.later(b)
	return nil
}
