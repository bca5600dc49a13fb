package graph_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// For the same data and token, GraphQL returns the same resources as the
// REST search with the same parameters, in the same order.

func equivalenceData(t *testing.T, e *env) {
	t.Helper()
	pats := []struct{ id, family, given, gender, birth string }{
		{"p1", "Doe", "Jane", "female", "1980-01-02"},
		{"p2", "Doe", "John", "male", "1975-05-06"},
		{"p3", "Roe", "Rita", "female", "1990-07-08"},
		{"p4", "Poe", "Paul", "male", "2001-11-12"},
		{"p5", "Moe", "Mia", "female", "1969-03-04"},
	}
	for _, p := range pats {
		e.put(t, patientJSON(p.id, p.family, p.given, p.gender, p.birth))
	}
	e.put(t, deviceJSON("d1", ""))
	codes := []struct{ cat, code string }{{vitalCat, heartCd}, {vitalCat, tempCd}, {labCat, glucose}}
	for i := range 12 {
		c := codes[i%3]
		e.put(t, obsJSON(fmt.Sprintf("o%02d", i), "p1", c.cat, c.code, fmt.Sprintf("2024-03-%02dT10:00:00Z", i+1), "d1", float64(60+i)))
	}
	e.put(t, obsJSON("other", "p2", vitalCat, heartCd, "2024-03-05T10:00:00Z", "d1", 80))
}

func TestEquivalenceWithREST(t *testing.T) {
	e := newEnv(t)
	equivalenceData(t, e)
	user := e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs")

	tests := []struct {
		name      string
		query     string // its result's ids, in document order, are compared
		restType  string
		restQuery string
	}{
		{"patients, fhirQuery", `{ patients(fhirQuery: "gender=female") { nodes { id } } }`,
			"Patient", "gender=female"},
		{"patients, filter", `{ patients(filter: {family: "Doe", gender: "male"}) { nodes { id } } }`,
			"Patient", "family=Doe&gender=male"},
		{"patients, birthdate prefix and sort", `{ patients(filter: {birthdate: "ge1975"}, fhirQuery: "_sort=-birthdate") { nodes { id } } }`,
			"Patient", "birthdate=ge1975&_sort=-birthdate"},
		{"patient by identifier", `{ patientByIdentifier(identifier: "urn:mrn|mrn-p3") { id } }`,
			"Patient", "identifier=urn:mrn|mrn-p3"},
		{"observations by code and category", `{ patient(id: "p1") { observations(code: ["` + loinc + `|` + heartCd + `", "` + tempCd + `"], category: ["` + vitalCat + `"]) { nodes { id } } } }`,
			"Observation", "subject=Patient/p1&code=" + loinc + "|" + heartCd + "," + tempCd + "&category=" + vitalCat + "&_sort=-date"},
		{"observations by date range", `{ patient(id: "p1") { observations(date: {from: "2024-03-03", to: "2024-03-07"}, sort: DATE_ASC) { nodes { id } } } }`,
			"Observation", "subject=Patient/p1&date=ge2024-03-03&date=le2024-03-07&_sort=date"},
		{"device readings", `{ device(id: "d1") { readings(first: 5) { id } } }`,
			"Observation", "device=Device/d1&_sort=-date&_count=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.gateway(t, user, tt.query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %+v", r.Errors)
			}
			got := idsIn(t, compact(t, r.Data))
			want := e.restIDs(t, user, tt.restType, tt.restQuery)
			if tt.name == "device readings" {
				want = want[:5] // REST pages on; readings are one page
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-rest +graphql):\n%s", d)
			}
			if len(want) == 0 {
				t.Error("the REST search matches nothing: the case proves nothing")
			}
		})
	}

	t.Run("lastN is Observation/$lastn", func(t *testing.T) {
		var got struct {
			Patient struct{ LastN []struct{ ID string } }
		}
		e.gateway(t, user, `{ patient(id: "p1") { lastN(max: 2, category: ["`+vitalCat+`"]) { id } } }`, nil).decode(t, &got)
		var b struct {
			Entry []struct {
				Resource struct{ ID string }
			}
		}
		e.restGet(t, user, e.srv.FHIRBase(tenant)+"/Observation/$lastn?"+queryString("patient", "p1", "category", vitalCat, "max", "2"), &b)
		var want, have []string
		for _, en := range b.Entry {
			want = append(want, en.Resource.ID)
		}
		for _, o := range got.Patient.LastN {
			have = append(have, o.ID)
		}
		if d := cmp.Diff(want, have); d != "" || len(want) != 4 {
			t.Errorf("(-rest +graphql):\n%s (want 4 results)", d)
		}
	})

	t.Run("the same resource JSON", func(t *testing.T) {
		var got struct {
			Observation struct{ Resource json.RawMessage }
		}
		e.gateway(t, user, `{ observation(id: "o03") { resource } }`, nil).decode(t, &got)
		var rest json.RawMessage
		e.restGet(t, user, e.srv.FHIRBase(tenant)+"/Observation/o03", &rest)
		if d := cmp.Diff(compact(t, rest), compact(t, got.Observation.Resource)); d != "" {
			t.Errorf("(-rest +graphql):\n%s", d)
		}
	})

	t.Run("cursor paging walks the whole search", func(t *testing.T) {
		var all []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			var got struct {
				Patient struct {
					Observations struct {
						Edges []struct {
							Cursor string
							Node   struct{ ID string }
						}
						PageInfo struct {
							HasNextPage     bool
							HasPreviousPage bool
							EndCursor       string
						}
						TotalCount int
					}
				}
			}
			e.gateway(t, user, `query($after: String) { patient(id: "p1") { observations(first: 5, after: $after) {
				edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } totalCount } } }`,
				map[string]any{"after": nilIfEmpty(after)}).decode(t, &got)
			c := got.Patient.Observations
			if c.TotalCount != 12 {
				t.Errorf("totalCount = %d, want 12", c.TotalCount)
			}
			if c.PageInfo.HasPreviousPage != (pages > 0) {
				t.Errorf("page %d: hasPreviousPage = %v", pages, c.PageInfo.HasPreviousPage)
			}
			for _, ed := range c.Edges {
				all = append(all, ed.Node.ID)
			}
			if !c.PageInfo.HasNextPage {
				break
			}
			after = c.PageInfo.EndCursor
		}
		want := e.restIDs(t, user, "Observation", "subject=Patient/p1&_sort=-date")
		if d := cmp.Diff(want, all); d != "" {
			t.Errorf("(-rest +graphql pages):\n%s", d)
		}
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
