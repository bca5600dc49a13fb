package fhir

import "time"

// ParamType is a search parameter type
// (https://hl7.org/fhir/R4/search.html#ptypes).
type ParamType string

// Search parameter types Pulsewire indexes. Composite parameters (such as
// Observation combo-code) are indexed as their component type.
const (
	ParamToken     ParamType = "token"
	ParamString    ParamType = "string"
	ParamDate      ParamType = "date"
	ParamReference ParamType = "reference"
	ParamQuantity  ParamType = "quantity"
	ParamNumber    ParamType = "number"
	ParamURI       ParamType = "uri"
)

// IndexEntry is one value of one search parameter of one resource, extracted
// at write time by server/search and stored by the store beside the resource.
// Which fields are set depends on Type.
type IndexEntry struct {
	Param string // search parameter code, e.g. "code", "subject", "date"
	Type  ParamType

	// token: System may be empty (no system). Code may be empty for an
	// identifier with only a system. Text is the display/text, normalized as
	// String, for the :text modifier.
	System string
	Code   string
	Text   string

	// string and uri: normalized for string search (lowercased, accents and
	// punctuation folded, see search.NormalizeString); uri is kept exact.
	String string

	// date: the instant range the value covers, [Lo, Hi) in UTC. A date
	// "2024-03" covers [2024-03-01T00:00Z, 2024-04-01T00:00Z); a Period its
	// start..end (open ends are MinTime/MaxTime).
	Lo, Hi time.Time

	// number and quantity: the value and the range its precision implies,
	// [NumLo, NumHi) (1.5 covers [1.45, 1.55)). Quantity also has Unit
	// system and code (UCUM) in System and Code.
	Num, NumLo, NumHi float64

	// reference: the target type and id ("Patient", "p1"), or for an
	// absolute/unresolvable reference RefType "" and RefID the full URL.
	RefType string
	RefID   string
}

// Bounds for open date ranges, inside what both stores can hold.
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Prefix is a search comparison prefix
// (https://hl7.org/fhir/R4/search.html#prefix).
type Prefix string

// Comparison prefixes.
const (
	PrefixEq Prefix = "eq"
	PrefixNe Prefix = "ne"
	PrefixGt Prefix = "gt"
	PrefixLt Prefix = "lt"
	PrefixGe Prefix = "ge"
	PrefixLe Prefix = "le"
	PrefixSa Prefix = "sa"
	PrefixEb Prefix = "eb"
	PrefixAp Prefix = "ap"
)

// Query is a parsed FHIR search on one resource type. Params are ANDed; the
// Values of one Param are ORed.
type Query struct {
	Type   string
	Params []Param

	Sort  []SortKey
	Count int // page size; the parser fills in the default and caps it
	// Offset is the number of matches to skip (paging); next links carry it.
	Offset int

	Total      bool // _total=accurate or _summary=count: count all matches
	CountOnly  bool // _summary=count: no resources, only the total
	Include    []Include
	RevInclude []Include

	// Presentation, applied by server/rest and ignored by stores.
	Summary  string   // _summary other than count: "true", "text", "data", "false"
	Elements []string // _elements
}

// Param is one search parameter with its OR'ed values.
type Param struct {
	Name     string    // code as registered, e.g. "subject", "_id", "_lastUpdated"
	Type     ParamType // the registered type; for _id token, _lastUpdated date
	Modifier string    // "", "exact", "contains", "missing", "not", "text", "of-type" ...
	Missing  *bool     // for :missing=true|false
	Values   []Value
	// Targets restricts a reference parameter to these resource types
	// (from a :Type modifier); empty means any.
	Targets []string
}

// Value is one value of a search parameter. Which fields are set depends on
// the parameter's type.
type Value struct {
	Prefix Prefix // date, number, quantity; PrefixEq when absent

	// token: HasSystem distinguishes "code" (any system) from "|code" (no
	// system) and "sys|code".
	System    string
	HasSystem bool
	Code      string

	// string / uri
	String string

	// date: the range the given value covers, [Lo, Hi).
	Lo, Hi time.Time

	// number / quantity: the value and the range implied by its precision
	// [NumLo, NumHi); for quantity, the unit system and code
	// (System/HasSystem/Code above) when given.
	Num, NumLo, NumHi float64

	// reference: "Patient/p1" gives RefType "Patient", RefID "p1"; a bare
	// id gives RefID only; an absolute URL gives RefID the URL.
	RefType string
	RefID   string
}

// SortKey orders results by a parameter; Desc for "-param".
type SortKey struct {
	Param string // "_id", "_lastUpdated" or a registered parameter
	Type  ParamType
	Desc  bool
}

// Include is one _include or _revinclude: resources of Source type reference
// resources through Param ("Observation:subject"); Target limits the
// referenced type ("Observation:subject:Patient").
type Include struct {
	Source  string
	Param   string
	Target  string
	Iterate bool
}

// HistoryQuery selects versions for _history at instance, type or system level.
type HistoryQuery struct {
	Type   string    // "" for the whole system (tenant)
	ID     string    // "" for type level
	Since  time.Time // zero: no lower bound (_since, inclusive)
	At     time.Time // zero: none (_at: versions current at that instant)
	Count  int
	Offset int
}
