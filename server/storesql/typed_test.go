package storesql

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestTypedConfig: a derived parameter is stored either in the idx_*
// tables or as exactly one typed parameter (typedStorage cannot compile a
// mix); column names are unique; only SQLite is generic throughout.
func TestTypedConfig(t *testing.T) {
	fhir.EachDerived(func(typ, code string, d fhir.Derived) {
		tt := Postgres.Typed(typ)
		if tt == nil {
			return
		}
		typed := 0
		for _, f := range d.From {
			if _, ok := tt.Params[f]; ok {
				typed++
			}
		}
		if typed > 0 && len(d.From) != 1 {
			t.Errorf("%s %s is derived from %v, of which %d typed: a typed derived parameter must be stored as one", typ, code, d.From, typed)
		}
	})
	for _, typ := range Postgres.TypedTypes() {
		if tt := Postgres.Typed(typ); tt.CodeRows != "" {
			// Code rows copy the codes, the reference's group and the
			// date's upper bound of the typed row.
			ref, ok := tt.Params[tt.CodeRowsRef]
			if !tt.Codes || !ok || ref.Type != fhir.ParamReference || tt.Params[RefDateParam].Type != fhir.ParamDate {
				t.Errorf("%s: code rows need codes, a typed reference %q and a typed date", typ, tt.CodeRowsRef)
			}
		}
		seen := map[string]bool{}
		for _, c := range Postgres.Typed(typ).Columns() {
			if seen[c.Name] || c.Name == "tenant" || c.Name == "id" {
				t.Errorf("%s: column %s twice", typ, c.Name)
			}
			seen[c.Name] = true
		}
	}
	if got := SQLite.TypedTypes(); len(got) != 0 {
		t.Errorf("SQLite has typed tables %v", got)
	}
	if !slices.Equal(Postgres.TypedTypes(), []string{"AuditEvent", "Observation"}) {
		t.Errorf("PostgreSQL typed types = %v", Postgres.TypedTypes())
	}
}

func TestTypedSearchSQL(t *testing.T) {
	const page = "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM "
	const join = " JOIN resources r ON r.tenant = $%d AND r.type = $%d AND r.id = k.id WHERE r.deleted = 0"
	tests := []struct {
		name     string
		q        fhir.Query
		wantSQL  string
		wantArgs []any
	}{
		{"latest vitals of one code: the patient's code rows of that code newest first", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true, Code: "c"}}},
				{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}},
			GenericPlanHint + page + "(SELECT d.id, d.date_hi FROM (SELECT x.id, x.date_hi FROM search_observation_code x WHERE x.tenant = $1 AND x.subject_id = $2 AND x.subject_type = $3 AND x.code = $4) d" +
				" WHERE EXISTS (SELECT 1 FROM search_observation x WHERE x.tenant = $5 AND x.id = d.id AND x.status_code IS NOT NULL AND ((x.status_code = $6)) OFFSET 0)" +
				" ORDER BY d.date_hi DESC NULLS LAST, d.id ASC LIMIT $7 OFFSET $8) k" + fmtJoin(join, 9) + " ORDER BY k.date_hi DESC NULLS LAST, k.id ASC",
			[]any{"t1", "p1", "Patient", "s\tc", "t1", "final", int64(11), int64(0), "t1", "Observation"}},
		{"latest vitals of either of two codes: the patient's typed rows newest first, filtered by their codes", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true, Code: "c"}, {System: "s", HasSystem: true, Code: "c2"}}},
				{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}},
			GenericPlanHint + page + "(SELECT d.id, d.date_hi FROM (SELECT x.id, x.date_hi AS date_hi, x.codes FROM search_observation x WHERE x.tenant = $1 AND x.subject_id = $2 AND x.subject_type = $3) d" +
				" WHERE d.codes && ARRAY[$4, $5]::text[]" +
				" AND EXISTS (SELECT 1 FROM search_observation x WHERE x.tenant = $6 AND x.id = d.id AND x.status_code IS NOT NULL AND ((x.status_code = $7)) OFFSET 0)" +
				" ORDER BY d.date_hi DESC NULLS LAST, d.id ASC LIMIT $8 OFFSET $9) k" + fmtJoin(join, 10) + " ORDER BY k.date_hi DESC NULLS LAST, k.id ASC",
			[]any{"t1", "p1", "Patient", "s\tc", "s\tc2", "t1", "final", int64(11), int64(0), "t1", "Observation"}},
		{"an unindexed typed parameter does not drive: the generic code does; status:not probes the typed row", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "status", Type: fhir.ParamToken, Modifier: "not", Values: []fhir.Value{{Code: "final"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
			}},
			page + "(SELECT d.id FROM (SELECT x.id FROM idx_token x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3 AND ((x.code = $4))) d" +
				" WHERE NOT EXISTS (SELECT 1 FROM search_observation x WHERE x.tenant = $5 AND x.id = d.id AND x.status_code IS NOT NULL AND ((x.status_code = $6)))" +
				" GROUP BY d.id ORDER BY d.id ASC LIMIT $7 OFFSET $8) k" + fmtJoin(join, 9) + " ORDER BY k.id ASC",
			[]any{"t1", "Observation", "code", "c", "t1", "final", int64(11), int64(0), "t1", "Observation"}},
		{"quantity by unit code matches the coded unit or the display unit; sort by the date column", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{{Prefix: fhir.PrefixGt, Num: 5, Code: "mmHg"}}}},
			Sort:   []fhir.SortKey{{Param: "date", Type: fhir.ParamDate}}},
			page + "(SELECT d.id, (SELECT x.date_lo FROM search_observation x WHERE x.tenant = $1 AND x.id = d.id) AS s0" +
				" FROM (SELECT x.id FROM search_observation x WHERE x.tenant = $2 AND x.value_quantity_num IS NOT NULL" +
				" AND ((x.value_quantity_num > $3 AND (x.value_quantity_code = $4 OR x.value_quantity_unit = $5)))) d" +
				" GROUP BY d.id ORDER BY s0 ASC NULLS LAST, d.id ASC LIMIT $6 OFFSET $7) k" + fmtJoin(join, 8) + " ORDER BY k.s0 ASC NULLS LAST, k.id ASC",
			[]any{"t1", "t1", 5.0, "mmHg", "mmHg", int64(11), int64(0), "t1", "Observation"}},
		{"date:missing=true and device:missing=false: the presence columns", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "date", Type: fhir.ParamDate, Modifier: "missing", Missing: boolp(true)},
				{Name: "device", Type: fhir.ParamReference, Modifier: "missing", Missing: boolp(false)},
			}},
			page + "(SELECT d.id FROM (SELECT x.id FROM search_observation x WHERE x.tenant = $1 AND x.device_id IS NOT NULL) d" +
				" WHERE NOT EXISTS (SELECT 1 FROM search_observation x WHERE x.tenant = $2 AND x.id = d.id AND x.date_lo IS NOT NULL)" +
				" GROUP BY d.id ORDER BY d.id ASC LIMIT $3 OFFSET $4) k" + fmtJoin(join, 5) + " ORDER BY k.id ASC",
			[]any{"t1", "t1", int64(11), int64(0), "t1", "Observation"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := Search(Postgres, "t1", &tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantSQL, sql); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	// The generic layout is untouched for an untyped type.
	sql, _, err := Search(Postgres, "t1", &fhir.Query{Type: "Encounter", Params: []fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "finished"}}}}})
	if err != nil || !strings.Contains(sql, "FROM idx_token x") || strings.Contains(sql, "search_") {
		t.Errorf("Encounter search: %v\n%s", err, sql)
	}
	// A parameter whose query type is not its typed column's is refused.
	if _, _, err := Search(Postgres, "t1", &fhir.Query{Type: "Observation", Params: []fhir.Param{{Name: "status", Type: fhir.ParamString, Values: []fhir.Value{{String: "x"}}}}}); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("status as a string: %v, want KindInvalid", err)
	}
}

func fmtJoin(join string, n int) string {
	return strings.Replace(strings.Replace(join, "%d", itoa(n), 1), "%d", itoa(n+1), 1)
}

func TestTypedIncludesAndLastN(t *testing.T) {
	page := []*fhir.Resource{{Type: "Observation", ID: "o1"}, {Type: "Patient", ID: "p1"}}
	sql, args, err := Include(Postgres, "t1", fhir.Include{Source: "Observation", Param: "patient"}, page)
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = $1 AND r.deleted = 0 AND (r.type, r.id) IN" +
		" (SELECT x.subject_type, x.subject_id FROM search_observation x WHERE x.tenant = $2 AND x.subject_id IS NOT NULL AND x.subject_type IN ($3) AND x.id IN ($4))" +
		" ORDER BY r.type, r.id LIMIT $5"
	if diff := cmp.Diff(want, sql); diff != "" {
		t.Errorf("include SQL (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"t1", "t1", "Patient", "o1", int64(MaxIncluded)}, args); diff != "" {
		t.Errorf("include args (-want +got):\n%s", diff)
	}

	sql, args, err = RevInclude(Postgres, "t1", fhir.Include{Source: "Observation", Param: "subject"}, page)
	if err != nil {
		t.Fatal(err)
	}
	want = "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND r.deleted = 0 AND r.id IN" +
		" (SELECT x.id FROM search_observation x WHERE x.tenant = $3 AND x.subject_id IS NOT NULL" +
		" AND ((x.subject_type = $4 AND x.subject_id = $5) OR (x.subject_type = $6 AND x.subject_id = $7))) ORDER BY r.id LIMIT $8"
	if diff := cmp.Diff(want, sql); diff != "" {
		t.Errorf("revinclude SQL (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"t1", "Observation", "t1", "Observation", "o1", "Patient", "p1", int64(MaxIncluded)}, args); diff != "" {
		t.Errorf("revinclude args (-want +got):\n%s", diff)
	}

	sql, _, err = LastN(Postgres, "t1", &fhir.Query{Type: "Observation",
		Params: []fhir.Param{{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}}}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sql, "WITH m AS (SELECT r.id, r.last_updated, (SELECT x.date_hi FROM search_observation x WHERE x.tenant = $1 AND x.id = r.id) AS hi FROM resources r") {
		t.Errorf("$lastn does not read the date off the typed row:\n%s", sql)
	}

	del := DeleteIndex(Postgres, "t1", "Observation", "o1")
	if last := del[len(del)-1]; last.SQL != "DELETE FROM search_observation WHERE tenant = $1 AND id = $2" || !cmp.Equal(last.Args, []any{"t1", "o1"}) {
		t.Errorf("DeleteIndex ends with %v, want the typed row's delete", last)
	}
	if n := len(DeleteIndex(SQLite, "t1", "Observation", "o1")); n != len(IndexTables) {
		t.Errorf("SQLite DeleteIndex: %d statements, want %d", n, len(IndexTables))
	}
}
