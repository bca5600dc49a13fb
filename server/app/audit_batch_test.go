package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestIngestBatchIsOneAuditEvent: a batch of readings is recorded as one
// AuditEvent (create, by module ingest) that lists every resource it
// created and every patient, in the batch's transaction — not one event per
// reading, which would cost more than the readings.
func TestIngestBatchIsOneAuditEvent(t *testing.T) {
	for _, be := range servertest.Backends {
		t.Run(be.Name, func(t *testing.T) {
			srv := servertest.Start(t, be.Option(t))
			ctx := context.Background()
			var payloads [][]byte
			for i := range 20 {
				p := ingesttest.HR(fmt.Sprintf("batch-mon-%d", i%4), ingesttest.T0.Add(time.Duration(i)*time.Minute), 60+i)
				// Give each reading a patient, so it is stored, not held.
				var m map[string]any
				if err := json.Unmarshal(p, &m); err != nil {
					t.Fatal(err)
				}
				m["patientId"] = fmt.Sprintf("batch-pat-%d", i%4)
				b, _ := json.Marshal(m)
				payloads = append(payloads, b)
			}
			rs, err := srv.App.Ingestor().IngestBatch(ctx, "acme", ingest.Source{Kind: "http"}, payloads)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				if r.Status != ingest.StatusStored {
					t.Fatalf("reading %d: %s %s", i, r.Status, r.Reason)
				}
			}
			resp, err := http.Get(srv.FHIRBase("acme") + "/AuditEvent?action=C&_count=100")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var bundle struct {
				Entry []struct {
					Resource struct {
						Agent []struct {
							Who struct {
								Display string `json:"display"`
							} `json:"who"`
						} `json:"agent"`
						Entity []struct {
							What struct {
								Reference string `json:"reference"`
							} `json:"what"`
						} `json:"entity"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(b, &bundle); err != nil {
				t.Fatal(err)
			}
			if len(bundle.Entry) != 1 {
				t.Fatalf("%d create AuditEvents for one batch, want 1", len(bundle.Entry))
			}
			var obs, devices, patients int
			for _, e := range bundle.Entry[0].Resource.Entity {
				switch ref := e.What.Reference; {
				case strings.HasPrefix(ref, "Observation/"):
					obs++
				case strings.HasPrefix(ref, "Device/"):
					devices++
				case strings.HasPrefix(ref, "Patient/"):
					patients++
				}
			}
			if obs != 20 || devices != 4 || patients != 4 {
				t.Errorf("the batch's AuditEvent lists %d Observations, %d Devices, %d patients; want 20, 4, 4", obs, devices, patients)
			}
			if !strings.Contains(string(b), "ingest") {
				t.Errorf("the batch's AuditEvent does not name module ingest")
			}
		})
	}
}
