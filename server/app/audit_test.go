package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/adtin/adtintest"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestAuditAttributesModules: the writes of device ingestion over HTTP
// (association and readings) are audited as the module "ingest", those of
// inbound ADT as "adt", those of the FHIR API with authorization off as
// "anonymous"; /metrics counts them, and the chain verifies.
func TestAuditAttributesModules(t *testing.T) {
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			s := servertest.Start(t, b.Option(t), withADT(false))
			base := s.FHIRBase("acme")
			ctx := context.Background()

			put(t, base+"/Patient/pa", map[string]any{"resourceType": "Patient", "id": "pa", "active": true})
			assoc := fmt.Sprintf(`{"deviceIdentifier":{"system":%q,"value":"audit-mon"},"patient":"pa","start":%q}`,
				fhirobs.SystemSerial, adtintest.T0.Format(time.RFC3339))
			if code, body := post(t, s.URL+"/t/acme/ingest/associations", "", assoc); code != http.StatusOK {
				t.Fatalf("association: %d %s", code, body)
			}
			key, _, err := s.App.Ingestor().AddDeviceKey(ctx, "acme", nil)
			if err != nil {
				t.Fatal(err)
			}
			reading := "[" + string(ingesttest.HR("audit-mon", adtintest.T0.Add(time.Minute), 70)) + "]"
			if code, body := post(t, s.URL+"/t/acme/ingest/readings", key, reading); code != http.StatusOK || !strings.Contains(string(body), `"stored"`) {
				t.Fatalf("reading: %d %s", code, body)
			}
			c := mllpClient(t, s.App.ADTAddr("acme"))
			if _, ack := sendMLLP(t, c, adtintest.Msg{Event: "A04", ControlID: "AUD1", Time: adtintest.T0, MRN: "MRN0000077",
				Family: "SYNTHETIC", Visit: "VN00077"}.Bytes()); ack.Code != "AA" {
				t.Fatalf("A04: %+v", ack)
			}

			// Who wrote what, by resource type.
			written := map[string][]string{}
			n := 0
			for _, ae := range search(t, base+"/AuditEvent?_count=1000&action=C,U,D") {
				n++
				var doc struct {
					Agent []struct {
						Who struct{ Display string } `json:"who"`
					} `json:"agent"`
					Entity []struct {
						What struct{ Reference string } `json:"what"`
						Role struct{ Code string }      `json:"role"`
					} `json:"entity"`
				}
				b, _ := json.Marshal(ae)
				if err := json.Unmarshal(b, &doc); err != nil {
					t.Fatal(err)
				}
				var module, typ string
				for _, a := range doc.Agent {
					if a.Who.Display != "pulsewire" {
						module = a.Who.Display
					}
				}
				for _, e := range doc.Entity {
					if e.Role.Code == "4" {
						typ, _, _ = strings.Cut(e.What.Reference, "/")
					}
				}
				if !slices.Contains(written[typ], module) {
					written[typ] = append(written[typ], module)
					slices.Sort(written[typ])
				}
			}
			want := map[string][]string{
				"Patient":            {"adt", "anonymous"},
				"Encounter":          {"adt"},
				"Device":             {"ingest"},
				"DeviceUseStatement": {"ingest"},
				"Observation":        {"ingest"},
			}
			if d := cmp.Diff(want, written); d != "" {
				t.Errorf("modules that wrote each type (-want +got):\n%s", d)
			}

			s.FlushAudit(t)
			_, metrics := get(t, s.URL+"/metrics")
			if got := metric(t, string(metrics), "pulsewire_audit_written_total"); got != n {
				t.Errorf("pulsewire_audit_written_total = %d, want %d (the writes' AuditEvents)", got, n)
			}
			if got := metric(t, string(metrics), "pulsewire_audit_recorded_total"); got < 1 {
				t.Errorf("pulsewire_audit_recorded_total = %d, want the reads and searches above", got)
			}
			if !strings.Contains(string(metrics), "# TYPE pulsewire_audit_queued gauge") {
				t.Error("/metrics lacks the audit queue gauge")
			}

			rep, err := audit.Verify(ctx, s.App.Store().(chain.Store), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Break != nil || rep.Verified != rep.Heads.Events() || rep.Verified <= int64(n) {
				t.Errorf("verify: %d of %d events verified, break %v", rep.Verified, rep.Heads.Events(), rep.Break)
			}
		})
	}
}

// post sends body as JSON with the bearer token tok ("": none).
func post(t *testing.T, url, tok, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// metric returns the value of an unlabelled metric in a Prometheus text
// exposition.
func metric(t *testing.T, text, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("/metrics lacks %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}
