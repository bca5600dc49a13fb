package graph_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A device's current patient comes from its DeviceUseStatements (an open
// or not yet ended timingPeriod) or else from Device.patient.

func TestDevicesAndPatients(t *testing.T) {
	e := newEnv(t)
	past := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	ended := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for _, p := range []string{"p1", "p2", "p3"} {
		e.put(t, patientJSON(p, "Doe", "A", "female", "1980-01-01"))
	}
	e.put(t, deviceJSON("d1", ""))   // with p1 now
	e.put(t, deviceJSON("d2", ""))   // with p1 until yesterday, with p2 since
	e.put(t, deviceJSON("d3", "p3")) // affixed to p3, no association
	e.put(t, deviceJSON("d4", ""))   // with p1 from tomorrow: not yet
	e.put(t, dusJSON("a1", "d1", "p1", past, ""))
	e.put(t, dusJSON("a2", "d2", "p1", past, ended))
	e.put(t, dusJSON("a3", "d2", "p2", ended, ""))
	e.put(t, dusJSON("a4", "d4", "p1", later, ""))
	e.put(t, `{"resourceType":"DeviceMetric","id":"m1","type":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"150456"}]},
		"source":{"reference":"Device/d1"},"category":"measurement","operationalStatus":"on"}`)
	for i, at := range []string{"2024-03-01T10:00:00Z", "2024-03-03T10:00:00Z", "2024-03-02T10:00:00Z"} {
		e.put(t, obsJSON("r"+string(rune('a'+i)), "p1", vitalCat, heartCd, at, "d1", float64(70+i)))
	}
	user := e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs")

	type ref struct{ ID string }
	var got struct {
		D1 struct {
			CurrentPatient *ref
			Readings       []struct {
				ID        string
				Effective string
			}
			Metrics []struct {
				ID       string
				Category string
				Source   ref
			}
		}
		D2, D3, D4 struct{ CurrentPatient *ref }
		P1, P2, P3 struct{ Devices []ref }
	}
	e.gateway(t, user, `{
		d1: device(id: "d1") { currentPatient { id } readings(first: 2) { id effective } metrics { id category source { id } } }
		d2: device(id: "d2") { currentPatient { id } }
		d3: device(id: "d3") { currentPatient { id } }
		d4: device(id: "d4") { currentPatient { id } }
		p1: patient(id: "p1") { devices { id } }
		p2: patient(id: "p2") { devices { id } }
		p3: patient(id: "p3") { devices { id } }
	}`, nil).decode(t, &got)

	checks := []struct {
		name      string
		want, got any
	}{
		{"d1 current patient", &ref{"p1"}, got.D1.CurrentPatient},
		{"d2 current patient (reassigned)", &ref{"p2"}, got.D2.CurrentPatient},
		{"d3 current patient (Device.patient)", &ref{"p3"}, got.D3.CurrentPatient},
		{"d4 current patient (not yet)", (*ref)(nil), got.D4.CurrentPatient},
		{"p1 devices", []ref{{"d1"}}, got.P1.Devices},
		{"p2 devices", []ref{{"d2"}}, got.P2.Devices},
		{"p3 devices", []ref{{"d3"}}, got.P3.Devices},
		{"d1 readings, newest first", []struct {
			ID        string
			Effective string
		}{{"rb", "2024-03-03T10:00:00Z"}, {"rc", "2024-03-02T10:00:00Z"}}, got.D1.Readings},
		{"d1 metrics", []struct {
			ID       string
			Category string
			Source   ref
		}{{"m1", "measurement", ref{"d1"}}}, got.D1.Metrics},
	}
	for _, c := range checks {
		if d := cmp.Diff(c.want, c.got); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}

	t.Run("a withheld association hides the current patient", func(t *testing.T) {
		// Devices only: the DeviceUseStatements may not be searched.
		tok := e.srv.BackendToken(t, tenant, "system/Device.rs", "system/Patient.rs")
		r := e.gateway(t, tok, `{ device(id: "d1") { id currentPatient { id } } }`, nil)
		if d := cmp.Diff(`{"device":{"currentPatient":null,"id":"d1"}}`, compact(t, r.Data)); d != "" {
			t.Errorf("data (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]errWant{{Code: "FORBIDDEN", Path: []any{"device", "currentPatient"}, ResourceType: "DeviceUseStatement", Reason: "scope-missing"}}, errsOf(r)); d != "" {
			t.Errorf("errors (-want +got):\n%s", d)
		}
	})
}
