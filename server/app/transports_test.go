package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

func uniq(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// total is the _summary=count total of a FHIR search.
func total(t *testing.T, url string) int {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var b struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return b.Total
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMQTTAndNATSIngest publishes readings to the real Mosquitto and NATS
// and reads the Observations back through the FHIR API. A payload whose
// device differs from the topic's (subject's) device is dead-lettered.
func TestMQTTAndNATSIngest(t *testing.T) {
	servertest.RequireTCP(t, "Mosquitto", "127.0.0.1:1883")
	servertest.RequireTCP(t, "NATS", "127.0.0.1:4222")
	u := uniq(t)
	prefix, root, stream := "pwt"+u, "pwt"+u, "PWT_"+u
	js := servertest.JetStream(t, stream)
	srv := servertest.Start(t,
		servertest.WithMQTT(app.MQTTConfig{Broker: servertest.MQTTBroker, Group: "g" + u, ClientID: "pw-" + u,
			TopicPrefix: prefix, SessionExpiry: time.Minute}),
		servertest.WithNATS(app.NATSConfig{URL: servertest.NATSURL, Stream: stream, Subject: root + ".*.devices.*.readings",
			Durable: "ingest", CreateStream: true}),
	)
	srv.WaitIngestReady(t, 10*time.Second)
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	ctx := context.Background()
	t0 := ingesttest.T0
	for _, dev := range []string{"mon-m", "mon-n"} {
		if _, err := srv.App.Ingestor().Associate(ctx, "acme", ingest.Association{
			DeviceIdentifier: &device.Identifier{System: fhirobs.SystemSerial, Value: dev}, Patient: "p1", Start: t0,
		}); err != nil {
			t.Fatalf("Associate %s: %v", dev, err)
		}
	}

	pub := servertest.MQTTPublisher(t, "pub-"+u)
	mqttPub := func(dev string, payload []byte) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := pub.Publish(pctx, &paho.Publish{QoS: 1, Topic: prefix + "/acme/devices/" + dev + "/readings", Payload: payload}); err != nil {
			t.Fatalf("mqtt publish: %v", err)
		}
	}
	natsPub := func(dev string, payload []byte) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := js.Publish(pctx, root+".acme.devices."+dev+".readings", payload); err != nil {
			t.Fatalf("nats publish: %v", err)
		}
	}
	mqttPub("mon-m", ingesttest.HR("mon-m", t0.Add(time.Minute), 70))
	mqttPub("mon-m", ingesttest.HR("mon-m", t0.Add(time.Minute), 70))   // duplicate
	mqttPub("mon-x", ingesttest.HR("mon-m", t0.Add(2*time.Minute), 71)) // device mismatch
	natsPub("mon-n", ingesttest.HR("mon-n", t0.Add(time.Minute), 80))
	natsPub("mon-n", ingesttest.HR("mon-n", t0.Add(2*time.Minute), 81))
	natsPub("mon-y", ingesttest.HR("mon-n", t0.Add(3*time.Minute), 82)) // device mismatch

	base := srv.FHIRBase("acme")
	waitUntil(t, "3 Observations of Patient/p1", 15*time.Second, func() bool {
		return total(t, base+"/Observation?subject=Patient/p1&_summary=count") >= 3
	})
	waitUntil(t, "2 dead letters", 15*time.Second, func() bool {
		_, body := get(t, srv.URL+"/t/acme/ingest/dead-letters")
		return bytes.Count(body, []byte(`"id":"dl-`)) >= 2
	})
	// Let redeliveries, if any, land before the final count.
	time.Sleep(300 * time.Millisecond)
	if n := total(t, base+"/Observation?_summary=count"); n != 3 {
		t.Errorf("Observations: %d, want 3 (one per distinct reading)", n)
	}
	devM := fhirobs.DeviceResourceID(fhirobs.SystemSerial, "mon-m")
	devN := fhirobs.DeviceResourceID(fhirobs.SystemSerial, "mon-n")
	got := map[string]int{
		"mqtt": total(t, base+"/Observation?device=Device/"+devM+"&_summary=count"),
		"nats": total(t, base+"/Observation?device=Device/"+devN+"&_summary=count"),
	}
	if diff := cmp.Diff(map[string]int{"mqtt": 1, "nats": 2}, got); diff != "" {
		t.Errorf("Observations per transport (-want +got):\n%s", diff)
	}
	_, body := get(t, srv.URL+"/t/acme/ingest/dead-letters")
	var dls struct {
		DeadLetters []struct{ Source, Reason string } `json:"deadLetters"`
	}
	if err := json.Unmarshal(body, &dls); err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, d := range dls.DeadLetters {
		sources = append(sources, d.Source)
		if !strings.Contains(d.Reason, "may not send for this device") {
			t.Errorf("dead letter reason %q: want the device mismatch", d.Reason)
		}
	}
	if diff := cmp.Diff([]string{"mqtt", "nats"}, sorted(sources)); diff != "" {
		t.Errorf("dead letter sources (-want +got):\n%s", diff)
	}
	// The transports' counters are on /metrics: one rejected reading each.
	_, metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{"pulsewire_ingest_mqtt_rejected_total 1\n", "pulsewire_ingest_nats_rejected_total 1\n",
		"pulsewire_ingest_mqtt_handled_total ", "pulsewire_ingest_mqtt_max_queued "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Every reading went through the shared-transaction batcher, and the
	// time from arrival to commit was recorded per transport (three
	// readings each: stored, duplicate or a second one, dead-lettered).
	for name, least := range map[string]float64{
		"pulsewire_ingest_batch_readings_total":                     6,
		`pulsewire_ingest_ack_latency_seconds_count{source="mqtt"}`: 3,
		`pulsewire_ingest_ack_latency_seconds_count{source="nats"}`: 3,
	} {
		if v, ok := metricValue(metrics, name); !ok || v < least {
			t.Errorf("/metrics %s = %v (present %v), want >= %v", name, v, ok, least)
		}
	}
}

// metricValue is the value of the sample name (with its labels) in a
// Prometheus text exposition.
func metricValue(exposition []byte, name string) (float64, bool) {
	for line := range strings.SplitSeq(string(exposition), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestSweepReleasesAfterRESTAssociation: a reading held for lack of a
// patient is released by the periodic sweep once a DeviceUseStatement is
// written through the plain FHIR REST API (which takes no ingest lock) —
// for a tenant configured at start and for one registered later.
func TestSweepReleasesAfterRESTAssociation(t *testing.T) {
	for _, be := range servertest.Backends {
		t.Run(be.Name, func(t *testing.T) {
			srv := servertest.Start(t, be.Option(t), servertest.WithSweep(100*time.Millisecond))
			ctx := context.Background()
			if err := app.AddTenant(ctx, srv.App.Store(), "initech"); err != nil {
				t.Fatal(err)
			}
			in := srv.App.Ingestor()
			t0 := ingesttest.T0
			for _, tenant := range []string{"acme", "initech"} {
				r, err := in.Ingest(ctx, tenant, ingest.Source{Kind: "http"}, ingesttest.HR("mon-s", t0.Add(time.Minute), 66))
				if err != nil {
					t.Fatalf("Ingest: %v", err)
				}
				if r.Status != ingest.StatusHeld {
					t.Fatalf("%s: status %q, want held", tenant, r.Status)
				}
				dev := fhirobs.DeviceResourceID(fhirobs.SystemSerial, "mon-s")
				dus := `{"resourceType":"DeviceUseStatement","status":"active","subject":{"reference":"Patient/p9"},` +
					`"device":{"reference":"Device/` + dev + `"},"timingPeriod":{"start":"` + t0.Format(time.RFC3339) + `"}}`
				resp, err := http.Post(srv.FHIRBase(tenant)+"/DeviceUseStatement", "application/fhir+json", strings.NewReader(dus))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("%s: POST DeviceUseStatement: %d", tenant, resp.StatusCode)
				}
				start := time.Now()
				waitUntil(t, tenant+": the held reading released", 5*time.Second, func() bool {
					return total(t, srv.FHIRBase(tenant)+"/Observation?subject=Patient/p9&_summary=count") == 1
				})
				t.Logf("%s: released %v after the association was written", tenant, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
