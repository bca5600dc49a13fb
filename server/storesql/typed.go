package storesql

import (
	"sort"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Typed search rows (PostgreSQL).
//
// The idx_* tables hold one row per resource, parameter and value, each
// with two btree entries: a heart-rate Observation costs eight such rows
// and sixteen index entries, an AuditEvent about as many, and writing them
// is most of what a create costs the database. For the hot types the
// PostgreSQL store keeps the parameters that hold at most one value per
// resource in one row of a table of the type's own instead
// (search_observation, search_auditevent; migration 0070), a column group
// per parameter, with only the indexes searches drive from.
//
// A TypedTable says which parameters; the compiler writes their conditions
// against the typed row (alias x, as an index row) and the store writes
// the row. The other parameters stay in the idx_* tables. The SQLite store,
// the embedded default for small data sets, keeps the generic layout for
// every type (its Dialect has no typed tables), and the shared store suite
// holds both to the same answers.

// TypedTable is a resource type's typed search row.
type TypedTable struct {
	Table string
	// Params maps each stored parameter (see fhir.IndexParams) the row
	// holds to its column group. A derived parameter is typed when the one
	// parameter it is stored as is.
	Params map[string]TypedParam
	// Codes: the row also carries the RefCodeParam tokens as codes (RefCode
	// of each), which the latest search filters by as it walks a
	// reference's rows in date order (as idx_ref.codes).
	Codes bool
	// CodeParams are token parameters whose values the codes column also
	// carries (ParamCode and ParamAnyCode of each), so that the latest
	// search walking the typed rows filters by them too instead of probing
	// idx_token per row (a patient's latest vital signs: category). Their
	// idx_token rows stay, for every other search.
	CodeParams []string
	// CodeRows, when set, names a table with a row per code of each
	// resource (RefCode form) that has a value of parameter CodeRowsRef
	// (a typed reference): (tenant, <ref>_id, <ref>_type, code, date_hi,
	// id), indexed in that order with date_hi descending. The latest
	// search for one code walks it, so it reads the target's rows of that
	// code only: walking the reference's rows and filtering by codes reads
	// every newer row of other codes first, thousands for a patient on a
	// monitor.
	CodeRows    string
	CodeRowsRef string
}

// TypedParam is one parameter's column group: columns named Col + "_" +
// a part, by parameter type:
//
//	reference          _type, _id
//	token              _system, _code, _text
//	date               _lo, _hi (BIGINT µs, the covered range [lo, hi))
//	number             _num, _lo, _hi (DOUBLE)
//	quantity           _num, _lo, _hi, _system, _code (the coded unit), _unit
//
// A quantity's _unit is its display unit when that differs from its code:
// search.Registry indexes it as a second value without a system (so that
// "5.4||mmHg" finds a value coded mm[Hg]), which the typed row keeps here.
//
// A column group is NULL when the resource has no value; its presence
// column (_id, _code, _lo, _num) says which.
type TypedParam struct {
	Col  string
	Type fhir.ParamType
	// Indexed: an index of the table leads with the column group (after
	// tenant), so a search can start from it (see driver). References
	// are indexed as (tenant, _id, _type, date_hi DESC NULLS LAST, id),
	// which also serves the latest search (typedLatest).
	Indexed bool
}

// typedTables are the PostgreSQL store's typed rows. Each parameter here
// holds at most one value per resource, by the cardinality of the element
// it indexes in R4 (Observation.subject 0..1, .device 0..1, .encounter
// 0..1, .status 1..1, .effective[x] 0..1 — a Timing as its outer limits,
// see search.Registry —, .valueQuantity 0..1; AuditEvent.recorded 1..1,
// .type 1..1, .action 0..1, .outcome 0..1, .source.observer 1..1). The
// store refuses a resource whose index entries say otherwise rather than
// drop a value.
var typedTables = map[string]*TypedTable{
	"Observation": {Table: "search_observation", Codes: true, CodeParams: []string{"category"}, CodeRows: "search_observation_code", CodeRowsRef: "subject", Params: map[string]TypedParam{
		"subject":        {"subject", fhir.ParamReference, true},
		"device":         {"device", fhir.ParamReference, true},
		"encounter":      {"encounter", fhir.ParamReference, true},
		"status":         {"status", fhir.ParamToken, false},
		"date":           {"date", fhir.ParamDate, true},
		"value-quantity": {"value_quantity", fhir.ParamQuantity, false},
	}},
	"AuditEvent": {Table: "search_auditevent", Params: map[string]TypedParam{
		"date":    {"date", fhir.ParamDate, true},
		"type":    {"type", fhir.ParamToken, false},
		"action":  {"action", fhir.ParamToken, false},
		"outcome": {"outcome", fhir.ParamToken, false},
		"source":  {"source", fhir.ParamReference, false},
	}},
}

// Typed returns typ's typed search row in dialect d, nil when it has none
// (every type on SQLite).
func (d Dialect) Typed(typ string) *TypedTable {
	if d.typed == nil {
		return nil
	}
	return d.typed[typ]
}

// TypedTypes lists the resource types that have a typed row in d.
func (d Dialect) TypedTypes() []string {
	var out []string
	for typ := range d.typed {
		out = append(out, typ)
	}
	sort.Strings(out)
	return out
}

// Column is one column of a typed row, in the order Columns lists them.
type Column struct {
	Name  string
	Param string // the stored parameter it belongs to; "" for codes
	Part  string // "type", "id", "system", "code", "text", "lo", "hi", "num"; "codes"
	SQL   string // its SQL type: TEXT, BIGINT, DOUBLE PRECISION or TEXT[]
}

// Columns lists t's columns after tenant and id, by parameter name, then
// codes.
func (t *TypedTable) Columns() []Column {
	params := make([]string, 0, len(t.Params))
	for p := range t.Params {
		params = append(params, p)
	}
	sort.Strings(params)
	var out []Column
	for _, p := range params {
		tp := t.Params[p]
		for _, part := range typedParts(tp.Type) {
			sqlType := "TEXT"
			switch {
			case tp.Type == fhir.ParamDate:
				sqlType = "BIGINT"
			case part == "num" || part == "lo" || part == "hi":
				sqlType = "DOUBLE PRECISION"
			}
			out = append(out, Column{Name: tp.Col + "_" + part, Param: p, Part: part, SQL: sqlType})
		}
	}
	if t.Codes {
		out = append(out, Column{Name: "codes", Part: "codes", SQL: "TEXT[]"})
	}
	return out
}

// typedParts are the column parts of a parameter type, presence first.
func typedParts(pt fhir.ParamType) []string {
	switch pt {
	case fhir.ParamReference:
		return []string{"id", "type"}
	case fhir.ParamToken:
		return []string{"code", "system", "text"}
	case fhir.ParamDate:
		return []string{"lo", "hi"}
	case fhir.ParamNumber:
		return []string{"num", "lo", "hi"}
	case fhir.ParamQuantity:
		return []string{"num", "lo", "hi", "system", "code", "unit"}
	}
	return nil
}

// typedStorage is how parameter name of typ is stored in d: in the typed
// row (tp, ok) or in the idx_* tables. A derived parameter counts as
// typed when it is stored as exactly one parameter and that one is typed;
// storing it as several where some are typed is a configuration error,
// which TestTypedConfig rules out.
func (d Dialect) typedStorage(typ, name string) (*TypedTable, TypedParam, bool) {
	t := d.Typed(typ)
	if t == nil {
		return nil, TypedParam{}, false
	}
	params := fhir.IndexParams(typ, name)
	if len(params) != 1 {
		return nil, TypedParam{}, false
	}
	tp, ok := t.Params[params[0]]
	return t, tp, ok
}

// c names column part of the row the condition being written reads: the
// idx_* column ("x.code") or, under a typed parameter, its column in the
// typed row ("x.status_code"). Parts are the idx_* column names; ref_type
// and ref_id are a reference group's _type and _id.
func (b *builder) c(part string) string {
	if b.tp == nil {
		return "x." + part
	}
	return "x." + b.tp.Col + "_" + strings.TrimPrefix(part, "ref_")
}
