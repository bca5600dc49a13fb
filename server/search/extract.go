package search

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Extract computes the index entries of a resource of type typ from its
// validated JSON, for every parameter of typ (except _id and _lastUpdated,
// which stores answer from the resource row). Entries are grouped by
// parameter code in sorted order, in document order within a parameter,
// without duplicates.
//
// Values of an unexpected shape (which validated JSON does not have) are
// skipped rather than failing the write. Errors: KindNotSupported for an
// unsupported type; KindInvalid when body is not a JSON object or its
// resourceType is not typ.
func (r *Registry) Extract(typ string, body []byte) ([]fhir.IndexEntry, error) {
	params := r.sorted[typ]
	if params == nil {
		return nil, fhir.Errorf(fhir.KindNotSupported, "resource type is not supported for search")
	}
	return r.extract(typ, body, params)
}

// ExtractOnly is Extract for the parameters named codes only (unknown and
// derived ones are skipped). Readers that need a few facts of a resource —
// its patient, its codes — use it: only the members those parameters read
// are decoded.
func (r *Registry) ExtractOnly(typ string, body []byte, codes ...string) ([]fhir.IndexEntry, error) {
	if r.sorted[typ] == nil {
		return nil, fhir.Errorf(fhir.KindNotSupported, "resource type is not supported for search")
	}
	var params []*param
	for _, c := range codes {
		if p := r.params[typ][c]; p != nil && !slices.Contains(params, p) {
			params = append(params, p)
		}
	}
	slices.SortFunc(params, func(a, b *param) int { return strings.Compare(a.def.Code, b.def.Code) })
	return r.extract(typ, body, params)
}

// extract decodes the top-level members params read (a resource's other
// members, its narrative above all, are only scanned over) and indexes
// their values.
func (r *Registry) extract(typ string, body []byte, params []*param) ([]fhir.IndexEntry, error) {
	root, rt, err := fhir.DecodeMembers(body, func(key string) bool { return readsMember(params, key) })
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "resource body is not a JSON object").Wrap(err)
	}
	if rt != typ {
		return nil, fhir.Errorf(fhir.KindInvalid, "resourceType does not match %s", typ)
	}
	var x extractor
	for _, p := range params {
		if len(p.def.StoredAs) > 0 {
			continue
		}
		x.param, x.start, x.seen = p, len(x.out), nil
		for _, pa := range p.paths {
			x.walk(root, pa)
		}
	}
	return x.out, nil
}

// readsMember reports whether a path of params starts at top-level member
// key.
func readsMember(params []*param, key string) bool {
	for _, p := range params {
		if len(p.def.StoredAs) > 0 {
			continue
		}
		for _, pa := range p.paths {
			first := pa.segs[0]
			if len(pa.segs) > 1 || pa.choice == nil {
				if key == first {
					return true
				}
				continue
			}
			for _, t := range pa.choice {
				if key == first+upperFirst(t) {
					return true
				}
			}
		}
	}
	return false
}

// extractor accumulates the entries of one resource.
type extractor struct {
	param *param
	out   []fhir.IndexEntry
	start int                          // index in out of param's first entry
	seen  map[fhir.IndexEntry]struct{} // param's entries, once there are many
}

// dedupeScan is how many entries of one parameter are deduplicated by a
// linear scan (cheaper than hashing for the usual handful) before a map
// takes over.
const dedupeScan = 32

func (x *extractor) add(e fhir.IndexEntry) {
	e.Param, e.Type = x.param.def.Code, x.param.def.Type
	mine := x.out[x.start:]
	if x.seen == nil && len(mine) >= dedupeScan {
		x.seen = make(map[fhir.IndexEntry]struct{}, 2*len(mine))
		for _, m := range mine {
			x.seen[m] = struct{}{}
		}
	}
	if x.seen != nil {
		if _, dup := x.seen[e]; dup {
			return
		}
		x.seen[e] = struct{}{}
	} else {
		for i := range mine {
			if mine[i] == e {
				return
			}
		}
	}
	x.out = append(x.out, e)
}

// walk follows pa from root and indexes every value it reaches.
func (x *extractor) walk(root map[string]any, pa path) {
	nodes := []any{root}
	last := len(pa.segs) - 1
	for _, seg := range pa.segs[:last] {
		nodes = step(nodes, seg)
		if len(nodes) == 0 {
			return
		}
	}
	leaf := pa.segs[last]
	if pa.choice == nil {
		for _, v := range step(nodes, leaf) {
			x.value(v, pa.dtype, pa.restrict)
		}
		return
	}
	for _, t := range pa.choice {
		for _, v := range step(nodes, leaf+upperFirst(t)) {
			x.value(v, t, "")
		}
	}
}

// step returns the members named seg of the objects in nodes, with arrays
// flattened.
func step(nodes []any, seg string) []any {
	var out []any
	for _, n := range nodes {
		m, ok := n.(map[string]any)
		if !ok {
			continue
		}
		switch v := m[seg].(type) {
		case nil:
		case []any:
			for _, e := range v {
				if e != nil {
					out = append(out, e)
				}
			}
		default:
			out = append(out, v)
		}
	}
	return out
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// value indexes one value of FHIR datatype dt as the parameter's type wants.
func (x *extractor) value(v any, dt, restrict string) {
	switch x.param.def.Type {
	case fhir.ParamToken:
		x.token(v, dt)
	case fhir.ParamString:
		x.str(v, dt)
	case fhir.ParamDate:
		x.date(v, dt)
	case fhir.ParamQuantity, fhir.ParamNumber:
		x.number(v, dt)
	case fhir.ParamReference:
		x.reference(v, restrict)
	}
}

func (x *extractor) token(v any, dt string) {
	switch dt {
	case "CodeableConcept":
		cc, ok := v.(map[string]any)
		if !ok {
			return
		}
		text := NormalizeString(str(cc["text"]))
		coded := false
		codings, _ := cc["coding"].([]any)
		for _, c := range codings {
			cm, ok := c.(map[string]any)
			if !ok {
				continue
			}
			sys, code := str(cm["system"]), str(cm["code"])
			if sys == "" && code == "" {
				continue
			}
			t := NormalizeString(str(cm["display"]))
			if t == "" {
				t = text
			}
			coded = true
			x.add(fhir.IndexEntry{System: sys, Code: code, Text: t})
		}
		if !coded && text != "" {
			// A text-only concept: an entry with no system or code so that
			// :text still finds it. Not added beside codings, where it
			// would form a spurious ("", "") code group (e.g. for $lastn).
			x.add(fhir.IndexEntry{Text: text})
		}
	case "Coding":
		cm, ok := v.(map[string]any)
		if !ok {
			return
		}
		sys, code := str(cm["system"]), str(cm["code"])
		if sys == "" && code == "" {
			return
		}
		x.add(fhir.IndexEntry{System: sys, Code: code, Text: NormalizeString(str(cm["display"]))})
	case "Identifier":
		im, ok := v.(map[string]any)
		if !ok {
			return
		}
		sys, val := str(im["system"]), str(im["value"])
		if sys == "" && val == "" {
			return
		}
		var t string
		if tm, ok := im["type"].(map[string]any); ok {
			t = NormalizeString(str(tm["text"]))
		}
		x.add(fhir.IndexEntry{System: sys, Code: val, Text: t})
	case "ContactPoint":
		cm, ok := v.(map[string]any)
		if !ok {
			return
		}
		if val := str(cm["value"]); val != "" {
			x.add(fhir.IndexEntry{Code: val})
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			x.add(fhir.IndexEntry{Code: strconv.FormatBool(b)})
		}
	default: // code, string, id, uri as token
		if s := str(v); s != "" {
			x.add(fhir.IndexEntry{Code: s})
		}
	}
}

func (x *extractor) str(v any, dt string) {
	one := func(s string) {
		if s != "" {
			x.add(fhir.IndexEntry{String: NormalizeString(s), Text: s})
		}
	}
	each := func(v any) {
		switch t := v.(type) {
		case string:
			one(t)
		case []any:
			for _, e := range t {
				one(str(e))
			}
		}
	}
	m, isObj := v.(map[string]any)
	switch {
	case dt == "HumanName" && isObj:
		one(str(m["family"]))
		each(m["given"])
		one(str(m["text"]))
		each(m["prefix"])
		each(m["suffix"])
	case dt == "Address" && isObj:
		each(m["line"])
		for _, k := range []string{"city", "district", "state", "country", "postalCode", "text"} {
			one(str(m[k]))
		}
	default:
		one(str(v))
	}
}

func (x *extractor) date(v any, dt string) {
	switch dt {
	case "Period":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		lo, hi := fhir.MinTime, fhir.MaxTime
		start, end := str(m["start"]), str(m["end"])
		if start == "" && end == "" {
			return
		}
		if start != "" {
			l, _, ok := parseDateRange(start)
			if !ok {
				return
			}
			lo = l
		}
		if end != "" {
			_, h, ok := parseDateRange(end)
			if !ok {
				return
			}
			hi = h
		}
		if hi.Before(lo) {
			return
		}
		x.add(fhir.IndexEntry{Lo: lo, Hi: hi})
	case "Timing":
		// "The specified scheduling details are ignored and only the
		// outer limits matter" (https://hl7.org/fhir/R4/search.html#date):
		// one range from the earliest event to the end of the latest. So
		// a Timing is one value, as the typed search columns of the
		// PostgreSQL store need (storesql.TypedTable).
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		events, _ := m["event"].([]any)
		var lo, hi time.Time
		for _, e := range events {
			l, h, ok := parseDateRange(str(e))
			if !ok {
				continue
			}
			if lo.IsZero() || l.Before(lo) {
				lo = l
			}
			if hi.IsZero() || h.After(hi) {
				hi = h
			}
		}
		if !lo.IsZero() {
			x.add(fhir.IndexEntry{Lo: lo, Hi: hi})
		}
	default: // date, dateTime, instant
		if lo, hi, ok := parseDateRange(str(v)); ok {
			x.add(fhir.IndexEntry{Lo: lo, Hi: hi})
		}
	}
}

func (x *extractor) number(v any, dt string) {
	if dt != "Quantity" {
		if n, ok := v.(json.Number); ok {
			if num, lo, hi, ok := parseDecimal(string(n)); ok {
				x.add(fhir.IndexEntry{Num: num, NumLo: lo, NumHi: hi})
			}
		}
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	n, ok := m["value"].(json.Number)
	if !ok {
		return
	}
	num, lo, hi, ok := parseDecimal(string(n))
	if !ok {
		return
	}
	sys, code, unit := str(m["system"]), str(m["code"]), str(m["unit"])
	x.add(fhir.IndexEntry{Num: num, NumLo: lo, NumHi: hi, System: sys, Code: code})
	if unit != "" && unit != code {
		// The display unit, so "5.4||mmHg" finds a value coded mm[Hg].
		x.add(fhir.IndexEntry{Num: num, NumLo: lo, NumHi: hi, Code: unit})
	}
}

func (x *extractor) reference(v any, restrict string) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	typ, id, ok := parseReference(str(m["reference"]))
	if !ok || restrict != "" && typ != restrict {
		return
	}
	x.add(fhir.IndexEntry{RefType: typ, RefID: id})
}

// str returns v if it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}
