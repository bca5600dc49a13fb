package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// fakeStore serves resources from a map (a hand-written fake of our own
// interface; only the read methods the worker's build uses exist).
type fakeStore struct {
	outbox.Store
	res   map[outbox.ResourceKey]*fhir.Resource
	err   error // every read fails with it
	loads int
	reads int
}

func (f *fakeStore) get(k outbox.ResourceKey) (*fhir.Resource, error) {
	if f.err != nil {
		return nil, f.err
	}
	if r := f.res[k]; r != nil {
		return r, nil
	}
	return nil, fhir.Errorf(fhir.KindNotFound, "not found")
}

func (f *fakeStore) Read(_ context.Context, _, typ, id string) (*fhir.Resource, error) {
	f.reads++
	return f.get(outbox.ResourceKey{Type: typ, ID: id})
}

func (f *fakeStore) VRead(_ context.Context, _, typ, id string, v int64) (*fhir.Resource, error) {
	f.reads++
	return f.get(outbox.ResourceKey{Type: typ, ID: id, Version: v})
}

func (f *fakeStore) Load(_ context.Context, _ string, keys []outbox.ResourceKey) (map[outbox.ResourceKey]*fhir.Resource, error) {
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	out := map[outbox.ResourceKey]*fhir.Resource{}
	for _, k := range keys {
		if r := f.res[k]; r != nil {
			out[k] = r
		}
	}
	return out, nil
}

func (f *fakeStore) add(typ, id string, version int64, body string) {
	r := &fhir.Resource{Type: typ, ID: id, VersionID: version, Body: []byte(body)}
	f.res[outbox.ResourceKey{Type: typ, ID: id, Version: version}] = r
	f.res[outbox.ResourceKey{Type: typ, ID: id}] = r
}

const (
	obsJSON = `{"resourceType":"Observation","id":"o1","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"},{"system":"urn:iso:std:iso:11073:10101","code":"147842"}]},
		"subject":{"reference":"Patient/p1"},"device":{"reference":"Device/d1"},"encounter":{"reference":"Encounter/e1"},
		"effectiveDateTime":"2026-03-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	patientJSON   = `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.3","value":"MRN1"}]}`
	deviceJSON    = `{"resourceType":"Device","id":"d1","identifier":[{"system":"urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680","value":"00-1C-05-FF-FE-00-00-2A"}]}`
	encounterJSON = `{"resourceType":"Encounter","id":"e1","identifier":[{"system":"urn:visit","value":"V42"}],"location":[{"location":{"reference":"Location/l1"}}]}`
	locationJSON  = `{"resourceType":"Location","id":"l1","name":"ICU bed 4"}`
)

func testDestination(t *testing.T) *Destination {
	t.Helper()
	d, err := NewDestination(DestinationConfig{Tenant: "acme", Name: "engine", Address: "h:1",
		Profile: &oru.Settings{Kind: "pcd01", SendingApplication: oru.HD{Namespace: "PULSEWIRE"}}}, oru.DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuild(t *testing.T) {
	d := testDestination(t)
	entry := &outbox.Entry{ID: 35, Tenant: "acme", Item: outbox.Item{Type: "Observation", ResourceID: "o1", Version: 2, Patient: "Patient/p1"}}
	full := func(f *fakeStore) {
		f.add("Observation", "o1", 2, obsJSON)
		f.add("Patient", "p1", 1, patientJSON)
		f.add("Device", "d1", 1, deviceJSON)
		f.add("Encounter", "e1", 1, encounterJSON)
		f.add("Location", "l1", 1, locationJSON)
	}
	tests := []struct {
		name      string
		setup     func(f *fakeStore)
		fields    map[string]string // HL7 path -> value
		permanent bool
		errHas    string
	}{
		{name: "everything", setup: full, fields: map[string]string{
			"MSH-10": "PWZ", "PID-3.1": "MRN1", "PV1-3": "ICU bed 4", "PV1-19": "V42", "OBR-3": "o1", "OBX-18": "001C05FFFE00002A",
		}},
		{name: "no device, encounter or location", setup: func(f *fakeStore) {
			f.add("Observation", "o1", 2, obsJSON)
			f.add("Patient", "p1", 1, patientJSON)
		}, fields: map[string]string{"PID-3.1": "MRN1", "PV1-3": "", "PV1-19": "", "OBX-18": ""}},
		{name: "no patient", setup: func(f *fakeStore) {
			f.add("Observation", "o1", 2, obsJSON)
		}, permanent: true, errHas: "Patient is not available"},
		{name: "no such version", setup: func(f *fakeStore) {
			f.add("Observation", "o1", 1, obsJSON)
			f.add("Patient", "p1", 1, patientJSON)
		}, permanent: true, errHas: "version 2 is not available"},
		{name: "not codable for PCD-01", setup: func(f *fakeStore) {
			full(f)
			f.add("Observation", "o1", 2, strings.Replace(obsJSON, `,{"system":"urn:iso:std:iso:11073:10101","code":"147842"}`, "", 1))
		}, permanent: true, errHas: "MDC"},
		{name: "store down", setup: func(f *fakeStore) { f.err = errors.New("connection refused") }, errHas: "reading Observation/o1"},
	}
	for _, tc := range tests {
		for _, preloaded := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/preloaded=%v", tc.name, preloaded), func(t *testing.T) {
				f := &fakeStore{res: map[outbox.ResourceKey]*fhir.Resource{}}
				tc.setup(f)
				rs := &resources{st: f, tenant: "acme"}
				if preloaded {
					shared, err := preload(context.Background(), f, "acme", []*outbox.Entry{entry})
					if err == nil {
						rs.shared = shared
					}
				}
				msg, err := build(context.Background(), rs, d, entry, controlID(d.ControlIDPrefix, entry))
				if tc.errHas != "" {
					var be *buildError
					if !errors.As(err, &be) || be.permanent != tc.permanent || !strings.Contains(be.msg, tc.errHas) {
						t.Fatalf("build error = %#v, want permanent=%v about %q", err, tc.permanent, tc.errHas)
					}
					if strings.Contains(be.msg, "MRN1") {
						t.Errorf("error %q holds patient data", be.msg)
					}
					return
				}
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				m, _, err := hl7v2.Parse(msg)
				if err != nil {
					t.Fatalf("parsing the ORU: %v", err)
				}
				got := map[string]string{}
				for path := range tc.fields {
					if got[path], err = m.Get(path); err != nil {
						t.Fatal(err)
					}
				}
				if d := cmp.Diff(tc.fields, got); d != "" {
					t.Errorf("ORU fields (-want +got):\n%s", d)
				}
				if preloaded && (f.reads != 0 || f.loads > 3) {
					t.Errorf("preloaded build made %d reads after %d loads, want none after at most 3", f.reads, f.loads)
				}
			})
		}
	}
}

func TestControlID(t *testing.T) {
	tests := []struct {
		id      int64
		replays int
		want    string
	}{
		{1, 0, "PW1"}, {35, 0, "PWZ"}, {36*36 + 1, 0, "PW101"}, {35, 2, "PWZ.2"}, {1<<63 - 1, 0, "PW1Y2P0IJ32E8E7"},
	}
	for _, tc := range tests {
		if got := controlID("PW", &outbox.Entry{ID: tc.id, Replays: tc.replays}); got != tc.want {
			t.Errorf("controlID(%d, %d) = %q, want %q", tc.id, tc.replays, got, tc.want)
		}
	}
}

// plainTx is a transaction of a store without an outbox.
type plainTx struct{ fhir.Tx }

func TestHookNeedsAnOutbox(t *testing.T) {
	h := Hook(HookConfig{Destinations: []*Destination{testDestination(t)}})
	c := fhir.Change{Tenant: "acme", Created: true, Resource: &fhir.Resource{Type: "Observation", ID: "o1", VersionID: 1,
		LastUpdated: time.Now(), Body: []byte(obsJSON)}}
	if err := h(context.Background(), plainTx{}, c); !fhir.IsKind(err, fhir.KindInternal) {
		t.Errorf("hook on a store without an outbox = %v, want KindInternal", err)
	}
	c.Tenant = "globex" // no destinations: nothing to enqueue, nothing asked of the store
	if err := h(context.Background(), plainTx{}, c); err != nil {
		t.Errorf("hook for a tenant without destinations = %v", err)
	}
}
