package adtintest

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/adtin"
	"github.com/pulsewire/pulsewire/server/fhir"
)

const (
	mrn1, mrn2, mrn3, mrn4 = "MRN0012345", "MRN0055555", "MRN0099999", "MRN0044444"
	aa, ae, ar             = hl7v2.AckAccept, hl7v2.AckError, hl7v2.AckReject
)

// Run runs the suite; each subtest opens its own store.
func Run(t *testing.T, open Open) {
	t.Run("Events", func(t *testing.T) { events(t, open) })
	t.Run("DuplicateAppliedOnce", func(t *testing.T) { duplicates(t, open) })
	t.Run("RacingDuplicates", func(t *testing.T) { racingDuplicates(t, open) })
	t.Run("RacingNewPatient", func(t *testing.T) { racingNewPatient(t, open) })
	t.Run("Malformed", func(t *testing.T) { malformed(t, open) })
	t.Run("AmbiguousIdentifier", func(t *testing.T) { ambiguous(t, open) })
	t.Run("StoreFailureIsAE", func(t *testing.T) { storeFailure(t, open) })
	t.Run("BedFollowing", func(t *testing.T) { bedFollowing(t, open) })
	t.Run("BedFollowingOff", func(t *testing.T) { bedFollowingOff(t, open) })
}

// events walks one patient through every supported event and checks the
// whole FHIR state after each message.
func events(t *testing.T, open Open) {
	e := setup(t, open, false)
	want := View{Patients: map[string]PatientView{}, Encounters: map[string]EncounterView{}}
	step := func(name string, m Msg) {
		t.Helper()
		e.send(t, m, aa)
		check(t, "state after "+name, want, e.view(t))
	}

	want.Patients[mrn1] = PatientView{MRNs: []string{mrn1}, Family: "SYNTHETIC", Active: true, Version: 1}
	want.Encounters["VN1"] = EncounterView{Status: "in-progress", Start: at(0), Subject: mrn1, Locations: []string{Bed1 + " active"}, Version: 1}
	want.Locations = []string{Bed1 + " bd"}
	step("A01 admit", Msg{Event: "A01", ControlID: "C01", Time: mins(0), MRN: mrn1, Family: "SYNTHETIC", Bed: Bed1, Visit: "VN1"})

	want.Patients[mrn1] = PatientView{MRNs: []string{mrn1}, Family: "RENAMED", Active: true, Version: 2}
	a08 := Msg{Event: "A08", ControlID: "C02", Time: mins(10), MRN: mrn1, Family: "RENAMED", NoPV1: true}
	step("A08 demographics", a08)
	// The same update under a new control id restates what is stored: no
	// new version.
	a08.ControlID = "C03"
	step("A08 restated", a08)

	want.Encounters["VN1"] = EncounterView{Status: "in-progress", Start: at(0), Subject: mrn1,
		Locations: []string{Bed1 + " completed", Bed2 + " active"}, Version: 2}
	want.Locations = []string{Bed1 + " bd", Bed2 + " bd"}
	step("A08 bed move", Msg{Event: "A08", ControlID: "C04", Time: mins(20), MRN: mrn1, Family: "RENAMED", Bed: Bed2, Visit: "VN1"})

	want.Encounters["VN1"] = EncounterView{Status: "finished", Start: at(0), End: at(60), Subject: mrn1,
		Locations: []string{Bed1 + " completed", Bed2 + " completed"}, Version: 3}
	step("A03 discharge", Msg{Event: "A03", ControlID: "C05", Time: mins(65), MRN: mrn1, Family: "RENAMED", Bed: Bed2, Visit: "VN1", Discharge: mins(60)})

	want.Encounters["VN1"] = EncounterView{Status: "in-progress", Start: at(0), Subject: mrn1,
		Locations: []string{Bed1 + " completed", Bed2 + " active"}, Version: 4}
	step("A13 cancel discharge", Msg{Event: "A13", ControlID: "C06", Time: mins(70), MRN: mrn1, Family: "RENAMED", Bed: Bed2, Visit: "VN1"})

	want.Encounters["VN1"] = EncounterView{Status: "cancelled", Start: at(0), Subject: mrn1,
		Locations: []string{Bed1 + " completed", Bed2 + " completed"}, Version: 5}
	step("A11 cancel admit", Msg{Event: "A11", ControlID: "C07", Time: mins(80), MRN: mrn1, Family: "RENAMED", Bed: Bed2, Visit: "VN1"})

	want.Patients[mrn2] = PatientView{MRNs: []string{mrn2}, Family: "OUTPATIENT", Active: true, Version: 1}
	want.Encounters["VN2"] = EncounterView{Status: "arrived", Start: at(90), Subject: mrn2, Locations: []string{Ward + " active"}, Version: 1}
	want.Locations = []string{Ward + " wa", Bed1 + " bd", Bed2 + " bd"}
	step("A04 register", Msg{Event: "A04", ControlID: "C08", Time: mins(90), MRN: mrn2, Family: "OUTPATIENT", Class: "O", Bed: Ward, Visit: "VN2"})

	want.Patients[mrn3] = PatientView{MRNs: []string{mrn3}, Family: "DUPLICATE", Active: true, Version: 1}
	step("A08 registers a duplicate", Msg{Event: "A08", ControlID: "C09", Time: mins(95), MRN: mrn3, Family: "DUPLICATE", NoPV1: true})

	want.Patients[mrn1] = PatientView{MRNs: []string{mrn1}, Family: "RENAMED", Active: true, Links: []string{"replaces " + mrn3}, Version: 3}
	want.Patients[mrn3] = PatientView{MRNs: []string{mrn3}, Family: "DUPLICATE", Active: false, Links: []string{"replaced-by " + mrn1}, Version: 2}
	step("A40 merge", Msg{Event: "A40", ControlID: "C10", Time: mins(100), MRN: mrn1, Family: "RENAMED", Prior: mrn3})

	// A retired identifier nobody has: a logical reference; earlier links stay.
	want.Patients[mrn1] = PatientView{MRNs: []string{mrn1}, Family: "RENAMED", Active: true,
		Links: []string{"replaces " + mrn3, "replaces id:MRN0077777"}, Version: 4}
	step("A40 unknown prior", Msg{Event: "A40", ControlID: "C11", Time: mins(105), MRN: mrn1, Family: "RENAMED", Prior: "MRN0077777"})

	// A late update of the retired patient keeps it replaced.
	want.Patients[mrn3] = PatientView{MRNs: []string{mrn3}, Family: "LATE", Active: false, Links: []string{"replaced-by " + mrn1}, Version: 3}
	step("A08 of a retired patient", Msg{Event: "A08", ControlID: "C12", Time: mins(110), MRN: mrn3, Family: "LATE", NoPV1: true})

	check(t, "stats", adtin.Stats{Received: 12, Accepted: 12}, e.svc.Stats())
}

func duplicates(t *testing.T, open Open) {
	e := setup(t, open, false)
	m := Msg{Event: "A01", ControlID: "DUP1", Time: mins(0), MRN: mrn1, Family: "SYNTHETIC", Bed: Bed1, Visit: "VN1"}
	first := e.send(t, m, aa)
	if a := ParseAck(t, first); a.ControlID != "DUP1" {
		t.Errorf("MSA-2 = %q, want DUP1", a.ControlID)
	}
	want := e.view(t)
	if again := e.send(t, m, aa); !bytes.Equal(again, first) {
		t.Errorf("resend answered\n%q\nwant the first ACK\n%q", again, first)
	}
	// Re-encoded (LF terminators) with a new MSH-7: the same message.
	raw := strings.Replace(string(m.Bytes()), dtm(m.Time), "20250314090000+0000", 1)
	if again := e.sendTo(t, "acme", []byte(strings.ReplaceAll(raw, "\r", "\n")), aa); !bytes.Equal(again, first) {
		t.Errorf("re-encoded resend answered\n%q\nwant the first ACK", again)
	}
	check(t, "state after resends", want, e.view(t))

	// The same MSH-10 for a different message is rejected, not dropped.
	other := m
	other.Family = "OTHER"
	check(t, "reused MSH-10", []string{"MSH-10 205"}, ParseAck(t, e.send(t, other, ar)).Errors)
	check(t, "state after reuse", want, e.view(t))

	// MSH-10 is scoped by sender and by tenant.
	other.Sender = "OTHER_SRC"
	e.send(t, other, aa)
	if p := e.view(t).Patients[mrn1]; p.Family != "OTHER" || p.Version != 2 {
		t.Errorf("other sender's message: patient %+v, want family OTHER version 2", p)
	}
	e.sendTo(t, "globex", m.Bytes(), aa)
	check(t, "stats", adtin.Stats{Received: 5, Accepted: 2, Duplicates: 2, Rejects: 1, Lenient: 1}, withoutGlobex(e.svc.Stats()))
}

// withoutGlobex removes the globex message from the counts.
func withoutGlobex(s adtin.Stats) adtin.Stats {
	s.Received--
	s.Accepted--
	return s
}

// racing sends frames concurrently and returns their ACKs in order.
func racing(t *testing.T, e *env, frames [][]byte) [][]byte {
	t.Helper()
	acks := make([][]byte, len(frames))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, f := range frames {
		wg.Go(func() {
			<-start
			acks[i] = e.svc.HandleFrame(context.Background(), "acme", f)
		})
	}
	close(start)
	wg.Wait()
	return acks
}

func racingDuplicates(t *testing.T, open Open) {
	e := setup(t, open, false)
	const n = 8
	frame := Msg{Event: "A01", ControlID: "RACE1", Time: mins(0), MRN: mrn1, Family: "SYNTHETIC", Bed: Bed1, Visit: "VN1"}.Bytes()
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = frame
	}
	acks := racing(t, e, frames)
	for i, a := range acks {
		if ParseAck(t, a).Code != "AA" || !bytes.Equal(a, acks[0]) {
			t.Errorf("copy %d answered %q, want the same AA as copy 0 %q", i, a, acks[0])
		}
	}
	v := e.view(t)
	if len(v.Patients) != 1 || v.Patients[mrn1].Version != 1 || len(v.Encounters) != 1 || v.Encounters["VN1"].Version != 1 {
		t.Errorf("state after %d racing copies: %+v; want one Patient and one Encounter, version 1", n, v)
	}
	check(t, "stats", adtin.Stats{Received: n, Accepted: 1, Duplicates: n - 1}, e.svc.Stats())
}

// racingNewPatient: different messages (distinct MSH-10) racing to create
// the same patient make one Patient and one Encounter.
func racingNewPatient(t *testing.T, open Open) {
	e := setup(t, open, false)
	const n = 8
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = Msg{Event: "A04", ControlID: "NEW" + string(rune('A'+i)), Time: mins(0), MRN: mrn2, Family: "OUTPATIENT", Class: "O", Bed: Ward, Visit: "VN2"}.Bytes()
	}
	for i, a := range racing(t, e, frames) {
		if c := ParseAck(t, a).Code; c != "AA" {
			t.Errorf("message %d answered %s", i, c)
		}
	}
	v := e.view(t)
	check(t, "patients", map[string]PatientView{mrn2: {MRNs: []string{mrn2}, Family: "OUTPATIENT", Active: true, Version: 1}}, v.Patients)
	check(t, "encounters", map[string]EncounterView{"VN2": {Status: "arrived", Start: at(0), Subject: mrn2, Locations: []string{Ward + " active"}, Version: 1}}, v.Encounters)
	check(t, "locations", []string{Ward + " wa"}, v.Locations)
}

func malformed(t *testing.T, open Open) {
	e := setup(t, open, false)
	good := Msg{Event: "A01", ControlID: "M1", Time: mins(0), MRN: mrn1, Family: "SYNTHETIC", Bed: Bed1, Visit: "VN1"}
	with := func(f func(*Msg)) []byte { m := good; f(&m); return m.Bytes() }
	tests := []struct {
		name   string
		frame  []byte
		code   hl7v2.AckCode
		errors []string
	}{
		{"not an HL7 message", []byte("hello, world"), ar, []string{"MSH 100"}},
		{"not ADT", []byte("MSH|^~\\&|LAB|GENHOSP|PW|PWF|20250314080000||ORU^R01^ORU_R01|M2|P|2.6\rPID|1||X^^^GENHOSP\r"), ar, []string{"MSH-9 200"}},
		{"unsupported event", []byte("MSH|^~\\&|ADT_SRC|GENHOSP|PW|PWF|20250314080000||ADT^A31^ADT_A05|M3|P|2.5.1\rPID|1||X^^^GENHOSP\r"), ar, []string{"MSH-9 201"}},
		{"no patient identifier", with(func(m *Msg) { m.MRN = "" }), ae, []string{"PID-3 101"}},
		{"no control id", with(func(m *Msg) { m.ControlID = "" }), ae, []string{"MSH-10 101"}},
		{"no visit number", with(func(m *Msg) { m.Visit = "" }), ae, []string{"PV1-19 101"}},
		{"discharge without a time", with(func(m *Msg) { m.Event, m.Time = "A03", time.Time{} }), ae, []string{"PV1-45 101"}},
		{"malformed segment", append(good.Bytes(), "p1d|oops\r"...), ae, []string{"100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ParseAck(t, e.sendTo(t, "acme", tt.frame, tt.code))
			check(t, "ERR segments", tt.errors, a.Errors)
		})
	}
	if n := e.count(t, "Patient") + e.count(t, "Encounter") + e.count(t, "Location"); n != 0 {
		t.Errorf("%d resources written by rejected messages", n)
	}
	check(t, "stats", adtin.Stats{Received: int64(len(tests)), Errors: 5, Rejects: 3}, e.svc.Stats())
}

// ambiguous: two Patients already carry the identifier: AE 205, nothing
// written.
func ambiguous(t *testing.T, open Open) {
	e := setup(t, open, false)
	ctx := context.Background()
	for _, id := range []string{"dup-a", "dup-b"} {
		e.put(t, ctx, "Patient", id, map[string]any{"resourceType": "Patient",
			"identifier": []map[string]string{{"system": System, "value": mrn1}}})
	}
	before := e.view(t)
	a := ParseAck(t, e.send(t, Msg{Event: "A08", ControlID: "AMB1", Time: mins(0), MRN: mrn1, Family: "X", NoPV1: true}, ae))
	check(t, "ERR for PID-3", []string{"PID-3 205"}, a.Errors)
	a = ParseAck(t, e.send(t, Msg{Event: "A40", ControlID: "AMB2", Time: mins(0), MRN: mrn2, Family: "X", Prior: mrn1}, ae))
	check(t, "ERR for MRG-1", []string{"MRG-1 205"}, a.Errors)
	check(t, "state", before, e.view(t))
}

// storeFailure: a tenant the store does not know makes the transaction
// fail: AE 207 (resend later), never AA.
func storeFailure(t *testing.T, open Open) {
	e := setup(t, open, false)
	m := Msg{Event: "A01", ControlID: "S1", Time: mins(0), MRN: mrn1, Family: "SYNTHETIC", Bed: Bed1, Visit: "VN1"}
	a := ParseAck(t, e.sendTo(t, "unregistered", m.Bytes(), ae))
	check(t, "ERR segments", []string{"207"}, a.Errors)
	check(t, "stats", adtin.Stats{Received: 1, Errors: 1, StoreErrors: 1}, e.svc.Stats())
	// The same message for a known tenant is applied: nothing was recorded.
	e.send(t, m, aa)
}

func bedFollowing(t *testing.T, open Open) {
	e := setup(t, open, true)
	ctx := context.Background()
	e.putDevice(t, "mon-1", Bed1)
	e.putDevice(t, "mon-2", Bed2)
	e.putDevice(t, "mon-3", Bed3)
	e.putDevice(t, "w-1", "")
	var want []string
	step := func(name string, m Msg, devices ...string) {
		t.Helper()
		e.mu.Lock()
		e.associated = nil
		e.mu.Unlock()
		e.send(t, m, aa)
		sorted := append([]string(nil), want...)
		sort.Strings(sorted)
		check(t, "associations after "+name, sorted, e.view(t).Associations)
		var told []string
		for _, d := range devices {
			told = append(told, "acme "+d)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		check(t, "devices told after "+name, told, e.associated)
	}

	want = []string{"mon-1 " + mrn1 + " T+0m.. active"}
	step("A01 into bed 1", Msg{Event: "A01", ControlID: "B1", Time: mins(0), MRN: mrn1, Family: "ONE", Bed: Bed1, Visit: "VN1"}, "mon-1")

	// A worn device associated by hand (no location) is not the bed's.
	e.associate(t, "dus-worn", "w-1", mrn1, mins(0))
	want = []string{"mon-1 " + mrn1 + " T+0m..T+30m completed", "mon-1 " + mrn2 + " T+30m.. active", "w-1 " + mrn1 + " T+0m.. active"}
	second := Msg{Event: "A01", ControlID: "B2", Time: mins(30), MRN: mrn2, Family: "TWO", Bed: Bed1, Visit: "VN2"}
	step("A01 of another patient into bed 1", second, "mon-1")

	want = []string{"mon-1 " + mrn1 + " T+0m..T+30m completed", "mon-1 " + mrn2 + " T+30m..T+45m completed",
		"mon-2 " + mrn2 + " T+45m.. active", "w-1 " + mrn1 + " T+0m.. active"}
	step("A08 moves to bed 2", Msg{Event: "A08", ControlID: "B3", Time: mins(45), MRN: mrn2, Family: "TWO", Bed: Bed2, Visit: "VN2"}, "mon-1", "mon-2")

	want[2] = "mon-2 " + mrn2 + " T+45m..T+60m completed"
	step("A03 discharge", Msg{Event: "A03", ControlID: "B4", Time: mins(65), MRN: mrn2, Family: "TWO", Bed: Bed2, Visit: "VN2", Discharge: mins(60)}, "mon-2")

	step("A03 of the first patient leaves the worn device", Msg{Event: "A03", ControlID: "B5", Time: mins(70), MRN: mrn1, Family: "ONE", Bed: Bed1, Visit: "VN1", Discharge: mins(70)})

	// A late copy of an old placement (new MSH-10) changes nothing.
	second.ControlID = "B6"
	step("late restatement", second)

	want = append(want, "mon-3 "+mrn3+" T+80m.. active")
	step("A01 into bed 3", Msg{Event: "A01", ControlID: "B7", Time: mins(80), MRN: mrn3, Family: "THREE", Bed: Bed3, Visit: "VN3"}, "mon-3")
	want[4] = "mon-3 " + mrn3 + " T+80m..T+90m completed"
	want = append(want, "mon-3 "+mrn4+" T+90m.. active")
	step("A40 moves the bed to the survivor", Msg{Event: "A40", ControlID: "B8", Time: mins(90), MRN: mrn4, Family: "FOUR", Prior: mrn3}, "mon-3")

	// History is kept: 6 associations written (one by hand), 4 of them
	// ended by a new version; nothing deleted.
	h, err := e.store.History(ctx, "acme", &fhir.HistoryQuery{Type: "DeviceUseStatement", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, v := range h.Versions {
		if v.Deleted {
			deleted++
		}
	}
	if len(h.Versions) != 10 || deleted != 0 {
		t.Errorf("DeviceUseStatement history has %d versions (%d deletes), want 10 and none", len(h.Versions), deleted)
	}

	// Bed-following needs the event time: without one nothing is applied.
	a := ParseAck(t, e.send(t, Msg{Event: "A01", ControlID: "B9", MRN: "MRN0000001", Family: "NOTIME", Bed: Bed1, Visit: "VN9", Admit: mins(100)}, ae))
	check(t, "ERR without event time", []string{"EVN-2 101"}, a.Errors)
	if _, ok := e.view(t).Patients["MRN0000001"]; ok {
		t.Error("a message answered AE created its patient")
	}
}

func bedFollowingOff(t *testing.T, open Open) {
	e := setup(t, open, false)
	e.putDevice(t, "mon-1", Bed1)
	e.send(t, Msg{Event: "A01", ControlID: "O1", Time: mins(0), MRN: mrn1, Family: "ONE", Bed: Bed1, Visit: "VN1"}, aa)
	if got := e.view(t).Associations; len(got) != 0 {
		t.Errorf("associations with bed-following off: %v", got)
	}
	if len(e.associated) != 0 {
		t.Errorf("devices told with bed-following off: %v", e.associated)
	}
}
