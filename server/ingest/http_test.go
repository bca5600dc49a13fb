package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

func post(t *testing.T, url, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHTTPIngest drives the HTTP endpoints end to end on both stores.
func TestHTTPIngest(t *testing.T) {
	for _, be := range servertest.Backends {
		t.Run(be.Name, func(t *testing.T) {
			srv := servertest.Start(t, be.Option(t))
			in := srv.App.Ingestor()
			key, _, err := in.AddDeviceKey(context.Background(), "acme", nil)
			if err != nil {
				t.Fatalf("AddDeviceKey: %v", err)
			}
			base := srv.URL + "/t/acme/ingest"
			t0 := ingesttest.T0

			st, body := post(t, base+"/associations", "", `{"deviceIdentifier":{"system":"urn:pulsewire:device-serial","value":"gw-1"},"patient":"p1","start":"`+t0.Format(time.RFC3339)+`"}`)
			if st != http.StatusOK {
				t.Fatalf("association: %d %s", st, body)
			}

			batch := `{"readings":[` + string(ingesttest.HR("gw-1", t0.Add(time.Minute), 70)) + `,` +
				string(ingesttest.HR("gw-1", t0.Add(time.Minute), 70)) + `,` +
				string(ingesttest.HR("gw-2", t0.Add(time.Minute), 71)) + `,{"nothing":true}]}`

			// A key of tenant acme on tenant globex's URL: refused, nothing written.
			st, body = post(t, srv.URL+"/t/globex/ingest/readings", key, batch)
			if st != http.StatusUnauthorized || !bytes.Contains(body, []byte("OperationOutcome")) {
				t.Errorf("acme key on globex: %d %s, want 401 OperationOutcome", st, body)
			}
			if st, body = get(t, srv.FHIRBase("globex")+"/Observation?_summary=count"); !bytes.Contains(body, []byte(`"total":0`)) {
				t.Errorf("globex Observations after refused batch: %d %s", st, body)
			}
			if st, _ = post(t, base+"/readings", "", batch); st != http.StatusUnauthorized {
				t.Errorf("no key: %d, want 401", st)
			}

			st, body = post(t, base+"/readings", key, batch)
			if st != http.StatusOK {
				t.Fatalf("readings: %d %s", st, body)
			}
			var resp struct {
				Results []struct {
					Index       int    `json:"index"`
					Status      string `json:"status"`
					Observation string `json:"observation"`
					Reason      string `json:"reason"`
					DeadLetter  string `json:"deadLetter"`
				} `json:"results"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			var got []string
			for _, r := range resp.Results {
				got = append(got, r.Status)
			}
			if diff := cmp.Diff([]string{"stored", "duplicate", "held", "rejected"}, got); diff != "" {
				t.Fatalf("statuses (-want +got):\n%s", diff)
			}
			if resp.Results[0].Observation == "" || resp.Results[0].Observation != resp.Results[1].Observation {
				t.Errorf("stored/duplicate observations: %q, %q", resp.Results[0].Observation, resp.Results[1].Observation)
			}
			if st, body = get(t, srv.FHIRBase("acme")+"/"+resp.Results[0].Observation); st != http.StatusOK || !bytes.Contains(body, []byte(`"Patient/p1"`)) {
				t.Errorf("stored Observation: %d %s", st, body)
			}

			// Dead letters: list, inspect, replay (still unmappable: 422).
			dl := resp.Results[3].DeadLetter
			if st, body = get(t, base+"/dead-letters"); st != http.StatusOK || !bytes.Contains(body, []byte(dl)) {
				t.Errorf("list: %d %s", st, body)
			}
			if st, body = get(t, base+"/dead-letters/"+dl); st != http.StatusOK || !bytes.Contains(body, []byte(`"payload":{"nothing":true}`)) {
				t.Errorf("inspect: %d %s", st, body)
			}
			if st, body = post(t, base+"/dead-letters/"+dl+"/$replay", "", ""); st != http.StatusUnprocessableEntity {
				t.Errorf("replay: %d %s, want 422", st, body)
			}
			if st, _ = get(t, base+"/dead-letters/dl-nope"); st != http.StatusNotFound {
				t.Errorf("missing dead letter: %d, want 404", st)
			}

			// Batch limits: a body that is not a batch.
			if st, _ = post(t, base+"/readings", key, `"x"`); st != http.StatusBadRequest {
				t.Errorf("bad body: %d, want 400", st)
			}
		})
	}
}
