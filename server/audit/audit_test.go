package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/conformance/validate"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var recordedAt = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

var user = Principal{ClientID: "chart-app", FHIRUser: "Practitioner/dr1", Subject: "drsmith", TokenID: "jti-42", Address: "10.1.2.3"}

// events are one of each kind of event, by the principals that make them.
var events = []struct {
	name string
	ev   Event
}{
	{"read", Event{Tenant: "acme", Principal: user, Interaction: Read, Type: "Observation", ID: "o1", Patient: "p1", RequestID: "req-7"}},
	{"vread", Event{Tenant: "acme", Principal: user, Interaction: VRead, Type: "Observation", ID: "o1", Version: 3, Patient: "p1"}},
	{"search-type", Event{Tenant: "acme", Principal: user, Interaction: Search, Type: "Patient", Query: "name=Smith&birthdate=1970-01-01"}},
	{"search-system-backend", Event{Tenant: "acme", Principal: Principal{ClientID: "etl", TokenID: "jti-9"}, Interaction: Search, Query: "_type=Observation"}},
	{"lastn", Event{Tenant: "acme", Principal: user, Interaction: Operation, Operation: "$lastn", Type: "Observation", Query: "patient=p1&max=1", Patient: "p1"}},
	{"history-instance", Event{Tenant: "acme", Principal: user, Interaction: History, Type: "Observation", ID: "o1", Patient: "p1"}},
	{"denied", Event{Tenant: "acme", Principal: user, Interaction: Read, Type: "Patient", ID: "p2", Patient: "p2", Outcome: OutcomeMinor, Reason: "consent-deny"}},
	{"create-by-ingest", Event{Tenant: "acme", Principal: System("ingest"), Interaction: Create, Type: "Observation", ID: "o9", Version: 1, Patient: "p1"}},
	{"update-by-user", Event{Tenant: "acme", Principal: user, Interaction: Update, Type: "Patient", ID: "p1", Version: 2, Patient: "p1"}},
	{"delete-by-patient-app", Event{Tenant: "acme", Principal: Principal{ClientID: "phr", FHIRUser: "Patient/p1"}, Interaction: Delete, Type: "Observation", ID: "o1", Version: 4, Patient: "p1"}},
	{"transaction", Event{Tenant: "acme", Principal: Principal{ClientID: "ehr", Subject: "nurse7"}, Interaction: Transaction}},
	{"absolute-fhiruser", Event{Tenant: "acme", Principal: Principal{ClientID: "ehr", FHIRUser: "https://ehr.example/fhir/Practitioner/x9"}, Interaction: Read, Type: "Patient", ID: "p1", Patient: "p1"}},
	{"unknown-principal", Event{Tenant: "acme", Principal: unknown, Interaction: Update, Type: "Device", ID: "d1", Version: 5}},
}

func testAuditor() *Auditor {
	return &Auditor{reg: search.NewRegistry(), source: "pulsewire"}
}

// assemble is what a store stores for event 1 of a chain.
func assemble(ce *chain.Event) []byte {
	return append(append(append([]byte(nil), ce.Prefix...), chain.Link(1, chain.Genesis)...), ce.Suffix...)
}

// TestBuiltEventsAreValidR4: every kind of AuditEvent we build passes the
// R4 validator, its index entries are the registry's extraction of the
// stored body, and its chain link sits where chain.Parse finds it.
func TestBuiltEventsAreValidR4(t *testing.T) {
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	a := testAuditor()
	for _, tc := range events {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			if err := ev.check(); err != nil {
				t.Fatalf("check: %v", err)
			}
			ce, err := a.build(&ev, recordedAt)
			if err != nil {
				t.Fatal(err)
			}
			body := assemble(ce)
			typ, id, _, err := v.Validate(body)
			if err != nil {
				t.Fatalf("not valid R4: %v\n%s", err, body)
			}
			if typ != "AuditEvent" || id != ce.ID || !fhir.ValidID(id) {
				t.Errorf("validated as %s/%s, want AuditEvent/%s", typ, id, ce.ID)
			}
			if !ce.LastUpdated.Equal(recordedAt.Truncate(time.Microsecond)) {
				t.Errorf("LastUpdated = %v, want the recorded time to the microsecond", ce.LastUpdated)
			}
			want, err := search.NewRegistry().Extract("AuditEvent", body)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, ce.Index); d != "" {
				t.Errorf("index entries differ from the stored body's (-want +got):\n%s", d)
			}
			seq, prev, err := chain.Parse(body)
			if err != nil || seq != 1 || prev != chain.Genesis {
				t.Errorf("chain.Parse = %d, %v, %v; want 1, Genesis", seq, prev, err)
			}
		})
	}
}

// TestGolden pins the exact AuditEvents of BALP's main patterns (read with
// a SMART user, query by a backend service, create by a server module).
// go test ./server/audit -update rewrites them.
func TestGolden(t *testing.T) {
	a := testAuditor()
	for _, name := range []string{"read", "search-system-backend", "create-by-ingest", "denied"} {
		t.Run(name, func(t *testing.T) {
			var ev Event
			for _, tc := range events {
				if tc.name == name {
					ev = tc.ev
				}
			}
			ce, err := a.build(&ev, recordedAt)
			if err != nil {
				t.Fatal(err)
			}
			// The id is random: pin it for the comparison.
			body := bytes.ReplaceAll(assemble(ce), []byte(ce.ID), []byte("ID"))
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), pretty.String()); d != "" {
				t.Errorf("%s (-want +got):\n%s", path, d)
			}
		})
	}
}

// TestQueryNeverInClearText: the query's values appear only base64-encoded
// in entity.query (and not at all with RedactQueries); the description
// names parameters only.
func TestQueryNeverInClearText(t *testing.T) {
	for _, redact := range []bool{false, true} {
		a := testAuditor()
		a.redact = redact
		ev := Event{Tenant: "acme", Interaction: Search, Type: "Patient", Principal: user, Query: "family=Zyxwv&birthdate=eq1970-01-01"}
		ce, err := a.build(&ev, recordedAt)
		if err != nil {
			t.Fatal(err)
		}
		body := assemble(ce)
		for _, v := range []string{"Zyxwv", "1970-01-01"} {
			if bytes.Contains(body, []byte(v)) {
				t.Errorf("redact=%v: the body holds the query value %q in clear text", redact, v)
			}
		}
		var doc struct {
			Entity []struct {
				Query       []byte `json:"query"` // base64Binary decodes into []byte
				Description string `json:"description"`
			} `json:"entity"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		want := ev.Query
		if redact {
			want = "family=&birthdate="
		}
		if len(doc.Entity) != 1 || string(doc.Entity[0].Query) != want || doc.Entity[0].Description != "Patient?family=&birthdate=" {
			t.Errorf("redact=%v: query entity = %+v; want query %q, description Patient?family=&birthdate=", redact, doc.Entity, want)
		}
	}
}

func TestParamNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"name=Smith", "name="},
		{"name:exact=Smith&&subject.name=x&_count=10", "name:exact=&subject.name=&_count="},
		{"flag", "flag="},
		{"a=1=2&b", "a=&b="},
	} {
		if got := paramNames(tc.in); got != tc.want {
			t.Errorf("paramNames(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestJSONString: strings of any content (quotes, controls, invalid
// UTF-8) come out as JSON that decodes to the same text (invalid bytes as
// U+FFFD), as encoding/json would have it.
func TestJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r\x00\x1f\x7f", "ünïcødé ☃ \u2028", "bad\xffutf8\xc3", "</script>&"} {
		var w jw
		w.str(s)
		var got string
		if err := json.Unmarshal(w.b, &got); err != nil {
			t.Errorf("str(%q) = %s: not JSON: %v", s, w.b, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Errorf("str(%q) decodes to %q, want %q", s, got, wantS)
		}
	}
}

func FuzzJSONString(f *testing.F) {
	f.Add("x\"\\\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		var w jw
		w.str(s)
		var got string
		if err := json.Unmarshal(w.b, &got); err != nil {
			t.Fatalf("str(%q) = %s: not JSON: %v", s, w.b, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("str(%q) decodes to %q, want %q", s, got, wantS)
		}
	})
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, OutcomeSuccess},
		{fhir.Errorf(fhir.KindForbidden, "no"), OutcomeMinor},
		{fhir.Errorf(fhir.KindNotFound, "no"), OutcomeMinor},
		{fhir.Errorf(fhir.KindInternal, "db"), OutcomeSerious},
		{errors.New("plain"), OutcomeSerious},
	} {
		if got := OutcomeOf(tc.err); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestCheckRefusesMalformedEvents: what could corrupt an AuditEvent or
// point it at another tenant is refused before it is queued.
func TestCheckRefusesMalformedEvents(t *testing.T) {
	ok := Event{Tenant: "acme", Interaction: Read, Type: "Patient", ID: "p1"}
	for _, tc := range []struct {
		name string
		mod  func(*Event)
	}{
		{"no tenant", func(e *Event) { e.Tenant = "" }},
		{"bad tenant", func(e *Event) { e.Tenant = "ACME/../x" }},
		{"bad type", func(e *Event) { e.Type = "Patient/p2" }},
		{"bad id", func(e *Event) { e.ID = "p1/_history/1" }},
		{"bad patient", func(e *Event) { e.Patient = "p 1" }},
		{"unknown interaction", func(e *Event) { e.Interaction = "peek" }},
		{"unknown action", func(e *Event) { e.Action = "X" }},
		{"unknown outcome", func(e *Event) { e.Outcome = 3 }},
	} {
		e := ok
		tc.mod(&e)
		if err := e.check(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := ok.check(); err != nil {
		t.Errorf("a well-formed event: %v", err)
	}
}

// TestPrincipalContext: WithPrincipal is what Record and the hook read.
func TestPrincipalContext(t *testing.T) {
	ctx := WithPrincipal(t.Context(), user)
	if p, ok := PrincipalFrom(ctx); !ok || p != user {
		t.Errorf("PrincipalFrom = %+v, %v; want %+v", p, ok, user)
	}
	if _, ok := PrincipalFrom(t.Context()); ok {
		t.Error("PrincipalFrom of a bare context reports a principal")
	}
	if !strings.Contains(System("adt").Module, "adt") {
		t.Error("System does not name its module")
	}
}

// TestIdentify: Identify replaces the principal in place, visible through
// contexts derived before and after, and refuses a context without one.
func TestIdentify(t *testing.T) {
	ctx := WithPrincipal(t.Context(), Principal{Module: "unknown", Address: "10.0.0.9"})
	type otherKey struct{}
	derived := context.WithValue(ctx, otherKey{}, 1)
	if !Identify(ctx, user) {
		t.Fatal("Identify found no principal")
	}
	for name, c := range map[string]context.Context{"ctx": ctx, "derived": derived} {
		if p, _ := PrincipalFrom(c); p != user {
			t.Errorf("%s: PrincipalFrom after Identify = %+v; want %+v", name, p, user)
		}
	}
	if Identify(t.Context(), user) {
		t.Error("Identify reports a principal in a bare context")
	}
	if _, ok := PrincipalFrom(t.Context()); ok {
		t.Error("Identify put a principal into a bare context")
	}
}

// BenchmarkBuild is the CPU cost of one AuditEvent (body and index
// entries), which the dispatcher pays per read.
func BenchmarkBuild(b *testing.B) {
	a := testAuditor()
	ev := events[0].ev
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.build(&ev, recordedAt); err != nil {
			b.Fatal(err)
		}
	}
}
