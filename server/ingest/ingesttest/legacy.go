package ingesttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/search"
)

// Remigrate undoes a store's migration 0080 (drops observation_ids and
// forgets it was applied) and migrates again, as on upgrading a store that
// holds what the test wrote.
type Remigrate func(t *testing.T, s tables.Store)

// RunLegacyIDs checks the time migration 0080 records (LegacyIDsBefore):
// later than every reading stored, deleted or held with a hash-only id,
// not earlier than the migration when there is one, zero when none.
func RunLegacyIDs(t *testing.T, open Open, remigrate Remigrate) {
	// Future times, so that they, not the migration's clock, decide.
	future := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Second)
	const legacy, legacy2, timeOrdered = "obs-0123456789abcdef0123", "obs-fedcba9876543210fedc", "obs-018df907e2600700354ab62e044e8005"
	cases := []struct {
		name  string
		write func(t *testing.T, s tables.Store)
		want  func(migrated time.Time) time.Time // the bound; migrated is a time just before remigrating
		clock bool                               // want is the migration's clock: got lies between it and now
	}{
		{"empty", func(*testing.T, tables.Store) {}, func(time.Time) time.Time { return time.Time{} }, false},
		{"no hash-only ids", func(t *testing.T, s tables.Store) {
			putObservation(t, s, timeOrdered, future)
			putObservation(t, s, "client-chosen-id", future.Add(time.Hour))
			hold(t, s, timeOrdered+"1", future)
		}, func(time.Time) time.Time { return time.Time{} }, false},
		{"stored", func(t *testing.T, s tables.Store) {
			putObservation(t, s, legacy, future)
			putObservation(t, s, legacy2, future.Add(-time.Hour))
			putObservation(t, s, timeOrdered, future.Add(time.Hour))
		}, func(time.Time) time.Time {
			// The end of a second-precision dateTime's range, and a µs.
			return future.Add(time.Second + time.Microsecond)
		}, false},
		{"held", func(t *testing.T, s tables.Store) {
			putObservation(t, s, legacy2, future)
			hold(t, s, legacy, future.Add(time.Minute+time.Millisecond))
		}, func(time.Time) time.Time { return future.Add(time.Minute + time.Millisecond + time.Microsecond) }, false},
		{"deleted", func(t *testing.T, s tables.Store) {
			putObservation(t, s, legacy2, future)
			putObservation(t, s, legacy, future.Add(time.Minute))
			err := s.Tx(context.Background(), "acme", func(tx fhir.Tx) error {
				_, err := tx.Delete(context.Background(), "Observation", legacy, 0)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}, func(time.Time) time.Time {
			// A second after its effective time (its fraction), and a µs.
			return future.Add(time.Minute + time.Second + time.Microsecond)
		}, false},
		{"past only: the migration's time", func(t *testing.T, s tables.Store) {
			putObservation(t, s, legacy, T0)
		}, func(migrated time.Time) time.Time {
			return migrated.Truncate(time.Millisecond) // SQLite's clock counts milliseconds
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			for _, tn := range Tenants {
				if err := s.EnsureTenant(context.Background(), tn); err != nil {
					t.Fatalf("EnsureTenant: %v", err)
				}
			}
			c.write(t, s)
			migrated := time.Now()
			remigrate(t, s)
			got, err := s.LegacyIDsBefore(context.Background())
			if err != nil {
				t.Fatalf("LegacyIDsBefore: %v", err)
			}
			want := c.want(migrated)
			if c.clock {
				if got.Before(want) || got.After(time.Now()) {
					t.Errorf("LegacyIDsBefore = %v, want the migration's time (between %v and now)", got, want)
				}
				return
			}
			if !got.Equal(want) {
				t.Errorf("LegacyIDsBefore = %v, want %v", got, want)
			}
		})
	}
}

// putObservation writes an Observation effective at (whole seconds), as
// ingestion does.
func putObservation(t *testing.T, s tables.Store, id string, at time.Time) {
	t.Helper()
	body := fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"status":"final",`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},`+
		`"effectiveDateTime":%q,"valueQuantity":{"value":70,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		id, at.Format(time.RFC3339))
	idx, err := search.NewRegistry().Extract("Observation", body)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(context.Background(), "acme", func(tx fhir.Tx) error {
		_, _, err := tx.Put(context.Background(), &fhir.Write{Type: "Observation", ID: id, Body: body, Index: idx})
		return err
	})
	if err != nil {
		t.Fatalf("Put %s: %v", id, err)
	}
}

func hold(t *testing.T, s tables.Store, id string, at time.Time) {
	t.Helper()
	err := s.IngestTx(context.Background(), "globex", func(_ fhir.Tx, tb tables.Tables) error {
		return tb.HoldReading(context.Background(), &tables.Held{ID: id, Device: "dev-1", Time: at,
			Measurement: []byte(`{}`), Source: "test", Received: at})
	})
	if err != nil {
		t.Fatalf("HoldReading: %v", err)
	}
}
