// Package seen declares the record of inbound HL7 v2 messages already
// applied (one row per tenant, sender and MSH-10), and the
// transaction-scoped interface through which server/adtin reads and writes
// it in the same database transaction as the resources a message changes.
// That is how "the same MSH-10 sent twice is applied once" holds across
// crashes and replicas: the record commits with the effects or not at all.
// HL7 v2.6 chapter 2, section 2.9.2 (message processing rules) and 2.10.3
// (MSH-10 is the key a receiver deduplicates on).
//
// A store offers it by implementing Tx on the transaction it passes to
// fhir.Store.Tx's function; consumers reach it by a type assertion on
// fhir.Tx. adapters/sqlite and adapters/postgres implement it (their
// hl7seen.go, migration 0021). It is pure (standard library only; errors
// are server/fhir kinds) so that the adapters can implement it without
// importing server/adtin.
package seen

import (
	"context"
	"time"
)

// Key identifies one message of a tenant (the transaction's tenant).
type Key struct {
	// Sender is the sending application and facility (MSH-3 and MSH-4):
	// two senders may use the same control ids.
	Sender    string
	ControlID string // MSH-10
}

// Message is the record of one applied message. It holds no patient data:
// the digest is one-way, the ACK has only MSH, MSA and ERR segments.
type Message struct {
	Key
	Digest    string    // hex SHA-256 of the message content, to tell a resend from a reused MSH-10
	Event     string    // trigger event, e.g. A01
	Ack       []byte    // the acknowledgment sent, encoded: a resend gets the same bytes
	Processed time.Time // commit time, microsecond precision
}

// Tx is implemented by store transactions that keep the record.
type Tx interface {
	// SeenHL7 returns the record of key. KindNotFound when there is none;
	// KindInternal for a database failure.
	SeenHL7(ctx context.Context, key Key) (*Message, error)
	// RecordHL7 stores m. A key recorded already is KindConflict, which a
	// store that sends writes with the commit (PostgreSQL) may report only
	// as the failure of the commit; callers lock the key first (fhir.Tx.Lock)
	// so that it does not happen.
	RecordHL7(ctx context.Context, m *Message) error
}
