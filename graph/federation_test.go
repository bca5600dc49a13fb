package graph_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The gateway composes the pulsewire subgraph with a second subgraph
// (wards, served from Go) that extends Patient.

func newWardsEnv(t *testing.T, w *wards) *env {
	t.Helper()
	ws := startWards(t, w)
	// The tenant goes into the URL too.
	e := newEnv(t, withWards(ws.URL+"/t/{tenant}/graphql"))
	e.put(t, patientJSON("p1", "Doe", "Jane", "female", "1980-01-02"))
	e.put(t, patientJSON("p2", "Roe", "Rita", "female", "1975-05-06"))
	e.put(t, patientJSON("p3", "Poe", "Paul", "male", "1990-07-08"))
	return e
}

func TestGatewayJoinsSubgraphs(t *testing.T) {
	w := &wards{beds: map[string]wardBed{"p1": {"ICU", 3}, "p2": {"ICU", 4}, "p3": {"Cardio", 1}}}
	e := newWardsEnv(t, w)

	t.Run("our root, their fields", func(t *testing.T) {
		var got struct {
			Patient struct {
				ID   string
				Name []struct{ Family string }
				Ward string
				Bed  int
			}
		}
		e.gateway(t, e.sys, `{ patient(id: "p1") { id name { family } ward bed } }`, nil).decode(t, &got)
		want := got
		want.Patient.ID, want.Patient.Name, want.Patient.Ward, want.Patient.Bed = "p1", []struct{ Family string }{{"Doe"}}, "ICU", 3
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})

	t.Run("their root, our fields (_entities)", func(t *testing.T) {
		var got struct {
			WardCensus []struct {
				ID        string
				Ward      string
				Gender    string
				BirthDate string
			}
		}
		e.gateway(t, e.sys, `{ wardCensus(ward: "ICU") { id ward gender birthDate } }`, nil).decode(t, &got)
		want := []struct {
			ID        string
			Ward      string
			Gender    string
			BirthDate string
		}{{"p1", "ICU", "female", "1980-01-02"}, {"p2", "ICU", "female", "1975-05-06"}}
		if d := cmp.Diff(want, got.WardCensus); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})

	t.Run("authorization and tenant forwarded", func(t *testing.T) {
		rs := w.requests()
		if len(rs) == 0 {
			t.Fatal("the wards subgraph was not called")
		}
		for _, r := range rs {
			if got := r.header.Get("Authorization"); got != "Bearer "+e.sys {
				t.Errorf("Authorization = %q, want the caller's token", got)
			}
			if got := r.header.Get("X-Pulsewire-Tenant"); got != tenant {
				t.Errorf("X-Pulsewire-Tenant = %q, want %q", got, tenant)
			}
			if r.path != "/t/"+tenant+"/graphql" {
				t.Errorf("path %q, want the tenant's", r.path)
			}
		}
	})
}

func TestGatewayPartialData(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) *env
	}{
		{"subgraph down", func(t *testing.T) *env {
			w := &wards{}
			ws := startWards(t, w)
			e := newEnv(t, withWards(ws.URL+"/graphql"))
			ws.Close()
			return e
		}},
		{"subgraph too slow", func(t *testing.T) *env {
			w := &wards{beds: map[string]wardBed{"p1": {"ICU", 3}}, delay: time.Second}
			ws := startWards(t, w)
			return newEnv(t, withWards(ws.URL+"/graphql", 150))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.setup(t)
			e.put(t, patientJSON("p1", "Doe", "Jane", "female", "1980-01-02"))
			start := time.Now()
			r := e.gateway(t, e.sys, `{ patient(id: "p1") { id gender ward } }`, nil)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the request took %v: the subgraph timeout did not apply", took)
			}
			var got struct {
				Patient struct {
					ID     string
					Gender string
					Ward   *string
				}
			}
			if err := json.Unmarshal(r.Data, &got); err != nil {
				t.Fatalf("data %s: %v", r.Data, err)
			}
			if got.Patient.ID != "p1" || got.Patient.Gender != "female" || got.Patient.Ward != nil {
				t.Errorf("data = %s, want p1's own fields and ward null", r.Data)
			}
			if d := cmp.Diff([]string{"SUBGRAPH_UNAVAILABLE"}, r.codes()); d != "" {
				t.Fatalf("error codes (-want +got):\n%s\nerrors: %+v", d, r.Errors)
			}
			if got := r.Errors[0].Extensions["serviceName"]; got != "wards" {
				t.Errorf("serviceName = %v, want wards", got)
			}
			if d := cmp.Diff([]any{"patient"}, r.Errors[0].Path); d != "" {
				t.Errorf("error path (-want +got):\n%s", d)
			}
		})
	}
}
