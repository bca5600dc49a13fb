package storesql

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var (
	march  = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	april  = time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	marchµ = march.UnixMicro()
	aprilµ = april.UnixMicro()
)

func boolp(b bool) *bool { return &b }

// sub is the prefix of every index subquery for param on Observation in tenant t1.
func sub(table string) string {
	return "SELECT 1 FROM " + table + " x WHERE x.tenant = ? AND x.type = ? AND x.id = r.id AND x.param = ?"
}

// drv is the prefix of the driving index subquery for param on Observation in tenant t1.
func drv(table string) string {
	return "SELECT x.id FROM " + table + " x WHERE x.tenant = ? AND x.type = ? AND x.param = ?"
}

func subArgs(param string, more ...any) []any {
	return append([]any{"t1", "Observation", param}, more...)
}

func TestParamConditions(t *testing.T) {
	date := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: p, Lo: march, Hi: april}}}
	}
	number := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "n", Type: fhir.ParamNumber, Values: []fhir.Value{{Prefix: p, Num: 10, NumLo: 9.5, NumHi: 10.5}}}
	}
	lu := func(p fhir.Prefix) fhir.Param {
		return fhir.Param{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: p, Lo: march, Hi: april}}}
	}
	tests := []struct {
		name     string
		param    fhir.Param
		wantSQL  string
		wantArgs []any
	}{
		// token
		{"token code", fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
			"r.id IN (" + drv("idx_token") + " AND ((x.code = ?)))", subArgs("code", "c")},
		{"token system|code", fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true, Code: "c"}}},
			"r.id IN (" + drv("idx_token") + " AND ((x.system = ? AND x.code = ?)))", subArgs("code", "s", "c")},
		{"token |code", fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{HasSystem: true, Code: "c"}}},
			"r.id IN (" + drv("idx_token") + " AND ((x.system = ? AND x.code = ?)))", subArgs("code", "", "c")},
		{"token system|", fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true}}},
			"r.id IN (" + drv("idx_token") + " AND ((x.system = ?)))", subArgs("code", "s")},
		{"token or", fhir.Param{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "a"}, {Code: "b"}}},
			"r.id IN (" + drv("idx_token") + " AND ((x.code = ?) OR (x.code = ?)))", subArgs("code", "a", "b")},
		{"token not", fhir.Param{Name: "status", Type: fhir.ParamToken, Modifier: "not", Values: []fhir.Value{{Code: "final"}}},
			"NOT EXISTS (" + sub("idx_token") + " AND ((x.code = ?)))", subArgs("status", "final")},
		{"token text", fhir.Param{Name: "code", Type: fhir.ParamToken, Modifier: "text", Values: []fhir.Value{{String: "Heart_"}}},
			"r.id IN (" + drv("idx_token") + ` AND ((x.text LIKE ? ESCAPE '\')))`, subArgs("code", `heart\_%`)},
		{"token missing true", fhir.Param{Name: "status", Type: fhir.ParamToken, Modifier: "missing", Missing: boolp(true)},
			"NOT EXISTS (" + sub("idx_token") + ")", subArgs("status")},
		{"token missing false", fhir.Param{Name: "status", Type: fhir.ParamToken, Modifier: "missing", Missing: boolp(false)},
			"r.id IN (" + drv("idx_token") + ")", subArgs("status")},
		// string and uri
		{"string prefix", fhir.Param{Name: "name", Type: fhir.ParamString, Values: []fhir.Value{{String: "Mu%"}}},
			"r.id IN (" + drv("idx_string") + ` AND ((x.value LIKE ? ESCAPE '\')))`, subArgs("name", `mu\%%`)},
		{"string contains", fhir.Param{Name: "name", Type: fhir.ParamString, Modifier: "contains", Values: []fhir.Value{{String: "ll"}}},
			"r.id IN (" + drv("idx_string") + ` AND ((x.value LIKE ? ESCAPE '\')))`, subArgs("name", `%ll%`)},
		{"string exact", fhir.Param{Name: "name", Type: fhir.ParamString, Modifier: "exact", Values: []fhir.Value{{String: "Müller"}}},
			"r.id IN (" + drv("idx_string") + " AND ((x.exact = ?)))", subArgs("name", "Müller")},
		{"string missing", fhir.Param{Name: "name", Type: fhir.ParamString, Modifier: "missing", Missing: boolp(true)},
			"NOT EXISTS (" + sub("idx_string") + ")", subArgs("name")},
		{"uri", fhir.Param{Name: "url", Type: fhir.ParamURI, Values: []fhir.Value{{String: "http://x/A"}}},
			"r.id IN (" + drv("idx_string") + " AND ((x.exact = ?)))", subArgs("url", "http://x/A")},
		{"uri below", fhir.Param{Name: "url", Type: fhir.ParamURI, Modifier: "below", Values: []fhir.Value{{String: "http://x/A"}}},
			"r.id IN (" + drv("idx_string") + ` AND ((x.exact LIKE ? ESCAPE '\')))`, subArgs("url", "http://x/A%")},
		// date
		{"date eq", date(fhir.PrefixEq), "r.id IN (" + drv("idx_date") + " AND ((x.lo >= ? AND x.hi <= ?)))", subArgs("date", marchµ, aprilµ)},
		{"date no prefix", date(""), "r.id IN (" + drv("idx_date") + " AND ((x.lo >= ? AND x.hi <= ?)))", subArgs("date", marchµ, aprilµ)},
		{"date ne", date(fhir.PrefixNe), "r.id IN (" + drv("idx_date") + " AND ((NOT (x.lo >= ? AND x.hi <= ?))))", subArgs("date", marchµ, aprilµ)},
		{"date gt", date(fhir.PrefixGt), "r.id IN (" + drv("idx_date") + " AND ((x.hi > ?)))", subArgs("date", aprilµ)},
		{"date lt", date(fhir.PrefixLt), "r.id IN (" + drv("idx_date") + " AND ((x.lo < ?)))", subArgs("date", marchµ)},
		{"date ge", date(fhir.PrefixGe), "r.id IN (" + drv("idx_date") + " AND ((x.hi > ?)))", subArgs("date", marchµ)},
		{"date le", date(fhir.PrefixLe), "r.id IN (" + drv("idx_date") + " AND ((x.lo < ?)))", subArgs("date", aprilµ)},
		{"date sa", date(fhir.PrefixSa), "r.id IN (" + drv("idx_date") + " AND ((x.lo >= ?)))", subArgs("date", aprilµ)},
		{"date eb", date(fhir.PrefixEb), "r.id IN (" + drv("idx_date") + " AND ((x.hi <= ?)))", subArgs("date", marchµ)},
		{"date ap", date(fhir.PrefixAp), "r.id IN (" + drv("idx_date") + " AND ((x.lo < ? AND x.hi > ?)))", subArgs("date", aprilµ, marchµ)},
		{"date missing", fhir.Param{Name: "date", Type: fhir.ParamDate, Modifier: "missing", Missing: boolp(false)},
			"r.id IN (" + drv("idx_date") + ")", subArgs("date")},
		// number
		{"number eq", number(fhir.PrefixEq), "r.id IN (" + drv("idx_number") + " AND ((x.num >= ? AND x.num < ?)))", subArgs("n", 9.5, 10.5)},
		{"number ne", number(fhir.PrefixNe), "r.id IN (" + drv("idx_number") + " AND ((NOT (x.num >= ? AND x.num < ?))))", subArgs("n", 9.5, 10.5)},
		{"number gt", number(fhir.PrefixGt), "r.id IN (" + drv("idx_number") + " AND ((x.num > ?)))", subArgs("n", 10.0)},
		{"number sa", number(fhir.PrefixSa), "r.id IN (" + drv("idx_number") + " AND ((x.num > ?)))", subArgs("n", 10.0)},
		{"number lt", number(fhir.PrefixLt), "r.id IN (" + drv("idx_number") + " AND ((x.num < ?)))", subArgs("n", 10.0)},
		{"number eb", number(fhir.PrefixEb), "r.id IN (" + drv("idx_number") + " AND ((x.num < ?)))", subArgs("n", 10.0)},
		{"number ge", number(fhir.PrefixGe), "r.id IN (" + drv("idx_number") + " AND ((x.num >= ?)))", subArgs("n", 10.0)},
		{"number le", number(fhir.PrefixLe), "r.id IN (" + drv("idx_number") + " AND ((x.num <= ?)))", subArgs("n", 10.0)},
		{"number ap", number(fhir.PrefixAp), "r.id IN (" + drv("idx_number") + " AND ((x.num >= ? AND x.num <= ?)))", subArgs("n", 9.0, 11.0)},
		// quantity
		{"quantity system code", fhir.Param{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{{Prefix: fhir.PrefixGe, Num: 5, System: "u", HasSystem: true, Code: "mg"}}},
			"r.id IN (" + drv("idx_number") + " AND ((x.num >= ? AND x.system = ? AND x.code = ?)))", subArgs("value-quantity", 5.0, "u", "mg")},
		{"quantity code", fhir.Param{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{{Prefix: fhir.PrefixLe, Num: 5, HasSystem: true, Code: "mg"}}},
			"r.id IN (" + drv("idx_number") + " AND ((x.num <= ? AND x.code = ?)))", subArgs("value-quantity", 5.0, "mg")},
		{"quantity bare", fhir.Param{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{{Prefix: fhir.PrefixLt, Num: 5}}},
			"r.id IN (" + drv("idx_number") + " AND ((x.num < ?)))", subArgs("value-quantity", 5.0)},
		// reference
		{"reference typed", fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}},
			"r.id IN (" + drv("idx_ref") + " AND ((x.ref_id = ? AND x.ref_type = ?)))", subArgs("subject", "p1", "Patient")},
		{"reference id", fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}},
			"r.id IN (" + drv("idx_ref") + " AND ((x.ref_id = ?)))", subArgs("subject", "p1")},
		{"reference targets", fhir.Param{Name: "subject", Type: fhir.ParamReference, Modifier: "Patient", Targets: []string{"Patient"}, Values: []fhir.Value{{RefID: "p1"}}},
			"r.id IN (" + drv("idx_ref") + " AND x.ref_type IN (?) AND ((x.ref_id = ?)))", subArgs("subject", "Patient", "p1")},
		{"reference missing", fhir.Param{Name: "subject", Type: fhir.ParamReference, Modifier: "missing", Missing: boolp(true)},
			"NOT EXISTS (" + sub("idx_ref") + ")", subArgs("subject")},
		// _id and _lastUpdated
		{"_id", fhir.Param{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "a"}, {Code: "b"}}},
			"r.id IN (?, ?)", []any{"a", "b"}},
		{"_lastUpdated eq", lu(fhir.PrefixEq), "((r.last_updated >= ? AND r.last_updated < ?))", []any{marchµ, aprilµ}},
		{"_lastUpdated ap", lu(fhir.PrefixAp), "((r.last_updated >= ? AND r.last_updated < ?))", []any{marchµ, aprilµ}},
		{"_lastUpdated ne", lu(fhir.PrefixNe), "((NOT (r.last_updated >= ? AND r.last_updated < ?)))", []any{marchµ, aprilµ}},
		{"_lastUpdated gt", lu(fhir.PrefixGt), "((r.last_updated >= ?))", []any{aprilµ}},
		{"_lastUpdated sa", lu(fhir.PrefixSa), "((r.last_updated >= ?))", []any{aprilµ}},
		{"_lastUpdated lt", lu(fhir.PrefixLt), "((r.last_updated < ?))", []any{marchµ}},
		{"_lastUpdated eb", lu(fhir.PrefixEb), "((r.last_updated < ?))", []any{marchµ}},
		{"_lastUpdated ge", lu(fhir.PrefixGe), "((r.last_updated >= ?))", []any{marchµ}},
		{"_lastUpdated le", lu(fhir.PrefixLe), "((r.last_updated < ?))", []any{aprilµ}},
	}
	const head = "SELECT COUNT(*) FROM resources r WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0 AND "
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := Count(SQLite, "t1", &fhir.Query{Type: "Observation", Params: []fhir.Param{tc.param}})
			if err != nil {
				t.Fatalf("Count: %v", err)
			}
			if !strings.HasPrefix(sql, head) {
				t.Fatalf("SQL %q does not start with %q", sql, head)
			}
			if diff := cmp.Diff(tc.wantSQL, strings.TrimPrefix(sql, head)); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(append([]any{"t1", "Observation"}, tc.wantArgs...), args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

// postgresGeneric is the PostgreSQL dialect without typed search rows:
// the generic layout's SQL, which typed_test.go varies.
var postgresGeneric = Dialect{Name: Postgres.Name, Placeholder: Postgres.Placeholder}

func TestSearchSQL(t *testing.T) {
	const sel = "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND r.deleted = 0"
	sortSub := func(agg, col, table string, n int) string {
		return "(SELECT " + agg + "(COALESCE(" + col + ", " + col + ")) FROM " + table + " x WHERE x.tenant = $" + itoa(n) + " AND x.type = $" + itoa(n+1) +
			" AND x.id = r.id AND x.param = $" + itoa(n+2) + ")"
	}
	// The driven shape: the page is chosen on index tables, then joined.
	const page = "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM "
	join := func(n int) string {
		return " JOIN resources r ON r.tenant = $" + itoa(n) + " AND r.type = $" + itoa(n+1) + " AND r.id = k.id WHERE r.deleted = 0"
	}
	dSortSub := func(agg, col, table string, n int) string {
		return strings.Replace(sortSub(agg, col, table, n), "x.id = r.id", "x.id = d.id", 1)
	}
	tests := []struct {
		name     string
		q        fhir.Query
		wantSQL  string
		wantArgs []any
	}{
		{"no params", fhir.Query{Type: "Patient", Count: 10, Offset: 20},
			sel + " ORDER BY r.id ASC LIMIT $3 OFFSET $4", []any{"t1", "Patient", int64(11), int64(20)}},
		{"latest vitals", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true, Code: "c"}, {HasSystem: true, Code: "d"}}},
				{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}},
			GenericPlanHint + page + "(SELECT d.id, d.date_hi FROM (SELECT x.id, x.date_hi, x.codes FROM idx_ref x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3 AND x.ref_id = $4 AND x.ref_type = $5) d" +
				" WHERE d.codes && ARRAY[$6, $7]::text[]" +
				" AND EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $8 AND x.type = $9 AND x.id = d.id AND x.param = $10 AND ((x.code = $11)) OFFSET 0)" +
				" ORDER BY d.date_hi DESC NULLS LAST, d.id ASC LIMIT $12 OFFSET $13) k" + join(14) + " ORDER BY k.date_hi DESC NULLS LAST, k.id ASC",
			[]any{"t1", "Observation", "subject", "p1", "Patient", "s\tc", "\td", "t1", "Observation", "status", "final",
				int64(11), int64(0), "t1", "Observation"}},
		{"several reference targets: ref_id = ANY per target type", fhir.Query{Type: "DeviceUseStatement", Count: 10,
			Params: []fhir.Param{{Name: "device", Type: fhir.ParamReference,
				Values: []fhir.Value{{RefType: "Device", RefID: "d1"}, {RefID: "x"}, {RefType: "Device", RefID: "d2"}}}}},
			page + "(SELECT d.id FROM (SELECT x.id FROM idx_ref x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3" +
				" AND ((x.ref_id = ANY($4::text[]) AND x.ref_type = $5) OR (x.ref_id = ANY($6::text[])))) d" +
				" GROUP BY d.id ORDER BY d.id ASC LIMIT $7 OFFSET $8) k" + join(9) + " ORDER BY k.id ASC",
			[]any{"t1", "DeviceUseStatement", "device", []string{"d1", "d2"}, "Device", []string{"x"}, int64(11), int64(0), "t1", "DeviceUseStatement"}},
		{"latest vitals, code without system", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}}},
			GenericPlanHint + page + "(SELECT d.id, d.date_hi FROM (SELECT x.id, x.date_hi, x.codes FROM idx_ref x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3 AND x.ref_id = $4 AND x.ref_type = $5) d" +
				" WHERE EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $6 AND x.type = $7 AND x.id = d.id AND x.param = $8 AND ((x.code = $9)) OFFSET 0)" +
				" ORDER BY d.date_hi DESC NULLS LAST, d.id ASC LIMIT $10 OFFSET $11) k" + join(12) + " ORDER BY k.date_hi DESC NULLS LAST, k.id ASC",
			[]any{"t1", "Observation", "subject", "p1", "Patient", "t1", "Observation", "code", "c",
				int64(11), int64(0), "t1", "Observation"}},
		{"oldest vitals", fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "s", HasSystem: true, Code: "c"}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate}}},
			page + "(SELECT d.id, " + dSortSub("MIN", "x.lo", "idx_date", 1) + " AS s0" +
				" FROM (SELECT x.id FROM idx_ref x WHERE x.tenant = $4 AND x.type = $5 AND x.param = $6 AND ((x.ref_id = $7 AND x.ref_type = $8))) d" +
				" WHERE EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $9 AND x.type = $10 AND x.id = d.id AND x.param = $11 AND ((x.system = $12 AND x.code = $13)))" +
				" GROUP BY d.id ORDER BY s0 ASC NULLS LAST, d.id ASC LIMIT $14 OFFSET $15) k" + join(16) + " ORDER BY k.s0 ASC NULLS LAST, k.id ASC",
			[]any{"t1", "Observation", "date", "t1", "Observation", "subject", "p1", "Patient", "t1", "Observation", "code", "s", "c",
				int64(11), int64(0), "t1", "Observation"}},
		{"reference drives", fhir.Query{Type: "Observation", Count: 1,
			Params: []fhir.Param{
				{Name: "status", Type: fhir.ParamToken, Modifier: "not", Values: []fhir.Value{{Code: "x"}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
				{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}},
			}},
			page + "(SELECT d.id FROM (SELECT x.id FROM idx_ref x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3 AND ((x.ref_id = $4))) d" +
				" WHERE NOT EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $5 AND x.type = $6 AND x.id = d.id AND x.param = $7 AND ((x.code = $8)))" +
				" AND EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $9 AND x.type = $10 AND x.id = d.id AND x.param = $11 AND ((x.code = $12)))" +
				" GROUP BY d.id ORDER BY d.id ASC LIMIT $13 OFFSET $14) k" + join(15) + " ORDER BY k.id ASC",
			[]any{"t1", "Observation", "subject", "p1", "t1", "Observation", "status", "x", "t1", "Observation", "code", "c", int64(2), int64(0), "t1", "Observation"}},
		{"first positive drives", fhir.Query{Type: "Observation", Count: 1,
			Params: []fhir.Param{
				{Name: "status", Type: fhir.ParamToken, Modifier: "missing", Missing: boolp(true)},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
				{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixGt, Lo: march, Hi: april}}},
			}},
			page + "(SELECT d.id FROM (SELECT x.id FROM idx_token x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $3 AND ((x.code = $4))) d" +
				" WHERE NOT EXISTS (SELECT 1 FROM idx_token x WHERE x.tenant = $5 AND x.type = $6 AND x.id = d.id AND x.param = $7)" +
				" AND EXISTS (SELECT 1 FROM idx_date x WHERE x.tenant = $8 AND x.type = $9 AND x.id = d.id AND x.param = $10 AND ((x.hi > $11)))" +
				" GROUP BY d.id ORDER BY d.id ASC LIMIT $12 OFFSET $13) k" + join(14) + " ORDER BY k.id ASC",
			[]any{"t1", "Observation", "code", "c", "t1", "Observation", "status", "t1", "Observation", "date", aprilµ, int64(2), int64(0), "t1", "Observation"}},
		{"driven, with _id, _lastUpdated and sorts on resources", fhir.Query{Type: "Observation", Count: 3,
			Params: []fhir.Param{
				{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "o1"}, {Code: "o2"}}},
				{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixGe, Lo: march, Hi: april}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "c"}}},
			},
			Sort: []fhir.SortKey{{Param: "_lastUpdated", Desc: true}, {Param: "_id", Desc: true}}},
			page + "(SELECT d.id, (SELECT r.last_updated FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND r.id = d.id) AS s0" +
				" FROM (SELECT x.id FROM idx_token x WHERE x.tenant = $3 AND x.type = $4 AND x.param = $5 AND ((x.code = $6))) d" +
				" WHERE d.id IN ($7, $8)" +
				" AND EXISTS (SELECT 1 FROM resources r WHERE r.tenant = $9 AND r.type = $10 AND r.id = d.id AND ((r.last_updated >= $11)))" +
				" GROUP BY d.id ORDER BY s0 DESC, d.id DESC, d.id ASC LIMIT $12 OFFSET $13) k" + join(14) + " ORDER BY k.s0 DESC, k.id DESC, k.id ASC",
			[]any{"t1", "Observation", "t1", "Observation", "code", "c", "o1", "o2", "t1", "Observation", marchµ, int64(4), int64(0), "t1", "Observation"}},
		{"sort keys", fhir.Query{Type: "Patient", Count: 5, Sort: []fhir.SortKey{
			{Param: "birthdate", Type: fhir.ParamDate},
			{Param: "name", Type: fhir.ParamString, Desc: true},
			{Param: "gender", Type: fhir.ParamToken},
			{Param: "n", Type: fhir.ParamNumber, Desc: true},
			{Param: "_lastUpdated", Desc: true},
			{Param: "_id", Desc: true},
		}},
			sel + " ORDER BY " + sortSub("MIN", "x.lo", "idx_date", 3) + " ASC NULLS LAST, " +
				sortSub("MAX", "x.value", "idx_string", 6) + " DESC NULLS LAST, " +
				sortSub("MIN", "x.code", "idx_token", 9) + " ASC NULLS LAST, " +
				sortSub("MAX", "x.num", "idx_number", 12) + " DESC NULLS LAST, " +
				"r.last_updated DESC, r.id DESC, r.id ASC LIMIT $15 OFFSET $16",
			[]any{"t1", "Patient", "t1", "Patient", "birthdate", "t1", "Patient", "name", "t1", "Patient", "gender", "t1", "Patient", "n", int64(6), int64(0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := Search(postgresGeneric, "t1", &tc.q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if diff := cmp.Diff(tc.wantSQL, sql); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func itoa(n int) string { return Postgres.Placeholder(n)[1:] }

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		q    fhir.Query
		want fhir.Kind
	}{
		{"no type", fhir.Query{}, fhir.KindInvalid},
		{"unknown param type", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "x", Type: "composite", Values: []fhir.Value{{Code: "a"}}}}}, fhir.KindInvalid},
		{"no values", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken}}}, fhir.KindInvalid},
		{"missing without value", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken, Modifier: "missing"}}}, fhir.KindInvalid},
		{"empty token", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken, Values: []fhir.Value{{}}}}}, fhir.KindInvalid},
		{"empty reference", fhir.Query{Type: "Observation", Params: []fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{}}}}}, fhir.KindInvalid},
		{"bad date prefix", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "birthdate", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: "zz"}}}}}, fhir.KindInvalid},
		{"bad number prefix", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "n", Type: fhir.ParamNumber, Values: []fhir.Value{{Prefix: "zz"}}}}}, fhir.KindInvalid},
		{"bad _lastUpdated prefix", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: "zz"}}}}}, fhir.KindInvalid},
		{"token of-type", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "identifier", Type: fhir.ParamToken, Modifier: "of-type", Values: []fhir.Value{{Code: "a"}}}}}, fhir.KindNotSupported},
		{"string text", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "name", Type: fhir.ParamString, Modifier: "text", Values: []fhir.Value{{String: "a"}}}}}, fhir.KindNotSupported},
		{"uri above", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "url", Type: fhir.ParamURI, Modifier: "above", Values: []fhir.Value{{String: "a"}}}}}, fhir.KindNotSupported},
		{"date modifier", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "birthdate", Type: fhir.ParamDate, Modifier: "exact", Values: []fhir.Value{{}}}}}, fhir.KindNotSupported},
		{"reference identifier", fhir.Query{Type: "Observation", Params: []fhir.Param{{Name: "subject", Type: fhir.ParamReference, Modifier: "identifier", Values: []fhir.Value{{RefID: "a"}}}}}, fhir.KindNotSupported},
		{"_id modifier", fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "_id", Type: fhir.ParamToken, Modifier: "not", Values: []fhir.Value{{Code: "a"}}}}}, fhir.KindNotSupported},
		{"sort by reference", fhir.Query{Type: "Observation", Sort: []fhir.SortKey{{Param: "subject", Type: fhir.ParamReference}}}, fhir.KindNotSupported},
		{"sort unknown type", fhir.Query{Type: "Observation", Sort: []fhir.SortKey{{Param: "x", Type: "composite"}}}, fhir.KindInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Search(SQLite, "t1", &tc.q)
			if !fhir.IsKind(err, tc.want) {
				t.Errorf("Search error %v (kind %v), want kind %v", err, fhir.ErrorKind(err), tc.want)
			}
		})
	}
}

func TestIncludeSQL(t *testing.T) {
	page := []*fhir.Resource{{Type: "Observation", ID: "o1"}, {Type: "Observation", ID: "o2"}, {Type: "Patient", ID: "p1"}}
	const sel = "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = ?"
	tests := []struct {
		name     string
		rev      bool
		inc      fhir.Include
		page     []*fhir.Resource
		wantSQL  string
		wantArgs []any
	}{
		{"include", false, fhir.Include{Source: "Observation", Param: "subject"}, page,
			sel + " AND r.deleted = 0 AND (r.type, r.id) IN (SELECT x.ref_type, x.ref_id FROM idx_ref x WHERE x.tenant = ? AND x.type = ? AND x.param = ? AND x.id IN (?, ?)) ORDER BY r.type, r.id LIMIT ?",
			[]any{"t1", "t1", "Observation", "subject", "o1", "o2", int64(MaxIncluded)}},
		{"include target", false, fhir.Include{Source: "Observation", Param: "subject", Target: "Patient"}, page,
			sel + " AND r.deleted = 0 AND r.type = ? AND (r.type, r.id) IN (SELECT x.ref_type, x.ref_id FROM idx_ref x WHERE x.tenant = ? AND x.type = ? AND x.param = ? AND x.id IN (?, ?)) ORDER BY r.type, r.id LIMIT ?",
			[]any{"t1", "Patient", "t1", "Observation", "subject", "o1", "o2", int64(MaxIncluded)}},
		{"include nothing on page", false, fhir.Include{Source: "Device", Param: "patient"}, page,
			sel + " AND r.deleted = 0 AND 1 = 0 ORDER BY r.type, r.id LIMIT ?", []any{"t1", int64(MaxIncluded)}},
		{"revinclude", true, fhir.Include{Source: "Observation", Param: "subject", Target: "Patient"}, page,
			sel + " AND r.type = ? AND r.deleted = 0 AND r.id IN (SELECT x.id FROM idx_ref x WHERE x.tenant = ? AND x.type = ? AND x.param = ? AND ((x.ref_type = ? AND x.ref_id = ?))) ORDER BY r.id LIMIT ?",
			[]any{"t1", "Observation", "t1", "Observation", "subject", "Patient", "p1", int64(MaxIncluded)}},
		{"revinclude any target", true, fhir.Include{Source: "Provenance", Param: "target"}, page[1:],
			sel + " AND r.type = ? AND r.deleted = 0 AND r.id IN (SELECT x.id FROM idx_ref x WHERE x.tenant = ? AND x.type = ? AND x.param = ? AND ((x.ref_type = ? AND x.ref_id = ?) OR (x.ref_type = ? AND x.ref_id = ?))) ORDER BY r.id LIMIT ?",
			[]any{"t1", "Provenance", "t1", "Provenance", "target", "Observation", "o2", "Patient", "p1", int64(MaxIncluded)}},
		{"revinclude empty page", true, fhir.Include{Source: "Observation", Param: "subject"}, nil,
			sel + " AND r.type = ? AND r.deleted = 0 AND 1 = 0 ORDER BY r.id LIMIT ?", []any{"t1", "Observation", int64(MaxIncluded)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Include
			if tc.rev {
				f = RevInclude
			}
			sql, args, err := f(SQLite, "t1", tc.inc, tc.page)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if diff := cmp.Diff(tc.wantSQL, sql); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := Include(SQLite, "t1", fhir.Include{Source: "Observation"}, page); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("include without a parameter: %v, want KindInvalid", err)
	}
}

func TestHistorySQL(t *testing.T) {
	// Each table's part is cut at Offset+Count+1 rows in page order; the
	// page is cut from their union.
	const order = " ORDER BY v.last_updated DESC, v.type, v.id, v.version DESC LIMIT ?"
	part := func(table, where string) string {
		return "SELECT * FROM (SELECT type, id, version, last_updated, deleted, body FROM " + table + " v WHERE v.tenant = ?" + where + order + ")"
	}
	sql := func(cur, old string) string {
		return "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.body FROM (" +
			part("resources", cur) + " AS part0 UNION ALL " + part("resource_versions", old) + " AS part1) v" + order + " OFFSET ?"
	}
	const notSuperseded = " AND NOT EXISTS (SELECT 1 FROM resource_versions w WHERE w.tenant = v.tenant AND w.type = v.type AND w.id = v.id AND w.version > v.version AND w.last_updated <= ?)" +
		" AND NOT EXISTS (SELECT 1 FROM resources w WHERE w.tenant = v.tenant AND w.type = v.type AND w.id = v.id AND w.last_updated <= ?)"
	tests := []struct {
		name     string
		q        fhir.HistoryQuery
		wantSQL  string
		wantArgs []any
	}{
		{"system", fhir.HistoryQuery{Count: 10}, sql("", ""), []any{"t1", int64(11), "t1", int64(11), int64(11), int64(0)}},
		{"type", fhir.HistoryQuery{Type: "Patient", Count: 10, Offset: 10}, sql(" AND v.type = ?", " AND v.type = ?"),
			[]any{"t1", "Patient", int64(21), "t1", "Patient", int64(21), int64(11), int64(10)}},
		{"instance since", fhir.HistoryQuery{Type: "Patient", ID: "p1", Since: march, Count: 5},
			sql(" AND v.type = ? AND v.id = ? AND v.last_updated >= ?", " AND v.type = ? AND v.id = ? AND v.last_updated >= ?"),
			[]any{"t1", "Patient", "p1", marchµ, int64(6), "t1", "Patient", "p1", marchµ, int64(6), int64(6), int64(0)}},
		{"at", fhir.HistoryQuery{At: march, Count: 5},
			sql(" AND v.last_updated <= ?", " AND v.last_updated <= ?"+notSuperseded),
			[]any{"t1", marchµ, int64(6), "t1", marchµ, marchµ, marchµ, int64(6), int64(6), int64(0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := History(SQLite, "t1", &tc.q)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if diff := cmp.Diff(tc.wantSQL, sql); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := History(SQLite, "t1", &fhir.HistoryQuery{ID: "p1"}); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("instance history without a type: %v, want KindInvalid", err)
	}
	if _, _, err := HistoryCount(SQLite, "t1", &fhir.HistoryQuery{ID: "p1"}); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("instance history count without a type: %v, want KindInvalid", err)
	}
}

func TestLastNSQL(t *testing.T) {
	sql, args, err := LastN(SQLite, "t1", &fhir.Query{Type: "Observation",
		Params: []fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}}}}, 3)
	if err != nil {
		t.Fatalf("LastN: %v", err)
	}
	want := "WITH m AS (SELECT r.id, r.last_updated, (SELECT MAX(COALESCE(x.hi, x.hi)) FROM idx_date x WHERE x.tenant = ? AND x.type = ? AND x.id = r.id AND x.param = ?) AS hi" +
		" FROM resources r WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0 AND r.id IN (" + drv("idx_ref") + " AND ((x.ref_id = ?))))," +
		" g AS (SELECT m.id, c.system, c.code, row_number() OVER (PARTITION BY c.system, c.code ORDER BY m.hi DESC NULLS LAST, m.last_updated DESC, m.id) AS rn" +
		" FROM m JOIN idx_token c ON c.tenant = ? AND c.type = ? AND c.id = m.id AND c.param = ?)" +
		" SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM g JOIN resources r ON r.tenant = ? AND r.type = ? AND r.id = g.id" +
		" WHERE g.rn <= ? ORDER BY g.system, g.code, g.rn"
	if diff := cmp.Diff(want, sql); diff != "" {
		t.Errorf("SQL (-want +got):\n%s", diff)
	}
	wantArgs := []any{"t1", "Observation", "date", "t1", "Observation", "t1", "Observation", "subject", "p1",
		"t1", "Observation", "code", "t1", "Observation", int64(3)}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if _, _, err := LastN(SQLite, "t1", &fhir.Query{Type: "Observation"}, 0); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("max 0: %v, want KindInvalid", err)
	}
}

func TestIndexStatements(t *testing.T) {
	lo := march
	entries := []fhir.IndexEntry{
		{Param: "code", Type: fhir.ParamToken, System: "s", Code: "c", Text: "heart"},
		{Param: "name", Type: fhir.ParamString, String: "muller", Text: "Müller"},
		{Param: "url", Type: fhir.ParamURI, String: "http://x"},
		{Param: "date", Type: fhir.ParamDate, Lo: lo, Hi: lo},     // empty range widened to 1µs
		{Param: "period", Type: fhir.ParamDate, Hi: fhir.MaxTime}, // open start: MinTime
		{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: "p1"},
		{Param: "value-quantity", Type: fhir.ParamQuantity, Num: 72, NumLo: 71.5, NumHi: 72.5, System: "u", Code: "/min"},
	}
	got, err := InsertIndex(Postgres, "t1", "Observation", "o1", entries)
	if err != nil {
		t.Fatalf("InsertIndex: %v", err)
	}
	want := []Stmt{
		{"INSERT INTO idx_token (tenant, type, id, param, system, code, text) VALUES ($1, $2, $3, $4, $5, $6, $7)",
			[]any{"t1", "Observation", "o1", "code", "s", "c", "heart"}},
		{"INSERT INTO idx_string (tenant, type, id, param, value, exact) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)",
			[]any{"t1", "Observation", "o1", "name", "muller", "Müller", "t1", "Observation", "o1", "url", "http://x", "http://x"}},
		{"INSERT INTO idx_date (tenant, type, id, param, lo, hi) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)",
			[]any{"t1", "Observation", "o1", "date", marchµ, marchµ + 1, "t1", "Observation", "o1", "period", fhir.MinTime.UnixMicro(), fhir.MaxTime.UnixMicro()}},
		{"INSERT INTO idx_ref (tenant, type, id, param, ref_type, ref_id) VALUES ($1, $2, $3, $4, $5, $6)",
			[]any{"t1", "Observation", "o1", "subject", "Patient", "p1"}},
		{"INSERT INTO idx_number (tenant, type, id, param, num, lo, hi, system, code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			[]any{"t1", "Observation", "o1", "value-quantity", 72.0, 71.5, 72.5, "u", "/min"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Many entries split into batches.
	many := make([]fhir.IndexEntry, insertBatch+1)
	for i := range many {
		many[i] = fhir.IndexEntry{Param: "code", Type: fhir.ParamToken, Code: "c"}
	}
	got, err = InsertIndex(SQLite, "t1", "Observation", "o1", many)
	if err != nil || len(got) != 2 || len(got[0].Args) != insertBatch*7 || len(got[1].Args) != 7 {
		t.Errorf("batched insert: %d statements, %v", len(got), err)
	}
	if _, err := InsertIndex(SQLite, "t1", "Observation", "o1", []fhir.IndexEntry{{Param: "x", Type: "composite"}}); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("unknown entry type: %v, want KindInvalid", err)
	}

	del := DeleteIndex(SQLite, "t1", "Observation", "o1")
	if len(del) != len(IndexTables) {
		t.Fatalf("DeleteIndex returned %d statements", len(del))
	}
	for i, s := range del {
		wantSQL := "DELETE FROM " + IndexTables[i] + " WHERE tenant = ? AND type = ? AND id = ?"
		if s.SQL != wantSQL || !cmp.Equal(s.Args, []any{"t1", "Observation", "o1"}) {
			t.Errorf("DeleteIndex[%d] = %v", i, s)
		}
	}
}

func TestMicros(t *testing.T) {
	tests := []struct {
		in   time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.Date(2024, 3, 1, 0, 0, 0, 1500, time.FixedZone("x", 3600)), march.UnixMicro() - 3600e6 + 1},
		{time.Time{}, fhir.MinTime.UnixMicro()},
		{time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), fhir.MaxTime.UnixMicro()},
	}
	for _, tc := range tests {
		if got := Micros(tc.in); got != tc.want {
			t.Errorf("Micros(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
	if got := FromMicros(march.UnixMicro() + 7); !got.Equal(march.Add(7*time.Microsecond)) || got.Location() != time.UTC {
		t.Errorf("FromMicros = %v", got)
	}
	if n := Now(); n.Location() != time.UTC || n.Nanosecond()%1000 != 0 {
		t.Errorf("Now() = %v, want UTC at microsecond precision", n)
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"abc", "abd", true},
		{"é", "ê", true},
		{"a\U0010FFFF", "b", true},
		{"a\uD7FF", "a\uE000", true},
		{"\U0010FFFF", "", false},
	}
	for _, tc := range tests {
		got, ok := prefixEnd(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestPostgresPrefixRange checks string prefix searches compile to a range
// on PostgreSQL (LIKE is not leakproof, so under row-level security it could
// not use an index) and stay LIKE on SQLite and for :contains.
func TestPostgresPrefixRange(t *testing.T) {
	name := func(mod, v string) *fhir.Query {
		return &fhir.Query{Type: "Patient", Params: []fhir.Param{{Name: "name", Type: fhir.ParamString, Modifier: mod, Values: []fhir.Value{{String: v}}}}}
	}
	tests := []struct {
		name     string
		d        Dialect
		q        *fhir.Query
		wantCond string
		wantArgs []any
	}{
		{"postgres prefix", Postgres, name("", "Smi"), "((x.value >= $6 AND x.value < $7))", []any{"smi", "smj"}},
		{"postgres empty prefix", Postgres, name("", ""), "((x.value >= $6))", []any{""}},
		{"postgres contains", Postgres, name("contains", "mi_"), `((x.value LIKE $6 ESCAPE '\'))`, []any{`%mi\_%`}},
		{"sqlite prefix", SQLite, name("", "Smi"), `((x.value LIKE ? ESCAPE '\'))`, []any{"smi%"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql, args, err := Count(tc.d, "t1", tc.q)
			if err != nil {
				t.Fatalf("Count: %v", err)
			}
			if !strings.HasSuffix(sql, " AND "+tc.wantCond+")") {
				t.Errorf("SQL %s\ndoes not end with the condition %s", sql, tc.wantCond)
			}
			if diff := cmp.Diff(tc.wantArgs, args[len(args)-len(tc.wantArgs):]); diff != "" {
				t.Errorf("value args (-want +got):\n%s", diff)
			}
		})
	}
}
