package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestConditionalCreateRace: many clients racing to create the same patient
// with If-None-Exist make exactly one resource, on every backend (on
// PostgreSQL this exercises the advisory lock, not SQLite's single writer).
func TestConditionalCreateRace(t *testing.T) {
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			s := servertest.Start(t, b.Option(t))
			base := s.FHIRBase("acme")
			const n = 40
			body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:test:mrn","value":"race-1"}]}`)
			var (
				wg            sync.WaitGroup
				mu            sync.Mutex
				created, same int
				ids           = map[string]bool{}
			)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, base+"/Patient", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/fhir+json")
					req.Header.Set("If-None-Exist", "identifier=urn:test:mrn|race-1")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var p struct{ ID string }
					json.Unmarshal(b, &p)
					mu.Lock()
					defer mu.Unlock()
					switch resp.StatusCode {
					case http.StatusCreated:
						created++
					case http.StatusOK:
						same++
					default:
						t.Errorf("status %d: %s", resp.StatusCode, b)
					}
					ids[p.ID] = true
				}()
			}
			wg.Wait()
			if created != 1 || same != n-1 || len(ids) != 1 {
				t.Errorf("created %d, matched existing %d, distinct ids %d; want 1, %d, 1", created, same, len(ids), n-1)
			}
			resp, err := http.Get(base + "/Patient?identifier=urn:test:mrn|race-1&_summary=count")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var bundle struct{ Total int }
			json.NewDecoder(resp.Body).Decode(&bundle)
			if bundle.Total != 1 {
				t.Errorf("%d patients with the identifier, want 1", bundle.Total)
			}
		})
	}
}
