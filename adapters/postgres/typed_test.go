package postgres

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/adapters/sqlite"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// TestTypedTablesMatchSchema: migration 0070's tables have exactly the
// columns storesql.TypedTable.Columns names, of its SQL types, which is
// what the store writes and the compiler reads.
func TestTypedTablesMatchSchema(t *testing.T) {
	t.Parallel()
	_, schema := openTestStore(t)
	conn := adminIn(t, schema)
	for _, typ := range dialect.TypedTypes() {
		tt := dialect.Typed(typ)
		want := []string{"tenant text", "id text"}
		dataType := map[string]string{"TEXT": "text", "BIGINT": "bigint", "DOUBLE PRECISION": "double precision", "TEXT[]": "ARRAY"}
		for _, c := range tt.Columns() {
			want = append(want, c.Name+" "+dataType[c.SQL])
		}
		rows, err := conn.Query(context.Background(), `SELECT column_name || ' ' || data_type
			FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, tt.Table)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want[2:])
		slices.Sort(got[2:])
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s columns (-storesql +schema):\n%s", tt.Table, diff)
		}
	}
}

// TestTypedParamsInRegistry: every typed parameter is a search parameter
// of its type, of the type its column group has; every parameter whose
// tokens the codes column carries is a token parameter stored in idx_token
// (not typed, not the code the column holds already) of a table with codes.
func TestTypedParamsInRegistry(t *testing.T) {
	reg := search.NewRegistry()
	for _, typ := range dialect.TypedTypes() {
		tt := dialect.Typed(typ)
		for code, tp := range tt.Params {
			def, ok := reg.Lookup(typ, code)
			if !ok {
				t.Errorf("%s %s is typed but not a search parameter", typ, code)
				continue
			}
			if def.Type != tp.Type {
				t.Errorf("%s %s is a %s, its typed column group a %s", typ, code, def.Type, tp.Type)
			}
		}
		for _, code := range tt.CodeParams {
			def, ok := reg.Lookup(typ, code)
			_, typed := tt.Params[code]
			if !tt.Codes || !ok || def.Type != fhir.ParamToken || typed || code == storesql.RefCodeParam ||
				!slices.Equal(fhir.IndexParams(typ, code), []string{code}) {
				t.Errorf("%s %s: codes can carry only a token parameter stored in idx_token under its own name", typ, code)
			}
		}
	}
}

// TestTypedRefusesSecondValue: a typed parameter with two different values
// fails the write (nothing is stored) instead of keeping one.
func TestTypedRefusesSecondValue(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	mustTenant(t, s, "a")
	ctx := context.Background()
	err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o1", Body: []byte(`{"resourceType":"Observation"}`),
			Index: []fhir.IndexEntry{
				{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: "p1"},
				{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: "p2"},
			}})
		return err
	})
	if !fhir.IsKind(err, fhir.KindInternal) {
		t.Fatalf("Put with two subjects: %v, want KindInternal", err)
	}
	if _, err := s.Read(ctx, "a", "Observation", "o1"); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("after the refused write: %v, want not found", err)
	}
}

// typedCorpus is Observations and AuditEvents whose typed parameters take
// every shape: present or not, a Timing, a Period, a display unit beside a
// coded one, a device as subject.
func typedCorpus() map[string]string {
	out := map[string]string{}
	effective := []string{
		`"effectiveDateTime": "2024-03-%02dT10:00:00Z"`,
		`"effectivePeriod": {"start": "2024-03-%02d", "end": "2024-03-20"}`,
		`"effectiveTiming": {"event": ["2024-03-%02dT08:00:00Z", "2024-03-25T08:00:00Z"]}`,
		`"effectiveInstant": "2024-03-%02dT23:59:59.5Z"`,
		``,
	}
	values := []string{
		`"valueQuantity": {"value": %d, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}`,
		`"valueQuantity": {"value": %d, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}`,
		`"valueQuantity": {"value": %d, "unit": "beats"}`,
		`"valueQuantity": {"value": %d.5, "code": "kg"}`,
		``,
	}
	statuses := []string{"final", "preliminary", "amended"}
	subjects := []string{`"subject": {"reference": "Patient/p%d"}`, `"subject": {"reference": "Device/d%d"}`, ``}
	codes := []string{"8867-4", "8480-6", "29463-7"}
	// Categories as devices and clients write them: the standard one, two
	// (one twice), a system-less one, none.
	const cat = `"http://terminology.hl7.org/CodeSystem/observation-category"`
	categories := []string{
		`"category": [{"coding": [{"system": ` + cat + `, "code": "vital-signs"}]}]`,
		`"category": [{"coding": [{"system": ` + cat + `, "code": "vital-signs"}]}, {"coding": [{"system": ` + cat + `, "code": "activity"}, {"system": ` + cat + `, "code": "activity"}]}]`,
		`"category": [{"coding": [{"code": "vital-signs"}]}]`,
		``,
	}
	for i := range 45 {
		parts := []string{`"resourceType": "Observation"`, fmt.Sprintf(`"status": %q`, statuses[i%3]),
			fmt.Sprintf(`"code": {"coding": [{"system": "http://loinc.org", "code": %q}]}`, codes[i%len(codes)])}
		if e := effective[i%len(effective)]; e != "" {
			parts = append(parts, fmt.Sprintf(e, 1+i%28))
		}
		if v := values[(i/2)%len(values)]; v != "" {
			parts = append(parts, fmt.Sprintf(v, 40+i*3))
		}
		if sb := subjects[(i/3)%len(subjects)]; sb != "" {
			parts = append(parts, fmt.Sprintf(sb, i%4))
		}
		if i%4 != 0 {
			parts = append(parts, fmt.Sprintf(`"device": {"reference": "Device/d%d"}`, i%5))
		}
		if c := categories[i%len(categories)]; c != "" {
			parts = append(parts, c)
		}
		if i%6 == 0 {
			parts = append(parts, fmt.Sprintf(`"encounter": {"reference": "Encounter/e%d"}`, i%2))
		}
		out[fmt.Sprintf("Observation/o%02d", i)] = "{" + strings.Join(parts, ", ") + "}"
	}
	for i := range 12 {
		out[fmt.Sprintf("AuditEvent/a%02d", i)] = fmt.Sprintf(`{"resourceType": "AuditEvent",
			"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": %q},
			"action": %q, "outcome": %q, "recorded": "2024-03-%02dT12:00:00Z",
			"agent": [{"who": {"reference": "Patient/p%d"}, "requestor": true}],
			"source": {"observer": {"reference": "Device/d%d"}}}`,
			[]string{"rest", "110100"}[i%2], []string{"R", "C", "U"}[i%3], []string{"0", "4", "8"}[i%3], 1+i, i%3, i%2)
	}
	for p := range 4 {
		out[fmt.Sprintf("Patient/p%d", p)] = `{"resourceType": "Patient"}`
	}
	// Two codes, one of them twice.
	out["Observation/o99"] = `{"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
		"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"system": "urn:iso:std:iso:11073:10101", "code": "147842"},
			{"system": "http://loinc.org", "code": "8867-4"}]},
		"effectiveDateTime": "2024-03-27T10:00:00Z"}`
	return out
}

// typedChanges rewrite and delete some of typedCorpus's Observations (a
// new code and subject for o09, o18 and o11 deleted), so that their index
// rows are replaced and removed.
func typedChanges(ctx context.Context, reg *search.Registry, tx fhir.Tx) error {
	body := `{"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p2"},
		"code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2024-03-26T10:00:00Z"}`
	idx, err := reg.Extract("Observation", []byte(body))
	if err != nil {
		return err
	}
	if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o09", Body: []byte(body), Index: idx}); err != nil {
		return err
	}
	for _, id := range []string{"o18", "o11"} {
		if _, err := tx.Delete(ctx, "Observation", id, 0); err != nil {
			return err
		}
	}
	return nil
}

// typedQueries are searches over typedCorpus's typed parameters, alone and
// with others, as a client writes them, and multi-target references.
var typedQueries = []string{
	"Observation?patient=p1",
	"Observation?subject=Patient/p2&_sort=-date",
	"Observation?subject=Device/d1",
	"Observation?subject:missing=true",
	"Observation?subject:Device=d3",
	"Observation?device=Device/d2&_sort=date",
	"Observation?device:missing=true&status=final",
	"Observation?encounter=Encounter/e0",
	"Observation?encounter:missing=false",
	"Observation?status=final",
	"Observation?status:not=final&code=http://loinc.org|8867-4",
	"Observation?status=preliminary,amended&_sort=status",
	"Observation?date=2024-03-10",
	"Observation?date=ge2024-03-15&_sort=-date",
	"Observation?date=lt2024-03-05",
	"Observation?date=ne2024-03",
	"Observation?date=sa2024-03-10&date=eb2024-03-26",
	"Observation?date=ap2024-03-12",
	"Observation?date=2024-03-22",
	"Observation?date:missing=true",
	"Observation?value-quantity=gt100",
	"Observation?value-quantity=lt90||mmHg",
	"Observation?value-quantity=ge40|http://unitsofmeasure.org|mm[Hg]",
	"Observation?value-quantity=le200||mm[Hg]",
	"Observation?value-quantity=ap85||beats",
	"Observation?value-quantity=gt0||kg",
	"Observation?value-quantity:missing=true&_sort=-value-quantity",
	"Observation?value-quantity=ne43",
	"Observation?patient=p0&code=http://loinc.org|8480-6&_sort=-date&_count=3",
	// The latest search of one code walks the code rows (o09 changed
	// patient and code, o11 and o18 are deleted, o99 has two codes).
	"Observation?patient=p1&code=http://loinc.org|8867-4&_sort=-date",
	"Observation?patient=p2&code=http://loinc.org|29463-7&_sort=-date&_count=2",
	"Observation?patient=p2&code=http://loinc.org|8480-6&_sort=-date",
	"Observation?patient=p3&code=http://loinc.org|8867-4,http://loinc.org|29463-7&_sort=-date",
	"Observation?subject=Patient/p1&code=urn:iso:std:iso:11073:10101|147842&status=final&_sort=-date",
	"Observation?subject=Device/d1&code=http://loinc.org|8480-6&_sort=-date",
	"Observation?patient=p3&_sort=-date&_count=2",
	// Categories on the typed row (CodeParams): with a system, without
	// one, empty system, several, beside a code, and forms it cannot take
	// (a modifier, a system without a code).
	"Observation?patient=p1&category=vital-signs&_sort=-date",
	"Observation?patient=p2&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs&_sort=-date&_count=3",
	"Observation?patient=p3&category=|vital-signs&_sort=-date",
	"Observation?patient=p0&category=activity,|vital-signs&_sort=-date",
	"Observation?patient=p1&category=vital-signs&code=http://loinc.org|8867-4&_sort=-date",
	"Observation?subject=Patient/p2&category=activity&code=8480-6&_sort=-date",
	"Observation?patient=p3&category:not=activity&_sort=-date",
	"Observation?patient=p0&category=http://terminology.hl7.org/CodeSystem/observation-category|&_sort=-date",
	"Observation?category=vital-signs&status=final",
	"Observation?code=8867-4&_include=Observation:patient",
	"Observation?status=final&_include=Observation:device",
	"Patient?_revinclude=Observation:subject",
	"Patient?_revinclude=Observation:patient&_id=p1,p2",
	"AuditEvent?date=ge2024-03-06&_sort=date",
	"AuditEvent?type=rest",
	"AuditEvent?action=C,U&outcome=0",
	"AuditEvent?outcome:not=0",
	"AuditEvent?source=Device/d1&_sort=-date",
	"AuditEvent?patient=p1&date=le2024-03-09",
	// Several targets: ref_id = ANY(...) per target type on PostgreSQL.
	"Observation?patient=p1,p2",
	"Observation?subject=Patient/p1,Device/d2,p3&_sort=-date",
	"Observation?device=d1,Device/d2&status=final",
	"AuditEvent?agent=Patient/p1,Patient/p2,p0",
	"AuditEvent?patient=p1,p2&_sort=date",
}

// TestTypedMatchesGeneric: the PostgreSQL store with its typed rows
// answers every query of typedQueries as the SQLite store, which keeps the
// generic layout, does over the same resources: the same page in the
// same order, the same total and the same included resources; and
// $lastn picks the same readings.
func TestTypedMatchesGeneric(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, _ := openTestStore(t)
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "generic.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lite.Close() })
	reg := search.NewRegistry()
	stores := []fhir.Store{pg, lite}
	for _, s := range stores {
		if err := s.EnsureTenant(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		err := s.Tx(ctx, "t", func(tx fhir.Tx) error {
			for ref, body := range typedCorpus() {
				typ, id, _ := strings.Cut(ref, "/")
				idx, err := reg.Extract(typ, []byte(body))
				if err != nil {
					return fmt.Errorf("%s: %w", ref, err)
				}
				if _, _, err := tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: []byte(body), Index: idx}); err != nil {
					return fmt.Errorf("%s: %w", ref, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Tx(ctx, "t", func(tx fhir.Tx) error { return typedChanges(ctx, reg, tx) }); err != nil {
			t.Fatal(err)
		}
	}
	names := func(rs []*fhir.Resource) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Type+"/"+r.ID)
		}
		return out
	}
	matched := 0
	for _, raw := range typedQueries {
		typ, query, _ := strings.Cut(raw, "?")
		v, err := url.ParseQuery(query + "&_total=accurate")
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := reg.Parse(typ, v, search.ParseOptions{Strict: true})
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var got [2]*fhir.SearchResult
		for i, s := range stores {
			if got[i], err = s.Search(ctx, "t", q); err != nil {
				t.Fatalf("%s on store %d: %v", raw, i, err)
			}
		}
		if diff := cmp.Diff(names(got[1].Resources), names(got[0].Resources)); diff != "" {
			t.Errorf("%s: page (-generic +typed):\n%s", raw, diff)
		}
		if got[0].Total != got[1].Total {
			t.Errorf("%s: total %d, generic %d", raw, got[0].Total, got[1].Total)
		}
		if diff := cmp.Diff(names(got[1].Included), names(got[0].Included)); diff != "" {
			t.Errorf("%s: included (-generic +typed):\n%s", raw, diff)
		}
		if len(got[0].Resources) > 0 {
			matched++
		}
	}
	// The corpus is not vacuous for these queries.
	if matched < len(typedQueries)*3/4 {
		t.Errorf("only %d of %d queries matched anything", matched, len(typedQueries))
	}
	q, _, err := reg.Parse("Observation", url.Values{"patient": {"p0"}}, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var last [2][]string
	for i, s := range stores {
		rs, err := s.LastN(ctx, "t", q, 2)
		if err != nil {
			t.Fatal(err)
		}
		last[i] = names(rs)
	}
	if diff := cmp.Diff(last[1], last[0]); diff != "" || len(last[0]) == 0 {
		t.Errorf("$lastn (-generic +typed):\n%s", diff)
	}
}

// oldLayoutSQL turns the typed rows back into the idx_* rows the layout
// before migration 0070 had (the display unit as its own system-less
// idx_number row, the date and codes on reference rows) and drops the
// typed tables; then 0070 is due again.
var oldLayoutSQL = []string{
	`INSERT INTO idx_ref (tenant, type, id, param, ref_type, ref_id, date_hi, codes)
		SELECT tenant, 'Observation', id, p.param, p.rt, p.ri, date_hi, codes FROM search_observation,
		LATERAL (VALUES ('subject', subject_type, subject_id), ('device', device_type, device_id), ('encounter', encounter_type, encounter_id)) AS p(param, rt, ri)
		WHERE p.ri IS NOT NULL`,
	`INSERT INTO idx_token (tenant, type, id, param, system, code, text)
		SELECT tenant, 'Observation', id, 'status', status_system, status_code, status_text FROM search_observation WHERE status_code IS NOT NULL`,
	`INSERT INTO idx_date (tenant, type, id, param, lo, hi)
		SELECT tenant, 'Observation', id, 'date', date_lo, date_hi FROM search_observation WHERE date_lo IS NOT NULL`,
	`INSERT INTO idx_number (tenant, type, id, param, num, lo, hi, system, code)
		SELECT tenant, 'Observation', id, 'value-quantity', value_quantity_num, value_quantity_lo, value_quantity_hi, value_quantity_system, value_quantity_code
		FROM search_observation WHERE value_quantity_num IS NOT NULL`,
	`INSERT INTO idx_number (tenant, type, id, param, num, lo, hi, system, code)
		SELECT tenant, 'Observation', id, 'value-quantity', value_quantity_num, value_quantity_lo, value_quantity_hi, '', value_quantity_unit
		FROM search_observation WHERE value_quantity_unit IS NOT NULL`,
	`INSERT INTO idx_ref (tenant, type, id, param, ref_type, ref_id, date_hi)
		SELECT tenant, 'AuditEvent', id, 'source', source_type, source_id, date_hi FROM search_auditevent WHERE source_id IS NOT NULL`,
	`INSERT INTO idx_token (tenant, type, id, param, system, code, text)
		SELECT tenant, 'AuditEvent', id, p.param, p.s, p.c, p.x FROM search_auditevent,
		LATERAL (VALUES ('type', type_system, type_code, type_text), ('action', action_system, action_code, action_text),
			('outcome', outcome_system, outcome_code, outcome_text)) AS p(param, s, c, x)
		WHERE p.c IS NOT NULL`,
	`INSERT INTO idx_date (tenant, type, id, param, lo, hi)
		SELECT tenant, 'AuditEvent', id, 'date', date_lo, date_hi FROM search_auditevent WHERE date_lo IS NOT NULL`,
	"DROP TABLE search_observation_code",
	"DROP TABLE search_observation",
	"DROP TABLE search_auditevent",
	"DELETE FROM schema_migrations WHERE version IN (70, 90, 110)",
}

// codeRowsSQL lists a typed table's code rows as text.
func codeRowsSQL(tt *storesql.TypedTable) string {
	return `SELECT to_jsonb(c)::text FROM ` + tt.CodeRows + ` c ORDER BY to_jsonb(c)::text`
}

// typedRowsSQL lists a typed table's rows as text, codes sorted (the
// writer keeps extraction order, the backfill sorts).
func typedRowsSQL(tt *storesql.TypedTable) string {
	if !tt.Codes {
		return `SELECT to_jsonb(t)::text FROM ` + tt.Table + ` t ORDER BY tenant, id`
	}
	return `SELECT (to_jsonb(t) - 'codes' || jsonb_build_object('codes', (SELECT array_agg(c ORDER BY c) FROM unnest(t.codes) c)))::text
		FROM ` + tt.Table + ` t ORDER BY tenant, id`
}

// TestMigrationTypedSearch: data written in the layout before migration
// 0070 (every parameter in the idx_* tables) has, once migrated, the typed
// rows the store writes today, to the column, and every typed query gets
// the answers it got before; the idx_* tables no longer hold the typed
// parameters.
func TestMigrationTypedSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, schema := openTestStore(t)
	mustTenant(t, s, "t")
	reg := search.NewRegistry()
	err := s.Tx(ctx, "t", func(tx fhir.Tx) error {
		for ref, body := range typedCorpus() {
			typ, id, _ := strings.Cut(ref, "/")
			idx, err := reg.Extract(typ, []byte(body))
			if err != nil {
				return err
			}
			if _, _, err := tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: []byte(body), Index: idx}); err != nil {
				return err
			}
		}
		return typedChanges(ctx, reg, tx) // replaced and removed rows too
	})
	if err != nil {
		t.Fatal(err)
	}
	results := func() map[string][]string {
		out := map[string][]string{}
		for _, raw := range typedQueries {
			typ, query, _ := strings.Cut(raw, "?")
			v, _ := url.ParseQuery(query)
			q, _, err := reg.Parse(typ, v, search.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Search(ctx, "t", q)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			for _, r := range append(res.Resources, res.Included...) {
				out[raw] = append(out[raw], r.Type+"/"+r.ID)
			}
		}
		return out
	}
	raw := rawIn(t, schema)
	wantRows := map[*storesql.TypedTable][]string{}
	wantCodeRows := map[*storesql.TypedTable][]string{}
	for _, typ := range dialect.TypedTypes() {
		tt := dialect.Typed(typ)
		wantRows[tt] = raw(t, typedRowsSQL(tt))
		if len(wantRows[tt]) == 0 {
			t.Fatalf("no %s rows written", tt.Table)
		}
		if tt.CodeRows != "" {
			if wantCodeRows[tt] = raw(t, codeRowsSQL(tt)); len(wantCodeRows[tt]) == 0 {
				t.Fatalf("no %s rows written", tt.CodeRows)
			}
		}
	}
	want := results()

	admin := adminIn(t, schema)
	for _, stmt := range oldLayoutSQL {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for tt, rows := range wantRows {
		if diff := cmp.Diff(rows, raw(t, typedRowsSQL(tt))); diff != "" {
			t.Errorf("%s after the migration (-written +migrated):\n%s", tt.Table, diff)
		}
	}
	for tt, rows := range wantCodeRows {
		if diff := cmp.Diff(rows, raw(t, codeRowsSQL(tt))); diff != "" {
			t.Errorf("%s after the migration (-written +migrated):\n%s", tt.CodeRows, diff)
		}
	}
	if diff := cmp.Diff(want, results()); diff != "" {
		t.Errorf("answers after the migration (-before +after):\n%s", diff)
	}
	left := raw(t, `SELECT type || ' ' || param FROM (
		SELECT type, param FROM idx_ref UNION ALL SELECT type, param FROM idx_token UNION ALL
		SELECT type, param FROM idx_date UNION ALL SELECT type, param FROM idx_number) x
		WHERE (type = 'Observation' AND param IN ('subject', 'device', 'encounter', 'status', 'date', 'value-quantity'))
		   OR (type = 'AuditEvent' AND param IN ('source', 'type', 'action', 'outcome', 'date'))`)
	if len(left) > 0 {
		t.Errorf("idx_* rows of typed parameters left after the migration: %v", left)
	}
}
