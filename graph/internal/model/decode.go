package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Decoders of the FHIR datatypes the schema shows, from JSON already known
// to be valid (a member of a stored body that fhir.Members checked). They
// give what encoding/json gives for the same input and Go types — members
// matched by name, exactly or else case-insensitively, the last of
// duplicates winning, null leaving a field unset, a value of the wrong
// JSON type an error (FuzzDecoders checks it) — without reflection: most
// of a GraphQL response is these few small objects, and encoding/json's
// reflective decoding of them cost more than the rest of the request.

var errType = errors.New("a JSON value of the wrong type")

// decoder decodes one JSON value (never null: callers handle null).
type decoder[T any] func(b []byte) (T, error)

// nullable decodes b with dec, giving the zero T for null.
func nullable[T any](b []byte, dec decoder[T]) (T, error) {
	if isNull(b) {
		var zero T
		return zero, nil
	}
	return dec(b)
}

func isNull(b []byte) bool { return len(b) > 0 && b[0] == 'n' }

// kind is the first byte of a value, 0 for none.
func kind(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// ptr makes a decoder of *T from a decoder of T.
func ptr[T any](dec decoder[T]) decoder[*T] {
	return func(b []byte) (*T, error) {
		v, err := dec(b)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
}

// list makes a decoder of []T from a decoder of T; a null element is the
// zero T, as encoding/json makes it.
func list[T any](dec decoder[T]) decoder[[]T] {
	return func(b []byte) ([]T, error) {
		if kind(b) != '[' {
			return nil, errType
		}
		out := []T{}
		it := iter{b: b, i: skipSpace(b, 1)}
		for {
			e, ok, err := it.element()
			if !ok || err != nil {
				return out, err
			}
			v, err := nullable(e, dec)
			out = append(out, v)
			if err != nil {
				return out, err
			}
		}
	}
}

func str(b []byte) (string, error) {
	if kind(b) != '"' || len(b) < 2 {
		return "", errType
	}
	s := b[1 : len(b)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s), nil
	}
	// Escapes, or bytes encoding/json turns into U+FFFD.
	var v string
	err := json.Unmarshal(b, &v)
	return v, err
}

func boolean(b []byte) (bool, error) {
	switch string(b) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errType
}

func number(b []byte) (float64, error) {
	if !isNumber(b) {
		return 0, errType
	}
	return strconv.ParseFloat(string(b), 64)
}

func integer(b []byte) (int, error) {
	if !isNumber(b) {
		return 0, errType
	}
	n, err := strconv.ParseInt(string(b), 10, 0)
	return int(n), err
}

func isNumber(b []byte) bool { k := kind(b); return k == '-' || k >= '0' && k <= '9' }

var (
	strPtr  = ptr(str)
	strList = list(str)
	boolPtr = ptr(boolean)
	intPtr  = ptr(integer)
)

// field is one member of a datatype: its name and where its value goes.
type field[T any] struct {
	name string
	set  func(v *T, b []byte) error // b is never null
}

// to makes the setter of a field from its decoder.
func to[T, F any](dec decoder[F], dst func(*T) *F) func(*T, []byte) error {
	return func(v *T, b []byte) error {
		x, err := dec(b)
		if err != nil {
			return err
		}
		*dst(v) = x
		return nil
	}
}

// object makes the decoder of a datatype from its fields. It gives a
// pointer, to the one value it allocates and fills (the fields are set
// through it); value gives the value.
func object[T any](fields ...field[T]) decoder[*T] {
	return func(b []byte) (*T, error) {
		it, err := objectIter(b)
		if err != nil {
			return nil, errType
		}
		v := new(T)
		var first error
		for {
			key, val, ok, err := it.member()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			f, err := lookup(fields, key)
			if err != nil {
				return nil, err
			}
			if f == nil || isNull(val) {
				continue
			}
			// Like encoding/json: keep decoding after a wrong type, report
			// the first.
			if err := f.set(v, val); err != nil && first == nil {
				first = err
			}
		}
		if first != nil {
			return nil, first
		}
		return v, nil
	}
}

// value makes the decoder of a datatype's value from the decoder of a
// pointer to one.
func value[T any](dec decoder[*T]) decoder[T] {
	return func(b []byte) (T, error) {
		p, err := dec(b)
		if err != nil {
			var zero T
			return zero, err
		}
		return *p, nil
	}
}

// lookup returns the field a member's key (a JSON string as written)
// names: the field of that name, or else the first whose name equals it
// case-insensitively, as encoding/json matches them; nil for none.
func lookup[T any](fields []field[T], quoted []byte) (*field[T], error) {
	key, err := keyOf(quoted)
	if err != nil {
		return nil, err
	}
	for i := range fields {
		if string(key) == fields[i].name {
			return &fields[i], nil
		}
	}
	for i := range fields {
		if bytes.EqualFold(key, []byte(fields[i].name)) {
			return &fields[i], nil
		}
	}
	return nil, nil
}

// keyOf returns the text of a member's key (a JSON string as written). A
// key without escapes is its bytes as written, without a copy: keys are
// compared, never kept as strings.
func keyOf(quoted []byte) ([]byte, error) {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') < 0 && utf8.Valid(key) {
		return key, nil
	}
	k, err := str(quoted)
	return []byte(k), err
}

var (
	codingPtr = object(
		field[Coding]{"system", to(strPtr, func(v *Coding) **string { return &v.System })},
		field[Coding]{"version", to(strPtr, func(v *Coding) **string { return &v.Version })},
		field[Coding]{"code", to(strPtr, func(v *Coding) **string { return &v.Code })},
		field[Coding]{"display", to(strPtr, func(v *Coding) **string { return &v.Display })},
	)
	codeableConceptPtr = object(
		field[CodeableConcept]{"coding", to(list(codingPtr), func(v *CodeableConcept) *[]*Coding { return &v.Coding })},
		field[CodeableConcept]{"text", to(strPtr, func(v *CodeableConcept) **string { return &v.Text })},
	)
	identifierPtr = object(
		field[Identifier]{"use", to(strPtr, func(v *Identifier) **string { return &v.Use })},
		field[Identifier]{"type", to(codeableConceptPtr, func(v *Identifier) **CodeableConcept { return &v.Type })},
		field[Identifier]{"system", to(strPtr, func(v *Identifier) **string { return &v.System })},
		field[Identifier]{"value", to(strPtr, func(v *Identifier) **string { return &v.Value })},
	)
	humanNamePtr = object(
		field[HumanName]{"use", to(strPtr, func(v *HumanName) **string { return &v.Use })},
		field[HumanName]{"text", to(strPtr, func(v *HumanName) **string { return &v.Text })},
		field[HumanName]{"family", to(strPtr, func(v *HumanName) **string { return &v.Family })},
		field[HumanName]{"given", to(strList, func(v *HumanName) *[]string { return &v.Given })},
		field[HumanName]{"prefix", to(strList, func(v *HumanName) *[]string { return &v.Prefix })},
		field[HumanName]{"suffix", to(strList, func(v *HumanName) *[]string { return &v.Suffix })},
	)
	contactPointPtr = object(
		field[ContactPoint]{"system", to(strPtr, func(v *ContactPoint) **string { return &v.System })},
		field[ContactPoint]{"value", to(strPtr, func(v *ContactPoint) **string { return &v.Value })},
		field[ContactPoint]{"use", to(strPtr, func(v *ContactPoint) **string { return &v.Use })},
	)
	quantityPtr = object(
		field[Quantity]{"value", to(ptr(number), func(v *Quantity) **float64 { return &v.Value })},
		field[Quantity]{"comparator", to(strPtr, func(v *Quantity) **string { return &v.Comparator })},
		field[Quantity]{"unit", to(strPtr, func(v *Quantity) **string { return &v.Unit })},
		field[Quantity]{"system", to(strPtr, func(v *Quantity) **string { return &v.System })},
		field[Quantity]{"code", to(strPtr, func(v *Quantity) **string { return &v.Code })},
	)
	periodPtr = object(
		field[Period]{"start", to(strPtr, func(v *Period) **string { return &v.Start })},
		field[Period]{"end", to(strPtr, func(v *Period) **string { return &v.End })},
	)
	referencePtr = object(
		field[Reference]{"reference", to(strPtr, func(v *Reference) **string { return &v.Reference })},
		field[Reference]{"type", to(strPtr, func(v *Reference) **string { return &v.Type })},
		field[Reference]{"display", to(strPtr, func(v *Reference) **string { return &v.Display })},
	)
	deviceNamePtr = object(
		field[DeviceName]{"name", to(strPtr, func(v *DeviceName) **string { return &v.Name })},
		field[DeviceName]{"type", to(strPtr, func(v *DeviceName) **string { return &v.Type })},
	)
	observationComponentPtr = object(
		field[ObservationComponent]{"code", to(codeableConcept, func(v *ObservationComponent) *CodeableConcept { return &v.Code })},
		field[ObservationComponent]{"valueQuantity", to(quantityPtr, func(v *ObservationComponent) **Quantity { return &v.ValueQuantity })},
		field[ObservationComponent]{"valueCodeableConcept", to(codeableConceptPtr, func(v *ObservationComponent) **CodeableConcept { return &v.ValueCodeableConcept })},
		field[ObservationComponent]{"valueString", to(strPtr, func(v *ObservationComponent) **string { return &v.ValueString })},
	)
)

// Scanning JSON. Stored bodies were validated when written, so these
// functions do not validate what they skip; they never read past the end
// of their input, and a body that is not JSON after all gives an error or
// values that the decoders refuse (or, at worst, strings cut at the wrong
// place: whatever is returned is still encoded properly by the response
// writer).

var errSyntax = errors.New("not a JSON object as stored")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// stringEnd returns the end of the string that starts at b[i] (its quote).
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// iter walks the members of an object or the elements of an array, one
// at a time: decoders loop over them rather than pass callbacks, and
// compare keys where they are written (see keyOf).
type iter struct {
	b []byte
	i int // the next member or element, or the closing bracket
}

// objectIter starts walking the members of the object b.
func objectIter(b []byte) (iter, error) {
	if len(b) < 2 || b[0] != '{' {
		return iter{}, errSyntax
	}
	return iter{b: b, i: skipSpace(b, 1)}, nil
}

// member returns the next member of the object: its key as written, with
// its quotes, and its value; ok false after the last.
func (it *iter) member() (key, val []byte, ok bool, err error) {
	b, i := it.b, it.i
	if i >= len(b) || b[i] == '}' {
		return nil, nil, false, nil
	}
	if b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, false, errSyntax
	}
	end := stringEnd(b, i)
	key = b[i:end]
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return nil, nil, false, errSyntax
	}
	i = skipSpace(b, i+1)
	end = valueEnd(b, i)
	if end == i {
		return nil, nil, false, errSyntax
	}
	it.i = skipSpace(b, end)
	return key, b[i:end], true, nil
}

// element returns the next element of the array; ok false after the last.
func (it *iter) element() (val []byte, ok bool, err error) {
	b, i := it.b, it.i
	if i >= len(b) || b[i] == ']' {
		return nil, false, nil
	}
	if b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	end := valueEnd(b, i)
	if end == i {
		return nil, false, errSyntax
	}
	it.i = skipSpace(b, end)
	return b[i:end], true, nil
}

// rawMember is a top-level member of a stored resource: its key (see
// keyOf) and its value as written.
type rawMember struct {
	key, val []byte
}

// topMembers returns the members of a stored resource, in order.
func topMembers(body []byte) ([]rawMember, error) {
	it, err := objectIter(body[skipSpace(body, 0):])
	if err != nil {
		return nil, err
	}
	ms := make([]rawMember, 0, 16)
	for {
		quoted, val, ok, err := it.member()
		if !ok || err != nil {
			return ms, err
		}
		key, err := keyOf(quoted)
		if err != nil {
			return ms, err
		}
		ms = append(ms, rawMember{key: key, val: val})
	}
}

// The decoders of the models' fields, by Go type.
var (
	coding                = value(codingPtr)
	codeableConcept       = value(codeableConceptPtr)
	codeableConcepts      = list(codeableConceptPtr)
	identifiers           = list(identifierPtr)
	humanNames            = list(humanNamePtr)
	contactPoints         = list(contactPointPtr)
	deviceNames           = list(deviceNamePtr)
	observationComponents = list(observationComponentPtr)
)
