// Package adt translates inbound HL7 v2 ADT messages (HL7 v2.5.1/v2.6
// chapter 3, Patient Administration) into FHIR R4 Patient, Encounter and
// Location resources to upsert, following the HL7 v2-to-FHIR mappings
// (https://build.fhir.org/ig/HL7/v2-to-fhir/) for PID, PV1 and MRG:
// A01 admit, A03 discharge, A04 register, A08 update, A11 cancel admit,
// A13 cancel discharge and A40 merge patient identifier lists.
//
// It is pure translation: Translate returns what to write (resources keyed
// by identifier, for conditional update, and for A40 a merge instruction)
// and performs no I/O. Problems are located by position only (segment,
// field, HL7 table 0357 code) so the MLLP listener can answer AE or AR with
// ERR segments; they never carry message values.
//
// # Decisions
//
//   - Identifier systems come from CX-4 (assigning authority) through
//     Config.Authorities (namespace or universal id -> system URI); an
//     ISO universal id with no entry becomes urn:oid:<id>; otherwise
//     urn:pulsewire:hl7v2:authority:<namespace>. No CX-4 at all: the
//     Config.DefaultSystem, or a 101 issue when there is none.
//   - References between the returned resources are conditional references
//     ("Patient?identifier=system|value"), which a FHIR transaction resolves
//     (https://hl7.org/fhir/R4/http.html#trules).
//   - Encounter.status by event: A01 in-progress; A03 finished with
//     period.end (PV1-45, else EVN-6, else EVN-2); A04 arrived (a
//     registered outpatient); A08 in-progress, or finished when PV1-45 is
//     valued (the update restates the visit); A11 cancelled; A13
//     in-progress with period.end removed.
//   - PV1-3 becomes a Location whose identifier (system SystemPointOfCare)
//     is PL components 1-4 joined with '^' (point of care, room, bed,
//     facility namespace); mappings/oru writes PV1-3 back from it.
//   - A40: MRG-1 identifiers are retired into the surviving PID-3 patient:
//     the survivor is upserted with Patient.link type "replaces" to each
//     retired one, and Result.Merge tells the caller to mark each retired
//     Patient inactive with link "replaced-by" the survivor
//     (https://hl7.org/fhir/R4/patient.html#links).
//   - Missing required fields are table 0357 code 101 (AE); an unsupported
//     message type is 200 and an unsupported trigger event 201 (both AR).
//
// It imports only the standard library, server/fhir and mappings/hl7v2.
// The MLLP listener (server side) imports it.
package adt

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// SystemPointOfCare is the identifier system of a Location made from PV1-3.
const SystemPointOfCare = "urn:pulsewire:hl7v2:point-of-care"

// Code systems used in the output.
const (
	systemV20203       = "http://terminology.hl7.org/CodeSystem/v2-0203"
	systemActCode      = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	systemPhysicalType = "http://terminology.hl7.org/CodeSystem/location-physical-type"
	authorityPrefix    = "urn:pulsewire:hl7v2:authority:"
)

// Config is the per-tenant translation configuration.
type Config struct {
	// Authorities maps a CX-4 namespace id or universal id to an
	// identifier system URI.
	Authorities map[string]string `json:"authorities,omitempty"`
	// DefaultSystem is the system of identifiers without CX-4.
	DefaultSystem string `json:"defaultSystem,omitempty"`
	// Location is the time zone of DTM values without an offset; nil: UTC.
	Location *time.Location `json:"-"`
}

// Identifier is a FHIR identifier's system and value: the key of a
// conditional update.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Query is the search that finds the resource: identifier=system|value.
func (i Identifier) Query() string {
	return "identifier=" + url.QueryEscape(i.System+"|"+i.Value)
}

// Upsert is one resource to create or update by conditional update
// (PUT Type?identifier=system|value).
type Upsert struct {
	Type string          `json:"type"`
	Key  Identifier      `json:"key"`
	Body json.RawMessage `json:"body"`
}

// Merge says that the Patients known by Retired are replaced by the one
// known by Survivor (A40).
type Merge struct {
	Survivor Identifier   `json:"survivor"`
	Retired  []Identifier `json:"retired"`
}

// Result is what one ADT message asks for, in the order to apply it
// (Location, Patient, Encounter).
type Result struct {
	Event     string   `json:"event"`     // trigger event, e.g. A01
	ControlID string   `json:"controlId"` // MSH-10, for duplicate detection
	Upserts   []Upsert `json:"upserts"`
	Merge     *Merge   `json:"merge,omitempty"`
}

// IssueError lists the positions that made a message unprocessable. Use
// errors.As to get it from Translate's error.
type IssueError struct {
	Issues []hl7v2.Issue
}

func (e *IssueError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.Location() + ": " + is.Msg
	}
	return strings.Join(parts, "; ")
}

// AckFor returns the acknowledgment code and ERR issues for a Translate
// error: AR for unsupported message types and events (table 0357 codes
// 200-203), AE otherwise. ok is false when err carries no issues (an
// internal error: the caller answers AE with code 207).
func AckFor(err error) (code hl7v2.AckCode, issues []hl7v2.Issue, ok bool) {
	var ie *IssueError
	if !errors.As(err, &ie) {
		return hl7v2.AckError, nil, false
	}
	code = hl7v2.AckError
	for _, is := range ie.Issues {
		if is.Code >= hl7v2.ErrUnsupportedMessageType && is.Code <= hl7v2.ErrUnsupportedVersionID {
			code = hl7v2.AckReject
		}
	}
	return code, ie.Issues, true
}

// Supported lists the trigger events Translate handles.
var Supported = []string{"A01", "A03", "A04", "A08", "A11", "A13", "A40"}

// Translate turns one parsed ADT message into the resources to upsert.
// Errors are *fhir.Error wrapping an *IssueError: KindNotSupported for a
// message that is not ADT or an event not in Supported, KindUnprocessable
// for missing or malformed required fields.
func Translate(m *hl7v2.Message, cfg *Config) (*Result, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	t := translator{m: m, cfg: cfg}
	mt := m.MessageType()
	if mt.Code != "ADT" {
		return nil, t.fail(fhir.KindNotSupported, hl7v2.Issue{Segment: "MSH", Field: 9, Code: hl7v2.ErrUnsupportedMessageType, Msg: "only ADT messages are accepted"})
	}
	event := mt.Trigger
	if event == "" {
		event = m.Value("EVN", 1, 1, 1, 1)
	}
	supported := false
	for _, e := range Supported {
		supported = supported || e == event
	}
	if !supported {
		return nil, t.fail(fhir.KindNotSupported, hl7v2.Issue{Segment: "MSH", Field: 9, Code: hl7v2.ErrUnsupportedEventCode, Msg: "unsupported ADT trigger event"})
	}
	res := &Result{Event: event, ControlID: m.ControlID()}
	pid := t.seg("PID", true)
	patient, pkey := t.patient(pid)
	if event == "A40" {
		res.Merge = t.merge(pkey)
		if res.Merge != nil {
			patient.Link = make([]patientLink, len(res.Merge.Retired))
			for i, r := range res.Merge.Retired {
				patient.Link[i] = patientLink{Other: ref{"Patient?" + r.Query()}, Type: "replaces"}
			}
		}
	}
	var enc *encounter
	var ekey, lkey Identifier
	var loc *location
	if event != "A40" {
		pv1 := t.seg("PV1", event != "A08") // A08 may update demographics only
		enc, ekey, loc, lkey = t.encounter(event, pv1, pkey)
	}
	if len(t.issues) > 0 {
		return nil, t.fail(fhir.KindUnprocessable)
	}
	if loc != nil {
		res.Upserts = append(res.Upserts, upsert("Location", lkey, loc))
	}
	res.Upserts = append(res.Upserts, upsert("Patient", pkey, patient))
	if enc != nil {
		res.Upserts = append(res.Upserts, upsert("Encounter", ekey, enc))
	}
	return res, nil
}

func upsert(typ string, key Identifier, v any) Upsert {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own structs of strings are marshalled: cannot fail.
		panic("adt: marshalling " + typ + ": " + err.Error())
	}
	return Upsert{Type: typ, Key: key, Body: b}
}

type translator struct {
	m      *hl7v2.Message
	cfg    *Config
	issues []hl7v2.Issue
}

func (t *translator) fail(k fhir.Kind, extra ...hl7v2.Issue) error {
	for _, is := range extra {
		t.issue(is.Segment, is.Field, is.Code, is.Msg)
	}
	fe := fhir.Errorf(k, "adt: %d problem(s) in the message", len(t.issues))
	for _, is := range t.issues {
		fe.Expression = append(fe.Expression, is.Location())
	}
	return fe.Wrap(&IssueError{Issues: t.issues})
}

// issue records a problem at the first segment named seg.
func (t *translator) issue(seg string, field int, code hl7v2.ErrorCode, msg string) {
	is := hl7v2.Issue{Segment: seg, Field: field, Code: code, Msg: msg}
	for i, s := range t.m.Segments {
		if s.Name == seg {
			is.Index, is.Occurrence = i+1, 1
			break
		}
	}
	t.issues = append(t.issues, is)
}

func (t *translator) seg(name string, required bool) *hl7v2.Segment {
	s := t.m.Segment(name, 1)
	if s == nil && required {
		t.issues = append(t.issues, hl7v2.Issue{Segment: name, Code: hl7v2.ErrSegmentSequence, Msg: "required segment " + name + " is missing"})
	}
	return s
}

// system resolves a CX-4 assigning authority to an identifier system.
func (t *translator) system(auth hl7v2.Component) (string, bool) {
	ns, uid, typ := auth.Sub(1), auth.Sub(2), auth.Sub(3)
	if s, ok := t.cfg.Authorities[ns]; ok && ns != "" {
		return s, true
	}
	if s, ok := t.cfg.Authorities[uid]; ok && uid != "" {
		return s, true
	}
	switch {
	case uid != "" && typ == "ISO":
		return "urn:oid:" + uid, true
	case ns != "":
		return authorityPrefix + url.PathEscape(ns), true
	case t.cfg.DefaultSystem != "":
		return t.cfg.DefaultSystem, true
	}
	return "", false
}

// identifiers reads a repeating CX field.
func (t *translator) identifiers(s *hl7v2.Segment, field int) ([]identifier, bool) {
	var out []identifier
	for _, r := range s.Field(field) {
		v := r.Comp(1).Sub(1)
		if v == "" {
			continue
		}
		sys, ok := t.system(r.Comp(4))
		if !ok {
			t.issue(s.Name, field, hl7v2.ErrRequiredFieldMissing, "an identifier has no assigning authority")
			return nil, false
		}
		id := identifier{System: sys, Value: v}
		if tc := r.Comp(5).Sub(1); tc != "" {
			id.Type = &codeableConcept{Coding: []coding{{System: systemV20203, Code: tc}}}
		}
		out = append(out, id)
	}
	return out, true
}
