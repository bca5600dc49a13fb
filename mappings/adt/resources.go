package adt

import (
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
)

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
}

type identifier struct {
	Type   *codeableConcept `json:"type,omitempty"`
	System string           `json:"system"`
	Value  string           `json:"value"`
}

type ref struct {
	Reference string `json:"reference"`
}

type humanName struct {
	Use    string   `json:"use,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
}

type address struct {
	Use        string   `json:"use,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type contactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
	Use    string `json:"use,omitempty"`
}

type patientLink struct {
	Other ref    `json:"other"`
	Type  string `json:"type"`
}

type patient struct {
	ResourceType string         `json:"resourceType"`
	Identifier   []identifier   `json:"identifier"`
	Active       bool           `json:"active"`
	Name         []humanName    `json:"name,omitempty"`
	Telecom      []contactPoint `json:"telecom,omitempty"`
	Gender       string         `json:"gender,omitempty"`
	BirthDate    string         `json:"birthDate,omitempty"`
	Address      []address      `json:"address,omitempty"`
	Link         []patientLink  `json:"link,omitempty"`
}

type period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type encounterLocation struct {
	Location ref    `json:"location"`
	Status   string `json:"status"`
}

type encounter struct {
	ResourceType string              `json:"resourceType"`
	Identifier   []identifier        `json:"identifier"`
	Status       string              `json:"status"`
	Class        coding              `json:"class"`
	Subject      ref                 `json:"subject"`
	Period       *period             `json:"period,omitempty"`
	Location     []encounterLocation `json:"location,omitempty"`
}

type location struct {
	ResourceType string           `json:"resourceType"`
	Identifier   []identifier     `json:"identifier"`
	Status       string           `json:"status"`
	Name         string           `json:"name,omitempty"`
	Mode         string           `json:"mode"`
	PhysicalType *codeableConcept `json:"physicalType,omitempty"`
}

// patient builds the Patient from PID and returns it with its key: the
// first MR-typed identifier, else the first.
func (t *translator) patient(pid *hl7v2.Segment) (*patient, Identifier) {
	p := &patient{ResourceType: "Patient", Active: true}
	if pid == nil {
		return p, Identifier{}
	}
	ids, ok := t.identifiers(pid, 3)
	if ok && len(ids) == 0 {
		t.issue("PID", 3, hl7v2.ErrRequiredFieldMissing, "PID-3 patient identifier list is required")
	}
	p.Identifier = ids
	var key Identifier
	for _, id := range ids {
		if id.Type != nil && id.Type.Coding[0].Code == "MR" {
			key = Identifier{id.System, id.Value}
			break
		}
	}
	if key.Value == "" && len(ids) > 0 {
		key = Identifier{ids[0].System, ids[0].Value}
	}
	for _, r := range pid.Field(5) {
		n := humanName{Family: r.Comp(1).Sub(1), Use: nameUse(r.Comp(7).Sub(1))}
		if g := r.Comp(2).Sub(1); g != "" {
			n.Given = append(n.Given, g)
		}
		if g := r.Comp(3).Sub(1); g != "" {
			n.Given = append(n.Given, g)
		}
		if s := r.Comp(4).Sub(1); s != "" {
			n.Suffix = []string{s}
		}
		if s := r.Comp(5).Sub(1); s != "" {
			n.Prefix = []string{s}
		}
		if n.Family != "" || len(n.Given) > 0 {
			p.Name = append(p.Name, n)
		}
	}
	if v := pid.Value(7, 1, 1, 1); v != "" {
		d, err := t.dateTime(v)
		if err != nil || len(d) < 4 {
			t.issue("PID", 7, hl7v2.ErrDataType, "PID-7 is not a valid date")
		} else {
			if len(d) > 10 {
				d = d[:10]
			}
			p.BirthDate = d
		}
	}
	p.Gender = gender(pid.Value(8, 1, 1, 1))
	for _, r := range pid.Field(11) {
		a := address{City: r.Comp(3).Sub(1), State: r.Comp(4).Sub(1), PostalCode: r.Comp(5).Sub(1), Country: r.Comp(6).Sub(1), Use: addressUse(r.Comp(7).Sub(1))}
		for _, l := range []string{r.Comp(1).Sub(1), r.Comp(2).Sub(1)} {
			if l != "" {
				a.Line = append(a.Line, l)
			}
		}
		if len(a.Line) > 0 || a.City != "" || a.PostalCode != "" {
			p.Address = append(p.Address, a)
		}
	}
	for _, r := range pid.Field(13) {
		if cp, ok := telecom(r); ok {
			p.Telecom = append(p.Telecom, cp)
		}
	}
	return p, key
}

// nameUse maps HL7 table 0200 to HumanName.use.
func nameUse(c string) string {
	switch c {
	case "L":
		return "official"
	case "D":
		return "usual"
	case "N":
		return "nickname"
	case "M":
		return "maiden"
	case "S":
		return "anonymous"
	}
	return ""
}

// gender maps HL7 table 0001 to Patient.gender.
func gender(c string) string {
	switch c {
	case "M":
		return "male"
	case "F":
		return "female"
	case "O", "A":
		return "other"
	case "U", "N":
		return "unknown"
	}
	return ""
}

// addressUse maps HL7 table 0190 to Address.use.
func addressUse(c string) string {
	switch c {
	case "H":
		return "home"
	case "B", "O":
		return "work"
	case "C":
		return "temp"
	}
	return ""
}

// telecom maps one XTN: use code (table 0201) and equipment type (0202).
func telecom(r hl7v2.Repetition) (contactPoint, bool) {
	use, equip := r.Comp(2).Sub(1), r.Comp(3).Sub(1)
	cp := contactPoint{System: "phone"}
	switch use {
	case "PRN":
		cp.Use = "home"
	case "WPN":
		cp.Use = "work"
	}
	switch equip {
	case "CP":
		cp.Use = "mobile"
	case "FX":
		cp.System = "fax"
	case "Internet", "X.400":
		cp.System = "email"
	}
	if use == "NET" {
		cp.System = "email"
	}
	if cp.System == "email" {
		cp.Value = r.Comp(4).Sub(1)
	}
	if cp.Value == "" {
		cp.Value = r.Comp(1).Sub(1)
	}
	if cp.Value == "" {
		cp.Value = r.Comp(12).Sub(1)
	}
	if cp.Value == "" && r.Comp(7).Sub(1) != "" {
		cp.Value = strings.TrimSpace(r.Comp(5).Sub(1) + " " + r.Comp(6).Sub(1) + " " + r.Comp(7).Sub(1))
	}
	return cp, cp.Value != ""
}

// class maps PV1-2 (HL7 table 0004) to Encounter.class (v3 ActCode).
func class(c string) (coding, bool) {
	switch c {
	case "I", "B", "R":
		return coding{System: systemActCode, Code: "IMP", Display: "inpatient encounter"}, true
	case "E":
		return coding{System: systemActCode, Code: "EMER", Display: "emergency"}, true
	case "O":
		return coding{System: systemActCode, Code: "AMB", Display: "ambulatory"}, true
	case "P":
		return coding{System: systemActCode, Code: "PRENC", Display: "pre-admission"}, true
	}
	return coding{}, false
}

// encounter builds the Encounter (and the Location of PV1-3) for event.
func (t *translator) encounter(event string, pv1 *hl7v2.Segment, pkey Identifier) (*encounter, Identifier, *location, Identifier) {
	if pv1 == nil {
		return nil, Identifier{}, nil, Identifier{}
	}
	ids, ok := t.identifiers(pv1, 19)
	if !ok {
		return nil, Identifier{}, nil, Identifier{}
	}
	if len(ids) == 0 {
		if event == "A08" {
			return nil, Identifier{}, nil, Identifier{} // a demographics-only update
		}
		t.issue("PV1", 19, hl7v2.ErrRequiredFieldMissing, "PV1-19 visit number is required")
		return nil, Identifier{}, nil, Identifier{}
	}
	for i := range ids {
		if ids[i].Type == nil {
			ids[i].Type = &codeableConcept{Coding: []coding{{System: systemV20203, Code: "VN"}}}
		}
	}
	e := &encounter{ResourceType: "Encounter", Identifier: ids, Subject: ref{"Patient?" + pkey.Query()}}
	c, ok := class(pv1.Value(2, 1, 1, 1))
	if !ok {
		t.issue("PV1", 2, hl7v2.ErrRequiredFieldMissing, "PV1-2 patient class is missing or not in table 0004")
	}
	e.Class = c
	start := t.dtmField(pv1, 44)
	end := t.dtmField(pv1, 45)
	evn := t.m.Segment("EVN", 1)
	eventTime := t.dtmField(evn, 6)
	if eventTime == "" {
		eventTime = t.dtmField(evn, 2)
	}
	switch event {
	case "A01":
		e.Status = "in-progress"
		if start == "" {
			start = eventTime
		}
	case "A03":
		e.Status = "finished"
		if end == "" {
			end = eventTime
		}
		if end == "" {
			t.issue("PV1", 45, hl7v2.ErrRequiredFieldMissing, "a discharge needs PV1-45 or an EVN event time")
		}
	case "A04":
		e.Status = "arrived"
		if start == "" {
			start = eventTime
		}
	case "A08":
		e.Status = "in-progress"
		if end != "" {
			e.Status = "finished"
		}
	case "A11":
		e.Status = "cancelled"
	case "A13":
		e.Status = "in-progress"
		end = ""
	}
	if start != "" || end != "" {
		e.Period = &period{Start: start, End: end}
	}
	var loc *location
	var lkey Identifier
	if pl := pv1.Field(3).Rep(1); pl != nil {
		parts := []string{pl.Comp(1).Sub(1), pl.Comp(2).Sub(1), pl.Comp(3).Sub(1), pl.Comp(4).Sub(1)}
		value := strings.TrimRight(strings.Join(parts, "^"), "^")
		if value != "" {
			lkey = Identifier{SystemPointOfCare, value}
			loc = &location{ResourceType: "Location", Identifier: []identifier{{System: SystemPointOfCare, Value: value}}, Status: "active", Mode: "instance"}
			var name []string
			for _, p := range parts[:3] {
				if p != "" {
					name = append(name, p)
				}
			}
			loc.Name = strings.Join(name, " ")
			pt := coding{System: systemPhysicalType, Code: "wa", Display: "Ward"}
			switch {
			case parts[2] != "":
				pt = coding{System: systemPhysicalType, Code: "bd", Display: "Bed"}
			case parts[1] != "":
				pt = coding{System: systemPhysicalType, Code: "ro", Display: "Room"}
			}
			loc.PhysicalType = &codeableConcept{Coding: []coding{pt}}
			status := "active"
			if e.Status == "finished" || e.Status == "cancelled" {
				status = "completed"
			}
			e.Location = []encounterLocation{{Location: ref{"Location?" + lkey.Query()}, Status: status}}
		}
	}
	return e, ids[0].key(), loc, lkey
}

func (i identifier) key() Identifier { return Identifier{i.System, i.Value} }

// merge reads MRG-1 (A40).
func (t *translator) merge(survivor Identifier) *Merge {
	mrg := t.seg("MRG", true)
	if mrg == nil {
		return nil
	}
	ids, ok := t.identifiers(mrg, 1)
	if !ok {
		return nil
	}
	if len(ids) == 0 {
		t.issue("MRG", 1, hl7v2.ErrRequiredFieldMissing, "MRG-1 prior patient identifier list is required")
		return nil
	}
	m := &Merge{Survivor: survivor}
	for _, id := range ids {
		m.Retired = append(m.Retired, id.key())
	}
	return m
}

func (t *translator) dtmField(s *hl7v2.Segment, field int) string {
	v := s.Value(field, 1, 1, 1)
	if v == "" {
		return ""
	}
	d, err := t.dateTime(v)
	if err != nil {
		t.issue(s.Name, field, hl7v2.ErrDataType, s.Name+" field is not a valid DTM")
		return ""
	}
	return d
}

// dateTime converts an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) to
// a FHIR date or dateTime. A time without an offset is read in
// Config.Location (UTC by default).
func (t *translator) dateTime(v string) (string, error) {
	body, zone := v, ""
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		body, zone = v[:i], v[i:]
	}
	frac := ""
	if i := strings.IndexByte(body, '.'); i >= 0 {
		body, frac = body[:i], body[i:]
	}
	for _, c := range body + strings.TrimPrefix(frac, ".") + strings.TrimLeft(zone, "+-") {
		if c < '0' || c > '9' {
			return "", errBadDTM
		}
	}
	switch len(body) {
	case 4:
		return body, nil
	case 6:
		if _, err := time.Parse("200601", body); err != nil {
			return "", err
		}
		return body[:4] + "-" + body[4:], nil
	case 8:
		d, err := time.Parse("20060102", body)
		if err != nil {
			return "", err
		}
		return d.Format("2006-01-02"), nil
	case 10, 12, 14:
	default:
		return "", errBadDTM
	}
	for len(body) < 14 {
		body += "0"
	}
	if frac != "" && len(body) != 14 {
		return "", errBadDTM
	}
	loc := t.cfg.Location
	if loc == nil {
		loc = time.UTC
	}
	layout := "20060102150405"
	if zone != "" {
		if len(zone) != 5 {
			return "", errBadDTM
		}
		layout += "-0700"
		body += zone
	}
	var ts time.Time
	var err error
	if zone != "" {
		ts, err = time.Parse(layout, body)
	} else {
		ts, err = time.ParseInLocation(layout, body, loc)
	}
	if err != nil {
		return "", err
	}
	out := ts.Format("2006-01-02T15:04:05")
	if frac != "" {
		out += frac
	}
	if ts.Location() == time.UTC && zone == "" {
		return out + "Z", nil
	}
	return out + ts.Format("-07:00"), nil
}

var errBadDTM = &dtmError{}

type dtmError struct{}

func (*dtmError) Error() string { return "not an HL7 DTM" }
