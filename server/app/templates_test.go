package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestTemplatesReloadWithoutRestart: a payload no template maps is rejected;
// once a template for it is written into the templates directory, the
// running server maps it; a broken template file later leaves the working
// templates in force.
func TestTemplatesReloadWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, servertest.WithTemplates(dir, 20*time.Millisecond))
	ctx := context.Background()
	key, _, err := s.App.Ingestor().AddDeviceKey(ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Each reading has its own time (minute), so none is a duplicate of another.
	send := func(minute int) string {
		t.Helper()
		body := `{"readings":[{"deviceId":"SN-1","time":"2026-03-01T08:` + fmt.Sprintf("%02d", minute) +
			`:00Z","patientId":"p1","pulseBpm":60}]}`
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/t/acme/ingest/readings", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Results []struct{ Status string } `json:"results"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != 1 {
			t.Fatalf("ingest response %d: %v %+v", resp.StatusCode, err, out)
		}
		return out.Results[0].Status
	}
	if got := send(1); got != "rejected" {
		t.Fatalf("before the template: %s, want rejected", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "pulsebpm.json"), []byte(pulseTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, func() string { return send(2) }, "stored")
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"name": "broken", "match": "$[`), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // several reload periods
	if got := send(3); got != "stored" {
		t.Errorf("after a broken template file: %s, want stored (the working templates stay)", got)
	}
}

// pulseTemplate maps {"pulseBpm": 60}, which no built-in template does.
const pulseTemplate = `{
  "name": "pulsebpm",
  "match": "$.pulseBpm",
  "deviceIdentifiers": [{"system": "urn:pulsewire:device-serial", "expression": "$.deviceId"}],
  "timestamp": "$.time",
  "patientId": "$.patientId",
  "values": [{"name": "bpm", "expression": "$.pulseBpm", "required": true, "unit": "/min"}],
  "output": {"vocab": "heart-rate", "value": "bpm"}
}`

func waitStatus(t *testing.T, f func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s after 5 s, want %s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
