package adtin

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
)

func TestParseDTM(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	tests := []struct {
		in   string
		loc  *time.Location
		want string // RFC 3339 UTC, "" for rejected
	}{
		{"20250314080000", nil, "2025-03-14T08:00:00Z"},
		{"20250314080000", chicago, "2025-03-14T13:00:00Z"},
		{"20250314080000+0100", chicago, "2025-03-14T07:00:00Z"},
		{"20250314080000.25-0500", nil, "2025-03-14T13:00:00.25Z"},
		{"202503140800", nil, "2025-03-14T08:00:00Z"},
		{"20250314", nil, "2025-03-14T00:00:00Z"},
		{"2025031408", nil, "2025-03-14T08:00:00Z"},
		{"202503", nil, ""},        // too coarse for an event time
		{"2025031408001", nil, ""}, // odd length
		{"20251314080000", nil, ""},
		{"20250314080000+01", nil, ""},
		{"2025-03-14", nil, ""},
		{"202503140800.5", nil, ""}, // a fraction needs seconds
	}
	for _, tt := range tests {
		got, ok := parseDTM(tt.in, tt.loc)
		s := ""
		if ok {
			s = got.Format(time.RFC3339Nano)
		}
		if s != tt.want {
			t.Errorf("parseDTM(%q) = %q, want %q", tt.in, s, tt.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	got, err := ParseSettings([]byte(`{"acme": {"authorities": {"GENHOSP": "urn:oid:1.2.3"}, "defaultSystem": "urn:x", "timeZone": "UTC", "followBeds": true}, "globex": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := got["acme"]; !a.FollowBeds || a.ADT.Authorities["GENHOSP"] != "urn:oid:1.2.3" || a.ADT.DefaultSystem != "urn:x" || a.ADT.Location != time.UTC {
		t.Errorf("acme settings = %+v", a)
	}
	if g, ok := got["globex"]; !ok || g.FollowBeds {
		t.Errorf("globex settings = %+v, %v; want present, bed-following off", g, ok)
	}
	for _, bad := range []string{
		`{"acme": {"followBed": true}}`,              // misspelt: refused, not ignored
		`{"Not A Tenant": {}}`,                       // invalid tenant
		`{"acme": {"timeZone": "Mars/Olympus"}}`,     // unknown zone
		`{"acme": {"authorities": {"GENHOSP": ""}}}`, // no system
		`[]`,
	} {
		if _, err := ParseSettings([]byte(bad)); err == nil {
			t.Errorf("ParseSettings(%s) accepted", bad)
		}
	}
}

// TestKeyAndDigest: the deduplication key is the sender and MSH-10; the
// digest ignores MSH-7 and the encoding but not the content.
func TestKeyAndDigest(t *testing.T) {
	parse := func(s string) *hl7v2.Message {
		t.Helper()
		m, _, err := hl7v2.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := parse("MSH|^~\\&|ADT^1.2&x|FAC|PW|PWF|20250314080000||ADT^A08^ADT_A01|C1|P|2.5.1\rPID|1||M1^^^GENHOSP\r")
	if got := sender(base); got != "ADT^1.2&x|FAC" {
		t.Errorf("sender = %q", got)
	}
	tests := []struct {
		name string
		msg  string
		same bool
	}{
		{"new MSH-7, LF terminators", "MSH|^~\\&|ADT^1.2&x|FAC|PW|PWF|20250314090000||ADT^A08^ADT_A01|C1|P|2.5.1\nPID|1||M1^^^GENHOSP\n", true},
		{"other delimiters", "MSH#^~\\&#ADT^1.2&x#FAC#PW#PWF#20250314080000##ADT^A08^ADT_A01#C1#P#2.5.1\rPID#1##M1^^^GENHOSP\r", true},
		{"other content", "MSH|^~\\&|ADT^1.2&x|FAC|PW|PWF|20250314080000||ADT^A08^ADT_A01|C1|P|2.5.1\rPID|1||M2^^^GENHOSP\r", false},
		{"other event", "MSH|^~\\&|ADT^1.2&x|FAC|PW|PWF|20250314080000||ADT^A31^ADT_A05|C1|P|2.5.1\rPID|1||M1^^^GENHOSP\r", false},
	}
	for _, tt := range tests {
		if got := digestOf(parse(tt.msg)) == digestOf(base); got != tt.same {
			t.Errorf("%s: same digest %v, want %v", tt.name, got, tt.same)
		}
	}
}

// TestMerge checks what an update keeps of the current version.
func TestMerge(t *testing.T) {
	old := object{
		"resourceType": "Encounter", "id": "e1", "meta": object{"versionId": "3", "security": []any{"R"}},
		"status": "in-progress", "serviceProvider": object{"reference": "Organization/o1"},
		"period":   object{"start": "2025-03-14T08:00:00Z"},
		"location": []any{object{"location": object{"reference": "Location/bed1"}, "status": "active"}},
	}
	nb := object{
		"resourceType": "Encounter", "status": "finished",
		"period":   object{"end": "2025-03-15T08:00:00Z"},
		"location": []any{object{"location": object{"reference": "Location/bed2"}, "status": "completed"}},
	}
	want := object{
		"resourceType": "Encounter", "meta": object{"versionId": "3", "security": []any{"R"}},
		"status": "finished", "serviceProvider": object{"reference": "Organization/o1"},
		"period": object{"start": "2025-03-14T08:00:00Z", "end": "2025-03-15T08:00:00Z"},
		"location": []any{
			object{"location": object{"reference": "Location/bed1"}, "status": "completed"},
			object{"location": object{"reference": "Location/bed2"}, "status": "completed"},
		},
	}
	if diff := cmp.Diff(want, merge("Encounter", old, nb)); diff != "" {
		t.Errorf("merged Encounter (-want +got):\n%s", diff)
	}
	// A Patient keeps its links, and stays inactive when replaced.
	oldP := object{"resourceType": "Patient", "active": false, "link": []any{object{"other": object{"reference": "Patient/s"}, "type": "replaced-by"}}}
	nbP := object{"resourceType": "Patient", "active": true, "gender": "female"}
	wantP := object{"resourceType": "Patient", "active": false, "gender": "female", "link": oldP["link"]}
	if diff := cmp.Diff(wantP, merge("Patient", oldP, nbP)); diff != "" {
		t.Errorf("merged Patient (-want +got):\n%s", diff)
	}
}
