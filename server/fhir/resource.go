package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Resource is one version of a stored resource: its identity and the exact
// JSON it was validated to, with meta.versionId and meta.lastUpdated set.
type Resource struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time // UTC, microsecond precision (what both stores keep)
	Deleted     bool      // a delete tombstone in history; Body is nil
	Body        json.RawMessage
}

// Ref is "Type/id" of the resource.
func (r *Resource) Ref() string { return r.Type + "/" + r.ID }

// ETag is the weak ETag of the version: W/"3".
func (r *Resource) ETag() string { return `W/"` + strconv.FormatInt(r.VersionID, 10) + `"` }

// ValidID reports whether s is a valid FHIR id
// (https://hl7.org/fhir/R4/datatypes.html#id): 1 to 64 of [A-Za-z0-9-.].
// Every request's URL is checked, hence a loop rather than a regexp.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerOrDigit(c) && !('A' <= c && c <= 'Z') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// ValidTenant reports whether s can name a tenant: lowercase letters, digits
// and '-', at most 63 characters, not starting with '-', as it appears in a
// base URL /t/{tenant}/fhir.
func ValidTenant(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerOrDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func isLowerOrDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// TimeFormat is how instants are written in meta.lastUpdated.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// StampMeta returns body with its top-level "id" and meta.versionId and
// meta.lastUpdated set, keeping every other member (and other meta members)
// and their order. resourceType stays first and id, meta follow it.
func StampMeta(body []byte, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	members, err := Members(body)
	if err != nil {
		return nil, err
	}
	var meta []Member
	for _, m := range members {
		if m.Key == "meta" {
			if meta, err = Members(m.Value); err != nil {
				return nil, fmt.Errorf("reading meta: %w", err)
			}
		}
	}
	vid, _ := json.Marshal(strconv.FormatInt(version, 10))
	lu, _ := json.Marshal(lastUpdated.UTC().Format(TimeFormat))
	meta = setMember(meta, "versionId", vid, 0)
	meta = setMember(meta, "lastUpdated", lu, 1)
	metaRaw := EncodeMembers(meta)
	idRaw, _ := json.Marshal(id)

	out := make([]Member, 0, len(members)+2)
	var rt json.RawMessage
	for _, m := range members {
		if m.Key == "resourceType" {
			rt = m.Value
		}
	}
	if rt != nil {
		out = append(out, Member{"resourceType", rt})
	}
	out = append(out, Member{"id", idRaw}, Member{"meta", metaRaw})
	for _, m := range members {
		switch m.Key {
		case "resourceType", "id", "meta":
			continue
		}
		out = append(out, m)
	}
	return EncodeMembers(out), nil
}

// Member is one member of a JSON object, its value kept as raw JSON.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members decodes a JSON object into its members in document order, leaving
// every value as it was written (so decimals keep their precision). The
// values are sub-slices of b. It sits on every write path (StampMeta), so
// after checking b is valid JSON (json.Valid, which allocates nothing) it
// finds the members with a plain byte scan instead of a token decoder.
func Members(b []byte) ([]Member, error) {
	if !ValidJSON(b) {
		return nil, errors.New("not valid JSON")
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	ms := make([]Member, 0, 16)
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
		end := stringEnd(b, i)
		key := string(b[i+1 : end-1])
		if bytes.IndexByte(b[i:end], '\\') >= 0 || !utf8.ValidString(key) {
			// Escapes, or bytes encoding/json turns into U+FFFD.
			if err := json.Unmarshal(b[i:end], &key); err != nil {
				return nil, err
			}
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the colon
		end = valueEnd(b, i)
		ms = append(ms, Member{key, b[i:end:end]})
		i = skipSpace(b, end)
	}
	return ms, nil
}

// The scanners below run on valid JSON only (Members checks first).

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just after the string starting at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just after the value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++
	}
	return i
}

// setMember puts key at position pos with value raw, removing any earlier
// member of that name.
func setMember(ms []Member, key string, raw json.RawMessage, pos int) []Member {
	for i := range ms {
		if ms[i].Key == key {
			ms = append(ms[:i], ms[i+1:]...)
			break
		}
	}
	if pos > len(ms) {
		pos = len(ms)
	}
	ms = append(ms, Member{})
	copy(ms[pos+1:], ms[pos:])
	ms[pos] = Member{key, raw}
	return ms
}

// EncodeMembers writes members as a JSON object, in order.
func EncodeMembers(ms []Member) json.RawMessage {
	n := 2
	for _, m := range ms {
		n += len(m.Key) + len(m.Value) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		if plainKey(m.Key) {
			b = append(b, '"')
			b = append(b, m.Key...)
			b = append(b, '"')
		} else {
			k, _ := json.Marshal(m.Key)
			b = append(b, k...)
		}
		b = append(b, ':')
		b = append(b, m.Value...)
	}
	return append(b, '}')
}

// plainKey reports whether json.Marshal writes key as itself in quotes (as
// it does every FHIR element name).
func plainKey(key string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
