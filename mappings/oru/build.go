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

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := &hl7v2.Message{Delims: hl7v2.DefaultDelimiters, Segments: make([]*hl7v2.Segment, 0, 6+len(metrics))}
	m.Segments = append(m.Segments, b.msh(now, opts.ControlID()))
	pid, err := b.pid(r.Patient)
	if err != nil {
		return nil, err
	}
	m.Segments = append(m.Segments, pid, b.pv1(r.Encounter, r.Location), b.obr(o))
	setID := 0
	if *s.DeviceRows && r.Device != nil && r.Device.Type != nil {
		if mds, ok := first(toCodings(r.Device.Type.Coding), systemMDC); ok {
			setID++
			m.Segments = append(m.Segments, b.mdsRow(setID, mds))
		}
	}
	for i := range metrics {
		setID++
		obx, err := b.obx(setID, i+1, &metrics[i])
		if err != nil {
			return nil, err
		}
		m.Segments = append(m.Segments, obx)
	}
	return m, nil
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
}

// metric is one OBX row to write.
type metric struct {
	Metric
	vital     *vocab.Vital
	valueType string
	value     []string // one per component of OBX-5 (NA: one per sample)
	units     *quantity
}

func (b *builder) metrics(o *Observation) ([]metric, error) {
	out := make([]metric, 0, 1+len(o.Component))
	add := func(path string, cc *codeableConcept, q *quantity, str *string, cv *codeableConcept, sd *sampledData) error {
		m := metric{Metric: Metric{Codings: toCodings(cc.Coding), Path: path}}
		if v, ok := vocab.ByCoding(vocabCodings(cc.Coding)); ok {
			m.vital, m.VitalKey = v, v.Key
		}
		switch {
		case q != nil:
			n, err := number(q.Value)
			if err != nil {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the quantity has no numeric value").At(path + ".valueQuantity.value")
			}
			m.valueType, m.value, m.units = "NM", []string{n}, q
		case str != nil:
			m.valueType, m.value = "ST", []string{*str}
		case cv != nil:
			c, ok := firstAny(cv.Coding)
			if !ok {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the coded value has no coding").At(path + ".valueCodeableConcept")
			}
			m.valueType, m.value = "CWE", []string{c.Code, c.Display, systemName(c.System)}
		case sd != nil:
			vals, err := samples(sd)
			if err != nil {
				return fhir.Errorf(fhir.KindUnprocessable, "oru: the sampled data cannot be read").At(path + ".valueSampledData").Wrap(err)
			}
			m.valueType, m.value, m.units = "NA", vals, &sd.Origin
		default:
			return nil
		}
		out = append(out, m)
		return nil
	}
	if err := add("Observation", &o.Code, o.ValueQuantity, o.ValueString, o.ValueCodeableConcept, o.ValueSampledData); err != nil {
		return nil, err
	}
	for i := range o.Component {
		c := &o.Component[i]
		path := "Observation.component[" + strconv.Itoa(i) + "]"
		if err := add(path, &c.Code, c.ValueQuantity, c.ValueString, c.ValueCodeableConcept, nil); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation has no value and no component values").At("Observation.value[x]")
	}
	return out, nil
}

// comps returns a field of one repetition whose components are vals (one
// subcomponent each). Trailing empties are trimmed by the encoder.
func comps(vals ...string) hl7v2.Field {
	r := make(hl7v2.Repetition, len(vals))
	for i := range vals {
		r[i] = hl7v2.Component(vals[i : i+1 : i+1])
	}
	return hl7v2.Field{r}
}

func hd(h HD) hl7v2.Field { return comps(h.Namespace, h.UniversalID, h.UniversalIDType) }

func (b *builder) msh(now time.Time, controlID string) *hl7v2.Segment {
	s := b.s
	f := make([]hl7v2.Field, 21)
	f[0] = hl7v2.FieldOf("|")
	f[1] = hl7v2.FieldOf(hl7v2.DefaultDelimiters.EncodingCharacters())
	f[2] = hd(s.SendingApplication)
	f[3] = hd(s.SendingFacility)
	f[4] = hd(s.ReceivingApplication)
	f[5] = hd(s.ReceivingFacility)
	f[6] = hl7v2.FieldOf(now.Format(hl7v2.TimeFormat))
	f[8] = comps("ORU", "R01", "ORU_R01")
	f[9] = hl7v2.FieldOf(controlID)
	f[10] = hl7v2.FieldOf(s.ProcessingID)
	f[11] = hl7v2.FieldOf(s.Version)
	f[14] = hl7v2.FieldOf("AL")
	f[15] = hl7v2.FieldOf("NE")
	f[17] = hl7v2.FieldOf("UNICODE UTF-8")
	f[20] = comps(ProfileID...)
	return &hl7v2.Segment{Name: "MSH", Fields: f}
}

// cx writes one identifier as CX: value^^^authority^type.
func cx(value string, auth HD, typ string) hl7v2.Repetition {
	return hl7v2.Repetition{
		{value}, nil, nil,
		{auth.Namespace, auth.UniversalID, auth.UniversalIDType},
		{typ},
	}
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

func (b *builder) pid(p *Patient) (*hl7v2.Segment, error) {
	f := make([]hl7v2.Field, 8)
	var ids hl7v2.Field
	if rules := b.s.PatientIdentifiers; len(rules) > 0 {
		for _, rule := range rules {
			for i := range p.Identifier {
				id := &p.Identifier[i]
				if id.System == rule.System && id.Value != "" {
					t := rule.TypeCode
					if t == "" {
						t = typeCode(id)
					}
					ids = append(ids, cx(id.Value, rule.Authority, t))
				}
			}
		}
	} else {
		for i := range p.Identifier {
			id := &p.Identifier[i]
			if id.Value != "" {
				ids = append(ids, cx(id.Value, b.authority(id), typeCode(id)))
			}
		}
	}
	if len(ids) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Patient has no identifier the destination matches on (PID-3)").At("Patient.identifier")
	}
	f[2] = ids
	if n := pickName(p.Name); n != nil {
		given, further := "", ""
		if len(n.Given) > 0 {
			given = n.Given[0]
			further = strings.Join(n.Given[1:], " ")
		}
		f[4] = comps(n.Family, given, further, strings.Join(n.Suffix, " "), strings.Join(n.Prefix, " "), "", nameType(n.Use))
	}
	if p.BirthDate != "" {
		d, err := dtm(p.BirthDate)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Patient's birth date is not a FHIR date").At("Patient.birthDate")
		}
		f[6] = hl7v2.FieldOf(d)
	}
	if g := sex(p.Gender); g != "" {
		f[7] = hl7v2.FieldOf(g)
	}
	return &hl7v2.Segment{Name: "PID", Fields: f}, nil
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

func (b *builder) pv1(e *Encounter, l *Location) *hl7v2.Segment {
	f := make([]hl7v2.Field, 19)
	class := b.s.DefaultPatientClass
	if e != nil {
		if c := patientClass(e.Class); c != "" {
			class = c
		}
	}
	f[1] = hl7v2.FieldOf(class)
	if l != nil {
		f[2] = pointOfCare(l)
	}
	if e != nil {
		if id, auth, typ, ok := b.visit(e.Identifier); ok {
			f[18] = hl7v2.Field{cx(id, auth, typ)}
		}
	}
	return &hl7v2.Segment{Name: "PV1", Fields: f}
}

// pointOfCare writes PV1-3 from the Location's HL7 point-of-care identifier
// (as mappings/adt records it) or, failing that, its name.
func pointOfCare(l *Location) hl7v2.Field {
	for _, id := range l.Identifier {
		if id.System == adt.SystemPointOfCare && id.Value != "" {
			return comps(strings.Split(id.Value, "^")...)
		}
	}
	if l.Name != "" {
		return hl7v2.FieldOf(l.Name)
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

func (b *builder) obr(o *Observation) *hl7v2.Segment {
	f := make([]hl7v2.Field, 7)
	f[0] = hl7v2.FieldOf("1")
	app := b.s.SendingApplication
	order := comps(o.ID, app.Namespace, app.UniversalID, app.UniversalIDType)
	f[1] = order
	f[2] = order
	switch {
	case o.ValueSampledData != nil:
		f[3] = comps("69121", "MDC_OBS_WAVE_CTS", "MDC")
	case len(o.Component) > 0:
		if mdc, ok := first(toCodings(o.Code.Coding), systemMDC); ok {
			f[3] = comps(mdc.Code, refID(mdc), "MDC")
			break
		}
		fallthrough
	default:
		f[3] = comps("182777000", "monitoring of patient", "SNOMED-CT")
	}
	f[6] = hl7v2.FieldOf(b.when)
	return &hl7v2.Segment{Name: "OBR", Fields: f}
}

func (b *builder) mdsRow(setID int, c Coding) *hl7v2.Segment {
	f := make([]hl7v2.Field, 18)
	f[0] = hl7v2.FieldOf(strconv.Itoa(setID))
	f[2] = comps(c.Code, refID(c), "MDC")
	f[3] = hl7v2.FieldOf("1.0.0.0")
	f[10] = hl7v2.FieldOf("X")
	if b.eui != "" {
		f[17] = comps(b.eui, "", b.eui, "EUI-64")
	}
	return &hl7v2.Segment{Name: "OBX", Fields: f}
}

var subIDs = [...]string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6", "1.1.1.7", "1.1.1.8"}

func subID(n int) string {
	if n <= len(subIDs) {
		return subIDs[n-1]
	}
	return "1.1.1." + strconv.Itoa(n)
}

// obx writes the row of the ordinal-th metric (1-based) of the channel.
func (b *builder) obx(setID, ordinal int, m *metric) (*hl7v2.Segment, error) {
	id, err := b.p.ObservationID(&m.Metric)
	if err != nil {
		return nil, err
	}
	f := make([]hl7v2.Field, 18)
	f[0] = hl7v2.FieldOf(strconv.Itoa(setID))
	f[1] = hl7v2.FieldOf(m.valueType)
	f[2] = comps(id.ID, id.Text, id.System, id.AltID, id.AltText, id.AltSystem)
	f[3] = hl7v2.FieldOf(subID(ordinal))
	f[4] = comps(m.value...)
	if m.units != nil {
		f[5] = b.units(m)
	}
	f[10] = hl7v2.FieldOf(b.status)
	f[13] = hl7v2.FieldOf(b.when)
	f[16] = comps("AMEAS", "auto-measurement", "MDC")
	if b.eui != "" {
		f[17] = comps(b.eui, "", b.eui, "EUI-64")
	}
	return &hl7v2.Segment{Name: "OBX", Fields: f}, nil
}
