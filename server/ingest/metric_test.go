package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"testing/fstest"

	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// channelTemplate reads the channel that measured the value, so ingestion
// makes a DeviceMetric for it.
const channelTemplate = `{
  "name": "spo2-channel",
  "match": "$.spo2Channel",
  "deviceIdentifiers": [{"system": "urn:pulsewire:device-serial", "expression": "$.deviceId"}],
  "timestamp": "$.time",
  "patientId": "$.patientId",
  "channel": "$.spo2Channel",
  "values": [{"name": "spo2", "expression": "$.value", "required": true, "unit": "%"}],
  "output": {"vocab": "spo2", "value": "spo2"}
}`

// TestDeviceMetricPerChannel: a reading whose template names its channel
// creates one DeviceMetric per device channel, on first sight, with the
// vital's MDC type and the Device as source.
func TestDeviceMetricPerChannel(t *testing.T) {
	srv := servertest.Start(t)
	in := srv.App.Ingestor()
	if _, err := in.Templates().Reload(fstest.MapFS{"spo2-channel.json": {Data: []byte(channelTemplate)}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, time := range []string{"2026-03-01T08:00:00Z", "2026-03-01T08:01:00Z"} {
		payload := `{"deviceId":"SN-5","time":"` + time + `","patientId":"p1","spo2Channel":"chan-1","value":97}`
		r, err := in.Ingest(ctx, "acme", ingest.Source{Kind: "http"}, []byte(payload))
		if err != nil || r.Status != ingest.StatusStored {
			t.Fatalf("reading %d: %+v, %v", i, r, err)
		}
	}
	dev := fhirobs.DeviceResourceID(fhirobs.SystemSerial, "SN-5")
	resp, err := http.Get(srv.FHIRBase("acme") + "/DeviceMetric?source=Device/" + dev)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Type struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"type"`
				Source struct{ Reference string } `json:"source"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if len(b.Entry) != 1 {
		t.Fatalf("%d DeviceMetrics for the device, want 1 (one channel, two readings)", len(b.Entry))
	}
	m := b.Entry[0].Resource
	if m.ID != ingest.MetricID(dev, "chan-1", "spo2") || m.Source.Reference != "Device/"+dev {
		t.Errorf("metric id %s source %s", m.ID, m.Source.Reference)
	}
	if len(m.Type.Coding) == 0 || m.Type.Coding[0].Code != "150456" {
		t.Errorf("metric type %+v, want MDC 150456 (MDC_PULS_OXIM_SAT_O2)", m.Type.Coding)
	}
}
