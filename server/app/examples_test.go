package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/pulsewire/pulsewire/conformance/examples"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestOfficialExamplesThroughREST writes every official R4 example of the
// types we serve through the REST API (PUT Type/id, update-as-create) and
// reads it back: what comes back must say exactly what the example says,
// except meta.versionId and meta.lastUpdated, which the server owns. Known
// failures are examples.Skip, each with its reason; AuditEvent examples are
// skipped too: clients cannot write AuditEvents (server/audit).
func TestOfficialExamplesThroughREST(t *testing.T) {
	dir := examples.RequireDir(t)
	exs, err := examples.Load(dir, examples.Types)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) { roundTripExamples(t, exs, b.Option(t)) })
	}
}

func roundTripExamples(t *testing.T, exs []examples.Example, backend servertest.Option) {
	s := servertest.Start(t, backend)
	base := s.FHIRBase("acme")
	ran := 0
	for _, ex := range exs {
		if _, skip := examples.Skip[ex.Name]; skip {
			continue
		}
		if ex.Type == "AuditEvent" {
			t.Run(ex.Name, func(t *testing.T) { t.Skip("AuditEvents are append-only and recorded by the server") })
			continue
		}
		ran++
		t.Run(ex.Name, func(t *testing.T) {
			var head struct{ ID string }
			if err := json.Unmarshal(ex.Body, &head); err != nil || head.ID == "" {
				t.Fatalf("example has no id (%v)", err)
			}
			url := base + "/" + ex.Type + "/" + head.ID
			req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(ex.Body))
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT: %s: %s", resp.Status, b)
			}
			resp, err = http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %s: %s", resp.Status, got)
			}
			if d := examples.SemanticDiff(withoutServerMeta(t, ex.Body), withoutServerMeta(t, got)); d != "" {
				t.Errorf("read back differs from the example (-example +read):\n%s", d)
			}
		})
	}
	if ran < 100 {
		t.Fatalf("ran %d examples, want at least 100", ran)
	}
}

// withoutServerMeta drops meta.versionId and meta.lastUpdated (and meta when
// nothing else is left in it).
func withoutServerMeta(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if raw, ok := m["meta"]; ok {
		var meta map[string]json.RawMessage
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		} else {
			m["meta"], _ = json.Marshal(meta)
		}
	}
	out, _ := json.Marshal(m)
	return out
}
