package search

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ParseOptions tune Parse.
type ParseOptions struct {
	// Strict is Prefer: handling=strict: an unknown or unsupported
	// parameter is an error instead of being ignored.
	Strict bool
	// DefaultCount is the page size without _count (0 -> 50); MaxCount caps
	// _count (0 -> 1000).
	DefaultCount, MaxCount int
}

const (
	defaultCount = 50
	maxCount     = 1000
	// maxEcho caps any client value quoted back in an error message.
	maxEcho = 64
)

// Parse turns the query parameters of a search on typ into a typed query
// (R4 search.html). Parameters are ANDed (a repeated parameter gives one
// Param per occurrence), comma-separated values within one are ORed.
//
// In strict mode an unknown parameter is KindInvalid, and a chained
// parameter or _has KindNotSupported, each naming the parameter; in lenient
// mode such parameters are skipped and their names returned in ignored.
// In both modes bad syntax (a bad date, number, prefix or modifier value,
// _count, _offset, _sort, _summary, _total, _include) is KindInvalid and a
// modifier we do not implement (:identifier, :above, :below, :in ...) is
// KindNotSupported. An unsupported typ is KindNotSupported. Parameters with
// an empty value are ignored (as if absent). _format and _pretty are
// accepted and ignored.
func (r *Registry) Parse(typ string, v url.Values, opts ParseOptions) (q *fhir.Query, ignored []string, err error) {
	if !r.Supports(typ) {
		return nil, nil, fhir.Errorf(fhir.KindNotSupported, "resource type is not supported for search")
	}
	defCount, maxC := opts.DefaultCount, opts.MaxCount
	if maxC <= 0 {
		maxC = maxCount
	}
	if defCount <= 0 {
		defCount = defaultCount
	}
	q = &fhir.Query{Type: typ, Count: min(defCount, maxC)}

	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	for _, key := range keys {
		vals := nonEmpty(v[key])
		name, mod, hasMod := strings.Cut(key, ":")
		if len(vals) == 0 && (controlParams[name] || r.lookup(typ, name) != nil) {
			// An empty value is as if the parameter were absent; an
			// unknown one is still reported below.
			continue
		}
		switch name {
		case "_format", "_pretty", "_count", "_offset", "_sort", "_total", "_summary", "_elements":
			if hasMod {
				return nil, nil, invalid("%s does not take a modifier", name)
			}
		}
		switch name {
		case "_format", "_pretty":
			continue
		case "_count":
			if err := one(name, vals); err != nil {
				return nil, nil, err
			}
			n, err := nonNegative(name, vals[0])
			if err != nil {
				return nil, nil, err
			}
			q.Count = min(n, maxC)
			continue
		case "_offset":
			if err := one(name, vals); err != nil {
				return nil, nil, err
			}
			n, err := nonNegative(name, vals[0])
			if err != nil {
				return nil, nil, err
			}
			q.Offset = n
			continue
		case "_sort":
			if err := one(name, vals); err != nil {
				return nil, nil, err
			}
			if q.Sort, err = r.parseSort(typ, vals[0]); err != nil {
				return nil, nil, err
			}
			continue
		case "_total":
			if err := one(name, vals); err != nil {
				return nil, nil, err
			}
			switch vals[0] {
			case "none":
			case "estimate", "accurate":
				q.Total = true
			default:
				return nil, nil, invalid("_total must be none, estimate or accurate, not %s", echo(vals[0]))
			}
			continue
		case "_summary":
			if err := one(name, vals); err != nil {
				return nil, nil, err
			}
			switch vals[0] {
			case "count":
				q.CountOnly, q.Total = true, true
			case "true", "text", "data", "false":
				q.Summary = vals[0]
			default:
				return nil, nil, invalid("_summary must be true, text, data, count or false, not %s", echo(vals[0]))
			}
			continue
		case "_elements":
			for _, val := range vals {
				for _, e := range strings.Split(val, ",") {
					e = strings.TrimSpace(e)
					if e == "" {
						continue
					}
					if !isElementName(e) {
						return nil, nil, invalid("_elements has an invalid element name %s", echo(e))
					}
					q.Elements = append(q.Elements, e)
				}
			}
			continue
		case "_include", "_revinclude":
			iterate := false
			switch {
			case !hasMod:
			case mod == "iterate" || mod == "recurse":
				iterate = true
			default:
				return nil, nil, invalid("%s does not take the modifier %s", name, echo(mod))
			}
			for _, val := range vals {
				inc, err := r.parseInclude(typ, name, val, iterate)
				if err != nil {
					return nil, nil, err
				}
				if name == "_include" {
					q.Include = append(q.Include, inc)
				} else {
					q.RevInclude = append(q.RevInclude, inc)
				}
			}
			continue
		}

		if name == "_has" || strings.Contains(name, ".") || strings.Contains(mod, ".") {
			if opts.Strict {
				return nil, nil, fhir.Errorf(fhir.KindNotSupported, "chained parameters and _has are not supported (parameter %s)", echo(key))
			}
			ignored = append(ignored, capString(key))
			continue
		}
		p := r.lookup(typ, name)
		if p == nil {
			if opts.Strict {
				return nil, nil, invalid("unknown search parameter %s for %s", echo(name), typ)
			}
			ignored = append(ignored, capString(key))
			continue
		}
		for _, val := range vals {
			fp, err := parseParam(r, p, mod, hasMod, val)
			if err != nil {
				return nil, nil, err
			}
			if fp != nil {
				q.Params = append(q.Params, *fp)
			}
		}
	}
	return q, ignored, nil
}

// controlParams are the result-control parameters Parse handles itself.
var controlParams = map[string]bool{
	"_format": true, "_pretty": true, "_count": true, "_offset": true, "_sort": true, "_total": true,
	"_summary": true, "_elements": true, "_include": true, "_revinclude": true,
}

// parseParam parses one occurrence of a registered parameter. It returns
// nil when the value holds no values (only commas).
func parseParam(r *Registry, p *param, mod string, hasMod bool, raw string) (*fhir.Param, error) {
	d := p.def
	out := &fhir.Param{Name: d.Code, Type: d.Type}
	if hasMod {
		if err := applyModifier(r, p, mod, out); err != nil {
			return nil, err
		}
	}
	if out.Modifier == "missing" {
		switch raw {
		case "true", "false":
			b := raw == "true"
			out.Missing = &b
			return out, nil
		}
		return nil, invalid("%s:missing must be true or false", d.Code)
	}
	for _, part := range splitEscaped(raw, ',') {
		if part == "" {
			continue
		}
		val, err := parseValue(p, out, part)
		if err != nil {
			return nil, err
		}
		out.Values = append(out.Values, val)
	}
	if len(out.Values) == 0 {
		return nil, nil
	}
	return out, nil
}

// applyModifier checks mod is one the parameter's type allows and records
// it in out.
func applyModifier(r *Registry, p *param, mod string, out *fhir.Param) error {
	d := p.def
	if d.Code == "_id" || d.Code == "_lastUpdated" {
		return fhir.Errorf(fhir.KindNotSupported, "modifier %s of search parameter %s is not supported", echo(":"+mod), d.Code)
	}
	if mod == "missing" {
		out.Modifier = mod
		return nil
	}
	switch mod {
	case "above", "below", "in", "not-in", "of-type", "identifier", "iterate", "text-advanced", "code-text":
		return fhir.Errorf(fhir.KindNotSupported, "modifier :%s of search parameter %s is not supported", mod, d.Code)
	}
	switch d.Type {
	case fhir.ParamString:
		if mod == "exact" || mod == "contains" {
			out.Modifier = mod
			return nil
		}
	case fhir.ParamToken:
		if mod == "not" || mod == "text" {
			out.Modifier = mod
			return nil
		}
	case fhir.ParamReference:
		if isTypeName(mod) {
			if !p.hasTarget(mod) || len(d.Targets) == 0 && !r.Supports(mod) {
				return invalid("search parameter %s cannot refer to type %s", d.Code, echo(mod))
			}
			out.Targets = []string{mod}
			return nil
		}
	}
	return invalid("search parameter %s: unknown modifier %s", d.Code, echo(":"+mod))
}

// parseValue parses one (comma-separated) value of parameter p.
func parseValue(p *param, fp *fhir.Param, raw string) (fhir.Value, error) {
	d := p.def
	var v fhir.Value
	switch d.Type {
	case fhir.ParamToken:
		if fp.Modifier == "text" {
			v.String = NormalizeString(unescape(raw))
			if v.String == "" {
				return v, invalid("empty value for %s:text", d.Code)
			}
			return v, nil
		}
		if d.Code == "_id" {
			v.Code = unescape(raw)
			if !fhir.ValidID(v.Code) {
				return v, invalid("_id value is not a valid id")
			}
			return v, nil
		}
		sys, code, found := cutEscaped(raw, '|')
		if found {
			v.System, v.HasSystem, v.Code = unescape(sys), true, unescape(code)
		} else {
			v.Code = unescape(raw)
		}
		if v.System == "" && v.Code == "" {
			return v, invalid("empty token value for %s", d.Code)
		}
	case fhir.ParamString, fhir.ParamURI:
		s := unescape(raw)
		if fp.Modifier == "exact" || d.Type == fhir.ParamURI {
			v.String = s
		} else {
			v.String = NormalizeString(s)
		}
		if v.String == "" {
			return v, invalid("empty string value for %s", d.Code)
		}
	case fhir.ParamDate:
		pre, rest := splitPrefix(raw)
		if pre == "" {
			return v, invalid("search parameter %s: unknown prefix; want eq, ne, gt, lt, ge, le, sa, eb or ap", d.Code)
		}
		lo, hi, ok := parseDateRange(rest)
		if !ok {
			return v, invalid("search parameter %s: invalid date; want [prefix]YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.f]][Z|+hh:mm]", d.Code)
		}
		v.Prefix, v.Lo, v.Hi = pre, lo, hi
	case fhir.ParamNumber, fhir.ParamQuantity:
		pre, rest := splitPrefix(raw)
		if pre == "" {
			return v, invalid("search parameter %s: unknown prefix; want eq, ne, gt, lt, ge, le, sa, eb or ap", d.Code)
		}
		numPart := rest
		if d.Type == fhir.ParamQuantity {
			parts := splitEscaped(rest, '|')
			switch len(parts) {
			case 1:
			case 3:
				numPart = parts[0]
				v.System, v.Code = unescape(parts[1]), unescape(parts[2])
				v.HasSystem = v.System != ""
			default:
				return v, invalid("search parameter %s: invalid quantity; want [prefix]number, number|system|code or number||code", d.Code)
			}
		}
		num, lo, hi, ok := parseDecimal(numPart)
		if !ok {
			return v, invalid("search parameter %s: invalid number", d.Code)
		}
		v.Prefix, v.Num, v.NumLo, v.NumHi = pre, num, lo, hi
	case fhir.ParamReference:
		s := unescape(raw)
		typ, id, ok := parseReference(s)
		if !ok {
			return v, invalid("search parameter %s: invalid reference", d.Code)
		}
		if typ != "" && !p.hasTarget(typ) {
			return v, invalid("search parameter %s cannot refer to type %s", d.Code, echo(typ))
		}
		if len(fp.Targets) == 1 {
			if typ != "" && typ != fp.Targets[0] {
				return v, invalid("reference type does not match the :%s modifier of %s", fp.Targets[0], d.Code)
			}
			if typ == "" && fhir.ValidID(id) {
				typ = fp.Targets[0]
			}
		}
		v.RefType, v.RefID = typ, id
	default:
		return v, invalid("search parameter %s has an unsupported type", d.Code)
	}
	return v, nil
}

// splitPrefix splits a comparison prefix off a date/number value; no prefix
// is eq. An unknown two-letter prefix gives pre "".
func splitPrefix(s string) (pre fhir.Prefix, rest string) {
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' && s[1] >= 'a' && s[1] <= 'z' {
		switch p := fhir.Prefix(s[:2]); p {
		case fhir.PrefixEq, fhir.PrefixNe, fhir.PrefixGt, fhir.PrefixLt, fhir.PrefixGe,
			fhir.PrefixLe, fhir.PrefixSa, fhir.PrefixEb, fhir.PrefixAp:
			return p, s[2:]
		}
		return "", s
	}
	return fhir.PrefixEq, s
}

// parseSort parses _sort: a comma list of parameter codes, each optionally
// prefixed with '-' for descending.
func (r *Registry) parseSort(typ, raw string) ([]fhir.SortKey, error) {
	var keys []fhir.SortKey
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		desc := false
		if c, ok := strings.CutPrefix(f, "-"); ok {
			f, desc = c, true
		}
		if f == "" {
			return nil, invalid("_sort has an empty key")
		}
		p := r.lookup(typ, f)
		if p == nil {
			return nil, invalid("_sort: unknown search parameter %s for %s", echo(f), typ)
		}
		switch p.def.Type {
		case fhir.ParamReference:
			return nil, invalid("_sort by reference parameter %s is not supported", f)
		}
		keys = append(keys, fhir.SortKey{Param: f, Type: p.def.Type, Desc: desc})
	}
	return keys, nil
}

// parseInclude parses one _include / _revinclude value
// Source:param[:Target].
func (r *Registry) parseInclude(typ, name, raw string, iterate bool) (fhir.Include, error) {
	if raw == "*" || strings.HasSuffix(raw, ":*") {
		return fhir.Include{}, fhir.Errorf(fhir.KindNotSupported, "%s=* is not supported", name)
	}
	parts := strings.Split(raw, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fhir.Include{}, invalid("%s must be Type:parameter or Type:parameter:TargetType, not %s", name, echo(raw))
	}
	inc := fhir.Include{Source: parts[0], Param: parts[1], Iterate: iterate}
	if len(parts) == 3 {
		inc.Target = parts[2]
	}
	if !r.Supports(inc.Source) {
		return inc, invalid("%s: resource type %s is not supported", name, echo(inc.Source))
	}
	p := r.lookup(inc.Source, inc.Param)
	if p == nil || p.def.Type != fhir.ParamReference {
		return inc, invalid("%s: %s is not a reference parameter of %s", name, echo(inc.Param), inc.Source)
	}
	if inc.Target != "" && (!isTypeName(inc.Target) || !p.hasTarget(inc.Target)) {
		return inc, invalid("%s: %s:%s cannot refer to type %s", name, inc.Source, inc.Param, echo(inc.Target))
	}
	if !iterate {
		switch name {
		case "_include":
			if inc.Source != typ {
				return inc, invalid("_include source type %s does not match the searched type %s (use :iterate)", inc.Source, typ)
			}
		case "_revinclude":
			if !p.hasTarget(typ) || inc.Target != "" && inc.Target != typ {
				return inc, invalid("_revinclude %s:%s does not refer to %s", inc.Source, inc.Param, typ)
			}
		}
	}
	return inc, nil
}

// isElementName accepts an _elements entry: an element name, optionally
// qualified by the resource type (Patient.name).
func isElementName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i, part := range strings.Split(s, ".") {
		if part == "" || i > 1 {
			return false
		}
		for _, c := range []byte(part) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

func nonEmpty(vals []string) []string {
	out := vals[:0:0]
	for _, s := range vals {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func one(key string, vals []string) error {
	if len(vals) > 1 {
		return invalid("%s may be given only once", key)
	}
	return nil
}

func nonNegative(key, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, invalid("%s must be a non-negative integer", key)
	}
	return n, nil
}

func invalid(format string, args ...any) *fhir.Error {
	return fhir.Errorf(fhir.KindInvalid, format, args...)
}

// echo quotes a client-supplied name or control value for an error
// message, capped at maxEcho bytes.
func echo(s string) string { return strconv.Quote(capString(s)) }

func capString(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	// Cut on a rune boundary so the quoted text stays readable.
	n := maxEcho
	for n > maxEcho-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
