// Package tables declares the ingestion tables a store keeps beside its
// resources — held readings, dead letters and device keys — and the
// transaction-scoped interface (Tables) through which server/ingest writes
// them in the same database transaction as the resources it writes.
//
// It is pure (standard library and server/fhir only) so that the adapters
// can implement it without importing server/ingest, whose mapping and
// search dependencies they must not see. adapters/sqlite and
// adapters/postgres implement Store; server/ingest consumes it.
package tables

import (
	"context"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Store is a fhir.Store that also keeps the ingestion tables.
type Store interface {
	fhir.Store
	// IngestTx is fhir.Store.Tx with the ingestion tables of the same
	// transaction: fn's resource writes (through tx) and table writes
	// (through tb) commit together or not at all. Like Tx it may run fn
	// again after a serialization failure.
	IngestTx(ctx context.Context, tenant string, fn func(tx fhir.Tx, tb Tables) error) error
	// LegacyIDsBefore is the reading time before which device readings
	// keep the hash-only Observation ids of the first releases (see
	// ingest.ObservationID): later than every reading stored with one,
	// recorded when the store was migrated. Zero when it never had any.
	LegacyIDsBefore(ctx context.Context) (time.Time, error)
}

// Held is a reading whose device had no patient association at its time.
type Held struct {
	ID          string    // the id its Observation will have (so holding twice is idempotent)
	Device      string    // the Device resource id
	Time        time.Time // the reading's own time
	Measurement []byte    // the mapped measurement, JSON
	Source      string    // "http", "mqtt", "nats" ...
	Received    time.Time
}

// DeadLetter is a payload that could not be mapped.
type DeadLetter struct {
	ID         string
	Source     string
	Reason     string // from the mappings: names templates and expressions, never values
	Payload    []byte
	Received   time.Time
	ReplayedAt time.Time // zero until replayed successfully
}

// DeviceKey is a device or gateway credential. Only the SHA-256 of the key
// is stored.
type DeviceKey struct {
	ID      string
	Hash    string   // hex SHA-256 of the whole key
	Devices []string // device identifier values it may send for; ["*"] for a gateway
	Created time.Time
	Revoked time.Time // zero while valid
}

// Tables are the ingestion tables inside one transaction of one tenant.
// Times are stored with microsecond precision.
type Tables interface {
	// HoldReading stores h; a reading with h.ID already held is left as it
	// is (no error).
	HoldReading(ctx context.Context, h *Held) error
	// HeldReadings lists the readings held for a device, oldest first.
	HeldReadings(ctx context.Context, device string) ([]*Held, error)
	// HeldDevices lists the devices that have held readings.
	HeldDevices(ctx context.Context) ([]string, error)
	// DeleteHeld removes held readings (missing ids are ignored).
	DeleteHeld(ctx context.Context, ids ...string) error

	// AddDeadLetter stores d.
	AddDeadLetter(ctx context.Context, d *DeadLetter) error
	// DeadLetters lists dead letters oldest first (received, then id),
	// skipping offset and returning at most limit, without payloads.
	DeadLetters(ctx context.Context, offset, limit int) ([]*DeadLetter, error)
	// DeadLetter returns one dead letter with its payload; KindNotFound
	// when there is none.
	DeadLetter(ctx context.Context, id string) (*DeadLetter, error)
	// MarkReplayed sets replayed_at; KindNotFound when there is no such
	// dead letter.
	MarkReplayed(ctx context.Context, id string, at time.Time) error

	// AddDeviceKey stores k.
	AddDeviceKey(ctx context.Context, k *DeviceKey) error
	// DeviceKeyByHash finds a key by its hash; KindNotFound when the tenant
	// has none (revoked keys are returned, with Revoked set).
	DeviceKeyByHash(ctx context.Context, hash string) (*DeviceKey, error)
}
