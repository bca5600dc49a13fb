// Package ingesttest is the suite every ingestion store (tables.Store)
// passes: adapters/sqlite and adapters/postgres run it from their tests. It
// drives the real pipeline (server/ingest) over the store, so it checks the
// adapters' tables and transactions and the pipeline's use of them.
//
// Only tests import it.
package ingesttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/search"
)

// Tenants registered in every store the suite opens.
var Tenants = []string{"acme", "globex"}

// Open returns an empty, migrated store (closed by the caller's cleanup).
type Open func(t *testing.T) tables.Store

// T0 is the base time of the suite's readings.
var T0 = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

// PulseTemplate is a device template the built-ins lack ("pulseBpm"), used
// to show a dead letter replayed after a template is added.
const PulseTemplate = `{
  "name": "pulsebpm",
  "match": "$.pulseBpm",
  "deviceIdentifiers": [{"system": "urn:pulsewire:device-serial", "expression": "$.deviceId"}],
  "timestamp": "$.time",
  "values": [{"name": "bpm", "expression": "$.pulseBpm", "required": true, "unit": "/min"}],
  "output": {"vocab": "heart-rate", "value": "bpm"}
}`

// HR is a heart-rate payload of the built-in heartrate template.
func HR(dev string, at time.Time, bpm int) []byte {
	return fmt.Appendf(nil, `{"deviceId":%q,"time":%q,"heartRate":%d}`, dev, at.Format(time.RFC3339Nano), bpm)
}

type env struct {
	store tables.Store
	in    *ingest.Ingestor
}

func setup(t *testing.T, open Open) *env {
	t.Helper()
	s := open(t)
	for _, tn := range Tenants {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
	}
	builtin, err := device.Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	in := ingest.New(ingest.Config{Store: s, Registry: search.NewRegistry(), Templates: device.NewSet(builtin)})
	return &env{store: s, in: in}
}

func serialDevice(v string) string { return fhirobs.DeviceResourceID(fhirobs.SystemSerial, v) }

func (e *env) associate(t *testing.T, dev, patient string, start, end time.Time) *ingest.AssociationResult {
	t.Helper()
	r, err := e.in.Associate(context.Background(), "acme", ingest.Association{
		DeviceIdentifier: &device.Identifier{System: fhirobs.SystemSerial, Value: dev},
		Patient:          patient, Start: start, End: end,
	})
	if err != nil {
		t.Fatalf("Associate: %v", err)
	}
	return r
}

func (e *env) ingest(t *testing.T, payload []byte) ingest.Result {
	t.Helper()
	r, err := e.in.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"}, payload)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return r
}

// subjectOf returns the subject reference of an Observation.
func (e *env) subjectOf(t *testing.T, ref string) string {
	t.Helper()
	id := strings.TrimPrefix(ref, "Observation/")
	r, err := e.store.Read(context.Background(), "acme", "Observation", id)
	if err != nil {
		t.Fatalf("Read %s: %v", ref, err)
	}
	var o struct {
		Subject struct{ Reference string } `json:"subject"`
	}
	if err := json.Unmarshal(r.Body, &o); err != nil {
		t.Fatal(err)
	}
	return o.Subject.Reference
}

func (e *env) count(t *testing.T, typ string) int {
	t.Helper()
	res, err := e.store.Search(context.Background(), "acme", &fhir.Query{Type: typ, Count: 1, Total: true})
	if err != nil {
		t.Fatalf("Search %s: %v", typ, err)
	}
	return res.Total
}

func (e *env) held(t *testing.T, dev string) []*tables.Held {
	t.Helper()
	var hs []*tables.Held
	err := e.store.IngestTx(context.Background(), "acme", func(_ fhir.Tx, tb tables.Tables) error {
		var err error
		hs, err = tb.HeldReadings(context.Background(), serialDevice(dev))
		return err
	})
	if err != nil {
		t.Fatalf("HeldReadings: %v", err)
	}
	return hs
}

// Run runs the suite; each subtest opens its own store.
func Run(t *testing.T, open Open) {
	t.Run("StoredDuplicateHeldRejected", func(t *testing.T) {
		e := setup(t, open)
		e.associate(t, "mon-1", "p1", T0, time.Time{})
		stored := e.ingest(t, HR("mon-1", T0.Add(time.Minute), 72))
		dup := e.ingest(t, HR("mon-1", T0.Add(time.Minute), 72))
		held := e.ingest(t, HR("mon-2", T0.Add(time.Minute), 80))
		heldAgain := e.ingest(t, HR("mon-2", T0.Add(time.Minute), 80))
		rejected := e.ingest(t, []byte(`{"deviceId":"mon-1","somethingElse":1}`))

		obs := "Observation/" + strings.TrimPrefix(stored.Observations[0], "Observation/")
		want := []ingest.Status{ingest.StatusStored, ingest.StatusDuplicate, ingest.StatusHeld, ingest.StatusHeld, ingest.StatusRejected}
		got := []ingest.Status{stored.Status, dup.Status, held.Status, heldAgain.Status, rejected.Status}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{obs}, dup.Observations); diff != "" {
			t.Errorf("duplicate observations (-want +got):\n%s", diff)
		}
		if got := e.subjectOf(t, obs); got != "Patient/p1" {
			t.Errorf("subject = %s, want Patient/p1", got)
		}
		if n := e.count(t, "Observation"); n != 1 {
			t.Errorf("%d Observations, want 1", n)
		}
		if n := e.count(t, "Device"); n != 2 {
			t.Errorf("%d Devices, want 2 (mon-1 and mon-2, created on first sight)", n)
		}
		if n := len(e.held(t, "mon-2")); n != 1 {
			t.Errorf("%d held readings for mon-2, want 1", n)
		}
		if rejected.Reason == "" || rejected.DeadLetter == "" {
			t.Fatalf("rejected result %+v lacks reason or dead letter", rejected)
		}
		dl, err := e.in.DeadLetter(context.Background(), "acme", rejected.DeadLetter)
		if err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		if dl.Reason != rejected.Reason || string(dl.Payload) != `{"deviceId":"mon-1","somethingElse":1}` || dl.Source != "test" {
			t.Errorf("dead letter = %+v", dl)
		}
		if strings.Contains(dl.Reason, "mon-1") {
			t.Errorf("reason %q holds a payload value", dl.Reason)
		}
	})

	t.Run("HeldReleasedByTimestamp", func(t *testing.T) {
		e := setup(t, open)
		t1, t2, t3 := T0.Add(time.Hour), T0.Add(2*time.Hour), T0.Add(3*time.Hour)
		before := e.ingest(t, HR("mon-3", t1, 70))
		after := e.ingest(t, HR("mon-3", t3, 71))
		if before.Status != ingest.StatusHeld || after.Status != ingest.StatusHeld {
			t.Fatalf("statuses %s, %s; want held, held", before.Status, after.Status)
		}
		// p2 from t2 (open): takes the reading at t3 only.
		r := e.associate(t, "mon-3", "p2", t2, time.Time{})
		if r.Released != 1 {
			t.Errorf("first association released %d, want 1", r.Released)
		}
		// p1 from T0 until t2: takes the reading at t1.
		r = e.associate(t, "mon-3", "p1", T0, t2)
		if r.Released != 1 {
			t.Errorf("second association released %d, want 1", r.Released)
		}
		if n := len(e.held(t, "mon-3")); n != 0 {
			t.Errorf("%d readings still held", n)
		}
		obs := e.ingest(t, HR("mon-3", t1, 70)) // the same reading again: now a duplicate of the released one
		if obs.Status != ingest.StatusDuplicate {
			t.Fatalf("resent status %s, want duplicate", obs.Status)
		}
		if got := e.subjectOf(t, obs.Observations[0]); got != "Patient/p1" {
			t.Errorf("reading at t1 went to %s, want Patient/p1", got)
		}
		obs = e.ingest(t, HR("mon-3", t3, 71))
		if got := e.subjectOf(t, obs.Observations[0]); got != "Patient/p2" {
			t.Errorf("reading at t3 went to %s, want Patient/p2", got)
		}
	})

	t.Run("Reassignment", func(t *testing.T) {
		e := setup(t, open)
		t2 := T0.Add(2 * time.Hour)
		first := e.associate(t, "mon-4", "p1", T0, time.Time{})
		second := e.associate(t, "mon-4", "p2", t2, time.Time{})
		if diff := cmp.Diff([]string{first.DeviceUseStatement}, second.Ended); diff != "" {
			t.Errorf("reassignment ended (-want +got):\n%s", diff)
		}
		a := e.ingest(t, HR("mon-4", T0.Add(time.Hour), 60))
		b := e.ingest(t, HR("mon-4", t2.Add(time.Hour), 61))
		if got := e.subjectOf(t, a.Observations[0]); got != "Patient/p1" {
			t.Errorf("reading before reassignment went to %s, want Patient/p1", got)
		}
		if got := e.subjectOf(t, b.Observations[0]); got != "Patient/p2" {
			t.Errorf("reading after reassignment went to %s, want Patient/p2", got)
		}
		// The first association's history keeps both versions.
		id := strings.TrimPrefix(first.DeviceUseStatement, "DeviceUseStatement/")
		h, err := e.store.History(context.Background(), "acme", &fhir.HistoryQuery{Type: "DeviceUseStatement", ID: id, Count: 10})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		if len(h.Versions) != 2 {
			t.Errorf("%d versions of the ended association, want 2", len(h.Versions))
		}
		// Ending the current association: later readings are held.
		end := e.in
		if _, err := end.Associate(context.Background(), "acme", ingest.Association{
			DeviceIdentifier: &device.Identifier{System: fhirobs.SystemSerial, Value: "mon-4"}, End: t2.Add(2 * time.Hour),
		}); err != nil {
			t.Fatalf("ending association: %v", err)
		}
		if r := e.ingest(t, HR("mon-4", t2.Add(3*time.Hour), 62)); r.Status != ingest.StatusHeld {
			t.Errorf("reading after the end: %s, want held", r.Status)
		}
	})

	t.Run("RacingDuplicates", func(t *testing.T) {
		e := setup(t, open)
		e.associate(t, "mon-5", "p1", T0, time.Time{})
		const n = 8
		payload := HR("mon-5", T0.Add(time.Minute), 90)
		statuses := make([]ingest.Status, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := e.in.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"}, payload)
				statuses[i], errs[i] = r.Status, err
			}()
		}
		close(start)
		wg.Wait()
		stored := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("copy %d: %v", i, errs[i])
			}
			if statuses[i] == ingest.StatusStored {
				stored++
			} else if statuses[i] != ingest.StatusDuplicate {
				t.Errorf("copy %d: %s", i, statuses[i])
			}
		}
		if stored != 1 {
			t.Errorf("%d copies stored, want 1", stored)
		}
		if c := e.count(t, "Observation"); c != 1 {
			t.Errorf("%d Observations, want 1", c)
		}
	})

	t.Run("IDsAcrossUpgrade", func(t *testing.T) {
		// A store written by a release that gave readings hash-only ids,
		// then migrated: it records a time after all of them (here
		// T0+1h), and the readings before it keep their ids, so copies
		// sent again are duplicates (and a deleted one stays deleted).
		e := setup(t, open)
		e.associate(t, "mon-9", "p1", T0, time.Time{})
		old := ingest.New(ingest.Config{Store: legacyBefore{e.store, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
			Registry: search.NewRegistry(), Templates: e.in.Templates()})
		oldIngest := func(payload []byte) ingest.Result {
			t.Helper()
			r, err := old.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"}, payload)
			if err != nil {
				t.Fatalf("Ingest (old ids): %v", err)
			}
			return r
		}
		legacyID := regexp.MustCompile(`^Observation/obs-[0-9a-f]{20}$`)
		stored := oldIngest(HR("mon-9", T0.Add(time.Minute), 70))
		held := oldIngest(HR("mon-10", T0.Add(2*time.Minute), 71))
		deleted := oldIngest(HR("mon-9", T0.Add(3*time.Minute), 72))
		for _, r := range []ingest.Result{stored, deleted} {
			if r.Status != ingest.StatusStored || len(r.Observations) != 1 || !legacyID.MatchString(r.Observations[0]) {
				t.Fatalf("old release: %+v, want one hash-only id stored", r)
			}
		}
		err := e.store.Tx(context.Background(), "acme", func(tx fhir.Tx) error {
			_, err := tx.Delete(context.Background(), "Observation", strings.TrimPrefix(deleted.Observations[0], "Observation/"), 0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		e.in = ingest.New(ingest.Config{Store: legacyBefore{e.store, T0.Add(time.Hour)},
			Registry: search.NewRegistry(), Templates: e.in.Templates()})
		again := []ingest.Result{
			e.ingest(t, HR("mon-9", T0.Add(time.Minute), 70)),
			e.ingest(t, HR("mon-10", T0.Add(2*time.Minute), 71)),
			e.ingest(t, HR("mon-9", T0.Add(3*time.Minute), 72)),
		}
		want := []ingest.Result{
			{Status: ingest.StatusDuplicate, Observations: stored.Observations},
			{Status: held.Status},
			{Status: ingest.StatusDuplicate, Observations: deleted.Observations},
		}
		if diff := cmp.Diff(want, again); diff != "" {
			t.Errorf("copies after the upgrade (-want +got):\n%s", diff)
		}
		if hs := e.held(t, "mon-10"); len(hs) != 1 {
			t.Errorf("%d readings held for mon-10, want 1", len(hs))
		}

		// Readings after the recorded time get time-ordered ids: the
		// time in milliseconds, then the same hash.
		var ids []string
		for i, at := range []time.Time{T0.Add(2 * time.Hour), T0.Add(2*time.Hour + time.Millisecond), T0.Add(3 * time.Hour)} {
			r := e.ingest(t, HR("mon-9", at, 80+i))
			if r.Status != ingest.StatusStored || len(r.Observations) != 1 {
				t.Fatalf("reading %d: %+v", i, r)
			}
			id := strings.TrimPrefix(r.Observations[0], "Observation/")
			if prefix := fmt.Sprintf("obs-%012x", at.UnixMilli()); !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+20 {
				t.Errorf("reading %d: id %s, want %s and 20 hex digits", i, id, prefix)
			}
			ids = append(ids, id)
		}
		if !slices.IsSorted(ids) {
			t.Errorf("ids %v are not in the readings' time order", ids)
		}
		if c := e.count(t, "Observation"); c != 4 {
			t.Errorf("%d Observations, want 4 (one before the upgrade, three after)", c)
		}
	})

	t.Run("DeadLetterReplay", func(t *testing.T) {
		e := setup(t, open)
		e.associate(t, "mon-6", "p1", T0, time.Time{})
		payload := fmt.Appendf(nil, `{"deviceId":"mon-6","time":%q,"pulseBpm":65}`, T0.Add(time.Minute).Format(time.RFC3339))
		r := e.ingest(t, payload)
		if r.Status != ingest.StatusRejected {
			t.Fatalf("status %s, want rejected", r.Status)
		}
		list, err := e.in.DeadLetters(context.Background(), "acme", 0, 10)
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		if len(list) != 1 || list[0].ID != r.DeadLetter || list[0].Payload != nil {
			t.Fatalf("list = %+v, want the one dead letter without payload", list)
		}
		if _, err := e.in.Replay(context.Background(), "acme", r.DeadLetter); !fhir.IsKind(err, fhir.KindUnprocessable) {
			t.Fatalf("replay before the template exists: %v, want KindUnprocessable", err)
		}
		if _, err := e.in.Templates().Reload(fstest.MapFS{"pulsebpm.json": {Data: []byte(PulseTemplate)}}); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		rr, err := e.in.Replay(context.Background(), "acme", r.DeadLetter)
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		if rr.Status != ingest.StatusStored {
			t.Fatalf("replay status %s, want stored", rr.Status)
		}
		dl, err := e.in.DeadLetter(context.Background(), "acme", r.DeadLetter)
		if err != nil {
			t.Fatal(err)
		}
		if dl.ReplayedAt.IsZero() {
			t.Error("dead letter not marked replayed")
		}
		if _, err := e.in.DeadLetter(context.Background(), "acme", "dl-missing"); !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("missing dead letter: %v, want KindNotFound", err)
		}
	})

	t.Run("DeviceKeysPerTenant", func(t *testing.T) {
		e := setup(t, open)
		key, _, err := e.in.AddDeviceKey(context.Background(), "acme", []string{"mon-7"})
		if err != nil {
			t.Fatalf("AddDeviceKey: %v", err)
		}
		src, err := e.in.Authenticate(context.Background(), "acme", key, "http")
		if err != nil {
			t.Fatalf("Authenticate on own tenant: %v", err)
		}
		if diff := cmp.Diff([]string{"mon-7"}, src.Devices); diff != "" {
			t.Errorf("devices (-want +got):\n%s", diff)
		}
		if _, err := e.in.Authenticate(context.Background(), "globex", key, "http"); !fhir.IsKind(err, fhir.KindUnauthorized) {
			t.Errorf("key on another tenant: %v, want KindUnauthorized", err)
		}
		// A device key restricted to mon-7 cannot send for mon-8.
		r, err := e.in.Ingest(context.Background(), "acme", src, HR("mon-8", T0, 60))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != ingest.StatusRejected {
			t.Errorf("reading for another device: %s, want rejected", r.Status)
		}
	})

	t.Run("FailedTransactionWritesNothing", func(t *testing.T) {
		e := setup(t, open)
		boom := errors.New("boom")
		ctx := context.Background()
		err := e.store.IngestTx(ctx, "acme", func(tx fhir.Tx, tb tables.Tables) error {
			body := []byte(`{"resourceType":"Patient","id":"px"}`)
			if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "px", Body: body}); err != nil {
				return err
			}
			if err := tb.HoldReading(ctx, &tables.Held{ID: "obs-x", Device: serialDevice("mon-9"), Time: T0, Measurement: []byte(`{}`), Source: "test", Received: T0}); err != nil {
				return err
			}
			if err := tb.AddDeadLetter(ctx, &tables.DeadLetter{ID: "dl-x", Source: "test", Reason: "r", Payload: []byte("x"), Received: T0}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("IngestTx = %v, want boom", err)
		}
		if _, err := e.store.Read(ctx, "acme", "Patient", "px"); !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("Patient after rollback: %v, want KindNotFound", err)
		}
		if n := len(e.held(t, "mon-9")); n != 0 {
			t.Errorf("%d held readings after rollback", n)
		}
		if list, err := e.in.DeadLetters(ctx, "acme", 0, 10); err != nil || len(list) != 0 {
			t.Errorf("dead letters after rollback: %d, %v", len(list), err)
		}
	})

	t.Run("BatcherGroupCommit", func(t *testing.T) {
		e := setup(t, open)
		e.associate(t, "mon-1", "p1", T0, time.Time{})
		b := ingest.NewBatcher(e.in, ingest.BatcherConfig{MaxBatch: 50})
		// 120 distinct readings, each sent twice, 10 payloads that cannot be
		// mapped and 5 readings of a device with no patient: all at once.
		type sent struct {
			payload []byte
			want    ingest.Status
		}
		var all []sent
		for i := range 120 {
			p := HR("mon-1", T0.Add(time.Duration(i)*time.Second), 60+i%40)
			all = append(all, sent{p, ""}, sent{p, ""}) // stored or duplicate: one of each
		}
		for i := range 10 {
			all = append(all, sent{fmt.Appendf(nil, `{"deviceId":"mon-1","nothing":%d}`, i), ingest.StatusRejected})
		}
		for i := range 5 {
			all = append(all, sent{HR("mon-7", T0.Add(time.Duration(i)*time.Second), 70), ingest.StatusHeld})
		}
		results := make([]ingest.Result, len(all))
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, s := range all {
			wg.Go(func() {
				results[i], errs[i] = b.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"}, s.payload)
			})
		}
		wg.Wait()
		stored := map[string]int{}
		for i, s := range all {
			if errs[i] != nil {
				t.Fatalf("reading %d: %v", i, errs[i])
			}
			r := results[i]
			switch s.want {
			case "":
				if r.Status != ingest.StatusStored && r.Status != ingest.StatusDuplicate || len(r.Observations) != 1 {
					t.Fatalf("reading %d: %+v, want stored or duplicate with its Observation", i, r)
				}
				if r.Status == ingest.StatusStored {
					stored[r.Observations[0]]++
				}
			default:
				if r.Status != s.want {
					t.Fatalf("reading %d: %s, want %s", i, r.Status, s.want)
				}
			}
		}
		if len(stored) != 120 {
			t.Errorf("%d distinct Observations reported stored, want 120", len(stored))
		}
		for obs, n := range stored {
			if n != 1 {
				t.Errorf("%s reported stored %d times", obs, n)
			}
		}
		if n := e.count(t, "Observation"); n != 120 {
			t.Errorf("%d Observations in the store, want 120", n)
		}
		if n := len(e.held(t, "mon-7")); n != 5 {
			t.Errorf("%d held readings, want 5", n)
		}
		if list, err := e.in.DeadLetters(context.Background(), "acme", 0, 100); err != nil || len(list) != 10 {
			t.Errorf("%d dead letters (%v), want 10", len(list), err)
		}
		st := b.Stats()
		if st.Readings != int64(len(all)) || st.Retried != 0 {
			t.Errorf("stats %+v: want %d readings, none retried", st, len(all))
		}
		// Grouping happened: far fewer transactions than readings.
		if st.Batches > int64(len(all))/4 {
			t.Errorf("%d transactions for %d readings sent at once: not grouped", st.Batches, len(all))
		}
		t.Logf("%d readings in %d transactions", st.Readings, st.Batches)
	})

	t.Run("BatcherLanesKeepDevicesApart", func(t *testing.T) {
		e := setup(t, open)
		lt := &lockTracker{Store: e.store, held: map[string]*int{}}
		in := ingest.New(ingest.Config{Store: lt, Registry: search.NewRegistry(), Templates: e.in.Templates()})
		b := ingest.NewBatcher(in, ingest.BatcherConfig{MaxBatch: 16})
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for d := range 10 {
			e.associate(t, fmt.Sprintf("lane-%d", d), "p1", T0, time.Time{})
			for i := range 40 {
				wg.Go(func() {
					r, err := b.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"},
						HR(fmt.Sprintf("lane-%d", d), T0.Add(time.Duration(i)*time.Second), 70))
					if err == nil && r.Status != ingest.StatusStored {
						err = fmt.Errorf("reading %d of lane-%d: %s", i, d, r.Status)
					}
					errs <- err
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := e.count(t, "Observation"); n != 400 {
			t.Errorf("%d Observations, want 400", n)
		}
		// Every reading of a device goes through one lane, one transaction
		// at a time: no transaction took a lock another one held.
		if lt.overlaps != 0 {
			t.Errorf("%d lock keys taken while another transaction of the batcher held them", lt.overlaps)
		}
		if st := b.Stats(); st.Batches >= 400 {
			t.Errorf("stats %+v: readings were not grouped", st)
		}
	})

	t.Run("BatcherRetriesAlone", func(t *testing.T) {
		e := setup(t, open)
		// The store fails every transaction of more than one device (the
		// readings are of 40 devices): each reading of a failed batch is
		// then committed alone.
		fs := &failShared{Store: e.store}
		in := ingest.New(ingest.Config{Store: fs, Registry: search.NewRegistry(), Templates: e.in.Templates()})
		b := ingest.NewBatcher(in, ingest.BatcherConfig{Lanes: 1})
		var wg sync.WaitGroup
		results := make([]ingest.Result, 40)
		errs := make([]error, 40)
		for i := range 40 {
			wg.Go(func() {
				results[i], errs[i] = b.Ingest(context.Background(), "acme", ingest.Source{Kind: "test"},
					fmt.Appendf(nil, `{"deviceId":"mon-%d","time":%q,"patientId":"p1","heartRate":70}`, i, T0.Format(time.RFC3339)))
			})
		}
		wg.Wait()
		for i := range 40 {
			if errs[i] != nil || results[i].Status != ingest.StatusStored {
				t.Fatalf("reading %d: %+v, %v; want stored", i, results[i], errs[i])
			}
		}
		if n := e.count(t, "Observation"); n != 40 {
			t.Errorf("%d Observations, want 40", n)
		}
		if st := b.Stats(); st.Retried == 0 || fs.failed.Load() == 0 {
			t.Errorf("stats %+v, %d failed transactions: the retry path did not run", st, fs.failed.Load())
		}
	})
}

// lockTracker is a store that records which transaction holds which
// lock keys, and counts a key taken while another transaction holds it.
// legacyBefore is a store whose LegacyIDsBefore says before: what
// migration 0080 of each store records (its own tests check that).
type legacyBefore struct {
	tables.Store
	before time.Time
}

func (l legacyBefore) LegacyIDsBefore(context.Context) (time.Time, error) { return l.before, nil }

type lockTracker struct {
	tables.Store
	mu       sync.Mutex
	held     map[string]*int // key -> holding transaction
	overlaps int
}

func (l *lockTracker) IngestTx(ctx context.Context, tenant string, fn func(tx fhir.Tx, tb tables.Tables) error) error {
	me := new(int)
	defer func() {
		l.mu.Lock()
		for k, h := range l.held {
			if h == me {
				delete(l.held, k)
			}
		}
		l.mu.Unlock()
	}()
	return l.Store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		return fn(&trackLocks{Tx: tx, l: l, me: me}, tb)
	})
}

type trackLocks struct {
	fhir.Tx
	l  *lockTracker
	me *int
}

func (c *trackLocks) Lock(ctx context.Context, keys ...string) error {
	c.l.mu.Lock()
	for _, k := range keys {
		if h, ok := c.l.held[k]; ok && h != c.me {
			c.l.overlaps++
		}
		c.l.held[k] = c.me
	}
	c.l.mu.Unlock()
	return c.Tx.Lock(ctx, keys...)
}

// failShared is a store whose transactions fail when they lock more than
// one device (a batch of several devices' readings).
type failShared struct {
	tables.Store
	failed atomic.Int64
}

func (f *failShared) IngestTx(ctx context.Context, tenant string, fn func(tx fhir.Tx, tb tables.Tables) error) error {
	return f.Store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		return fn(&countLocks{Tx: tx, f: f}, tb)
	})
}

// countLocks fails a Lock call for more than one device.
type countLocks struct {
	fhir.Tx
	f *failShared
}

func (c *countLocks) Lock(ctx context.Context, keys ...string) error {
	if len(keys) > 1 {
		c.f.failed.Add(1)
		return errors.New("shared transaction refused by the test store")
	}
	return c.Tx.Lock(ctx, keys...)
}
