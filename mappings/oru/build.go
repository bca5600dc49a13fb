package oru

import (
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

const (
	systemMDC   = vocab.SystemMDC
	systemLOINC = vocab.SystemLOINC
	systemUCUM  = vocab.SystemUCUM
	systemSCT   = "http://snomed.info/sct"
)

// ProfileID is MSH-21 of every PCD-01 message (IHE PCD TF-2 B.1).
var ProfileID = []string{"IHE_PCD_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.1.1", "ISO"}

// Options are the per-message inputs that are not resources.
type Options struct {
	// ControlID returns a new, unique MSH-10. Required.
	ControlID func() string
	// Now is MSH-7; the zero time means time.Now().
	Now time.Time
}

// Build translates one Observation (with its Patient, Device, Encounter,
// Location) into an ORU^R01 for the destination profile p. Errors are
// *fhir.Error: KindInvalid for JSON that cannot be decoded,
// KindUnprocessable (located at the FHIR element) for an Observation that
// cannot make a PCD-01 result (no id, no time, no value, a status that is
// not a result, a code the profile cannot map, a patient without an
// identifier the destination accepts).
func Build(p Profile, in *Input, opts Options) (*hl7v2.Message, error) {
	r, err := Decode(in)
	if err != nil {
		return nil, err
	}
	return BuildDecoded(p, r, opts)
}

// BuildBytes is Build followed by hl7v2.Encode.
func BuildBytes(p Profile, in *Input, opts Options) ([]byte, error) {
	m, err := Build(p, in, opts)
	if err != nil {
		return nil, err
	}
	return hl7v2.Encode(m)
}

// BuildDecoded is Build for resources already decoded.
func BuildDecoded(p Profile, r *Resources, opts Options) (*hl7v2.Message, error) {
	if opts.ControlID == nil {
		return nil, fhir.Errorf(fhir.KindInternal, "oru: Options.ControlID is required")
	}
	if r == nil || r.Observation == nil || r.Patient == nil {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: an Observation and its Patient are required").At("Observation")
	}
	s := p.Settings()
	o := r.Observation
	if o.ID == "" {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation has no id (OBR-3 needs one)").At("Observation.id")
	}
	status, err := resultStatus(o.Status)
	if err != nil {
		return nil, err
	}
	eff := o.EffectiveDateTime
	if eff == "" {
		eff = o.EffectiveInstant
	}
	if eff == "" && o.EffectivePeriod != nil {
		eff = o.EffectivePeriod.Start
	}
	if eff == "" {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation has no effective time").At("Observation.effective[x]")
	}
	when, err := dtm(eff)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation's effective time is not a FHIR dateTime").At("Observation.effective[x]")
	}

	b := builder{s: s, p: p, status: status, when: when}
	if r.Device != nil {
		b.eui = eui64(r.Device.Identifier)
	}
	metrics, err := b.metrics(o)
	if err != nil {
		return nil, err
	}
	var mds Coding
	hasMDS := false
	if *s.DeviceRows && r.Device != nil && r.Device.Type != nil {
		mds, hasMDS = first(r.Device.Type.Coding, systemMDC)
	}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	nOBX := len(metrics)
	if hasMDS {
		nOBX++
	}
	b.a.init(nOBX, metrics)
	m, segs := newMessage(4 + nOBX)
	b.msh(&segs[0], now, opts.ControlID())
	if err := b.pid(&segs[1], r.Patient); err != nil {
		return nil, err
	}
	b.pv1(&segs[2], r.Encounter, r.Location)
	b.obr(&segs[3], o)
	setID := 0
	if hasMDS {
		setID++
		b.mdsRow(&segs[3+setID], setID, mds)
	}
	for i := range metrics {
		setID++
		if err := b.obx(&segs[3+setID], setID, i+1, &metrics[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// smallMessage is a message of up to eight segments (MSH, PID, PV1, OBR
// and four OBX rows: most vital signs) in one allocation.
type smallMessage struct {
	m    hl7v2.Message
	ptrs [8]*hl7v2.Segment
	segs [8]hl7v2.Segment
}

// newMessage returns a message of n segments and the segments.
func newMessage(n int) (*hl7v2.Message, []hl7v2.Segment) {
	var m *hl7v2.Message
	var ptrs []*hl7v2.Segment
	var segs []hl7v2.Segment
	if n <= 8 {
		x := new(smallMessage)
		// Capacities capped: a caller appending a segment gets a new array.
		m, ptrs, segs = &x.m, x.ptrs[:n:n], x.segs[:n:n]
	} else {
		m, ptrs, segs = new(hl7v2.Message), make([]*hl7v2.Segment, n), make([]hl7v2.Segment, n)
	}
	for i := range segs {
		ptrs[i] = &segs[i]
	}
	m.Delims, m.Segments = hl7v2.DefaultDelimiters, ptrs
	return m, segs
}

// resultStatus maps Observation.status to OBX-11 (HL7 table 0085).
func resultStatus(st string) (string, error) {
	switch st {
	case "final":
		return "F", nil
	case "amended", "corrected":
		return "C", nil
	case "preliminary":
		return "P", nil
	case "entered-in-error":
		return "W", nil
	}
	return "", fhir.Errorf(fhir.KindUnprocessable, "oru: an Observation with status %q is not a result to send", st).At("Observation.status")
}

type builder struct {
	s      *Settings
	p      Profile
	status string
	when   string
	eui    string
	a      arena
}

// metric is one OBX row to write.
type metric struct {
	Metric
	vital     *vocab.Vital
	valueType string
	value     [3]string // OBX-5 components (NM, ST: one; CWE: three)
	nValue    int
	samples   []string // NA: one component per sample
	units     *quantity
}

// values returns OBX-5's components.
func (m *metric) values() []string {
	if m.samples != nil {
		return m.samples
	}
	return m.value[:m.nValue]
}

func (b *builder) metrics(o *Observation) ([]metric, error) {
	out := make([]metric, 0, 1+len(o.Component))
	add := func(path string, cc *codeableConcept, q *quantity, str *string, cv *codeableConcept, sd *sampledData) error {
		if q == nil && str == nil && cv == nil && sd == nil {
			return nil
		}
		out = append(out, metric{Metric: Metric{Codings: cc.Coding, Path: path}})
		m := &out[len(out)-1]
		if v, ok := byCoding(cc.Coding); ok {
			m.vital, m.VitalKey = v, v.Key
		}
		switch {
		case q != nil:
			n, err := number(q.Value)
			if err != nil {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the quantity has no numeric value").At(path + ".valueQuantity.value")
			}
			m.valueType, m.value[0], m.nValue, m.units = "NM", n, 1, q
		case str != nil:
			m.valueType, m.value[0], m.nValue = "ST", *str, 1
		case cv != nil:
			c, ok := firstAny(cv.Coding)
			if !ok {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the coded value has no coding").At(path + ".valueCodeableConcept")
			}
			m.valueType, m.value, m.nValue = "CWE", [3]string{c.Code, c.Display, systemName(c.System)}, 3
		default:
			vals, err := samples(sd)
			if err != nil {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the sampled data cannot be read").At(path + ".valueSampledData").Wrap(err)
			}
			m.valueType, m.samples, m.units = "NA", vals, &sd.Origin
		}
		return nil
	}
	if err := add("Observation", &o.Code, o.ValueQuantity, o.ValueString, o.ValueCodeableConcept, o.ValueSampledData); err != nil {
		return nil, err
	}
	for i := range o.Component {
		c := &o.Component[i]
		if c.ValueQuantity == nil && c.ValueString == nil && c.ValueCodeableConcept == nil {
			continue
		}
		path := componentPath(i)
		if err := add(path, &c.Code, c.ValueQuantity, c.ValueString, c.ValueCodeableConcept, nil); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation has no value and no component values").At("Observation.value[x]")
	}
	return out, nil
}

var componentPaths = [...]string{
	"Observation.component[0]", "Observation.component[1]", "Observation.component[2]", "Observation.component[3]",
	"Observation.component[4]", "Observation.component[5]", "Observation.component[6]", "Observation.component[7]",
}

// componentPath is the FHIR path of component i, for error messages.
func componentPath(i int) string {
	if i < len(componentPaths) {
		return componentPaths[i]
	}
	return "Observation.component[" + strconv.Itoa(i) + "]"
}

// msh2 is MSH-2 of hl7v2.DefaultDelimiters.
var msh2 = hl7v2.DefaultDelimiters.EncodingCharacters()

func (b *builder) hd(h *HD) hl7v2.Field {
	return b.a.field(h.Namespace, h.UniversalID, h.UniversalIDType)
}

func (b *builder) msh(seg *hl7v2.Segment, now time.Time, controlID string) {
	s, a := b.s, &b.a
	f := a.segment(mshFields)
	f[0] = a.field("|")
	f[1] = a.field(msh2)
	f[2] = b.hd(&s.SendingApplication)
	f[3] = b.hd(&s.SendingFacility)
	f[4] = b.hd(&s.ReceivingApplication)
	f[5] = b.hd(&s.ReceivingFacility)
	var buf [32]byte
	f[6] = a.field(string(now.AppendFormat(buf[:0], hl7v2.TimeFormat)))
	f[8] = a.field("ORU", "R01", "ORU_R01")
	f[9] = a.field(controlID)
	f[10] = a.field(s.ProcessingID)
	f[11] = a.field(s.Version)
	f[14] = a.field("AL")
	f[15] = a.field("NE")
	f[17] = a.field("UNICODE UTF-8")
	f[20] = a.field(ProfileID...)
	*seg = hl7v2.Segment{Name: "MSH", Fields: f}
}

func (b *builder) authority(id *identifier) HD {
	if a, ok := b.s.Authorities[id.System]; ok {
		return a
	}
	var h HD
	if id.Assigner != nil {
		h.Namespace = id.Assigner.Display
	}
	if oid, ok := strings.CutPrefix(id.System, "urn:oid:"); ok {
		h.UniversalID, h.UniversalIDType = oid, "ISO"
	}
	return h
}

func typeCode(id *identifier) string {
	if id.Type != nil && len(id.Type.Coding) > 0 {
		return id.Type.Coding[0].Code
	}
	return ""
}

func (b *builder) pid(seg *hl7v2.Segment, p *Patient) error {
	a := &b.a
	f := a.segment(pidFields)
	rules := b.s.PatientIdentifiers
	a.needReps(len(p.Identifier) * max(len(rules), 1))
	rb := len(a.reps)
	if len(rules) > 0 {
		for _, rule := range rules {
			for i := range p.Identifier {
				id := &p.Identifier[i]
				if id.System == rule.System && id.Value != "" {
					t := rule.TypeCode
					if t == "" {
						t = typeCode(id)
					}
					a.reps = append(a.reps, a.cx(id.Value, rule.Authority, t))
				}
			}
		}
	} else {
		for i := range p.Identifier {
			id := &p.Identifier[i]
			if id.Value != "" {
				a.reps = append(a.reps, a.cx(id.Value, b.authority(id), typeCode(id)))
			}
		}
	}
	n := len(a.reps)
	if n == rb {
		return fhir.Errorf(fhir.KindUnprocessable, "oru: the Patient has no identifier the destination matches on (PID-3)").At("Patient.identifier")
	}
	f[2] = a.reps[rb:n:n]
	if nm := pickName(p.Name); nm != nil {
		given, further := "", ""
		if len(nm.Given) > 0 {
			given = nm.Given[0]
			further = strings.Join(nm.Given[1:], " ")
		}
		f[4] = a.field(nm.Family, given, further, strings.Join(nm.Suffix, " "), strings.Join(nm.Prefix, " "), "", nameType(nm.Use))
	}
	if p.BirthDate != "" {
		d, err := dtm(p.BirthDate)
		if err != nil {
			return fhir.Errorf(fhir.KindUnprocessable, "oru: the Patient's birth date is not a FHIR date").At("Patient.birthDate")
		}
		f[6] = a.field(d)
	}
	if g := sex(p.Gender); g != "" {
		f[7] = a.field(g)
	}
	*seg = hl7v2.Segment{Name: "PID", Fields: f}
	return nil
}

func pickName(ns []humanName) *humanName {
	for i := range ns {
		if ns[i].Use == "official" {
			return &ns[i]
		}
	}
	if len(ns) > 0 {
		return &ns[0]
	}
	return nil
}

// nameType maps HumanName.use to HL7 table 0200.
func nameType(use string) string {
	switch use {
	case "official":
		return "L"
	case "usual":
		return "D"
	case "nickname":
		return "N"
	case "maiden":
		return "M"
	case "anonymous":
		return "S"
	}
	return ""
}

// sex maps Patient.gender to HL7 table 0001.
func sex(g string) string {
	switch g {
	case "male":
		return "M"
	case "female":
		return "F"
	case "other":
		return "O"
	case "unknown":
		return "U"
	}
	return ""
}

// patientClass maps Encounter.class (v3 ActCode) to PV1-2 (HL7 table 0004).
func patientClass(c *coding) string {
	if c == nil {
		return ""
	}
	switch c.Code {
	case "IMP", "ACUTE", "NONAC":
		return "I"
	case "EMER":
		return "E"
	case "AMB", "SS", "HH", "VR", "FLD", "OBSENC":
		return "O"
	case "PRENC":
		return "P"
	}
	return ""
}

func (b *builder) pv1(seg *hl7v2.Segment, e *Encounter, l *Location) {
	a := &b.a
	f := a.segment(pv1Fields)
	class := b.s.DefaultPatientClass
	if e != nil {
		if c := patientClass(e.Class); c != "" {
			class = c
		}
	}
	f[1] = a.field(class)
	if l != nil {
		f[2] = b.pointOfCare(l)
	}
	if e != nil {
		if id, auth, typ, ok := b.visit(e.Identifier); ok {
			f[18] = a.one(a.cx(id, auth, typ))
		}
	}
	*seg = hl7v2.Segment{Name: "PV1", Fields: f}
}

// pointOfCare writes PV1-3 from the Location's HL7 point-of-care identifier
// (as mappings/adt records it) or, failing that, its name.
func (b *builder) pointOfCare(l *Location) hl7v2.Field {
	for _, id := range l.Identifier {
		if id.System == adt.SystemPointOfCare && id.Value != "" {
			return b.a.split(id.Value, '^')
		}
	}
	if l.Name != "" {
		return b.a.field(l.Name)
	}
	return nil
}

func (b *builder) visit(ids []identifier) (value string, auth HD, typ string, ok bool) {
	if rule := b.s.VisitIdentifier; rule != nil {
		for i := range ids {
			if ids[i].System == rule.System && ids[i].Value != "" {
				t := rule.TypeCode
				if t == "" {
					t = "VN"
				}
				return ids[i].Value, rule.Authority, t, true
			}
		}
		return "", HD{}, "", false
	}
	for i := range ids {
		if ids[i].Value != "" {
			return ids[i].Value, b.authority(&ids[i]), "VN", true
		}
	}
	return "", HD{}, "", false
}

func (b *builder) obr(seg *hl7v2.Segment, o *Observation) {
	a := &b.a
	f := a.segment(obrFields)
	f[0] = a.field("1")
	app := &b.s.SendingApplication
	order := a.field(o.ID, app.Namespace, app.UniversalID, app.UniversalIDType)
	f[1] = order
	f[2] = order
	switch {
	case o.ValueSampledData != nil:
		f[3] = a.field("69121", "MDC_OBS_WAVE_CTS", "MDC")
	case len(o.Component) > 0:
		if mdc, ok := first(o.Code.Coding, systemMDC); ok {
			f[3] = a.field(mdc.Code, refID(mdc), "MDC")
			break
		}
		fallthrough
	default:
		f[3] = a.field("182777000", "monitoring of patient", "SNOMED-CT")
	}
	f[6] = a.field(b.when)
	*seg = hl7v2.Segment{Name: "OBR", Fields: f}
}

func (b *builder) mdsRow(seg *hl7v2.Segment, setID int, c Coding) {
	a := &b.a
	f := a.segment(obxFields)
	f[0] = a.field(strconv.Itoa(setID))
	f[2] = a.field(c.Code, refID(c), "MDC")
	f[3] = a.field("1.0.0.0")
	f[10] = a.field("X")
	if b.eui != "" {
		f[17] = a.field(b.eui, "", b.eui, "EUI-64")
	}
	*seg = hl7v2.Segment{Name: "OBX", Fields: f}
}

var subIDs = [...]string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6", "1.1.1.7", "1.1.1.8"}

func subID(n int) string {
	if n <= len(subIDs) {
		return subIDs[n-1]
	}
	return "1.1.1." + strconv.Itoa(n)
}

// obx writes the row of the ordinal-th metric (1-based) of the channel.
func (b *builder) obx(seg *hl7v2.Segment, setID, ordinal int, m *metric) error {
	id, err := b.p.ObservationID(&m.Metric)
	if err != nil {
		return err
	}
	a := &b.a
	f := a.segment(obxFields)
	f[0] = a.field(strconv.Itoa(setID))
	f[1] = a.field(m.valueType)
	f[2] = a.field(id.ID, id.Text, id.System, id.AltID, id.AltText, id.AltSystem)
	f[3] = a.field(subID(ordinal))
	f[4] = a.field(m.values()...)
	if m.units != nil {
		f[5] = b.units(m)
	}
	f[10] = a.field(b.status)
	f[13] = a.field(b.when)
	f[16] = a.field("AMEAS", "auto-measurement", "MDC")
	if b.eui != "" {
		f[17] = a.field(b.eui, "", b.eui, "EUI-64")
	}
	*seg = hl7v2.Segment{Name: "OBX", Fields: f}
	return nil
}
