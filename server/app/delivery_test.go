package app_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// engine is an HL7 interface engine on loopback: it answers AA to every
// message and keeps what it got.
type engine struct {
	mu   sync.Mutex
	msgs []*hl7v2.Message
}

func (e *engine) handle(msg []byte) []byte {
	m, _, err := hl7v2.Parse(msg)
	if err != nil {
		return nil
	}
	e.mu.Lock()
	e.msgs = append(e.msgs, m)
	e.mu.Unlock()
	ack, err := hl7v2.NewACK(m, hl7v2.AckOptions{Code: hl7v2.AckAccept, ControlID: func() string { return "A" + m.ControlID() }})
	if err != nil {
		return nil
	}
	b, _ := hl7v2.Encode(ack)
	return b
}

func (e *engine) received() []*hl7v2.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*hl7v2.Message(nil), e.msgs...)
}

// mllpEngine serves e over MLLP and returns its address.
func mllpEngine(t *testing.T, e *engine) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mllp.Server{Handler: func(_ context.Context, msg []byte) []byte { return e.handle(msg) }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// httpsEngine serves e as HL7 over HTTPS; it returns the URL and a PEM file
// of its certificate.
func httpsEngine(t *testing.T, e *engine) (string, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "x-application/hl7-v2+er7" || r.Header.Get("Authorization") != "Bearer engine-token" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(e.handle(b))
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "engine.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/hl7", ca
}

func fhirPut(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %d %s", url, resp.StatusCode, msg)
	}
}

func heartRate(status string, bpm int) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":"hr-1","status":%q,
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},
			{"system":"urn:iso:std:iso:11073:10101","code":"147842","display":"MDC_ECG_HEART_RATE"}]},
		"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-03-01T10:00:00Z",
		"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, status, bpm)
}

// TestDeliveryThroughTheServer wires delivery from a destinations file:
// Observations written over the FHIR API reach an MLLP engine and an
// HL7-over-HTTPS engine as ORU^R01, a correction as OBX-11 C, and the
// counters show on /metrics.
func TestDeliveryThroughTheServer(t *testing.T) {
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			viaMLLP, viaHTTPS := &engine{}, &engine{}
			mllpAddr := mllpEngine(t, viaMLLP)
			httpsURL, ca := httpsEngine(t, viaHTTPS)
			profile := `{"kind": "pcd01", "sendingApplication": {"namespace": "PULSEWIRE"}, "authorities": {"urn:oid:1.2.3.4.5": {"namespace": "HOSP"}}}`
			file := filepath.Join(t.TempDir(), "destinations.json")
			if err := os.WriteFile(file, []byte(`{"destinations": [
				{"tenant": "acme", "name": "engine", "profile": `+profile+`, "address": "`+mllpAddr+`"},
				{"tenant": "acme", "name": "epic-https", "profile": `+profile+`, "transport": "https", "address": "`+httpsURL+`",
				 "tls": {"caFile": "`+ca+`"}, "headers": {"Authorization": "Bearer engine-token"}}
			]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			s := servertest.Start(t, b.Option(t), func(c *app.Config) {
				c.Delivery = app.DeliveryConfig{DestinationsFile: file, Poll: 20 * time.Millisecond, StatsEvery: 50 * time.Millisecond}
			})
			base := s.FHIRBase("acme")
			fhirPut(t, base+"/Patient/p1", `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.3.4.5","value":"MRN77"}],"name":[{"family":"Synthetic"}]}`)
			fhirPut(t, base+"/Observation/hr-1", heartRate("final", 72))
			fhirPut(t, base+"/Observation/hr-1", heartRate("final", 73))   // not a correction: not sent
			fhirPut(t, base+"/Observation/hr-1", heartRate("amended", 74)) // a correction

			for _, e := range []*engine{viaMLLP, viaHTTPS} {
				deadline := time.Now().Add(10 * time.Second)
				for len(e.received()) < 2 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				type row struct{ Type, Obs, Value, Status string }
				var got []row
				for _, m := range e.received() {
					got = append(got, row{m.MessageType().String(), m.Value("OBR", 3, 1, 1, 1), m.Value("OBX", 5, 1, 1, 1), m.Value("OBX", 11, 1, 1, 1)})
				}
				want := []row{{"ORU^R01^ORU_R01", "hr-1", "72", "F"}, {"ORU^R01^ORU_R01", "hr-1", "74", "C"}}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("engine received (-want +got):\n%s", d)
				}
			}

			var metrics string
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				_, body := get(t, s.URL+"/metrics")
				metrics = string(body)
				if strings.Contains(metrics, `pulsewire_delivery_queue_depth{destination="engine",tenant="acme"} 0`) &&
					strings.Contains(metrics, `pulsewire_delivery_accepted_total{destination="epic-https",tenant="acme"} 2`) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, want := range []string{
				`pulsewire_delivery_accepted_total{destination="engine",tenant="acme"} 2`,
				`pulsewire_delivery_accepted_total{destination="epic-https",tenant="acme"} 2`,
				`pulsewire_delivery_queue_depth{destination="engine",tenant="acme"} 0`,
				`pulsewire_delivery_ack_latency_seconds_count{destination="engine",tenant="acme"} 2`,
				`pulsewire_delivery_breaker_state{destination="engine",tenant="acme"} 0`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s:\n%s", want, grep(metrics, "pulsewire_delivery"))
				}
			}
			if strings.Contains(metrics, "MRN77") || strings.Contains(metrics, "hr-1") {
				t.Error("metrics carry patient data or resource ids")
			}
		})
	}
}

// TestDeliveryRefusesUnknownTenants: a destination of an unregistered
// tenant fails the start, rather than silently sending nothing.
func TestDeliveryRefusesUnknownTenants(t *testing.T) {
	file := filepath.Join(t.TempDir(), "destinations.json")
	body, _ := json.Marshal(map[string]any{"destinations": []any{map[string]any{
		"tenant": "initech", "name": "engine", "address": "127.0.0.1:1",
		"profile": map[string]any{"kind": "pcd01", "sendingApplication": map[string]string{"namespace": "PW"}},
	}}})
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), Tenants: []string{"acme"},
		Delivery: app.DeliveryConfig{DestinationsFile: file}})
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("New = %v, want an unregistered-tenant error", err)
	}
}
