// Package adtintest is the suite every store that keeps the record of
// processed HL7 messages (server/adtin/seen) passes: adapters/sqlite and
// adapters/postgres run it from their tests. It drives the real ADT service
// (server/adtin) over the store, so it checks the adapters' record and
// transactions, and the service's use of them: each event's FHIR state,
// duplicates applied once (also racing on several connections), malformed
// messages answered AE/AR with ERR segments, and bed-following devices.
//
// Only tests import it.
package adtintest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/adtin"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Open returns an empty, migrated store (closed by the caller's cleanup).
type Open func(t *testing.T) fhir.Store

// Tenants registered in every store the suite opens.
var Tenants = []string{"acme", "globex"}

// T0 is the base time of the suite's events.
var T0 = time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC)

// Bed1, Bed2 and Bed3 are PV1-3 values naming beds; Ward a ward only.
const (
	Bed1 = "ICU^0101^1^GENHOSP"
	Bed2 = "ICU^0102^1^GENHOSP"
	Bed3 = "ICU^0103^1^GENHOSP"
	Ward = "CLINIC^^^GENHOSP"
)

type env struct {
	store fhir.Store
	reg   *search.Registry
	svc   *adtin.Service

	mu         sync.Mutex
	associated []string // what Config.Associated was told: "tenant device"
}

func setup(t *testing.T, open Open, followBeds bool) *env {
	t.Helper()
	s := open(t)
	for _, tn := range Tenants {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
	}
	e := &env{store: s, reg: search.NewRegistry()}
	e.svc = adtin.New(adtin.Config{
		Store:    s,
		Registry: e.reg,
		Settings: func(string) adtin.Settings {
			return adtin.Settings{ADT: adt.Config{Authorities: map[string]string{Authority: System}}, FollowBeds: followBeds}
		},
		Associated: func(_ context.Context, tenant string, devices []string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, d := range devices {
				e.associated = append(e.associated, tenant+" "+d)
			}
		},
	})
	return e
}

// send hands one message to the service for tenant acme, checks the
// ACK's code and returns the ACK.
func (e *env) send(t *testing.T, m Msg, want hl7v2.AckCode) []byte {
	t.Helper()
	return e.sendTo(t, "acme", m.Bytes(), want)
}

func (e *env) sendTo(t *testing.T, tenant string, frame []byte, want hl7v2.AckCode) []byte {
	t.Helper()
	ack := e.svc.HandleFrame(context.Background(), tenant, frame)
	if got := ParseAck(t, ack); got.Code != string(want) {
		t.Fatalf("ACK %s %v, want %s", got.Code, got.Errors, want)
	}
	return ack
}

// Ack is what a test reads of an acknowledgment.
type Ack struct {
	Code      string   // MSA-1
	ControlID string   // MSA-2: the acknowledged MSH-10
	Errors    []string // per ERR: "<ERR-2 segment>[-<field>] <ERR-3 code>"
}

// ParseAck parses an encoded acknowledgment.
func ParseAck(t testing.TB, b []byte) Ack {
	t.Helper()
	m, _, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatalf("parsing ACK: %v", err)
	}
	if mt := m.MessageType(); mt.Code != "ACK" {
		t.Fatalf("ACK has MSH-9 %s", mt)
	}
	a := Ack{Code: m.Value("MSA", 1, 1, 1, 1), ControlID: m.Value("MSA", 2, 1, 1, 1)}
	for _, s := range m.All("ERR") {
		loc := s.Value(2, 1, 1, 1)
		if f := s.Value(2, 1, 3, 1); f != "" {
			loc += "-" + f
		}
		a.Errors = append(a.Errors, strings.TrimSpace(loc+" "+s.Value(3, 1, 1, 1)))
	}
	return a
}

// --- reading the FHIR state back ---

// View is the state of the suite's tenant acme, with references written
// as what they name (a Patient by MRN, a Location by PV1-3 value) so that
// it can be compared whatever ids the store assigned.
type View struct {
	Patients     map[string]PatientView   // by first MRN
	Encounters   map[string]EncounterView // by visit number
	Locations    []string                 // PV1-3 value and physical type
	Associations []string                 // "device patient start..end status", sorted
}

// PatientView is one Patient.
type PatientView struct {
	MRNs    []string
	Family  string
	Active  bool
	Links   []string // "type MRN" ("type id:VALUE" for a logical reference)
	Version int64
}

// EncounterView is one Encounter.
type EncounterView struct {
	Status    string
	Start     string
	End       string
	Subject   string   // MRN
	Locations []string // "PV1-3 value status"
	Version   int64
}

type ident struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type reference struct {
	Reference  string `json:"reference"`
	Identifier *ident `json:"identifier"`
}

func (e *env) all(t *testing.T, typ string) []*fhir.Resource {
	t.Helper()
	res, err := e.store.Search(context.Background(), "acme", &fhir.Query{Type: typ, Count: 1000})
	if err != nil {
		t.Fatalf("Search %s: %v", typ, err)
	}
	return res.Resources
}

func decode(t *testing.T, r *fhir.Resource, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Ref(), err)
	}
}

// view reads the whole state.
func (e *env) view(t *testing.T) View {
	t.Helper()
	v := View{Patients: map[string]PatientView{}, Encounters: map[string]EncounterView{}}
	name := map[string]string{} // "Type/id" -> what it names
	type patient struct {
		Identifier []ident `json:"identifier"`
		Active     bool    `json:"active"`
		Name       []struct {
			Family string `json:"family"`
		} `json:"name"`
		Link []struct {
			Other reference `json:"other"`
			Type  string    `json:"type"`
		} `json:"link"`
	}
	pats := e.all(t, "Patient")
	bodies := map[string]patient{}
	for _, r := range pats {
		var p patient
		decode(t, r, &p)
		if len(p.Identifier) > 0 {
			name[r.Ref()] = p.Identifier[0].Value
		}
		bodies[r.ID] = p
	}
	refName := func(r reference) string {
		if r.Identifier != nil {
			return "id:" + r.Identifier.Value
		}
		if n, ok := name[r.Reference]; ok {
			return n
		}
		return "?" + r.Reference
	}
	for _, r := range e.all(t, "Location") {
		var l struct {
			Identifier   []ident `json:"identifier"`
			PhysicalType struct {
				Coding []struct {
					Code string `json:"code"`
				} `json:"coding"`
			} `json:"physicalType"`
		}
		decode(t, r, &l)
		name[r.Ref()] = l.Identifier[0].Value
		pt := "-"
		if len(l.PhysicalType.Coding) > 0 {
			pt = l.PhysicalType.Coding[0].Code
		}
		v.Locations = append(v.Locations, l.Identifier[0].Value+" "+pt)
	}
	sort.Strings(v.Locations)
	for _, r := range pats {
		p := bodies[r.ID]
		pv := PatientView{Active: p.Active, Version: r.VersionID}
		for _, id := range p.Identifier {
			pv.MRNs = append(pv.MRNs, id.Value)
		}
		if len(p.Name) > 0 {
			pv.Family = p.Name[0].Family
		}
		for _, l := range p.Link {
			pv.Links = append(pv.Links, l.Type+" "+refName(l.Other))
		}
		v.Patients[name[r.Ref()]] = pv
	}
	for _, r := range e.all(t, "Encounter") {
		var enc struct {
			Identifier []ident                      `json:"identifier"`
			Status     string                       `json:"status"`
			Subject    reference                    `json:"subject"`
			Period     *struct{ Start, End string } `json:"period"`
			Location   []struct {
				Location reference `json:"location"`
				Status   string    `json:"status"`
			} `json:"location"`
		}
		decode(t, r, &enc)
		ev := EncounterView{Status: enc.Status, Subject: refName(enc.Subject), Version: r.VersionID}
		if enc.Period != nil {
			ev.Start, ev.End = enc.Period.Start, enc.Period.End
		}
		for _, l := range enc.Location {
			ev.Locations = append(ev.Locations, refName(l.Location)+" "+l.Status)
		}
		v.Encounters[enc.Identifier[0].Value] = ev
	}
	for _, r := range e.all(t, "DeviceUseStatement") {
		var d struct {
			Status       string                      `json:"status"`
			Subject      reference                   `json:"subject"`
			Device       reference                   `json:"device"`
			TimingPeriod struct{ Start, End string } `json:"timingPeriod"`
		}
		decode(t, r, &d)
		v.Associations = append(v.Associations, fmt.Sprintf("%s %s %s..%s %s",
			strings.TrimPrefix(d.Device.Reference, "Device/"), refName(d.Subject), short(d.TimingPeriod.Start), short(d.TimingPeriod.End), d.Status))
	}
	sort.Strings(v.Associations)
	return v
}

// short writes an RFC 3339 time as T+<minutes since T0>.
func short(s string) string {
	if s == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "bad:" + s
	}
	return fmt.Sprintf("T+%dm", int(t.Sub(T0)/time.Minute))
}

// at is T0 plus minutes, as the Encounter period shows it.
func at(minutes int) string {
	return T0.Add(time.Duration(minutes) * time.Minute).Format("2006-01-02T15:04:05-07:00")
}

func mins(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }

// putDevice stores a Device, located in the Location of the PV1-3 value
// bed when bed is not "".
func (e *env) putDevice(t *testing.T, id, bed string) {
	t.Helper()
	ctx := context.Background()
	body := map[string]any{"resourceType": "Device", "status": "active",
		"identifier": []map[string]string{{"system": "urn:pulsewire:device-serial", "value": id}}}
	if bed != "" {
		loc := e.locationID(t, bed)
		body["location"] = map[string]string{"reference": "Location/" + loc}
	}
	e.put(t, ctx, "Device", id, body)
}

func (e *env) put(t *testing.T, ctx context.Context, typ, id string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := e.reg.Extract(typ, b)
	if err != nil {
		t.Fatalf("Extract %s: %v", typ, err)
	}
	err = e.store.Tx(ctx, "acme", func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: b, Index: idx})
		return err
	})
	if err != nil {
		t.Fatalf("Put %s/%s: %v", typ, id, err)
	}
}

// locationID finds the Location of a PV1-3 value, creating it (as an ADT
// message would) when it does not exist yet.
func (e *env) locationID(t *testing.T, pl string) string {
	t.Helper()
	q := &fhir.Query{Type: "Location", Count: 2, Params: []fhir.Param{{Name: "identifier", Type: fhir.ParamToken,
		Values: []fhir.Value{{System: adt.SystemPointOfCare, HasSystem: true, Code: pl}}}}}
	res, err := e.store.Search(context.Background(), "acme", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) == 1 {
		return res.Resources[0].ID
	}
	id := "loc-" + strings.NewReplacer("^", "-").Replace(strings.ToLower(pl))
	e.put(t, context.Background(), "Location", id, map[string]any{"resourceType": "Location", "status": "active", "mode": "instance",
		"identifier": []map[string]string{{"system": adt.SystemPointOfCare, "value": pl}}})
	return id
}

// associate writes an open association by hand (as the ingest API does).
func (e *env) associate(t *testing.T, id, dev, patientMRN string, start time.Time) {
	t.Helper()
	var pid string
	for _, r := range e.all(t, "Patient") {
		if strings.Contains(string(r.Body), `"`+patientMRN+`"`) {
			pid = r.ID
		}
	}
	if pid == "" {
		t.Fatalf("no patient %s", patientMRN)
	}
	e.put(t, context.Background(), "DeviceUseStatement", id, map[string]any{"resourceType": "DeviceUseStatement", "status": "active",
		"subject": map[string]string{"reference": "Patient/" + pid}, "device": map[string]string{"reference": "Device/" + dev},
		"timingPeriod": map[string]string{"start": start.Format(time.RFC3339Nano)}})
}

func (e *env) count(t *testing.T, typ string) int { t.Helper(); return len(e.all(t, typ)) }

func check(t *testing.T, what string, want, got any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}
