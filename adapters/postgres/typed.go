package postgres

import (
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file writes the typed search rows (storesql.TypedTable, migration
// 0070): one row per current resource of a typed type, holding the values
// of its typed parameters, written with the idx_* rows of its other
// parameters in the same batch.

// typedWriter is one typed table's INSERT ... SELECT FROM unnest, with a
// column of arrays per table column.
type typedWriter struct {
	tt   *storesql.TypedTable
	cols []storesql.Column
	sql  string
	// where each parameter's parts go: param -> part -> column index
	at map[string]map[string]int
}

// typedWriters are built once from the dialect's typed tables, by
// resource type.
var typedWriters = func() map[string]*typedWriter {
	out := map[string]*typedWriter{}
	for _, typ := range dialect.TypedTypes() {
		out[typ] = newTypedWriter(dialect.Typed(typ))
	}
	return out
}()

func newTypedWriter(tt *storesql.TypedTable) *typedWriter {
	w := &typedWriter{tt: tt, cols: tt.Columns(), at: map[string]map[string]int{}}
	names, sel, args := []string{"id"}, []string{"u.id"}, []string{"$2::text[]"}
	for i, c := range w.cols {
		names = append(names, c.Name)
		n := "$" + strconv.Itoa(i+3)
		switch {
		case c.Part == "codes":
			// unnest cannot take an array of arrays of different lengths:
			// the codes travel as one JSON array per row.
			sel = append(sel, "CASE WHEN u.codes IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(u.codes::jsonb)) END")
			args = append(args, n+"::text[]")
		case c.SQL == "BIGINT":
			sel = append(sel, "u."+c.Name)
			args = append(args, n+"::bigint[]")
		case c.SQL == "DOUBLE PRECISION":
			sel = append(sel, "u."+c.Name)
			args = append(args, n+"::float8[]")
		default:
			sel = append(sel, "u."+c.Name)
			args = append(args, n+"::text[]")
		}
		if c.Param != "" {
			if w.at[c.Param] == nil {
				w.at[c.Param] = map[string]int{}
			}
			w.at[c.Param][c.Part] = i
		}
	}
	w.sql = "INSERT INTO " + tt.Table + " (tenant, " + strings.Join(names, ", ") + ") SELECT $1, " + strings.Join(sel, ", ") +
		" FROM unnest(" + strings.Join(args, ", ") + ") AS u(" + strings.Join(names, ", ") + ")"
	return w
}

// typedBatch collects the typed rows of one table for one statement, and
// their code rows (TypedTable.CodeRows) for another.
type typedBatch struct {
	w    *typedWriter
	ids  []string
	cols []any // per column: []*string, []*int64 or []*float64

	codeRefIDs, codeRefTypes, codes, codeIDs []string
	codeDates                                []*int64
}

func newTypedBatch(w *typedWriter) *typedBatch {
	tb := &typedBatch{w: w, cols: make([]any, len(w.cols))}
	for i, c := range w.cols {
		switch {
		case c.Part == "codes" || c.SQL == "TEXT":
			tb.cols[i] = []*string(nil)
		case c.SQL == "BIGINT":
			tb.cols[i] = []*int64(nil)
		default:
			tb.cols[i] = []*float64(nil)
		}
	}
	return tb
}

// typedValue is one typed parameter's value: its index entry, and for a
// quantity the display unit search.Registry indexed as a second entry.
type typedValue struct {
	e    fhir.IndexEntry
	unit string
}

// add appends the row of resource id from its typed values and its codes
// (nil for none; codesJSON is codes as a JSON array).
func (tb *typedBatch) add(id string, typed map[string]typedValue, codes []string, codesJSON *string) {
	tb.ids = append(tb.ids, id)
	row := len(tb.ids) - 1
	for i := range tb.w.cols {
		switch col := tb.cols[i].(type) {
		case []*string:
			tb.cols[i] = append(col, nil)
		case []*int64:
			tb.cols[i] = append(col, nil)
		case []*float64:
			tb.cols[i] = append(col, nil)
		}
	}
	str := func(part string, p string, v string) {
		if i, ok := tb.w.at[p][part]; ok {
			tb.cols[i].([]*string)[row] = &v
		}
	}
	for p, v := range typed {
		e := v.e
		switch e.Type {
		case fhir.ParamReference:
			str("id", p, e.RefID)
			str("type", p, e.RefType)
		case fhir.ParamToken:
			str("code", p, e.Code)
			str("system", p, e.System)
			str("text", p, e.Text)
		case fhir.ParamDate:
			lo, hi := storesql.Micros(e.Lo), storesql.Micros(e.Hi)
			if hi <= lo {
				hi = lo + 1
			}
			tb.cols[tb.w.at[p]["lo"]].([]*int64)[row] = &lo
			tb.cols[tb.w.at[p]["hi"]].([]*int64)[row] = &hi
		case fhir.ParamNumber, fhir.ParamQuantity:
			num, lo, hi := e.Num, e.NumLo, e.NumHi
			tb.cols[tb.w.at[p]["num"]].([]*float64)[row] = &num
			tb.cols[tb.w.at[p]["lo"]].([]*float64)[row] = &lo
			tb.cols[tb.w.at[p]["hi"]].([]*float64)[row] = &hi
			if e.Type == fhir.ParamQuantity {
				str("system", p, e.System)
				str("code", p, e.Code)
				if v.unit != "" {
					str("unit", p, v.unit)
				}
			}
		}
	}
	if tb.w.tt.Codes {
		tb.cols[len(tb.cols)-1].([]*string)[row] = codesJSON
	}
	if ref, ok := typed[tb.w.tt.CodeRowsRef]; ok && tb.w.tt.CodeRows != "" {
		var date *int64
		if i, ok := tb.w.at[storesql.RefDateParam]["hi"]; ok {
			date = tb.cols[i].([]*int64)[row]
		}
		for i, c := range codes {
			if slices.Contains(codes[:i], c) {
				continue // one row per code: the walk meets a resource once
			}
			tb.codeRefIDs, tb.codeRefTypes = append(tb.codeRefIDs, ref.e.RefID), append(tb.codeRefTypes, ref.e.RefType)
			tb.codes, tb.codeDates, tb.codeIDs = append(tb.codes, c), append(tb.codeDates, date), append(tb.codeIDs, id)
		}
	}
}

func (tb *typedBatch) queue(b *pgx.Batch, tenant string) {
	args := append([]any{tenant, tb.ids}, tb.cols...)
	b.Queue(tb.w.sql, args...)
	if len(tb.codes) > 0 {
		ref := tb.w.tt.Params[tb.w.tt.CodeRowsRef].Col
		b.Queue(`INSERT INTO `+tb.w.tt.CodeRows+` (tenant, `+ref+`_id, `+ref+`_type, code, date_hi, id)
			SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u`,
			tenant, tb.codeRefIDs, tb.codeRefTypes, tb.codes, tb.codeDates, tb.codeIDs)
	}
}

// splitTyped takes the entries of typed parameters out of r's entries:
// it returns the typed values by parameter and the rest. A parameter holds
// one value in its typed row (a quantity with its display unit, which
// search.Registry extracts as a second entry of the same number without a
// system); another, different one is refused (KindInternal: the registry
// extracts one for each typed parameter) rather than dropped.
func splitTyped(w *typedWriter, r indexedResource) (map[string]typedValue, []fhir.IndexEntry, error) {
	typed := map[string]typedValue{}
	var rest []fhir.IndexEntry
	for _, e := range r.entries {
		tp, ok := w.tt.Params[e.Param]
		if !ok {
			rest = append(rest, e)
			continue
		}
		if tp.Type != e.Type {
			return nil, nil, fhir.Errorf(fhir.KindInternal, "index entry of %s parameter %s has type %s, its typed column %s", r.typ, e.Param, e.Type, tp.Type)
		}
		prev, seen := typed[e.Param]
		switch {
		case !seen:
			typed[e.Param] = typedValue{e: e}
		case prev.e == e:
		case e.Type == fhir.ParamQuantity && prev.unit == "" && e.System == "" && e.Code != "" &&
			e.Num == prev.e.Num && e.NumLo == prev.e.NumLo && e.NumHi == prev.e.NumHi:
			prev.unit = e.Code
			typed[e.Param] = prev
		default:
			return nil, nil, fhir.Errorf(fhir.KindInternal, "%s parameter %s has more than one value; its typed column holds one", r.typ, e.Param)
		}
	}
	return typed, rest, nil
}
