package search

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// parseDateRange parses a FHIR date, dateTime or instant, or a search date
// (which may stop at minutes), into the instant range its precision covers,
// [lo, hi) in UTC, clamped to [fhir.MinTime, fhir.MaxTime]. Values without a
// timezone are taken as UTC.
//
//	YYYY | YYYY-MM | YYYY-MM-DD | YYYY-MM-DDThh:mm[:ss[.f+]][Z|(+|-)hh:mm]
func parseDateRange(s string) (lo, hi time.Time, ok bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok || year < 1 {
		return lo, hi, false
	}
	month, day := 1, 1
	hour, minute, sec, nsec := 0, 0, 0, 0
	var step func(time.Time) time.Time
	i := 4
	loc := time.UTC
	switch {
	case len(s) == 4:
		step = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case len(s) == 7 && s[4] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return lo, hi, false
		}
		step = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case len(s) >= 10 && s[4] == '-' && s[7] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return lo, hi, false
		}
		if day, ok = num(8, 2); !ok || day < 1 || day > daysIn(year, month) {
			return lo, hi, false
		}
		i = 10
		if len(s) == 10 {
			step = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
			break
		}
		// Time part: Thh:mm[:ss[.f+]] then an optional zone.
		if s[10] != 'T' || len(s) < 16 || s[13] != ':' {
			return lo, hi, false
		}
		if hour, ok = num(11, 2); !ok || hour > 23 {
			return lo, hi, false
		}
		if minute, ok = num(14, 2); !ok || minute > 59 {
			return lo, hi, false
		}
		i = 16
		unit := time.Minute
		if i < len(s) && s[i] == ':' {
			if sec, ok = num(17, 2); !ok || sec > 59 {
				return lo, hi, false
			}
			i = 19
			unit = time.Second
			if i < len(s) && s[i] == '.' {
				j := i + 1
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				digits := s[i+1 : j]
				if len(digits) == 0 {
					return lo, hi, false
				}
				if len(digits) > 9 {
					digits = digits[:9] // below a nanosecond is beyond what we keep
				}
				f, _ := strconv.Atoi(digits)
				unit = time.Nanosecond
				for k := len(digits); k < 9; k++ {
					f *= 10
					unit *= 10
				}
				nsec = f
				i = j
			}
		}
		if i < len(s) {
			switch {
			case s[i] == 'Z' && i+1 == len(s):
			case (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
				zh, ok1 := num(i+1, 2)
				zm, ok2 := num(i+4, 2)
				if !ok1 || !ok2 || zh > 14 || zm > 59 {
					return lo, hi, false
				}
				off := zh*3600 + zm*60
				if s[i] == '-' {
					off = -off
				}
				loc = time.FixedZone("", off)
			default:
				return lo, hi, false
			}
		}
		step = func(t time.Time) time.Time { return t.Add(unit) }
	default:
		return lo, hi, false
	}
	start := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	lo, hi = start.UTC(), step(start).UTC()
	if lo.Before(fhir.MinTime) {
		lo = fhir.MinTime
	}
	if hi.After(fhir.MaxTime) {
		hi = fhir.MaxTime
	}
	if !lo.Before(hi) {
		return time.Time{}, time.Time{}, false
	}
	return lo, hi, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// maxDecimalLen bounds the decimals we parse: FHIR decimals are at most 18
// significant digits; anything much longer is an attack or a mistake.
const maxDecimalLen = 64

// parseDecimal parses a FHIR decimal (JSON number syntax, also with an
// exponent) and returns its value and the range its precision implies:
// "100" -> [99.5, 100.5), "1.50" -> [1.495, 1.505), "1e2" -> [50, 150).
func parseDecimal(s string) (num, lo, hi float64, ok bool) {
	if len(s) == 0 || len(s) > maxDecimalLen {
		return 0, 0, 0, false
	}
	i := 0
	if s[i] == '-' || s[i] == '+' {
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == intStart {
		return 0, 0, 0, false
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = i - fs
		if frac == 0 {
			return 0, 0, 0, false
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		es := i
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds || i-ds > 4 {
			return 0, 0, 0, false
		}
		exp, _ = strconv.Atoi(s[es:i])
	}
	if i != len(s) || exp > 400 || exp < -400 {
		return 0, 0, 0, false
	}
	num, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(num, 0) || math.IsNaN(num) {
		return 0, 0, 0, false
	}
	// The last significant digit is at 10^(exp-frac); half of it either side.
	v, okr := new(big.Rat).SetString(s)
	if !okr {
		return 0, 0, 0, false
	}
	p := exp - frac
	half := big.NewRat(5, 10)
	ten := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(p))), nil)
	if p >= 0 {
		half.Mul(half, new(big.Rat).SetInt(ten))
	} else {
		half.Quo(half, new(big.Rat).SetInt(ten))
	}
	lo, _ = new(big.Rat).Sub(v, half).Float64()
	hi, _ = new(big.Rat).Add(v, half).Float64()
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 0, 0, false
	}
	return num, lo, hi, true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// parseReference splits a reference into type and id. "Type/id" and
// "Type/id/_history/v", relative or after an absolute base URL, give
// ("Type", "id"); any other value is kept whole as an id with no type
// (an absolute URL, urn:uuid:..., a bare id). ok is false for an empty or
// local ("#contained") reference, which is not indexed.
func parseReference(s string) (typ, id string, ok bool) {
	if s == "" || s[0] == '#' {
		return "", "", false
	}
	t := s
	if k := strings.Index(t, "/_history/"); k > 0 {
		t = t[:k]
	}
	if strings.HasPrefix(t, "urn:") {
		return "", s, true
	}
	// The last two segments; a relative reference has exactly two, an
	// absolute one has its base before them.
	k := strings.LastIndexByte(t, '/')
	if k <= 0 {
		return "", s, true
	}
	rid, head := t[k+1:], t[:k]
	j := strings.LastIndexByte(head, '/')
	rt := head[j+1:]
	absolute := strings.Contains(head, "://")
	if isTypeName(rt) && fhir.ValidID(rid) && (j < 0 && !absolute || j >= 0 && absolute) {
		return rt, rid, true
	}
	return "", s, true
}

// isTypeName reports whether s looks like a FHIR resource type name.
func isTypeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// splitEscaped splits s on sep where sep is not escaped with '\'. The parts
// keep their escapes (see unescape).
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// cutEscaped is strings.Cut on the first unescaped sep.
func cutEscaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// unescape removes the search escapes \| \, \$ \\ (R4 search.html#escaping).
// A backslash before any other character, or at the end, is kept.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '|', ',', '$', '\\':
				b.WriteByte(s[i+1])
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
