// Package storesqltest checks, on a real store, the searches that
// server/storesql compiles into its driven shape (the page is chosen on the
// index tables, then joined to resources): duplicates among the driving
// index rows, sorting with missing values, paging, and the parameters and
// sorts that live on resources itself (_id, _lastUpdated); and the layout
// of versions the two stores share (RunVersions, Snapshot).
//
// Only the tests of adapters/sqlite and adapters/postgres import it; the
// shared behaviour of every store is server/fhir/storetest's.
package storesqltest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Tenant is the tenant RunDriven writes to; newStore must register it.
const Tenant = "driven"

func day(d int) time.Time { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC) }

// RunDriven loads a small set of Observations into a fresh store from
// newStore and checks driven searches over it.
func RunDriven(t *testing.T, newStore func(t *testing.T) fhir.Store) {
	t.Helper()
	ctx := context.Background()
	s := newStore(t)
	ref := func(id string) fhir.IndexEntry {
		return fhir.IndexEntry{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: id}
	}
	code := func(sys, c string) fhir.IndexEntry {
		return fhir.IndexEntry{Param: "code", Type: fhir.ParamToken, System: sys, Code: c}
	}
	date := func(d int) fhir.IndexEntry {
		return fhir.IndexEntry{Param: "date", Type: fhir.ParamDate, Lo: day(d), Hi: day(d).Add(time.Second)}
	}
	obs := []struct {
		id    string
		index []fhir.IndexEntry
	}{
		// Two codings with the same code: two rows for "code=a".
		{"o1", []fhir.IndexEntry{ref("p1"), code("s1", "a"), code("s2", "a"), date(1)}},
		{"o2", []fhir.IndexEntry{ref("p1"), code("s1", "a"), date(3)}},
		{"o3", []fhir.IndexEntry{ref("p1"), code("s1", "a"), code("", "b")}}, // no date: sorts last
		{"o4", []fhir.IndexEntry{ref("p1"), code("s1", "b"), date(5)}},
		{"o5", []fhir.IndexEntry{ref("p2"), code("s1", "a"), date(6)}},
		// The subject twice: two rows for "subject=Patient/p1".
		{"o6", []fhir.IndexEntry{ref("p1"), ref("p1"), code("s1", "a"), date(2)}},
	}
	stamps := map[string]time.Time{}
	for _, o := range obs {
		err := s.Tx(ctx, Tenant, func(tx fhir.Tx) error {
			r, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: o.id, Body: []byte(`{"resourceType":"Observation"}`), Index: o.index})
			if err == nil {
				stamps[o.id] = r.LastUpdated
			}
			return err
		})
		if err != nil {
			t.Fatalf("Put %s: %v", o.id, err)
		}
	}
	subject := fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}
	codeA := fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "a"}}}
	latest := []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}
	tests := []struct {
		name     string
		q        fhir.Query
		want     []string
		wantMore bool
	}{
		{"latest, page 1", fhir.Query{Params: []fhir.Param{subject, codeA}, Sort: latest, Count: 2},
			[]string{"o2", "o6"}, true},
		{"latest, page 2", fhir.Query{Params: []fhir.Param{subject, codeA}, Sort: latest, Count: 2, Offset: 2},
			[]string{"o1", "o3"}, false},
		{"latest, system|code", fhir.Query{Params: []fhir.Param{subject,
			{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s2", HasSystem: true, Code: "a"}, {System: "s1", HasSystem: true, Code: "b"}}}}, Sort: latest, Count: 10},
			[]string{"o4", "o1"}, false},
		{"latest, |code", fhir.Query{Params: []fhir.Param{subject,
			{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{HasSystem: true, Code: "b"}}}}, Sort: latest, Count: 10},
			[]string{"o3"}, false},
		{"latest, system| and a second code parameter", fhir.Query{Params: []fhir.Param{subject, codeA,
			{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s2", HasSystem: true}}}}, Sort: latest, Count: 10},
			[]string{"o1"}, false},
		{"oldest first", fhir.Query{Params: []fhir.Param{subject, codeA}, Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate}}, Count: 10},
			[]string{"o1", "o6", "o2", "o3"}, false},
		{"duplicate driving rows", fhir.Query{Params: []fhir.Param{codeA}, Count: 10},
			[]string{"o1", "o2", "o3", "o5", "o6"}, false},
		{"duplicate subject rows", fhir.Query{Params: []fhir.Param{subject}, Count: 10},
			[]string{"o1", "o2", "o3", "o4", "o6"}, false},
		{"_id", fhir.Query{Params: []fhir.Param{subject, {Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "o4"}, {Code: "o5"}, {Code: "o6"}}}}, Count: 10},
			[]string{"o4", "o6"}, false},
		{"_lastUpdated and its sort", fhir.Query{Params: []fhir.Param{codeA,
			{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixGe, Lo: stamps["o3"], Hi: stamps["o3"].Add(time.Microsecond)}}}},
			Sort: []fhir.SortKey{{Param: "_lastUpdated", Desc: true}}, Count: 10},
			[]string{"o6", "o5", "o3"}, false},
		{"_id descending", fhir.Query{Params: []fhir.Param{subject}, Sort: []fhir.SortKey{{Param: "_id", Desc: true}}, Count: 3},
			[]string{"o6", "o4", "o3"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Type = "Observation"
			res, err := s.Search(ctx, Tenant, &q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			var got []string
			for _, r := range res.Resources {
				got = append(got, r.ID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if res.HasMore != tc.wantMore {
				t.Errorf("HasMore = %v, want %v", res.HasMore, tc.wantMore)
			}
		})
	}
}
