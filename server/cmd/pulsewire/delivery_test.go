package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// seedDeadLetter writes a Patient, an Observation and its outbox entry for
// destination "engine" of acme into the SQLite store in dir, and
// dead-letters the entry as an AR would. It returns the entry id.
func seedDeadLetter(t *testing.T, dir string) int64 {
	t.Helper()
	ctx := context.Background()
	s, err := app.OpenStore(ctx, app.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.(outbox.Store)
	if err := st.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	err = st.Tx(ctx, "acme", func(tx fhir.Tx) error {
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1",
			Body: []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4.5","value":"MRN77"}]}`)}); err != nil {
			return err
		}
		obs, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "hr-1", Body: []byte(`{"resourceType":"Observation","status":"final",
			"code":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"147842"}]},"subject":{"reference":"Patient/p1"},
			"effectiveDateTime":"2026-03-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)})
		if err != nil {
			return err
		}
		return tx.(outbox.Enqueuer).Enqueue(ctx, obs.LastUpdated, outbox.Item{Destination: "engine", Patient: "Patient/p1",
			Type: "Observation", ResourceID: "hr-1", Version: obs.VersionID, Event: outbox.EventNew})
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := st.Claim(ctx, "acme", "engine", time.Now(), outbox.ClaimOptions{Limit: 1, PerPatient: 1, Lease: time.Minute})
	if err != nil || len(es) != 1 {
		t.Fatalf("Claim = %v, %v", es, err)
	}
	if err := st.Settle(ctx, "acme", time.Now(), []outbox.Outcome{{ID: es[0].ID, Result: outbox.DeadLetter, Error: "AR (ERR 103 Table value not found)"}}); err != nil {
		t.Fatal(err)
	}
	return es[0].ID
}

func TestOutboxCommands(t *testing.T) {
	dir := t.TempDir()
	id := seedDeadLetter(t, dir)
	dests := filepath.Join(dir, "destinations.json")
	if err := os.WriteFile(dests, []byte(`{"destinations": [{"tenant": "acme", "name": "engine", "address": "127.0.0.1:1",
		"profile": {"kind": "pcd01", "sendingApplication": {"namespace": "PULSEWIRE"}}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		args = append([]string{"outbox"}, append(args, "--data-dir", dir, "--tenant", "acme")...)
		if err := run(context.Background(), args, noEnv, &out, io.Discard); err != nil {
			t.Fatalf("pulsewire %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	var listed []outbox.Entry
	if err := json.Unmarshal([]byte(cli("list")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != id || listed[0].State != outbox.Dead || listed[0].LastError != "AR (ERR 103 Table value not found)" {
		t.Fatalf("outbox list = %+v, want the dead letter", listed)
	}
	shown := cli("show", strconv.FormatInt(id, 10), "--message", "--destinations", dests)
	head, er7, _ := strings.Cut(shown, "}\n")
	var e outbox.Entry
	if err := json.Unmarshal([]byte(head+"}"), &e); err != nil || e.ResourceID != "hr-1" {
		t.Fatalf("outbox show printed %q (%v)", shown, err)
	}
	m, _, err := hl7v2.Parse([]byte(strings.TrimSpace(er7)))
	if err != nil || m.Value("PID", 3, 1, 1, 1) != "MRN77" || m.ControlID() != "PW"+strings.ToUpper(strconv.FormatInt(id, 36)) {
		t.Errorf("outbox show --message printed %q (%v)", er7, err)
	}

	cli("pause", "--destination", "engine")
	if got := cli("replay", strconv.FormatInt(id, 10)); !strings.Contains(got, "1 dead letters queued again") {
		t.Errorf("outbox replay printed %q", got)
	}
	var stats []outbox.DestinationStats
	if err := json.Unmarshal([]byte(cli("stats")), &stats); err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 {
		t.Fatalf("outbox stats = %+v", stats)
	}
	stats[0].Oldest = time.Time{}
	if d := cmp.Diff(outbox.DestinationStats{Destination: "engine", Pending: 1, Paused: true}, stats[0]); d != "" {
		t.Errorf("stats after replay and pause (-want +got):\n%s", d)
	}
	cli("resume", "--destination", "engine")
	if err := json.Unmarshal([]byte(cli("stats")), &stats); err != nil || stats[0].Paused {
		t.Errorf("stats after resume = %+v, %v", stats, err)
	}
	if err := run(context.Background(), []string{"outbox", "replay", "--data-dir", dir, "--tenant", "acme", strconv.FormatInt(id, 10)}, noEnv, io.Discard, io.Discard); !fhir.IsKind(err, fhir.KindConflict) {
		t.Errorf("replaying a pending entry = %v, want a conflict", err)
	}
	if err := run(context.Background(), []string{"outbox", "pause", "--data-dir", dir, "--tenant", "acme"}, noEnv, io.Discard, io.Discard); err == nil {
		t.Error("pause without --destination succeeded")
	}
}
