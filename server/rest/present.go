package rest

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// mandatoryElements are the top-level elements with minimum cardinality 1
// in R4 for the supported types: kept by _elements and _summary so that a
// subsetted resource still has them.
var mandatoryElements = map[string][]string{
	"Observation":  {"status", "code"},
	"DeviceMetric": {"type", "category"},
	"Encounter":    {"status", "class"},
	"Consent":      {"status", "scope", "category"},
	"AuditEvent":   {"type", "recorded", "agent", "source"},
}

// summaryElements are the top-level elements _summary=true keeps besides
// resourceType, id, meta, implicitRules and the mandatory ones. Patient and
// Observation list their R4 isSummary elements; the other supported types
// keep identifier and status (a documented simplification).
var summaryElements = map[string][]string{
	"Patient": {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]",
		"address", "managingOrganization", "link"},
	"Observation": {"identifier", "basedOn", "partOf", "status", "category", "code", "subject",
		"focus", "encounter", "effective[x]", "issued", "performer", "value[x]", "hasMember",
		"derivedFrom", "component"},
}

var defaultSummary = []string{"identifier", "status"}

var subsettedTag = json.RawMessage(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}`)

// present applies _summary (true, text, data; "" or false: none) and
// _elements to a resource body. It returns body unchanged when neither
// applies.
func present(body []byte, typ, summary string, elements []string) ([]byte, error) {
	if (summary == "" || summary == "false") && len(elements) == 0 {
		return body, nil
	}
	members, err := fhir.Members(body)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "reading stored resource").Wrap(err)
	}
	var keep func(key string) bool
	base := func(k string) bool { return k == "resourceType" || k == "id" || k == "meta" }
	mand := mandatoryElements[typ]
	switch {
	case len(elements) > 0 && (summary == "" || summary == "false"):
		want := make([]string, 0, len(elements)+len(mand))
		for _, e := range elements {
			if i := strings.IndexByte(e, '.'); i >= 0 && e[:i] == typ {
				e = e[i+1:]
			}
			want = append(want, e)
		}
		want = append(want, mand...)
		keep = func(k string) bool { return base(k) || matchesAny(k, want) }
	case summary == "true":
		want := summaryElements[typ]
		if want == nil {
			want = defaultSummary
		}
		want = append(append([]string{"implicitRules"}, want...), mand...)
		keep = func(k string) bool { return base(k) || matchesAny(k, want) }
	case summary == "text":
		want := append([]string{"text", "implicitRules"}, mand...)
		keep = func(k string) bool { return base(k) || matchesAny(k, want) }
	case summary == "data":
		keep = func(k string) bool { return k != "text" }
	default:
		return body, nil
	}
	out := make([]fhir.Member, 0, len(members)+1)
	hasMeta := false
	for _, m := range members {
		if !keep(m.Key) {
			continue
		}
		if m.Key == "meta" {
			hasMeta = true
			meta, err := addSubsetted(m.Value)
			if err != nil {
				return nil, fhir.Errorf(fhir.KindInternal, "reading stored meta").Wrap(err)
			}
			m.Value = meta
		}
		out = append(out, m)
	}
	if !hasMeta {
		meta, _ := addSubsetted(json.RawMessage(`{}`))
		out = append(out, fhir.Member{Key: "meta", Value: meta})
	}
	return fhir.EncodeMembers(out), nil
}

// matchesAny reports whether the JSON key k is one of the element names:
// "value[x]" (or "value") matches valueQuantity, and "_birthDate" (a
// primitive's extensions) follows "birthDate".
func matchesAny(k string, names []string) bool {
	k = strings.TrimPrefix(k, "_")
	for _, n := range names {
		n = strings.TrimSuffix(n, "[x]")
		if k == n {
			return true
		}
		if len(k) > len(n) && strings.HasPrefix(k, n) && k[len(n)] >= 'A' && k[len(n)] <= 'Z' {
			return true
		}
	}
	return false
}

func addSubsetted(meta json.RawMessage) (json.RawMessage, error) {
	ms, err := fhir.Members(meta)
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		if m.Key != "tag" {
			continue
		}
		var tags []json.RawMessage
		if err := json.Unmarshal(m.Value, &tags); err != nil {
			return nil, err
		}
		for _, t := range tags {
			if bytes.Contains(t, []byte(`"SUBSETTED"`)) {
				return meta, nil
			}
		}
		tags = append(tags, subsettedTag)
		ms[i].Value, _ = marshal(tags)
		return fhir.EncodeMembers(ms), nil
	}
	ms = append(ms, fhir.Member{Key: "tag", Value: json.RawMessage(`[` + string(subsettedTag) + `]`)})
	return fhir.EncodeMembers(ms), nil
}
