package graph_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/graph"
)

// References are resolved in batches: the store calls of a request do not
// grow with the number of resources in a list (no N+1).

func TestReferencesResolvedInBatches(t *testing.T) {
	var counting *countingStore
	e := newEnv(t,
		withStore(func(s graph.Store) graph.Store { counting = newCountingStore(s); return counting }),
		// A generous batch window keeps the test deterministic on a busy
		// machine; the claim under test is one batch, not its timing.
		withLimits(graph.Limits{BatchWait: msec(50)}))
	for p := range 4 {
		e.put(t, patientJSON(fmt.Sprintf("p%d", p), "Doe", "A", "female", "1980-01-01"))
	}
	for d := range 3 {
		e.put(t, deviceJSON(fmt.Sprintf("d%d", d), ""))
	}
	// p0 uses d0 now and wears d3.
	e.put(t, dusJSON("u0", "d0", "p0", "2024-01-01T00:00:00Z", ""))
	e.put(t, deviceJSON("d3", "p0"))
	// 24 readings of 4 patients by 3 devices; device d0 made 8 of them.
	for i := range 24 {
		e.put(t, obsJSON(fmt.Sprintf("o%02d", i), fmt.Sprintf("p%d", i%4), vitalCat, heartCd,
			fmt.Sprintf("2024-03-01T10:%02d:00Z", i), fmt.Sprintf("d%d", i%3), 70))
	}
	user := e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs")

	tests := []struct {
		name  string
		query string
		want  map[string]int
		// The references resolved ("subject" and "serialNumber" members),
		// to make sure the query did resolve what it batched.
		subjects, devices int
		entities          bool // the query resolves the entities of p0…p3
	}{
		{
			name:  "a patient's observations: subject and device",
			query: `{ patient(id: "p0") { observations(first: 50) { nodes { id subject { id gender } device { id serialNumber } } } } }`,
			// The patient (1 read), its observations (1 search), their
			// devices (1 batch); subjects are the patient already loaded.
			want:     map[string]int{"Read Patient": 1, "Search Observation": 1, "ReadMany Device": 1},
			subjects: 6, devices: 6,
		},
		{
			name:  "a device's readings of several patients",
			query: `{ device(id: "d0") { readings(first: 50) { id subject { id gender } } } }`,
			// The device (1 read), its readings (1 search), their 4
			// subjects (1 batch).
			want:     map[string]int{"Read Device": 1, "Search Observation": 1, "ReadMany Patient": 1},
			subjects: 8,
		},
		{
			name: "issue 6's query: a patient's latest vitals and devices",
			query: `{ patient(id: "p0") { id name { family } observations(category: ["vital-signs"], first: 10) { nodes { id effective valueQuantity { value } } }
				devices { id serialNumber } } }`,
			// The patient (1 read), its observations (1 search), its
			// device associations and the devices it wears (2 searches
			// in one store call, one round trip; the second brings the
			// worn devices along), the device in use (1 read: a batch of
			// every device in use in the request).
			want: map[string]int{"Read Patient": 1, "Search Observation": 1, "SearchMany DeviceUseStatement+Device": 1,
				"Read Device": 1},
			devices: 2,
		},
		{
			name:     "entities of another subgraph",
			query:    `query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { id gender } } }`,
			want:     map[string]int{"ReadMany Patient": 1},
			entities: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counting.reset()
			var vars map[string]any
			if tt.entities {
				var reps []map[string]any
				for p := range 4 {
					reps = append(reps, map[string]any{"__typename": "Patient", "id": fmt.Sprintf("p%d", p)})
				}
				vars = map[string]any{"r": reps}
			}
			r := e.subgraph(t, user, tt.query, vars)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %+v", r.Errors)
			}
			if d := cmp.Diff(tt.want, counting.reset()); d != "" {
				t.Errorf("store calls (-want +got):\n%s", d)
			}
			if !tt.entities {
				doc := compact(t, r.Data)
				if s, d := countMembers(t, doc, "subject"), countMembers(t, doc, "serialNumber"); s != tt.subjects || d != tt.devices {
					t.Errorf("resolved %d subjects and %d devices, want %d and %d: %s", s, d, tt.subjects, tt.devices, r.Data)
				}
			} else if n := len(idsIn(t, compact(t, r.Data))); n != 4 {
				t.Errorf("resolved %d entities, want 4: %s", n, r.Data)
			}
		})
	}
}

// countMembers counts the non-null members named name in a JSON document.
func countMembers(t testing.TB, doc, name string) int {
	t.Helper()
	n := 0
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == name && x != nil {
					n++
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	walk(v)
	return n
}
