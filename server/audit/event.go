package audit

import (
	"encoding/base64"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Code systems of the AuditEvent elements (BALP uses these).
const (
	sysEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysInteraction = "http://hl7.org/fhir/restful-interaction"
	sysDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	sysParticipant = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysProvenance  = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	sysSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	sysBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
)

// ClientIDSystem is the identifier system of an OAuth client id in
// AuditEvent.agent.who.identifier; UserSystem that of a login without a
// FHIR user resource.
const (
	ClientIDSystem = "urn:pulsewire:oauth-client"
	UserSystem     = "urn:pulsewire:user"
)

// subtypes returns the restful-interaction codes of an event: the
// interaction, and for search and history the level too, so that auditors
// find every search by "search" and type-level ones by "search-type".
func subtypes(e *Event) []string {
	switch e.Interaction {
	case Search:
		if e.Type == "" {
			return []string{"search", "search-system"}
		}
		return []string{"search", "search-type"}
	case History:
		switch {
		case e.ID != "":
			return []string{"history", "history-instance"}
		case e.Type != "":
			return []string{"history", "history-type"}
		}
		return []string{"history", "history-system"}
	}
	return []string{string(e.Interaction)}
}

// build turns a checked event with its principal resolved into the
// AuditEvent to append: BALP's pattern for the interaction (client,
// server and user agents; data, patient, query and request entities), with
// the chain link left for the store to fill in.
func (a *Auditor) build(e *Event, recorded time.Time) (*chain.Event, error) {
	id := fhir.NewID()
	recorded = recorded.UTC().Truncate(time.Microsecond)
	ts := recorded.Format(fhir.TimeFormat)
	action := e.Action
	if action == "" {
		action, _ = e.Interaction.action()
	}
	// BALP: data flows to the client on reads and searches (client is the
	// Destination Role ID), from it on writes (Source Role ID); a delete's
	// client is an Application and the server its custodian.
	var clientType, serverType coding
	userType := coding{sysParticipant, "IRCP", "information recipient"}
	switch action {
	case ActionCreate, ActionUpdate:
		clientType, serverType = coding{sysDICOM, "110153", "Source Role ID"}, coding{sysDICOM, "110152", "Destination Role ID"}
		userType = coding{sysParticipant, "AUT", "author (originator)"}
	case ActionDelete:
		clientType, serverType = coding{sysDICOM, "110150", "Application"}, coding{sysProvenance, "custodian", "Custodian"}
		userType = coding{sysParticipant, "AUT", "author (originator)"}
	default:
		clientType, serverType = coding{sysDICOM, "110152", "Destination Role ID"}, coding{sysDICOM, "110153", "Source Role ID"}
	}

	w := &jw{b: make([]byte, 0, 1536)}
	w.raw(`{"resourceType":"AuditEvent","id":`)
	w.str(id)
	w.raw(`,"meta":{"versionId":"1","lastUpdated":`)
	w.str(ts)
	w.raw(`},"extension":[{"url":`)
	w.str(chain.ExtensionURL)
	w.raw(`,"extension":`)
	prefix := w.b
	w = &jw{b: make([]byte, 0, 1536)}
	w.raw(`}],"type":`)
	w.coding(coding{sysEventType, "rest", "Restful Operation"})
	w.raw(`,"subtype":[`)
	for i, st := range subtypes(e) {
		if i > 0 {
			w.raw(",")
		}
		w.coding(coding{sysInteraction, st, st})
	}
	w.raw(`],"action":`)
	w.str(string(action))
	w.raw(`,"recorded":`)
	w.str(ts)
	w.raw(`,"outcome":"`)
	w.int(int64(e.Outcome))
	w.raw(`"`)
	if e.Reason != "" {
		w.raw(`,"outcomeDesc":`)
		w.str(e.Reason)
	}

	// Agents.
	p := e.Principal
	w.raw(`,"agent":[`)
	human := p.FHIRUser != "" || p.Subject != ""
	if p.ClientID != "" {
		w.raw(`{"type":{"coding":[`)
		w.coding(clientType)
		w.raw(`]},"who":{"identifier":{"system":`)
		w.str(ClientIDSystem)
		w.raw(`,"value":`)
		w.str(p.ClientID)
		w.raw(`}},"requestor":`)
		w.bool(!human)
		if !human && p.TokenID != "" {
			w.raw(`,"policy":[`)
			w.str(p.TokenID)
			w.raw(`]`)
		}
		w.network(p.Address)
		w.raw(`},`)
	} else {
		// A server module acting on its own (or an unidentified caller).
		module := p.Module
		if module == "" {
			module = unknown.Module
		}
		w.raw(`{"type":{"coding":[`)
		w.coding(coding{sysDICOM, "110150", "Application"})
		w.raw(`]},"who":{"display":`)
		w.str(module)
		w.raw(`},"requestor":`)
		w.bool(!human)
		w.network(p.Address)
		w.raw(`},`)
	}
	if human {
		w.raw(`{"type":{"coding":[`)
		w.coding(userType)
		w.raw(`]},"who":{`)
		if p.FHIRUser != "" {
			w.raw(`"reference":`)
			w.str(p.FHIRUser)
		} else {
			w.raw(`"identifier":{"system":`)
			w.str(UserSystem)
			w.raw(`,"value":`)
			w.str(p.Subject)
			w.raw(`}`)
		}
		w.raw(`}`)
		if p.FHIRUser != "" && p.Subject != "" {
			w.raw(`,"altId":`)
			w.str(p.Subject)
		}
		w.raw(`,"requestor":true`)
		if p.TokenID != "" {
			w.raw(`,"policy":[`)
			w.str(p.TokenID)
			w.raw(`]`)
		}
		w.raw(`},`)
	}
	w.raw(`{"type":{"coding":[`)
	w.coding(serverType)
	w.raw(`]},"who":{"display":`)
	w.str(a.source)
	w.raw(`},"requestor":false}]`)

	w.raw(`,"source":{"site":`)
	w.str(e.Tenant)
	w.raw(`,"observer":{"display":`)
	w.str(a.source)
	w.raw(`},"type":[`)
	w.coding(coding{sysSourceType, "4", "Application Server"})
	w.raw(`]}`)

	// Entities.
	var ents int
	entity := func() {
		if ents == 0 {
			w.raw(`,"entity":[`)
		} else {
			w.raw(`,`)
		}
		ents++
	}
	var dataRef string
	if e.Type != "" && e.ID != "" {
		entity()
		w.raw(`{"what":{"reference":`)
		dataRef = e.Type + "/" + e.ID
		if e.Version > 0 && (e.Interaction == VRead || action == ActionCreate || action == ActionUpdate || action == ActionDelete) {
			dataRef += "/_history/" + itoa(e.Version)
		}
		w.str(dataRef)
		w.raw(`},"type":`)
		w.coding(coding{sysEntityType, "2", "System Object"})
		w.raw(`,"role":`)
		w.coding(coding{sysObjectRole, "4", "Domain Resource"})
		w.raw(`}`)
	}
	for _, m := range e.More {
		entity()
		w.raw(`{"what":{"reference":`)
		ref := m.Type + "/" + m.ID
		if m.Version > 0 && (action == ActionCreate || action == ActionUpdate || action == ActionDelete) {
			ref += "/_history/" + itoa(m.Version)
		}
		w.str(ref)
		w.raw(`},"type":`)
		w.coding(coding{sysEntityType, "2", "System Object"})
		w.raw(`,"role":`)
		w.coding(coding{sysObjectRole, "4", "Domain Resource"})
		w.raw(`}`)
	}
	for _, p := range e.patients() {
		entity()
		w.raw(`{"what":{"reference":`)
		w.str("Patient/" + p)
		w.raw(`},"type":`)
		w.coding(coding{sysEntityType, "1", "Person"})
		w.raw(`,"role":`)
		w.coding(coding{sysObjectRole, "1", "Patient"})
		w.raw(`}`)
	}
	if e.Query != "" || e.Interaction == Search || e.Interaction == Operation {
		entity()
		w.raw(`{"type":`)
		w.coding(coding{sysEntityType, "2", "System Object"})
		w.raw(`,"role":`)
		w.coding(coding{sysObjectRole, "24", "Query"})
		if e.Operation != "" {
			w.raw(`,"name":`)
			w.str(e.Operation)
		}
		// description: what was asked of which type, without values.
		w.raw(`,"description":`)
		w.str(describeQuery(e.Type, e.Operation, e.Query))
		if e.Query != "" {
			q := e.Query
			if a.redact {
				q = paramNames(q)
			}
			w.raw(`,"query":"`)
			w.b = base64.StdEncoding.AppendEncode(w.b, []byte(q))
			w.raw(`"`)
		}
		w.raw(`}`)
	}
	if e.RequestID != "" {
		entity()
		w.raw(`{"what":{"identifier":{"value":`)
		w.str(e.RequestID)
		w.raw(`}},"type":`)
		w.coding(coding{sysBALPEntity, "XrequestId", "X-Request-Id"})
		w.raw(`}`)
	}
	if ents > 0 {
		w.raw(`]`)
	}
	w.raw(`}`)
	suffix := w.b

	index, ok := indexOf(e, action, recorded, dataRef)
	if !ok {
		// A reference of another shape (an absolute fhirUser): the
		// registry's own extraction, over the body with a link in place.
		full := make([]byte, 0, len(prefix)+len(suffix)+128)
		full = append(append(append(full, prefix...), chain.Link(1, chain.Genesis)...), suffix...)
		var err error
		if index, err = a.reg.Extract("AuditEvent", full); err != nil {
			return nil, fhir.Errorf(fhir.KindInternal, "indexing an audit event").Wrap(err)
		}
	}
	return &chain.Event{ID: id, LastUpdated: recorded, Prefix: prefix, Suffix: suffix, Index: index}, nil
}

// patients returns the distinct patients of e: Patient's, then More's.
func (e *Event) patients() []string {
	var out []string
	if e.Patient != "" {
		out = append(out, e.Patient)
	}
	for _, m := range e.More {
		if m.Patient != "" && !slices.Contains(out, m.Patient) {
			out = append(out, m.Patient)
		}
	}
	return out
}

// indexOf returns the search index entries of the AuditEvent build writes
// for e, as search.Registry.Extract would find them in its body (same
// parameters in code order, values in document order, no duplicates)
// without parsing it back: extraction costs several times the building.
// TestBuiltEventsAreValidR4 compares the two for every kind of event. ok
// is false when a reference is not a plain relative "Type/id", which the
// registry resolves by rules not repeated here.
func indexOf(e *Event, action Action, recorded time.Time, dataRef string) (out []fhir.IndexEntry, ok bool) {
	if len(e.More) > 0 {
		return nil, false // a batch event: rare enough for the registry's extraction
	}
	p := e.Principal
	var userType, userID string
	if p.FHIRUser != "" {
		t, id, found := strings.Cut(p.FHIRUser, "/")
		if !found || !typeName(t) || !fhir.ValidID(id) {
			return nil, false
		}
		userType, userID = t, id
	}
	var dataType, dataID string
	if dataRef != "" {
		if !typeName(e.Type) {
			return nil, false
		}
		dataType, dataID = e.Type, e.ID
	}
	tok := func(param, system, code, text string) {
		out = append(out, fhir.IndexEntry{Param: param, Type: fhir.ParamToken, System: system, Code: code, Text: text})
	}
	ref := func(param, typ, id string) {
		for _, x := range out {
			if x.Param == param && x.RefType == typ && x.RefID == id {
				return
			}
		}
		out = append(out, fhir.IndexEntry{Param: param, Type: fhir.ParamReference, RefType: typ, RefID: id})
	}
	out = make([]fhir.IndexEntry, 0, 12)
	tok("action", "", string(action), "")
	if userType != "" {
		ref("agent", userType, userID)
	}
	out = append(out, fhir.IndexEntry{Param: "date", Type: fhir.ParamDate, Lo: recorded, Hi: recorded.Add(time.Microsecond)})
	if dataType != "" {
		ref("entity", dataType, dataID)
	}
	if e.Patient != "" {
		ref("entity", "Patient", e.Patient)
	}
	// patient is derived from agent and entity (fhir.DerivedParam): no
	// entries of its own.
	tok("outcome", "", itoa(int64(e.Outcome)), "")
	for _, st := range subtypes(e) {
		tok("subtype", sysInteraction, st, search.NormalizeString(st))
	}
	tok("type", sysEventType, "rest", restfulOperation)
	return out, true
}

// restfulOperation is the normalized display of the event type.
var restfulOperation = search.NormalizeString("Restful Operation")

// typeName reports whether s looks like a resource type name (as the
// registry's reference parsing requires).
func typeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// describeQuery is entity[query].description: the type, the operation
// and the query's parameter names, never their values.
func describeQuery(typ, op, q string) string {
	s := typ
	if op != "" {
		if s != "" {
			s += "/"
		}
		s += op
	}
	if names := paramNames(q); names != "" {
		s += "?" + names
	}
	return s
}

// paramNames keeps a query's parameter names (with modifiers and chains),
// dropping values: "name=Smith&birthdate=gt2000" becomes
// "name=&birthdate=". Names are the server's vocabulary, not patient data.
func paramNames(q string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(q, "&") {
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
	}
	return b.String()
}

func itoa(n int64) string {
	var w jw
	w.int(n)
	return string(w.b)
}

type coding struct{ system, code, display string }

// jw appends JSON.
type jw struct{ b []byte }

func (w *jw) raw(s string) { w.b = append(w.b, s...) }

func (w *jw) int(n int64) {
	if n < 0 {
		w.b = append(w.b, '-')
		n = -n
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	w.b = append(w.b, tmp[i:]...)
}

func (w *jw) bool(v bool) {
	if v {
		w.raw("true")
	} else {
		w.raw("false")
	}
}

func (w *jw) coding(c coding) {
	w.raw(`{"system":`)
	w.str(c.system)
	w.raw(`,"code":`)
	w.str(c.code)
	w.raw(`,"display":`)
	w.str(c.display)
	w.raw(`}`)
}

func (w *jw) network(addr string) {
	if addr == "" {
		return
	}
	// type 2: an IP address (http://hl7.org/fhir/R4/valueset-network-type.html).
	w.raw(`,"network":{"address":`)
	w.str(addr)
	w.raw(`,"type":"2"}`)
}

const hexDigits = "0123456789abcdef"

// str appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func (w *jw) str(s string) {
	b := append(w.b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				switch c {
				case '\n':
					b = append(b, '\\', 'n')
				case '\r':
					b = append(b, '\\', 'r')
				case '\t':
					b = append(b, '\\', 't')
				default:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	w.b = append(b, '"')
}
