package adtin

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest"
)

// Bed-following devices (package comment, "Beds and devices"). Device
// associations are DeviceUseStatements with a timingPeriod, as
// server/ingest reads them: the patient of a reading is the subject of the
// association whose period contains the reading's time.

// assoc is one DeviceUseStatement: its patient over [start, end), end zero
// while open.
type assoc struct {
	id, patient string
	start, end  time.Time
	body        []byte
}

func (x *assoc) open() bool { return x.end.IsZero() }

func (x *assoc) contains(t time.Time) bool {
	return !t.Before(x.start) && (x.end.IsZero() || t.Before(x.end))
}

// followBeds moves device associations for the message (Settings.FollowBeds).
func (a *applier) followBeds() error {
	switch {
	case a.res.Merge != nil:
		return a.moveMerged()
	case a.encounter == nil:
		return nil
	}
	switch a.encounter.status {
	case "in-progress", "arrived":
		if a.bed == "" {
			return nil
		}
		t, err := a.eventTime()
		if err != nil {
			return err
		}
		return a.place(t)
	case "finished":
		if end, ok := parseFHIRTime(a.encounter.end); ok {
			return a.release(end)
		}
		fallthrough
	case "cancelled":
		t, err := a.eventTime()
		if err != nil {
			return err
		}
		return a.release(t)
	}
	return nil
}

// place associates the devices of a.bed with the patient from t, ending
// the previous occupant's association there, and the patient's open
// associations with devices located elsewhere.
func (a *applier) place(t time.Time) error {
	inBed, err := a.devicesAt(a.bed)
	if err != nil {
		return err
	}
	here := map[string]bool{}
	for _, d := range inBed {
		here[d] = true
	}
	elsewhere, err := a.locatedDevicesOf(a.patient, func(d string) bool { return !here[d] })
	if err != nil {
		return err
	}
	if err := a.lockDevices(append(append([]string(nil), inBed...), elsewhere...)); err != nil {
		return err
	}
	for _, d := range inBed {
		if err := a.follow(d, a.patient, t, nil); err != nil {
			return err
		}
	}
	for _, d := range elsewhere {
		if err := a.endOpen(d, a.patient, t); err != nil {
			return err
		}
	}
	return nil
}

// release ends, at t, the patient's open associations with located devices.
func (a *applier) release(t time.Time) error {
	devs, err := a.locatedDevicesOf(a.patient, func(string) bool { return true })
	if err != nil {
		return err
	}
	if err := a.lockDevices(devs); err != nil {
		return err
	}
	for _, d := range devs {
		if err := a.endOpen(d, a.patient, t); err != nil {
			return err
		}
	}
	return nil
}

// moveMerged moves the retired patients' open associations with located
// devices to the survivor at the event time (A40).
func (a *applier) moveMerged() error {
	var retired []string
	for _, r := range a.res.Merge.Retired {
		if p := a.found[cond("Patient", r)]; p != nil && p.ID != a.patient {
			retired = append(retired, p.ID)
		}
	}
	var devs []string
	from := map[string][]string{}
	for _, p := range retired {
		ds, err := a.locatedDevicesOf(p, func(string) bool { return true })
		if err != nil {
			return err
		}
		for _, d := range ds {
			if from[d] == nil {
				devs = append(devs, d)
			}
			from[d] = append(from[d], p)
		}
	}
	if len(devs) == 0 {
		return nil
	}
	t, err := a.eventTime()
	if err != nil {
		return err
	}
	if err := a.lockDevices(devs); err != nil {
		return err
	}
	for _, d := range devs {
		if err := a.follow(d, a.patient, t, from[d]); err != nil {
			return err
		}
	}
	return nil
}

// follow makes patient the one device d is associated with from t: it ends
// at t the open associations of others that began before t (of anyone when
// only is nil, else of the patients in only) and, unless an association of
// patient already covers t, starts one for patient, ending where a later
// association of d begins (a message that arrives late must not overlap
// what came after it). With only set, nothing starts when none of theirs
// was open. The caller holds d's lock.
func (a *applier) follow(d, patient string, t time.Time, only []string) error {
	as, err := a.associations("device", "Device", d)
	if err != nil {
		return err
	}
	var next time.Time
	covered := false
	for _, x := range as {
		covered = covered || x.patient == patient && x.contains(t)
		if x.start.After(t) && (next.IsZero() || x.start.Before(next)) {
			next = x.start
		}
	}
	ended := false
	for _, x := range as {
		if !x.open() || !x.start.Before(t) || x.patient == patient || only != nil && !contains(only, x.patient) {
			continue
		}
		if err := a.endAssoc(x, t); err != nil {
			return err
		}
		ended = true
	}
	if covered || only != nil && !ended {
		return nil
	}
	a.touched[d] = true
	return a.put("DeviceUseStatement", dusID(d, patient, t), dusBody(d, patient, t, next, a.s.cfg.Now()), false)
}

// endOpen ends at t the open associations of patient with device d that
// began before t. The caller holds d's lock.
func (a *applier) endOpen(d, patient string, t time.Time) error {
	as, err := a.associations("device", "Device", d)
	if err != nil {
		return err
	}
	for _, x := range as {
		if x.open() && x.patient == patient && x.start.Before(t) {
			if err := a.endAssoc(x, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// lockDevices takes the device locks in sorted order.
func (a *applier) lockDevices(devs []string) error {
	ds := append([]string(nil), devs...)
	sort.Strings(ds)
	for i, d := range ds {
		if i > 0 && d == ds[i-1] {
			continue
		}
		if err := a.tx.Lock(a.ctx, ingest.DeviceLock(d)); err != nil {
			return err
		}
	}
	return nil
}

// devicesAt lists the Devices whose location is Location/loc.
func (a *applier) devicesAt(loc string) ([]string, error) {
	var out []string
	err := a.each(&fhir.Query{Type: "Device", Params: []fhir.Param{refParam("location", "Location", loc)}}, func(r *fhir.Resource) {
		out = append(out, r.ID)
	})
	return out, err
}

// locatedDevicesOf lists the devices that have a location (a bed) and an
// open association with patient, among those keep accepts. A device with
// no location (worn, or assigned by hand) is not the bed's to move.
func (a *applier) locatedDevicesOf(patient string, keep func(string) bool) ([]string, error) {
	as, err := a.associations("patient", "Patient", patient)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, x := range as {
		d := deviceOf(x.body)
		if !x.open() || d == "" || seen[d] || !keep(d) {
			continue
		}
		seen[d] = true
		r, err := a.tx.Read(a.ctx, a.tenant, "Device", d)
		if fhir.IsKind(err, fhir.KindNotFound) || fhir.IsKind(err, fhir.KindGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		dev := decodeOrNil(r.Body)
		loc, _ := dev["location"].(object)
		if strings.HasPrefix(str(loc["reference"]), "Location/") {
			out = append(out, d)
		}
	}
	return out, nil
}

func deviceOf(body []byte) string {
	o := decodeOrNil(body)
	dev, _ := o["device"].(object)
	d, _ := strings.CutPrefix(str(dev["reference"]), "Device/")
	return d
}

func refParam(name, typ, id string) fhir.Param {
	return fhir.Param{Name: name, Type: fhir.ParamReference, Values: []fhir.Value{{RefType: typ, RefID: id}}}
}

// each runs q page by page.
func (a *applier) each(q *fhir.Query, fn func(*fhir.Resource)) error {
	q.Count = 1000
	for {
		res, err := a.tx.Search(a.ctx, a.tenant, q)
		if err != nil {
			return err
		}
		for _, r := range res.Resources {
			fn(r)
		}
		if !res.HasMore {
			return nil
		}
		q.Offset += len(res.Resources)
	}
}

// associations lists the DeviceUseStatements found by one reference
// parameter that attribute readings: not entered-in-error, with a Patient
// subject and a timingPeriod with a start (server/ingest's reading).
func (a *applier) associations(param, typ, id string) ([]*assoc, error) {
	var out []*assoc
	err := a.each(&fhir.Query{Type: "DeviceUseStatement", Params: []fhir.Param{refParam(param, typ, id)}}, func(r *fhir.Resource) {
		o := decodeOrNil(r.Body)
		subj, _ := o["subject"].(object)
		p, ok := strings.CutPrefix(str(subj["reference"]), "Patient/")
		tp, _ := o["timingPeriod"].(object)
		if !ok || o["status"] == "entered-in-error" || tp == nil {
			return
		}
		x := &assoc{id: r.ID, patient: p, body: r.Body}
		if x.start, ok = parseFHIRTime(str(tp["start"])); !ok {
			return
		}
		if e := str(tp["end"]); e != "" {
			if x.end, ok = parseFHIRTime(e); !ok {
				return
			}
		}
		out = append(out, x)
	})
	return out, err
}

// endAssoc writes a new version of x ending at end, status completed. An
// end before the start makes an empty period (the association never
// applied).
func (a *applier) endAssoc(x *assoc, end time.Time) error {
	if end.Before(x.start) {
		end = x.start
	}
	o := decodeOrNil(x.body)
	tp, _ := o["timingPeriod"].(object)
	if tp == nil {
		tp = object{"start": x.start.Format(time.RFC3339Nano)}
	}
	tp["end"] = end.UTC().Format(time.RFC3339Nano)
	o["timingPeriod"] = tp
	o["status"] = "completed"
	a.touched[deviceOf(x.body)] = true
	return a.put("DeviceUseStatement", x.id, o, false)
}

// dusID is the id of the association of dev with patient from start: the
// same message applied again writes the same resource.
func dusID(dev, patient string, start time.Time) string {
	h := sha256.Sum256([]byte("adt|" + dev + "|" + patient + "|" + start.UTC().Format(time.RFC3339Nano)))
	return "dus-" + hex.EncodeToString(h[:10])
}

func dusBody(dev, patient string, start, end, now time.Time) object {
	tp := object{"start": start.UTC().Format(time.RFC3339Nano)}
	status := "active"
	if !end.IsZero() {
		tp["end"] = end.UTC().Format(time.RFC3339Nano)
		status = "completed"
	}
	return object{
		"resourceType": "DeviceUseStatement",
		"status":       status,
		"subject":      object{"reference": "Patient/" + patient},
		"timingPeriod": tp,
		"recordedOn":   now.UTC().Format(time.RFC3339Nano),
		"device":       object{"reference": "Device/" + dev},
	}
}

// devices lists the Devices whose associations changed, sorted.
func (a *applier) devices() []string {
	var out []string
	for d := range a.touched {
		if d != "" {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// eventTime is EVN-2, else MSH-7, read in the tenant's time zone.
func (a *applier) eventTime() (time.Time, error) {
	seg, v := "EVN", a.m.Value("EVN", 2, 1, 1, 1)
	if v == "" {
		seg, v = "MSH", a.m.Value("MSH", 7, 1, 1, 1)
	}
	field := 2
	if seg == "MSH" {
		field = 7
	}
	if v == "" {
		return time.Time{}, &issueError{issueAt(a.m, "EVN", 2, hl7v2.ErrRequiredFieldMissing,
			"an event time (EVN-2 or MSH-7) is required to move device associations")}
	}
	t, ok := parseDTM(v, a.set.ADT.Location)
	if !ok {
		return time.Time{}, &issueError{issueAt(a.m, seg, field, hl7v2.ErrDataType, seg+" event time is not a valid DTM")}
	}
	return t, nil
}

// parseDTM reads an HL7 DTM with at least a full date
// (YYYYMMDD[HH[MM[SS[.S+]]]][+/-ZZZZ]); without an offset it is in loc (nil:
// UTC).
func parseDTM(v string, loc *time.Location) (time.Time, bool) {
	body, zone := v, ""
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		body, zone = v[:i], v[i:]
	}
	digits, frac, _ := strings.Cut(body, ".")
	n := len(digits)
	if n < 8 || n > 14 || n%2 != 0 || frac != "" && n != 14 || zone != "" && len(zone) != 5 {
		return time.Time{}, false
	}
	for _, c := range digits + frac + strings.TrimLeft(zone, "+-") {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	layout := "20060102150405"[:n]
	if loc == nil {
		loc = time.UTC
	}
	var t time.Time
	var err error
	if zone != "" {
		// Go accepts a fractional second after the seconds field without
		// the layout naming it.
		t, err = time.Parse(layout+"-0700", body+zone)
	} else {
		t, err = time.ParseInLocation(layout, body, loc)
	}
	return t.UTC(), err == nil
}

// parseFHIRTime reads a FHIR dateTime with at least a full date.
func parseFHIRTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
