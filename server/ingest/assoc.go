package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
)

// assoc is one DeviceUseStatement of a device: its patient over
// [Start, End) (End zero: still current).
type assoc struct {
	id         string
	status     string
	patient    string
	start, end time.Time
	body       []byte
}

func (a *assoc) contains(t time.Time) bool {
	return !t.Before(a.start) && (a.end.IsZero() || t.Before(a.end))
}

type deviceState struct {
	assoc []*assoc
}

// patientAt is the patient of the association containing t (the one that
// started last when several do), "" when none does.
func (d *deviceState) patientAt(t time.Time) string {
	var best *assoc
	for _, a := range d.assoc {
		if a.contains(t) && (best == nil || a.start.After(best.start)) {
			best = a
		}
	}
	if best == nil {
		return ""
	}
	return best.patient
}

type dusJSON struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id,omitempty"`
	Status       string `json:"status"`
	Subject      struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	TimingPeriod *struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	} `json:"timingPeriod,omitempty"`
	RecordedOn string `json:"recordedOn,omitempty"`
	Device     struct {
		Reference string `json:"reference"`
	} `json:"device"`
}

// parseTime reads a FHIR dateTime with at least a full date; a date only
// means its start (UTC).
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// associations loads the DeviceUseStatements of a device that attribute
// readings (not entered-in-error, with a Patient subject and a start).
func associations(ctx context.Context, tenant string, r fhir.Reader, dev string) ([]*assoc, error) {
	m, err := associationsOf(ctx, tenant, r, []string{dev})
	if err != nil {
		return nil, err
	}
	return m[dev], nil
}

// associationsOf loads the associations of several devices with one search
// (per page of 1000), by device id.
func associationsOf(ctx context.Context, tenant string, r fhir.Reader, devs []string) (map[string][]*assoc, error) {
	out := map[string][]*assoc{}
	if len(devs) == 0 {
		return out, nil
	}
	vals := make([]fhir.Value, len(devs))
	for i, d := range devs {
		vals[i] = fhir.Value{RefType: "Device", RefID: d}
	}
	q := &fhir.Query{
		Type:   "DeviceUseStatement",
		Params: []fhir.Param{{Name: "device", Type: fhir.ParamReference, Values: vals}},
		Count:  1000,
	}
	for {
		res, err := r.Search(ctx, tenant, q)
		if err != nil {
			return nil, err
		}
		for _, rs := range res.Resources {
			var d dusJSON
			if json.Unmarshal(rs.Body, &d) != nil || d.Status == "entered-in-error" || d.TimingPeriod == nil {
				continue
			}
			dev, ok := deviceOf(d.Device.Reference)
			if !ok {
				continue
			}
			p, ok := strings.CutPrefix(d.Subject.Reference, "Patient/")
			if !ok {
				continue
			}
			start, ok := parseTime(d.TimingPeriod.Start)
			if !ok {
				continue
			}
			a := &assoc{id: rs.ID, status: d.Status, patient: p, start: start, body: rs.Body}
			if d.TimingPeriod.End != "" {
				if a.end, ok = parseTime(d.TimingPeriod.End); !ok {
					continue
				}
			}
			out[dev] = append(out[dev], a)
		}
		if !res.HasMore {
			return out, nil
		}
		q.Offset += len(res.Resources)
	}
}

// deviceOf is the id a Device reference names: "Device/x", or an absolute
// URL ending in it.
func deviceOf(ref string) (string, bool) {
	i := strings.LastIndex(ref, "Device/")
	if i < 0 || (i > 0 && ref[i-1] != '/') {
		return "", false
	}
	id := ref[i+len("Device/"):]
	if id == "" || strings.ContainsAny(id, "/?#") {
		return "", false
	}
	return id, true
}

// Association assigns a device to a patient from Start (until End, or open
// when End is zero), or, with Patient empty, ends the device's current
// association at End.
type Association struct {
	// Device is the Device resource id; or give DeviceIdentifier, and the
	// Device is created when it does not exist.
	Device           string             `json:"device,omitempty"`
	DeviceIdentifier *device.Identifier `json:"deviceIdentifier,omitempty"`
	Patient          string             `json:"patient,omitempty"`
	Start            time.Time          `json:"start"`
	End              time.Time          `json:"end"`
}

// AssociationResult is what Associate wrote.
type AssociationResult struct {
	DeviceUseStatement string   `json:"deviceUseStatement,omitempty"` // "DeviceUseStatement/<id>" written, if any
	Ended              []string `json:"ended,omitempty"`              // associations closed by it
	Released           int      `json:"released"`                     // held readings made Observations
}

// Associate writes the association as DeviceUseStatements in one
// transaction (closing the current open association when a new one starts
// after it: a reassignment) and releases, in the same transaction, the
// held readings its period takes.
func (in *Ingestor) Associate(ctx context.Context, tenant string, a Association) (*AssociationResult, error) {
	ctx = attributed(ctx)
	dev := a.Device
	if a.DeviceIdentifier != nil {
		if a.DeviceIdentifier.System == "" || a.DeviceIdentifier.Value == "" {
			return nil, fhir.Errorf(fhir.KindInvalid, "device identifier needs a system and a value").At("deviceIdentifier")
		}
		dev = fhirobs.DeviceResourceID(a.DeviceIdentifier.System, a.DeviceIdentifier.Value)
	}
	switch {
	case !fhir.ValidID(dev):
		return nil, fhir.Errorf(fhir.KindInvalid, "a valid device id or identifier is required").At("device")
	case a.Patient != "" && !fhir.ValidID(a.Patient):
		return nil, fhir.Errorf(fhir.KindInvalid, "patient is not a valid FHIR id").At("patient")
	case a.Patient != "" && a.Start.IsZero():
		return nil, fhir.Errorf(fhir.KindInvalid, "start is required").At("start")
	case a.Patient == "" && a.End.IsZero():
		return nil, fhir.Errorf(fhir.KindInvalid, "end is required to end an association").At("end")
	case !a.End.IsZero() && !a.Start.IsZero() && !a.End.After(a.Start):
		return nil, fhir.Errorf(fhir.KindInvalid, "end must be after start").At("end")
	}
	var out *AssociationResult
	err := in.store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		out = &AssociationResult{}
		if err := tx.Lock(ctx, DeviceLock(dev)); err != nil {
			return err
		}
		if a.DeviceIdentifier != nil {
			if err := in.ensureDevice(ctx, tenant, tx, dev, []device.Identifier{*a.DeviceIdentifier}); err != nil {
				return err
			}
		} else if _, err := tx.Read(ctx, tenant, "Device", dev); err != nil {
			return err
		}
		as, err := associations(ctx, tenant, tx, dev)
		if err != nil {
			return err
		}
		// The open association that began before the new period (or before
		// the end, when ending) is closed there.
		cut := a.Start
		if a.Patient == "" {
			cut = a.End
		}
		for _, x := range as {
			if x.end.IsZero() && x.start.Before(cut) {
				if err := in.endAssoc(ctx, tx, x, cut); err != nil {
					return err
				}
				out.Ended = append(out.Ended, "DeviceUseStatement/"+x.id)
			}
		}
		if a.Patient != "" {
			id := dusID(dev, a.Patient, a.Start)
			if err := in.put(ctx, tx, "DeviceUseStatement", id, dusBody(dev, a.Patient, a.Start, a.End, in.now()), false); err != nil {
				return err
			}
			out.DeviceUseStatement = "DeviceUseStatement/" + id
		}
		out.Released, err = in.release(ctx, tenant, tx, tb, dev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func dusID(dev, patient string, start time.Time) string {
	h := sha256.Sum256([]byte(dev + "|" + patient + "|" + start.UTC().Format(time.RFC3339Nano)))
	return "dus-" + hex.EncodeToString(h[:10])
}

func dusBody(dev, patient string, start, end, now time.Time) []byte {
	d := dusJSON{ResourceType: "DeviceUseStatement", Status: "active"}
	d.Subject.Reference = "Patient/" + patient
	d.Device.Reference = "Device/" + dev
	d.RecordedOn = now.UTC().Format(time.RFC3339Nano)
	d.TimingPeriod = &struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}{Start: start.UTC().Format(time.RFC3339Nano)}
	if !end.IsZero() {
		d.TimingPeriod.End = end.UTC().Format(time.RFC3339Nano)
		d.Status = "completed"
	}
	b, _ := json.Marshal(d) // plain structs of strings
	return b
}

// endAssoc writes a new version of x ending at end, status completed.
func (in *Ingestor) endAssoc(ctx context.Context, tx fhir.Tx, x *assoc, end time.Time) error {
	ms, err := fhir.Members(x.body)
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "reading DeviceUseStatement/%s", x.id).Wrap(err)
	}
	period, _ := json.Marshal(map[string]string{
		"start": x.start.Format(time.RFC3339Nano),
		"end":   end.UTC().Format(time.RFC3339Nano),
	})
	status, _ := json.Marshal("completed")
	for i := range ms {
		switch ms[i].Key {
		case "timingPeriod":
			ms[i].Value = period
		case "status":
			ms[i].Value = status
		}
	}
	return in.put(ctx, tx, "DeviceUseStatement", x.id, fhir.EncodeMembers(ms), false)
}

// release makes Observations of the device's held readings that now have a
// patient and deletes them from the held table. The caller holds the
// device lock, which serializes every writer of the device's readings.
func (in *Ingestor) release(ctx context.Context, tenant string, tx fhir.Tx, tb tables.Tables, dev string) (int, error) {
	held, err := tb.HeldReadings(ctx, dev)
	if err != nil || len(held) == 0 {
		return 0, err
	}
	as, err := associations(ctx, tenant, tx, dev)
	if err != nil {
		return 0, err
	}
	ds := &deviceState{assoc: as}
	var done []string
	n := 0
	for _, h := range held {
		var m device.Measurement
		if err := json.Unmarshal(h.Measurement, &m); err != nil {
			return 0, fhir.Errorf(fhir.KindInternal, "decoding held reading %s", h.ID).Wrap(err)
		}
		patient := ds.patientAt(m.Time)
		if patient == "" {
			continue
		}
		st, err := in.storeObservation(ctx, tenant, tx, item{m: m, device: dev, obs: h.ID}, patient)
		if err != nil {
			return 0, err
		}
		if st == StatusStored {
			n++
		}
		done = append(done, h.ID)
	}
	return n, tb.DeleteHeld(ctx, done...)
}

// Release releases the held readings of one device (by Device id) whose
// time an association now covers, in one transaction. It returns how many
// became Observations.
func (in *Ingestor) Release(ctx context.Context, tenant, dev string) (int, error) {
	ctx = attributed(ctx)
	var n int
	err := in.store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		if err := tx.Lock(ctx, DeviceLock(dev)); err != nil {
			return err
		}
		var err error
		n, err = in.release(ctx, tenant, tx, tb, dev)
		return err
	})
	return n, err
}

// Sweep releases the held readings of every device of the tenant that has
// some (for associations written through the plain FHIR API), one
// transaction per device. It returns how many became Observations.
func (in *Ingestor) Sweep(ctx context.Context, tenant string) (int, error) {
	var devs []string
	err := in.store.IngestTx(ctx, tenant, func(tx fhir.Tx, tb tables.Tables) error {
		var err error
		devs, err = tb.HeldDevices(ctx)
		return err
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, d := range devs {
		n, err := in.Release(ctx, tenant, d)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
