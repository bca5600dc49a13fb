package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
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

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)

// ValidID reports whether s is a valid FHIR id
// (https://hl7.org/fhir/R4/datatypes.html#id).
func ValidID(s string) bool { return idPattern.MatchString(s) }

var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9\-]{0,62}$`)

// ValidTenant reports whether s can name a tenant: lowercase letters, digits
// and '-', at most 63 characters, as it appears in a base URL /t/{tenant}/fhir.
func ValidTenant(s string) bool { return tenantPattern.MatchString(s) }

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
// every value as it was written (so decimals keep their precision).
func Members(b []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	var ms []Member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		ms = append(ms, Member{key, raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ms, nil
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
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
