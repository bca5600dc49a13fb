package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
)

// DeadLetters lists a tenant's dead letters oldest first, without payloads.
func (in *Ingestor) DeadLetters(ctx context.Context, tenant string, offset, limit int) ([]*tables.DeadLetter, error) {
	var out []*tables.DeadLetter
	err := in.store.IngestTx(ctx, tenant, func(_ fhir.Tx, tb tables.Tables) error {
		var err error
		out, err = tb.DeadLetters(ctx, offset, limit)
		return err
	})
	return out, err
}

// DeadLetter returns one dead letter with its payload (KindNotFound).
func (in *Ingestor) DeadLetter(ctx context.Context, tenant, id string) (*tables.DeadLetter, error) {
	var out *tables.DeadLetter
	err := in.store.IngestTx(ctx, tenant, func(_ fhir.Tx, tb tables.Tables) error {
		var err error
		out, err = tb.DeadLetter(ctx, id)
		return err
	})
	return out, err
}

// Replay runs a dead letter's payload through the current templates. When
// it maps, its readings are stored (or held) and the dead letter is marked
// replayed in the same transaction. When it still cannot be mapped, nothing
// is written and the error is KindUnprocessable with the reason.
func (in *Ingestor) Replay(ctx context.Context, tenant, id string) (Result, error) {
	ctx = attributed(ctx)
	dl, err := in.DeadLetter(ctx, tenant, id)
	if err != nil {
		return Result{}, err
	}
	src := Source{Kind: dl.Source}
	p := in.prepare(tenant, src, dl.Payload)
	if p.reason != "" {
		return Result{}, fhir.Errorf(fhir.KindUnprocessable, "dead letter %s still cannot be mapped: %s", id, p.reason)
	}
	ps := []prepared{p}
	if err := in.assignIDs(ctx, tenant, ps); err != nil {
		return Result{}, err
	}
	var r Result
	err = in.store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		rs, err := in.apply(ctx, tenant, tx, tb, ps)
		if err != nil {
			return err
		}
		r = rs[0]
		return tb.MarkReplayed(ctx, id, in.now().UTC())
	})
	return r, err
}

// keyPrefix starts every device key, so that keys are recognizable in
// configuration and secret scanners.
const keyPrefix = "pwk_"

// HashKey is the stored form of a device key: hex SHA-256.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// AddDeviceKey creates a device key allowed to send for devices (device
// identifier values; nil or ["*"] for a gateway of the tenant) and returns
// it. Only its hash is stored: the key cannot be shown again.
func (in *Ingestor) AddDeviceKey(ctx context.Context, tenant string, devices []string) (key, keyID string, err error) {
	if len(devices) == 0 {
		devices = []string{"*"}
	}
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	keyID = hex.EncodeToString(b[:4])
	key = keyPrefix + keyID + "_" + hex.EncodeToString(b[4:])
	err = in.store.IngestTx(ctx, tenant, func(_ fhir.Tx, tb tables.Tables) error {
		return tb.AddDeviceKey(ctx, &tables.DeviceKey{ID: keyID, Hash: HashKey(key), Devices: devices, Created: in.now().UTC()})
	})
	if err != nil {
		return "", "", err
	}
	return key, keyID, nil
}

// Authenticate checks a device key against the tenant's keys and returns
// the Source it may send as. KindUnauthorized for an unknown, revoked or
// malformed key, or an unknown tenant (a key of another tenant is unknown
// here).
func (in *Ingestor) Authenticate(ctx context.Context, tenant, key, kind string) (Source, error) {
	unauth := fhir.Errorf(fhir.KindUnauthorized, "invalid device credential")
	if !strings.HasPrefix(key, keyPrefix) || len(key) > 128 || !fhir.ValidTenant(tenant) {
		return Source{}, unauth
	}
	var k *tables.DeviceKey
	err := in.store.IngestTx(ctx, tenant, func(_ fhir.Tx, tb tables.Tables) error {
		var err error
		k, err = tb.DeviceKeyByHash(ctx, HashKey(key))
		return err
	})
	if fhir.IsKind(err, fhir.KindNotFound) {
		return Source{}, unauth
	}
	if err != nil {
		return Source{}, err
	}
	if !k.Revoked.IsZero() {
		return Source{}, unauth
	}
	return Source{Kind: kind, Devices: k.Devices}, nil
}
