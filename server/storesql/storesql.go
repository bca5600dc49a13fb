// Package storesql compiles Pulsewire's typed FHIR searches
// (https://hl7.org/fhir/R4/search.html) and history reads
// (https://hl7.org/fhir/R4/http.html#history) into SQL over the table layout
// shared by adapters/sqlite and adapters/postgres: resources,
// resource_versions and the idx_* index tables.
//
// It is pure: it builds SQL text and arguments and never touches a database.
// It imports only server/fhir and the standard library; only the store
// adapters import it.
package storesql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Dialect is what differs between the SQL the two stores accept.
type Dialect struct {
	Name        string                 // "sqlite" | "postgres"
	Placeholder func(n int) string     // n is 1-based: "?" for sqlite, "$n" for postgres
	typed       map[string]*TypedTable // by resource type (typed.go); nil: every type generic
}

// SQLite and Postgres are the two dialects Pulsewire uses.
var (
	SQLite   = Dialect{Name: "sqlite", Placeholder: func(int) string { return "?" }}
	Postgres = Dialect{Name: "postgres", Placeholder: func(n int) string { return "$" + strconv.Itoa(n) }, typed: typedTables}
)

// Columns is the column list every resource-selecting query returns, in the
// order ScanResource reads it.
const Columns = "type, id, version, last_updated, deleted, body"

// MaxIncluded caps the rows one _include or _revinclude returns.
const MaxIncluded = 1000

// Micros converts t to the stored form: microseconds since the Unix epoch,
// UTC. Times outside [fhir.MinTime, fhir.MaxTime] are clamped to it.
func Micros(t time.Time) int64 {
	if t.Before(fhir.MinTime) {
		t = fhir.MinTime
	}
	if t.After(fhir.MaxTime) {
		t = fhir.MaxTime
	}
	return t.UnixMicro()
}

// FromMicros is the inverse of Micros, in UTC.
func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Now is the timestamp a store gives a new version: the current time in UTC
// truncated to the microsecond precision both stores keep.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Scanner is a row: *sql.Row, *sql.Rows and pgx.Row all satisfy it.
type Scanner interface {
	Scan(dest ...any) error
}

// ScanResource reads one row of Columns.
func ScanResource(s Scanner) (*fhir.Resource, error) {
	var (
		r       fhir.Resource
		lu, del int64
		body    []byte
	)
	if err := s.Scan(&r.Type, &r.ID, &r.VersionID, &lu, &del, &body); err != nil {
		return nil, err
	}
	r.LastUpdated = FromMicros(lu)
	r.Deleted = del != 0
	if !r.Deleted {
		r.Body = body
	}
	return &r, nil
}

// builder accumulates SQL text and its positional arguments.
type builder struct {
	d    Dialect
	sb   strings.Builder
	args []any
	// outer is the resource id column the index probes correlate with:
	// "r.id" over resources r, "d.id" over a driving index table d.
	outer string
	// tp is the typed parameter whose condition is being written, nil
	// for an idx_* row (see c).
	tp *TypedParam
	// fence: close each probe's subquery with OFFSET 0 (see closeProbe).
	fence bool
}

// closeProbe closes the subquery open started. Under b.fence (the latest
// search, PostgreSQL) an EXISTS probe gets OFFSET 0, which keeps
// PostgreSQL from flattening it into a join: it then stays a probe per
// candidate row in every plan, whatever the planner guesses of its
// parameters. Flattened, a generic plan once guessed the category probe
// cheap enough to hash all of a tenant's category rows (0.9 s), and with
// custom plans the statement is planned anew on every execution.
func (b *builder) closeProbe() {
	if b.fence {
		b.w(" OFFSET 0")
	}
	b.w(")")
}

// arg appends v as an argument and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return b.d.Placeholder(len(b.args))
}

func (b *builder) w(parts ...string) {
	for _, p := range parts {
		b.sb.WriteString(p)
	}
}

func (b *builder) result() (string, []any) { return b.sb.String(), b.args }

func invalid(format string, args ...any) *fhir.Error {
	return fhir.Errorf(fhir.KindInvalid, format, args...)
}

func notSupported(format string, args ...any) *fhir.Error {
	return fhir.Errorf(fhir.KindNotSupported, format, args...)
}

// indexTable names the index table holding a parameter type.
func indexTable(t fhir.ParamType) (string, bool) {
	switch t {
	case fhir.ParamToken:
		return "idx_token", true
	case fhir.ParamString, fhir.ParamURI:
		return "idx_string", true
	case fhir.ParamDate:
		return "idx_date", true
	case fhir.ParamReference:
		return "idx_ref", true
	case fhir.ParamNumber, fhir.ParamQuantity:
		return "idx_number", true
	}
	return "", false
}

// IndexTables lists every index table, for deleting a resource's rows.
var IndexTables = []string{"idx_token", "idx_string", "idx_date", "idx_ref", "idx_number"}

// Stmt is one SQL statement with its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// DeleteIndex returns the statements removing every index row of one resource.
func DeleteIndex(d Dialect, tenant, typ, id string) []Stmt {
	out := make([]Stmt, 0, len(IndexTables)+1)
	for _, t := range IndexTables {
		b := &builder{d: d}
		b.w("DELETE FROM ", t, " WHERE tenant = ", b.arg(tenant), " AND type = ", b.arg(typ), " AND id = ", b.arg(id))
		s, a := b.result()
		out = append(out, Stmt{s, a})
	}
	if tt := d.Typed(typ); tt != nil {
		if tt.CodeRows != "" {
			// Found by the typed row's values, before it goes: the code
			// rows' one index leads with the reference.
			ref := tt.Params[tt.CodeRowsRef].Col
			b := &builder{d: d}
			b.w("DELETE FROM ", tt.CodeRows, " c USING ", tt.Table, " t WHERE t.tenant = ", b.arg(tenant), " AND t.id = ", b.arg(id),
				" AND c.tenant = t.tenant AND c.", ref, "_id = t.", ref, "_id AND c.", ref, "_type = t.", ref, "_type",
				" AND c.code = ANY(t.codes) AND c.id = t.id")
			s, a := b.result()
			out = append(out, Stmt{s, a})
		}
		b := &builder{d: d}
		b.w("DELETE FROM ", tt.Table, " WHERE tenant = ", b.arg(tenant), " AND id = ", b.arg(id))
		s, a := b.result()
		out = append(out, Stmt{s, a})
	}
	return out
}

// insertBatch bounds the rows of one multi-row INSERT, well under both
// databases' limits on bound parameters.
const insertBatch = 200

// InsertIndex returns multi-row INSERT statements storing entries as the
// index rows of one resource. Strings and uris keep the normalized value in
// value and the original in exact (falling back to String when Text is
// empty, so uri and :exact match what was indexed). Empty token systems are
// stored as "" (never NULL) so "|code" can match them.
func InsertIndex(d Dialect, tenant, typ, id string, entries []fhir.IndexEntry) ([]Stmt, error) {
	cols := map[string]string{
		"idx_token":  "tenant, type, id, param, system, code, text",
		"idx_string": "tenant, type, id, param, value, exact",
		"idx_date":   "tenant, type, id, param, lo, hi",
		"idx_ref":    "tenant, type, id, param, ref_type, ref_id",
		"idx_number": "tenant, type, id, param, num, lo, hi, system, code",
	}
	rows := map[string][][]any{}
	for i, e := range entries {
		t, ok := indexTable(e.Type)
		if !ok {
			return nil, invalid("index entry %d of parameter %s has unknown type %q", i, e.Param, e.Type)
		}
		base := []any{tenant, typ, id, e.Param}
		var vals []any
		switch t {
		case "idx_token":
			vals = []any{e.System, e.Code, e.Text}
		case "idx_string":
			exact := e.Text
			if exact == "" {
				exact = e.String
			}
			vals = []any{e.String, exact}
		case "idx_date":
			lo, hi := Micros(e.Lo), Micros(e.Hi)
			if hi <= lo {
				hi = lo + 1
			}
			vals = []any{lo, hi}
		case "idx_ref":
			vals = []any{e.RefType, e.RefID}
		case "idx_number":
			vals = []any{e.Num, e.NumLo, e.NumHi, e.System, e.Code}
		}
		rows[t] = append(rows[t], append(base, vals...))
	}
	var out []Stmt
	for _, t := range IndexTables {
		rs := rows[t]
		for start := 0; start < len(rs); start += insertBatch {
			end := min(start+insertBatch, len(rs))
			b := &builder{d: d}
			b.w("INSERT INTO ", t, " (", cols[t], ") VALUES ")
			for i, r := range rs[start:end] {
				if i > 0 {
					b.w(", ")
				}
				b.w("(")
				for j, v := range r {
					if j > 0 {
						b.w(", ")
					}
					b.w(b.arg(v))
				}
				b.w(")")
			}
			s, a := b.result()
			out = append(out, Stmt{s, a})
		}
	}
	return out, nil
}

// Search compiles q into a SELECT returning Columns of current non-deleted
// resources of q.Type for the tenant, ordered by q.Sort then id, LIMIT
// q.Count+1 OFFSET q.Offset (the caller drops the extra row and sets
// HasMore). Errors: KindInvalid for an unknown parameter type or a bad value,
// KindNotSupported for a modifier or sort the compiler cannot do.
//
// When q has a positive indexed parameter (see driver), the page is found on
// the index tables alone and only its rows of resources are read:
//
//	SELECT r.* FROM (SELECT d.id, <sort keys of d.id> FROM (<driver's index rows>) d
//	                 WHERE <other parameters, probed by d.id> GROUP BY d.id
//	                 ORDER BY <sort keys>, d.id LIMIT n OFFSET o) k
//	JOIN resources r ON r.id = k.id ... ORDER BY <sort keys>, k.id
//
// Index rows exist only for current, non-deleted versions, so every id the
// inner query yields has a live resources row. Reading resources rows (which
// hold the bodies) only for the page is what keeps a search over a patient
// with thousands of Observations cheap; filtering resources rows first made
// PostgreSQL visit every one of them.
func Search(d Dialect, tenant string, q *fhir.Query) (string, []any, error) {
	if q.Type == "" {
		return "", nil, invalid("search without a resource type")
	}
	count := max(q.Count, 0)
	drive := driver(d, q.Type, q.Params)
	if drive < 0 {
		b := &builder{d: d, outer: "r.id"}
		b.w("SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE ")
		if err := where(b, tenant, q); err != nil {
			return "", nil, err
		}
		keys, err := sortKeys(b, tenant, q)
		if err != nil {
			return "", nil, err
		}
		b.w(" ORDER BY ")
		for _, k := range keys {
			b.w(k.expr, k.dir, ", ")
		}
		b.w("r.id ASC")
		b.w(" LIMIT ", b.arg(int64(count+1)), " OFFSET ", b.arg(int64(max(q.Offset, 0))))
		s, a := b.result()
		return s, a, nil
	}
	if d.Name == Postgres.Name && latestByRef(d, q, drive) {
		return latestSearch(d, tenant, q, drive)
	}
	b := &builder{d: d, outer: "d.id"}
	b.w("SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM (SELECT d.id")
	keys, err := sortKeys(b, tenant, q)
	if err != nil {
		return "", nil, err
	}
	for i, k := range keys {
		if k.expr != "d.id" {
			b.w(", ", k.expr, " AS s", strconv.Itoa(i))
		}
	}
	b.w(" FROM ")
	if err := drivenWhere(b, tenant, q, drive); err != nil {
		return "", nil, err
	}
	b.w(" GROUP BY d.id ORDER BY ")
	for i, k := range keys {
		if k.expr == "d.id" {
			b.w("d.id", k.dir, ", ")
		} else {
			b.w("s", strconv.Itoa(i), k.dir, ", ")
		}
	}
	b.w("d.id ASC LIMIT ", b.arg(int64(count+1)), " OFFSET ", b.arg(int64(max(q.Offset, 0))), ") k")
	b.w(" JOIN resources r ON r.tenant = ", b.arg(tenant), " AND r.type = ", b.arg(q.Type), " AND r.id = k.id WHERE r.deleted = 0 ORDER BY ")
	for i, k := range keys {
		if k.expr == "d.id" {
			b.w("k.id", k.dir, ", ")
		} else {
			b.w("k.s", strconv.Itoa(i), k.dir, ", ")
		}
	}
	b.w("k.id ASC")
	s, a := b.result()
	return s, a, nil
}

// RefDateParam is the date parameter whose newest value (MAX(hi)) the
// PostgreSQL store copies onto each reference index row of the resource, as
// idx_ref.date_hi (NULL when the resource has none), so that "the newest
// resources that reference X" is read in order off one index
// (adapters/postgres migration 0002). Observation, Encounter, Consent and
// most clinical types name their main date "date".
const RefDateParam = "date"

// RefCodeParam is the token parameter whose values the PostgreSQL store
// copies onto each reference index row of the resource, as idx_ref.codes
// (RefCode of each, NULL when it has none), which idx_ref_value includes:
// latestSearch filters by code while it walks a target's rows, without a
// probe per resource.
const RefCodeParam = "code"

// RefCode is how idx_ref.codes holds one token: system, a tab, code. Neither
// a uri nor a code can contain a tab (https://hl7.org/fhir/R4/datatypes.html),
// so the pair is unambiguous.
func RefCode(system, code string) string { return system + "\t" + code }

// ParamCode is how a typed row's codes hold a token of one of its
// CodeParams: the parameter's name, a newline, then RefCode. ParamAnyCode
// is the same token for a search that gives no system ("category=x"):
// name, newline, code, without a tab. A parameter name holds no newline
// and a code no tab, so neither form is mistaken for the other or for a
// RefCode.
func ParamCode(param, system, code string) string { return param + "\n" + RefCode(system, code) }

// ParamAnyCode: see ParamCode.
func ParamAnyCode(param, code string) string { return param + "\n" + code }

// latestByRef reports whether q is "resources referencing one target, newest
// first" — one reference parameter with one fully typed value drives it, and
// the only sort is -date — which latestSearch answers by walking idx_ref in
// date_hi order. The store keeps at most one idx_ref row per resource,
// parameter and target, so the walk meets each resource once.
func latestByRef(d Dialect, q *fhir.Query, drive int) bool {
	p := q.Params[drive]
	if p.Type != fhir.ParamReference || p.Modifier != "" || len(p.Values) != 1 {
		return false
	}
	v := p.Values[0]
	if latestRefType(q.Type, p) == "" || v.RefID == "" {
		return false
	}
	if _, _, typed := d.typedStorage(q.Type, p.Name); typed {
		if _, _, ok := typedLatest(d, q.Type, p.Name); !ok {
			return false
		}
	}
	return len(q.Sort) == 1 && q.Sort[0].Param == RefDateParam && q.Sort[0].Type == fhir.ParamDate && q.Sort[0].Desc
}

// latestRefType is the one reference type the single value of reference
// parameter p can match — its own, or the only type p.Targets allows — or
// "" when there is none or more than one.
func latestRefType(typ string, p fhir.Param) string {
	if len(fhir.IndexParams(typ, p.Name)) != 1 {
		return ""
	}
	v, targets := p.Values[0], refTargets(typ, p)
	switch {
	case len(targets) == 0:
		return v.RefType
	case v.RefType == "" && len(targets) == 1:
		return targets[0]
	case v.RefType != "" && slices.Contains(targets, v.RefType):
		return v.RefType
	}
	return ""
}

// GenericPlanHint starts a statement whose every plan is the same, whatever
// its arguments: the latest search's walk of one index in date order
// (its generic and custom plans are held to that by the adapter's EXPLAIN
// tests). A store that prepares statements may pin the generic plan for
// it: PostgreSQL's plan cache otherwise plans it anew on every execution,
// because the custom plans' estimates (which know the patient and code)
// stay below the generic plan's, and on the latest vitals workload that
// planning (~0.12 ms) cost more than the execution (~0.1 ms). A comment,
// so that a store that does not act on it runs the statement unchanged.
const GenericPlanHint = "/* generic plan */ "

// latestSearch is Search for a query latestByRef accepts (PostgreSQL only):
// the driving reference's index rows are read newest first from
// idx_ref_value (…, ref_type, date_hi DESC NULLS LAST, id), each probed for
// the other parameters, until the page is full. The order is Search's:
// MAX(hi) of the date parameter descending, resources without one last,
// then id.
func latestSearch(d Dialect, tenant string, q *fhir.Query, drive int) (string, []any, error) {
	b := &builder{d: d, outer: "d.id", fence: true}
	p := q.Params[drive]
	params := fhir.IndexParams(q.Type, p.Name)
	if len(params) != 1 {
		return "", nil, invalid("the latest search needs a parameter stored under one name")
	}
	b.w(GenericPlanHint, "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM (SELECT d.id, d.date_hi FROM (")
	codes := true
	var codeParams []string // the typed row's CodeParams, when the walk reads its codes
	skip := map[int]bool{drive: true}
	tt, tp, ok := typedLatest(d, q.Type, p.Name)
	if c := codeRowsParam(tt, q, drive); ok && c >= 0 {
		// One code: the table of code rows, walked by its (tenant, _id,
		// _type, code, date_hi DESC NULLS LAST, id) index; each resource
		// has one row per code, so it meets each once.
		v := q.Params[c].Values[0]
		skip[c], codes = true, false
		b.w("SELECT x.id, x.date_hi FROM ", tt.CodeRows, " x WHERE x.tenant = ", b.arg(tenant), " AND x.", tp.Col, "_id = ", b.arg(p.Values[0].RefID),
			" AND x.", tp.Col, "_type = ", b.arg(latestRefType(q.Type, p)), " AND x.code = ", b.arg(RefCode(v.System, v.Code)), ") d")
	} else if ok {
		// The typed row: its date and codes columns, walked by the
		// reference's (tenant, _id, _type, date_hi DESC NULLS LAST, id)
		// index.
		date := tt.Params[RefDateParam].Col
		codes = tt.Codes
		if codes {
			codeParams = tt.CodeParams
		}
		b.w("SELECT x.id, x.", date, "_hi AS date_hi")
		if codes {
			b.w(", x.codes")
		}
		b.w(" FROM ", tt.Table, " x WHERE x.tenant = ", b.arg(tenant), " AND x.", tp.Col, "_id = ", b.arg(p.Values[0].RefID),
			" AND x.", tp.Col, "_type = ", b.arg(latestRefType(q.Type, p)), ") d")
	} else {
		b.w("SELECT x.id, x.date_hi, x.codes FROM idx_ref x WHERE x.tenant = ", b.arg(tenant),
			" AND x.type = ", b.arg(q.Type), " AND x.param = ", b.arg(params[0]), " AND x.ref_id = ", b.arg(p.Values[0].RefID), " AND x.ref_type = ", b.arg(latestRefType(q.Type, p)), ") d")
	}
	// A code given with its system (or as "|code"), and a token of the
	// typed row's CodeParams, is matched against the copy on the row;
	// every other parameter is probed as in Search.
	sep := " WHERE "
	for i, p := range q.Params {
		forms := rowCodeForms(p, codes, codeParams)
		if i == drive || forms == nil {
			continue
		}
		skip[i] = true
		b.w(sep, "d.codes && ARRAY[")
		sep = " AND "
		for j, f := range forms {
			if j > 0 {
				b.w(", ")
			}
			b.w(b.arg(f))
		}
		b.w("]::text[]")
	}
	for i, p := range q.Params {
		if skip[i] {
			continue
		}
		b.w(sep)
		sep = " AND "
		if err := otherParam(b, tenant, q, p); err != nil {
			return "", nil, err
		}
	}
	b.w(" ORDER BY d.date_hi DESC NULLS LAST, d.id ASC LIMIT ", b.arg(int64(max(q.Count, 0)+1)), " OFFSET ", b.arg(int64(max(q.Offset, 0))), ") k")
	b.w(" JOIN resources r ON r.tenant = ", b.arg(tenant), " AND r.type = ", b.arg(q.Type), " AND r.id = k.id WHERE r.deleted = 0 ORDER BY k.date_hi DESC NULLS LAST, k.id ASC")
	s, a := b.result()
	return s, a, nil
}

// codeRowsParam is the index in q.Params of the code the latest search
// driven by q.Params[drive] can read from tt's code rows: tt has them for
// the driving reference, and the parameter is a codes filter (codesFilter)
// with one value. -1 when there is none.
func codeRowsParam(tt *TypedTable, q *fhir.Query, drive int) int {
	if tt == nil || tt.CodeRows == "" || !tt.Codes {
		return -1
	}
	if stored := fhir.IndexParams(q.Type, q.Params[drive].Name); len(stored) != 1 || stored[0] != tt.CodeRowsRef {
		return -1
	}
	for i, p := range q.Params {
		if i != drive && codesFilter(p) && len(p.Values) == 1 {
			return i
		}
	}
	return -1
}

// typedLatest reports whether reference parameter name of typ is typed
// in d along with the type's RefDateParam, so that latestSearch walks the
// typed rows instead of idx_ref.
func typedLatest(d Dialect, typ, name string) (*TypedTable, TypedParam, bool) {
	tt, tp, ok := d.typedStorage(typ, name)
	if !ok || tp.Type != fhir.ParamReference || !tp.Indexed {
		return nil, TypedParam{}, false
	}
	if dp, ok := tt.Params[RefDateParam]; !ok || dp.Type != fhir.ParamDate {
		return nil, TypedParam{}, false
	}
	return tt, tp, true
}

// drivenWhere writes "(<driver's index rows>) d WHERE <the other
// parameters>" for the parameter at index drive of q.Params. The driver is
// a derived table (which both databases flatten into a plain scan of its
// index) so that its rows are named d and the other parameters' probes,
// which use the alias x, can say x.id = d.id.
func drivenWhere(b *builder, tenant string, q *fhir.Query, drive int) error {
	b.w("(")
	if err := paramCond(b, tenant, q.Type, q.Params[drive], true); err != nil {
		return err
	}
	b.w(" d")
	return otherParams(b, tenant, q, drive)
}

// codesFilter reports whether latestSearch can match p against idx_ref.codes:
// the RefCodeParam token, unmodified, each value with its system (possibly
// empty, "|code") and a code.
func codesFilter(p fhir.Param) bool {
	if p.Name != RefCodeParam || p.Type != fhir.ParamToken || p.Modifier != "" || len(p.Values) == 0 {
		return false
	}
	for _, v := range p.Values {
		if !v.HasSystem || v.Code == "" {
			return false
		}
	}
	return true
}

// rowCodeForms returns the forms under which a row's codes hold p's
// values (any of which matches), nil when p is not matched against them:
// the RefCodeParam when the walk reads codes (codes) and p is a codes
// filter, or one of codeParams (see TypedTable.CodeParams).
func rowCodeForms(p fhir.Param, codes bool, codeParams []string) []string {
	var forms []string
	switch {
	case codes && codesFilter(p):
		for _, v := range p.Values {
			forms = append(forms, RefCode(v.System, v.Code))
		}
	case slices.Contains(codeParams, p.Name) && paramCodesFilter(p):
		for _, v := range p.Values {
			if v.HasSystem {
				forms = append(forms, ParamCode(p.Name, v.System, v.Code))
			} else {
				forms = append(forms, ParamAnyCode(p.Name, v.Code))
			}
		}
	}
	return forms
}

// paramCodesFilter reports whether latestSearch can match p, one of a
// typed row's CodeParams, against its codes: a token, unmodified, each
// value with a code (with or without a system).
func paramCodesFilter(p fhir.Param) bool {
	if p.Type != fhir.ParamToken || p.Modifier != "" || len(p.Values) == 0 {
		return false
	}
	for _, v := range p.Values {
		if v.Code == "" {
			return false
		}
	}
	return true
}

// otherParams writes the WHERE clause of every parameter but the driving one,
// each probing the index tables by d.id.
func otherParams(b *builder, tenant string, q *fhir.Query, drive int) error {
	sep := " WHERE "
	for i, p := range q.Params {
		if i == drive {
			continue
		}
		b.w(sep)
		sep = " AND "
		if err := otherParam(b, tenant, q, p); err != nil {
			return err
		}
	}
	return nil
}

// otherParam writes the condition of one non-driving parameter on d.id.
func otherParam(b *builder, tenant string, q *fhir.Query, p fhir.Param) error {
	if p.Name == "_lastUpdated" {
		// The only parameter on resources itself: probe its row.
		b.w("EXISTS (SELECT 1 FROM resources r WHERE r.tenant = ", b.arg(tenant), " AND r.type = ", b.arg(q.Type), " AND r.id = d.id AND ")
		if err := lastUpdatedCond(b, p); err != nil {
			return err
		}
		b.closeProbe()
		return nil
	}
	return paramCond(b, tenant, q.Type, p, false)
}

// Count compiles the number of all matches of q (ignoring paging and sort).
func Count(d Dialect, tenant string, q *fhir.Query) (string, []any, error) {
	b := &builder{d: d, outer: "r.id"}
	b.w("SELECT COUNT(*) FROM resources r WHERE ")
	if err := where(b, tenant, q); err != nil {
		return "", nil, err
	}
	s, a := b.result()
	return s, a, nil
}

// where writes the WHERE conditions (without the keyword) selecting q's
// matches among the rows of resources r.
func where(b *builder, tenant string, q *fhir.Query) error {
	if q.Type == "" {
		return invalid("search without a resource type")
	}
	b.w("r.tenant = ", b.arg(tenant), " AND r.type = ", b.arg(q.Type), " AND r.deleted = 0")
	drive := driver(b.d, q.Type, q.Params)
	for i, p := range q.Params {
		b.w(" AND ")
		if err := paramCond(b, tenant, q.Type, p, i == drive); err != nil {
			return err
		}
	}
	return nil
}

// driver picks the parameter whose index rows drive the search (see open):
// the first positive reference parameter (usually the most selective, as in
// subject=Patient/x), else the first positive indexed parameter; -1 for none.
// A typed parameter that no index of its table leads with (TypedParam.Indexed)
// drives only when nothing else can: its rows are read in full.
func driver(d Dialect, typ string, ps []fhir.Param) int {
	first, unindexed := -1, -1
	for i, p := range ps {
		if p.Name == "_id" || p.Name == "_lastUpdated" || p.Modifier == "not" || (p.Modifier == "missing" && (p.Missing == nil || *p.Missing)) {
			continue
		}
		if _, tp, ok := d.typedStorage(typ, p.Name); ok && !tp.Indexed {
			if unindexed < 0 {
				unindexed = i
			}
			continue
		}
		if p.Type == fhir.ParamReference {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return unindexed
	}
	return first
}

// open starts the condition that resource r has (or, when negate, has no)
// row in index table t for param matching what the caller writes next; the
// caller closes it with ")". The driving parameter is an uncorrelated
// "r.id IN (subquery)" so SQLite starts from its index rows (SQLite does not
// turn a correlated EXISTS into a semi-join); the others are correlated
// [NOT] EXISTS probes by resource id. PostgreSQL plans both forms as
// semi-joins.
//
// Under a typed parameter (b.tp) t is the type's typed table: its rows
// have no type and no param column, and the parameter's presence column
// stands for the param condition.
func (b *builder) open(t, tenant, typ string, params []string, negate, drive bool) {
	typeIs := func() {
		if b.tp == nil {
			b.w(" AND x.type = ", b.arg(typ))
		}
	}
	if drive && !negate {
		if b.outer == "d.id" {
			// Search's driving table: the caller names it d.
			b.w("SELECT x.id FROM ", t, " x WHERE x.tenant = ", b.arg(tenant))
			typeIs()
			b.paramIs(params)
			return
		}
		b.w(b.outer, " IN (SELECT x.id FROM ", t, " x WHERE x.tenant = ", b.arg(tenant))
		typeIs()
		b.paramIs(params)
		return
	}
	if negate {
		b.w("NOT ")
	}
	b.w("EXISTS (SELECT 1 FROM ", t, " x WHERE x.tenant = ", b.arg(tenant))
	typeIs()
	b.w(" AND x.id = ", b.outer)
	b.paramIs(params)
}

// paramIn returns paramIs's condition as a string, for callers that build
// expressions before writing them.
func paramIn(b *builder, params []string) string {
	sub := &builder{d: b.d, args: b.args}
	sub.paramIs(params)
	b.args = sub.args
	return sub.sb.String()
}

// paramIs writes the condition that index row x belongs to one of params
// (see fhir.IndexParams).
func (b *builder) paramIs(params []string) {
	if b.tp != nil {
		b.w(" AND ", b.c(typedParts(b.tp.Type)[0]), " IS NOT NULL")
		return
	}
	if len(params) == 1 {
		b.w(" AND x.param = ", b.arg(params[0]))
		return
	}
	b.w(" AND x.param IN (")
	for i, p := range params {
		if i > 0 {
			b.w(", ")
		}
		b.w(b.arg(p))
	}
	b.w(")")
}

// refTargets is the reference types reference parameter p of typ may
// match: those of its :Type modifier, else those of its derivation (see
// fhir.DerivedParam), else any (nil).
func refTargets(typ string, p fhir.Param) []string {
	if len(p.Targets) > 0 {
		return p.Targets
	}
	if d, ok := fhir.DerivedParam(typ, p.Name); ok {
		return d.Targets
	}
	return nil
}

// refTypeIn writes the restriction of reference rows x to types.
func (b *builder) refTypeIn(types []string) {
	if len(types) == 0 {
		return
	}
	b.w(" AND ", b.c("ref_type"), " IN (")
	for i, tt := range types {
		if i > 0 {
			b.w(", ")
		}
		b.w(b.arg(tt))
	}
	b.w(")")
}

func paramCond(b *builder, tenant, typ string, p fhir.Param, drive bool) error {
	switch p.Name {
	case "_id":
		return idCond(b, p)
	case "_lastUpdated":
		return lastUpdatedCond(b, p)
	}
	t, ok := indexTable(p.Type)
	if !ok {
		return invalid("search parameter %s has unknown type %q", p.Name, p.Type)
	}
	if tt, tp, ok := b.d.typedStorage(typ, p.Name); ok {
		if tp.Type != p.Type {
			return invalid("search parameter %s is a %s, not a %s", p.Name, tp.Type, p.Type)
		}
		t, b.tp = tt.Table, &tp
		defer func() { b.tp = nil }()
	}
	if p.Modifier == "missing" {
		if p.Missing == nil {
			return invalid("search parameter %s:missing needs true or false", p.Name)
		}
		b.open(t, tenant, typ, fhir.IndexParams(typ, p.Name), *p.Missing, drive)
		if p.Type == fhir.ParamReference {
			b.refTypeIn(refTargets(typ, p))
		}
		b.closeProbe()
		return nil
	}
	if len(p.Values) == 0 {
		return invalid("search parameter %s has no value", p.Name)
	}
	var valueCond func(*builder, fhir.Value) *fhir.Error
	negate := false
	switch p.Type {
	case fhir.ParamToken:
		switch p.Modifier {
		case "":
			valueCond = tokenCond
		case "not":
			valueCond, negate = tokenCond, true
		case "text":
			valueCond = tokenTextCond
		default:
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
	case fhir.ParamString:
		switch p.Modifier {
		case "":
			valueCond = likeCond("x.value", true, false)
		case "contains":
			valueCond = likeCond("x.value", true, true)
		case "exact":
			valueCond = exactCond
		default:
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
	case fhir.ParamURI:
		switch p.Modifier {
		case "":
			valueCond = exactCond
		case "below":
			valueCond = likeCond("x.exact", false, false)
		default:
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
	case fhir.ParamDate:
		if p.Modifier != "" {
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
		valueCond = dateCond
	case fhir.ParamNumber, fhir.ParamQuantity:
		if p.Modifier != "" {
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
		valueCond = numberCond(p.Type == fhir.ParamQuantity)
	case fhir.ParamReference:
		// A ":Type" modifier arrives as Targets; any other is unsupported.
		if p.Modifier != "" && (len(p.Targets) == 0 || p.Modifier != p.Targets[0]) {
			return notSupported("modifier :%s of search parameter %s is not supported", p.Modifier, p.Name)
		}
		valueCond = refCond
	}
	b.open(t, tenant, typ, fhir.IndexParams(typ, p.Name), negate, drive)
	if p.Type == fhir.ParamReference {
		b.refTypeIn(refTargets(typ, p))
		if b.d.Name == Postgres.Name && len(p.Values) > 1 {
			// Many targets at once (ingestion asks for the associations
			// of a batch's devices): ref_id = ANY(array) per target type
			// is one index condition; an OR of pairs is read as a filter
			// over every row of the parameter.
			if err := refAnyCond(b, p.Values); err != nil {
				return err.At(p.Name)
			}
			b.closeProbe()
			return nil
		}
	}
	b.w(" AND (")
	for i, v := range p.Values {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(")
		if err := valueCond(b, v); err != nil {
			return err.At(p.Name)
		}
		b.w(")")
	}
	b.w(")")
	b.closeProbe()
	return nil
}

func tokenCond(b *builder, v fhir.Value) *fhir.Error {
	switch {
	case !v.HasSystem && v.Code == "":
		return invalid("empty token value")
	case !v.HasSystem:
		b.w(b.c("code"), " = ", b.arg(v.Code))
	case v.Code == "":
		b.w(b.c("system"), " = ", b.arg(v.System))
	default:
		b.w(b.c("system"), " = ", b.arg(v.System), " AND ", b.c("code"), " = ", b.arg(v.Code))
	}
	return nil
}

func tokenTextCond(b *builder, v fhir.Value) *fhir.Error {
	s := v.String
	if s == "" {
		s = v.Code
	}
	return likeCond(b.c("text"), true, false)(b, fhir.Value{String: s})
}

// escapeLike escapes LIKE metacharacters with '\'.
func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// likeCond matches col by prefix (or substring when contains). The search
// value is lowercased when fold: the parser normalizes string values as
// search.NormalizeString does and the index holds that form; lowercasing
// again is idempotent and guards against a caller that did not.
func likeCond(col string, fold, contains bool) func(*builder, fhir.Value) *fhir.Error {
	return func(b *builder, v fhir.Value) *fhir.Error {
		s := v.String
		if fold {
			s = strings.ToLower(s)
		}
		if !contains && b.d.Name == Postgres.Name {
			// PostgreSQL does not treat LIKE as leakproof, so under
			// row-level security it cannot be an index condition; a range
			// is. Text columns use the "C" collation (code point order), in
			// which the strings starting with s are exactly [s, next).
			if s == "" {
				b.w(col, " >= ", b.arg(s))
				return nil
			}
			if next, ok := prefixEnd(s); ok {
				b.w(col, " >= ", b.arg(s), " AND ", col, " < ", b.arg(next))
				return nil
			}
			b.w(col, " >= ", b.arg(s))
			return nil
		}
		pat := escapeLike(s) + "%"
		if contains {
			pat = "%" + pat
		}
		b.w(col, " LIKE ", b.arg(pat), ` ESCAPE '\'`)
		return nil
	}
}

// prefixEnd returns the least string greater than every string that starts
// with s, in code point order: s with its last rune replaced by the next
// valid rune (dropping trailing runes that have none). ok is false when no
// such string exists (s is all U+10FFFF).
func prefixEnd(s string) (string, bool) {
	rs := []rune(s)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i] + 1
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000
		}
		if r <= utf8.MaxRune {
			rs[i] = r
			return string(rs[:i+1]), true
		}
	}
	return "", false
}

func exactCond(b *builder, v fhir.Value) *fhir.Error {
	b.w("x.exact = ", b.arg(v.String))
	return nil
}

// dateCond compares the target range [x.lo, x.hi) with the search range
// [v.Lo, v.Hi) as search.html#prefix defines for each prefix.
func dateCond(b *builder, v fhir.Value) *fhir.Error {
	lo, hi := Micros(v.Lo), Micros(v.Hi)
	switch prefixOf(v) {
	case fhir.PrefixEq:
		b.w(b.c("lo"), " >= ", b.arg(lo), " AND ", b.c("hi"), " <= ", b.arg(hi))
	case fhir.PrefixNe:
		b.w("NOT (", b.c("lo"), " >= ", b.arg(lo), " AND ", b.c("hi"), " <= ", b.arg(hi), ")")
	case fhir.PrefixGt:
		b.w(b.c("hi"), " > ", b.arg(hi))
	case fhir.PrefixLt:
		b.w(b.c("lo"), " < ", b.arg(lo))
	case fhir.PrefixGe:
		b.w(b.c("hi"), " > ", b.arg(lo))
	case fhir.PrefixLe:
		b.w(b.c("lo"), " < ", b.arg(hi))
	case fhir.PrefixSa:
		b.w(b.c("lo"), " >= ", b.arg(hi))
	case fhir.PrefixEb:
		b.w(b.c("hi"), " <= ", b.arg(lo))
	case fhir.PrefixAp:
		b.w(b.c("lo"), " < ", b.arg(hi), " AND ", b.c("hi"), " > ", b.arg(lo))
	default:
		return invalid("unknown prefix %q", v.Prefix)
	}
	return nil
}

func prefixOf(v fhir.Value) fhir.Prefix {
	if v.Prefix == "" {
		return fhir.PrefixEq
	}
	return v.Prefix
}

// numberCond compares x.num with the search number; for quantity it also
// matches the unit system and code when given.
func numberCond(quantity bool) func(*builder, fhir.Value) *fhir.Error {
	return func(b *builder, v fhir.Value) *fhir.Error {
		switch prefixOf(v) {
		case fhir.PrefixEq:
			b.w(b.c("num"), " >= ", b.arg(v.NumLo), " AND ", b.c("num"), " < ", b.arg(v.NumHi))
		case fhir.PrefixNe:
			b.w("NOT (", b.c("num"), " >= ", b.arg(v.NumLo), " AND ", b.c("num"), " < ", b.arg(v.NumHi), ")")
		case fhir.PrefixGt, fhir.PrefixSa:
			b.w(b.c("num"), " > ", b.arg(v.Num))
		case fhir.PrefixLt, fhir.PrefixEb:
			b.w(b.c("num"), " < ", b.arg(v.Num))
		case fhir.PrefixGe:
			b.w(b.c("num"), " >= ", b.arg(v.Num))
		case fhir.PrefixLe:
			b.w(b.c("num"), " <= ", b.arg(v.Num))
		case fhir.PrefixAp:
			d := v.Num * 0.1
			if d < 0 {
				d = -d
			}
			b.w(b.c("num"), " >= ", b.arg(v.Num-d), " AND ", b.c("num"), " <= ", b.arg(v.Num+d))
		default:
			return invalid("unknown prefix %q", v.Prefix)
		}
		if quantity {
			if v.System != "" {
				b.w(" AND ", b.c("system"), " = ", b.arg(v.System))
			}
			switch {
			case v.Code == "":
			case v.System == "" && b.tp != nil:
				// The typed row holds the display unit beside the code: it
				// is the second, system-less value of the idx_number rows.
				b.w(" AND (", b.c("code"), " = ", b.arg(v.Code), " OR ", b.c("unit"), " = ", b.arg(v.Code), ")")
			default:
				b.w(" AND ", b.c("code"), " = ", b.arg(v.Code))
			}
		}
		return nil
	}
}

func refCond(b *builder, v fhir.Value) *fhir.Error {
	if v.RefID == "" {
		return invalid("empty reference value")
	}
	b.w(b.c("ref_id"), " = ", b.arg(v.RefID))
	if v.RefType != "" {
		b.w(" AND ", b.c("ref_type"), " = ", b.arg(v.RefType))
	}
	return nil
}

// refAnyCond writes " AND (<ref_type = T AND ref_id = ANY(ids)> OR ...)"
// for vs grouped by their type (a value without one matches any type), in
// order of first appearance: the same matches as refCond's OR of pairs.
func refAnyCond(b *builder, vs []fhir.Value) *fhir.Error {
	var types []string
	ids := map[string][]string{}
	for _, v := range vs {
		if v.RefID == "" {
			return invalid("empty reference value")
		}
		if _, ok := ids[v.RefType]; !ok {
			types = append(types, v.RefType)
		}
		ids[v.RefType] = append(ids[v.RefType], v.RefID)
	}
	b.w(" AND (")
	for i, tt := range types {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(", b.c("ref_id"), " = ANY(", b.arg(ids[tt]), "::text[])")
		if tt != "" {
			b.w(" AND ", b.c("ref_type"), " = ", b.arg(tt))
		}
		b.w(")")
	}
	b.w(")")
	return nil
}

func idCond(b *builder, p fhir.Param) error {
	if p.Modifier != "" {
		return notSupported("modifier :%s of search parameter _id is not supported", p.Modifier)
	}
	var ids []string
	for _, v := range p.Values {
		id := v.Code
		if id == "" {
			id = v.String
		}
		if id == "" {
			return invalid("empty value").At("_id")
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return invalid("search parameter _id has no value")
	}
	b.w(b.outer, " IN (")
	for i, id := range ids {
		if i > 0 {
			b.w(", ")
		}
		b.w(b.arg(id))
	}
	b.w(")")
	return nil
}

// lastUpdatedCond applies date semantics to the point range
// [last_updated, last_updated+1µs), simplified so the comparisons stay on
// the bare column (index-friendly).
func lastUpdatedCond(b *builder, p fhir.Param) error {
	if p.Modifier != "" {
		return notSupported("modifier :%s of search parameter _lastUpdated is not supported", p.Modifier)
	}
	if len(p.Values) == 0 {
		return invalid("search parameter _lastUpdated has no value")
	}
	const c = "r.last_updated"
	b.w("(")
	for i, v := range p.Values {
		if i > 0 {
			b.w(" OR ")
		}
		lo, hi := Micros(v.Lo), Micros(v.Hi)
		b.w("(")
		switch prefixOf(v) {
		case fhir.PrefixEq, fhir.PrefixAp:
			b.w(c, " >= ", b.arg(lo), " AND ", c, " < ", b.arg(hi))
		case fhir.PrefixNe:
			b.w("NOT (", c, " >= ", b.arg(lo), " AND ", c, " < ", b.arg(hi), ")")
		case fhir.PrefixGt, fhir.PrefixSa:
			b.w(c, " >= ", b.arg(hi))
		case fhir.PrefixLt, fhir.PrefixEb:
			b.w(c, " < ", b.arg(lo))
		case fhir.PrefixGe:
			b.w(c, " >= ", b.arg(lo))
		case fhir.PrefixLe:
			b.w(c, " < ", b.arg(hi))
		default:
			return invalid("unknown prefix %q", v.Prefix).At("_lastUpdated")
		}
		b.w(")")
	}
	b.w(")")
	return nil
}

// sortKey is one compiled ORDER BY key: an expression over b.outer and its
// direction (" ASC", " DESC" or with " NULLS LAST").
type sortKey struct {
	expr, dir string
}

// sortKeys compiles q.Sort (without the final tiebreak on id). Resources
// lacking a sort value sort last in either direction.
func sortKeys(b *builder, tenant string, q *fhir.Query) ([]sortKey, error) {
	keys := make([]sortKey, 0, len(q.Sort))
	for _, k := range q.Sort {
		dir := " ASC"
		agg := "MIN"
		if k.Desc {
			dir, agg = " DESC", "MAX"
		}
		switch k.Param {
		case "_id":
			keys = append(keys, sortKey{b.outer, dir})
			continue
		case "_lastUpdated":
			if b.outer == "r.id" {
				keys = append(keys, sortKey{"r.last_updated", dir})
			} else {
				keys = append(keys, sortKey{"(SELECT r.last_updated FROM resources r WHERE r.tenant = " + b.arg(tenant) +
					" AND r.type = " + b.arg(q.Type) + " AND r.id = " + b.outer + ")", dir})
			}
			continue
		}
		if tt, tp, ok := b.d.typedStorage(q.Type, k.Param); ok && tp.Type == k.Type {
			// One value per resource: the column itself.
			part := map[fhir.ParamType]string{fhir.ParamDate: "lo", fhir.ParamToken: "code", fhir.ParamNumber: "num", fhir.ParamQuantity: "num"}[k.Type]
			if k.Type == fhir.ParamDate && k.Desc {
				part = "hi"
			}
			if part == "" {
				return nil, notSupported("sorting by reference parameter %s is not supported", k.Param)
			}
			keys = append(keys, sortKey{"(SELECT x." + tp.Col + "_" + part + " FROM " + tt.Table + " x WHERE x.tenant = " + b.arg(tenant) +
				" AND x.id = " + b.outer + ")", dir + " NULLS LAST"})
			continue
		}
		var t, col string
		switch k.Type {
		case fhir.ParamDate:
			t, col = "idx_date", "x.lo"
			if k.Desc {
				col = "x.hi"
			}
		case fhir.ParamString, fhir.ParamURI:
			t, col = "idx_string", "x.value"
		case fhir.ParamToken:
			t, col = "idx_token", "x.code"
		case fhir.ParamNumber, fhir.ParamQuantity:
			t, col = "idx_number", "x.num"
		case fhir.ParamReference:
			return nil, notSupported("sorting by reference parameter %s is not supported", k.Param)
		default:
			return nil, invalid("sort parameter %s has unknown type %q", k.Param, k.Type)
		}
		// COALESCE(col, col) is col, but it stops SQLite's min/max
		// optimization from scanning the whole (param, value) index instead
		// of probing this resource's rows by id.
		keys = append(keys, sortKey{"(SELECT " + agg + "(COALESCE(" + col + ", " + col + ")) FROM " + t + " x WHERE x.tenant = " + b.arg(tenant) +
			" AND x.type = " + b.arg(q.Type) + " AND x.id = " + b.outer + paramIn(b, fhir.IndexParams(q.Type, k.Param)) + ")", dir + " NULLS LAST"})
	}
	return keys, nil
}

// Include compiles one _include for a page: the current resources that page
// resources of type inc.Source reference through inc.Param (limited to type
// inc.Target when set), at most MaxIncluded, ordered by type and id. When no
// page resource can take part, the query is valid and selects nothing.
func Include(d Dialect, tenant string, inc fhir.Include, page []*fhir.Resource) (string, []any, error) {
	if inc.Source == "" || inc.Param == "" {
		return "", nil, invalid("_include needs a source type and a parameter")
	}
	var ids []string
	for _, r := range page {
		if r.Type == inc.Source {
			ids = append(ids, r.ID)
		}
	}
	b := &builder{d: d}
	b.w("SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = ", b.arg(tenant),
		" AND r.deleted = 0 AND ")
	if len(ids) == 0 {
		b.w("1 = 0")
	} else {
		if inc.Target != "" {
			b.w("r.type = ", b.arg(inc.Target), " AND ")
		}
		if tt, tp, ok := d.typedStorage(inc.Source, inc.Param); ok {
			b.tp = &tp
			b.w("(r.type, r.id) IN (SELECT ", b.c("ref_type"), ", ", b.c("ref_id"), " FROM ", tt.Table, " x WHERE x.tenant = ", b.arg(tenant))
		} else {
			b.w("(r.type, r.id) IN (SELECT x.ref_type, x.ref_id FROM idx_ref x WHERE x.tenant = ", b.arg(tenant),
				" AND x.type = ", b.arg(inc.Source))
		}
		b.paramIs(fhir.IndexParams(inc.Source, inc.Param))
		if d, ok := fhir.DerivedParam(inc.Source, inc.Param); ok {
			b.refTypeIn(d.Targets)
		}
		b.w(" AND x.id IN (")
		for i, id := range ids {
			if i > 0 {
				b.w(", ")
			}
			b.w(b.arg(id))
		}
		b.w("))")
	}
	b.w(" ORDER BY r.type, r.id LIMIT ", b.arg(int64(MaxIncluded)))
	s, a := b.result()
	return s, a, nil
}

// RevInclude compiles one _revinclude for a page: the current resources of
// type inc.Source whose inc.Param references a page resource (of type
// inc.Target when set), at most MaxIncluded, ordered by id. When no page
// resource can take part, the query is valid and selects nothing.
func RevInclude(d Dialect, tenant string, inc fhir.Include, page []*fhir.Resource) (string, []any, error) {
	if inc.Source == "" || inc.Param == "" {
		return "", nil, invalid("_revinclude needs a source type and a parameter")
	}
	der, _ := fhir.DerivedParam(inc.Source, inc.Param)
	var targets []*fhir.Resource
	for _, r := range page {
		if (inc.Target == "" || r.Type == inc.Target) && (der.Targets == nil || slices.Contains(der.Targets, r.Type)) {
			targets = append(targets, r)
		}
	}
	b := &builder{d: d}
	b.w("SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resources r WHERE r.tenant = ", b.arg(tenant),
		" AND r.type = ", b.arg(inc.Source), " AND r.deleted = 0 AND ")
	if len(targets) == 0 {
		b.w("1 = 0")
	} else {
		if tt, tp, ok := d.typedStorage(inc.Source, inc.Param); ok {
			b.tp = &tp
			b.w("r.id IN (SELECT x.id FROM ", tt.Table, " x WHERE x.tenant = ", b.arg(tenant))
		} else {
			b.w("r.id IN (SELECT x.id FROM idx_ref x WHERE x.tenant = ", b.arg(tenant), " AND x.type = ", b.arg(inc.Source))
		}
		b.paramIs(fhir.IndexParams(inc.Source, inc.Param))
		b.w(" AND (")
		for i, t := range targets {
			if i > 0 {
				b.w(" OR ")
			}
			b.w("(", b.c("ref_type"), " = ", b.arg(t.Type), " AND ", b.c("ref_id"), " = ", b.arg(t.ID), ")")
		}
		b.w("))")
	}
	b.w(" ORDER BY r.id LIMIT ", b.arg(int64(MaxIncluded)))
	s, a := b.result()
	return s, a, nil
}

// LastN compiles Observation/$lastn over the matches of q: for each distinct
// (system, code) of the "code" token parameter, the max newest by the "date"
// parameter (ties by last_updated desc, then id). Rows come ordered by code
// group and newest first within it; a resource in several groups appears
// once per group (the caller keeps the first).
func LastN(d Dialect, tenant string, q *fhir.Query, max int) (string, []any, error) {
	if max < 1 {
		return "", nil, invalid("$lastn max must be at least 1")
	}
	b := &builder{d: d, outer: "r.id"}
	// COALESCE keeps SQLite from answering MAX with the (param, hi)
	// index scan instead of probing this resource's rows.
	if tt, tp, ok := d.typedStorage(q.Type, "date"); ok && tp.Type == fhir.ParamDate {
		b.w("WITH m AS (SELECT r.id, r.last_updated, (SELECT x.", tp.Col, "_hi FROM ", tt.Table, " x WHERE x.tenant = ", b.arg(tenant),
			" AND x.id = r.id) AS hi FROM resources r WHERE ")
	} else {
		b.w("WITH m AS (SELECT r.id, r.last_updated, (SELECT MAX(COALESCE(x.hi, x.hi)) FROM idx_date x WHERE x.tenant = ", b.arg(tenant),
			" AND x.type = ", b.arg(q.Type), " AND x.id = r.id AND x.param = ", b.arg("date"), ") AS hi FROM resources r WHERE ")
	}
	if err := where(b, tenant, q); err != nil {
		return "", nil, err
	}
	b.w("), g AS (SELECT m.id, c.system, c.code, row_number() OVER (PARTITION BY c.system, c.code ORDER BY m.hi DESC NULLS LAST, m.last_updated DESC, m.id) AS rn",
		" FROM m JOIN idx_token c ON c.tenant = ", b.arg(tenant), " AND c.type = ", b.arg(q.Type), " AND c.id = m.id AND c.param = ", b.arg("code"), ")")
	b.w(" SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM g JOIN resources r ON r.tenant = ", b.arg(tenant),
		" AND r.type = ", b.arg(q.Type), " AND r.id = g.id WHERE g.rn <= ", b.arg(int64(max)),
		" ORDER BY g.system, g.code, g.rn")
	s, a := b.result()
	return s, a, nil
}

// History compiles a _history read: newest first (last_updated desc, then
// type, id, version desc), LIMIT hq.Count+1 OFFSET hq.Offset. Since is
// inclusive; At keeps, per resource, the version current at that instant.
//
// A resource's versions live in two tables: the current one in resources,
// the superseded ones in resource_versions (a create writes one row, not
// two). Each table's part is read newest first and cut at Offset+Count+1
// rows, which is enough: every row of the page is among the first
// Offset+Count+1 of its own table in the same order. So each part is an
// ordered walk of a last_updated index that stops early, and PostgreSQL
// merges the two walks (Merge Append) instead of sorting the tenant's whole
// history.
func History(d Dialect, tenant string, hq *fhir.HistoryQuery) (string, []any, error) {
	if err := checkHistory(hq); err != nil {
		return "", nil, err
	}
	const order = " ORDER BY v.last_updated DESC, v.type, v.id, v.version DESC LIMIT "
	b := &builder{d: d}
	n := int64(max(hq.Offset, 0) + max(hq.Count, 0) + 1)
	b.w("SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.body FROM (")
	for i, table := range []string{"resources", "resource_versions"} {
		if i > 0 {
			b.w(" UNION ALL ")
		}
		b.w("SELECT * FROM (SELECT ", Columns, " FROM ", table, " v WHERE ")
		historyWhere(b, table, tenant, hq)
		b.w(order, b.arg(n), ") AS part", strconv.Itoa(i))
	}
	b.w(") v", order, b.arg(int64(max(hq.Count, 0)+1)), " OFFSET ", b.arg(int64(max(hq.Offset, 0))))
	s, a := b.result()
	return s, a, nil
}

// HistoryCount compiles the number of versions History selects without paging.
func HistoryCount(d Dialect, tenant string, hq *fhir.HistoryQuery) (string, []any, error) {
	if err := checkHistory(hq); err != nil {
		return "", nil, err
	}
	b := &builder{d: d}
	b.w("SELECT ")
	for i, table := range []string{"resources", "resource_versions"} {
		if i > 0 {
			b.w(" + ")
		}
		b.w("(SELECT COUNT(*) FROM ", table, " v WHERE ")
		historyWhere(b, table, tenant, hq)
		b.w(")")
	}
	s, a := b.result()
	return s, a, nil
}

func checkHistory(hq *fhir.HistoryQuery) error {
	if hq.ID != "" && hq.Type == "" {
		return invalid("instance history needs a resource type")
	}
	return nil
}

// historyWhere writes the conditions on table's rows v (resources or
// resource_versions).
func historyWhere(b *builder, table, tenant string, hq *fhir.HistoryQuery) {
	b.w("v.tenant = ", b.arg(tenant))
	if hq.Type != "" {
		b.w(" AND v.type = ", b.arg(hq.Type))
	}
	if hq.ID != "" {
		b.w(" AND v.id = ", b.arg(hq.ID))
	}
	if !hq.Since.IsZero() {
		b.w(" AND v.last_updated >= ", b.arg(Micros(hq.Since)))
	}
	if hq.At.IsZero() {
		return
	}
	at := Micros(hq.At)
	b.w(" AND v.last_updated <= ", b.arg(at))
	if table == "resources" {
		// The current version is the newest: nothing supersedes it.
		return
	}
	// A superseded version was current at At unless a newer one, superseded
	// or current, already existed then.
	b.w(" AND NOT EXISTS (SELECT 1 FROM resource_versions w WHERE w.tenant = v.tenant AND w.type = v.type AND w.id = v.id",
		" AND w.version > v.version AND w.last_updated <= ", b.arg(at), ")",
		" AND NOT EXISTS (SELECT 1 FROM resources w WHERE w.tenant = v.tenant AND w.type = v.type AND w.id = v.id",
		" AND w.last_updated <= ", b.arg(at), ")")
}

// String renders a statement for test failure messages (never for logs:
// arguments may hold patient data).
func (s Stmt) String() string { return fmt.Sprintf("%s %v", s.SQL, s.Args) }
