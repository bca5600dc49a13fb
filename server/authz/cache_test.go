package authz

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv/memkv"
)

var p1Search = Request{Tenant: tenant, ClientID: "app", Scopes: []string{"patient/Observation.rs"},
	LaunchPatient: "p1", Action: ActionSearch, Type: "Observation", TargetPatient: "p1"}

func mustDecide(t *testing.T, a *Authorizer, req Request) *Decision {
	t.Helper()
	d, err := a.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

// A counting ConsentSource shows that L1 and L2 hits load nothing: the
// first decision loads the consents, the same decision again is an L1 hit,
// and another replica sharing the KV store gets it from L2.
func TestCacheHitsAvoidReloads(t *testing.T) {
	src := newMemConsents(consent("c1", "p1", denyHIV))
	shared := memkv.New()
	a := newAuthz(t, src, Policy{}, shared)
	b := newAuthz(t, src, Policy{}, shared)

	first := mustDecide(t, a, p1Search)
	if got := src.loads.Load(); got != 1 {
		t.Fatalf("after the first decision: %d loads, want 1", got)
	}
	for range 5 {
		if d := mustDecide(t, a, p1Search); d != first {
			t.Fatal("an L1 hit returned another decision")
		}
	}
	fromL2 := mustDecide(t, b, p1Search)
	if got := src.loads.Load(); got != 1 {
		t.Fatalf("after L1 and L2 hits: %d loads, want still 1", got)
	}
	// The L2 copy decides like the original.
	for _, res := range []*fhir.Resource{obsVital, obsHIV} {
		if got, want := checkReasonWith(t, b, fromL2, res), checkReasonWith(t, a, first, res); got != want {
			t.Errorf("L2 decision on %s = %s, original %s", res.Ref(), got, want)
		}
	}
	q1, q2 := &fhir.Query{Type: "Observation"}, &fhir.Query{Type: "Observation"}
	first.Narrow(q1)
	fromL2.Narrow(q2)
	if diff := cmp.Diff(q1, q2); diff != "" {
		t.Errorf("L2 decision narrows differently (-original +L2):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{L1Hits: 5, Misses: 1}, a.Stats()); diff != "" {
		t.Errorf("replica a stats (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{L2Hits: 1}, b.Stats()); diff != "" {
		t.Errorf("replica b stats (-want +got):\n%s", diff)
	}
	// Another request (another patient) is another key.
	other := p1Search
	other.Scopes = []string{"user/Observation.rs"}
	other.FHIRUser = "Practitioner/x"
	other.TargetPatient = "p2"
	mustDecide(t, a, other)
	if got := src.loads.Load(); got != 2 {
		t.Errorf("a different request: %d loads, want 2", got)
	}
}

// checkReasonWith checks res against d directly (the decision was made
// for res's patient).
func checkReasonWith(t *testing.T, a *Authorizer, d *Decision, res *fhir.Resource) Reason {
	t.Helper()
	it, err := extractFacts(a.reg, res)
	if err != nil {
		t.Fatal(err)
	}
	_, r := d.allows(it)
	return r
}

// waitDecision polls until Decide's effect is want, failing after d.
func waitDecision(t *testing.T, a *Authorizer, req Request, want Effect, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := mustDecide(t, a, req)
		if got.Effect == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("decision still %v (%s) after %v, want %v", got.Effect, got.Reason, d, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Invalidate on one replica reaches the other through the published
// message: the version check interval is an hour here, so only the message
// can do it.
func TestInvalidateReachesOtherReplicaByMessage(t *testing.T) {
	src := newMemConsents()
	shared := memkv.New()
	slowCheck := func(c *Config) { c.VersionCheck = time.Hour }
	a := newAuthz(t, src, Policy{}, shared, slowCheck)
	b := newAuthz(t, src, Policy{}, shared, slowCheck)
	waitSubscribed(t, a, b)
	for _, r := range []*Authorizer{a, b} {
		if d := mustDecide(t, r, p1Search); d.Effect != PermitNarrowed {
			t.Fatalf("before the consent: %v", d.Effect)
		}
	}
	src.set("p1", consent("c1", "p1", optOut))
	// Without an invalidation the cached permit stands (proves the cache
	// is in use, and that the next step is what changes it).
	if d := mustDecide(t, b, p1Search); d.Effect != PermitNarrowed {
		t.Fatalf("b without invalidation = %v, want the cached permit", d.Effect)
	}
	if err := a.Invalidate(context.Background(), tenant); err != nil {
		t.Fatal(err)
	}
	took := waitDecision(t, b, p1Search, Deny, time.Second)
	t.Logf("replica b denied %v after the invalidation", took)
	if d := mustDecide(t, a, p1Search); d.Effect != Deny {
		t.Errorf("replica a after its own invalidation = %v, want deny", d.Effect)
	}
}

// waitSubscribed waits until each Authorizer's subscriber is in place (a
// message is then delivered): it publishes until every replica dropped a
// probe decision.
func waitSubscribed(t *testing.T, as ...*Authorizer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, a := range as {
		for {
			ts := a.tenant("probe")
			ts.mu.Lock()
			ts.version, ts.until = "v", time.Now().Add(time.Hour).UnixNano()
			ts.mu.Unlock()
			_ = a.kv.Publish(context.Background(), a.channel, []byte("probe"))
			time.Sleep(10 * time.Millisecond)
			ts.mu.RLock()
			dropped := ts.version == ""
			ts.mu.RUnlock()
			if dropped {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("subscriber not in place after 5 s")
			}
		}
	}
}

// When the message is lost, the version check still finds the new stamp
// within VersionCheck.
func TestVersionCheckCatchesLostMessages(t *testing.T) {
	src := newMemConsents()
	shared := memkv.New()
	b := newAuthz(t, src, Policy{}, shared, func(c *Config) {
		c.VersionCheck = 200 * time.Millisecond
		c.Now = time.Now // the stamp's age is measured on this clock
	})
	if d := mustDecide(t, b, p1Search); d.Effect != PermitNarrowed {
		t.Fatalf("before: %v", d.Effect)
	}
	src.set("p1", consent("c1", "p1", optOut))
	// Bump the stamp the way Invalidate does, but publish nothing.
	if _, err := shared.Incr(context.Background(), b.versionKey(tenant)); err != nil {
		t.Fatal(err)
	}
	took := waitDecision(t, b, p1Search, Deny, time.Second)
	t.Logf("denied %v after a silent bump", took)
}

// A decision that depends on a Consent period is not cached past the
// period's start.
func TestDecisionExpiresAtConsentPeriod(t *testing.T) {
	src := newMemConsents(consent("c1", "p1", futureDeny)) // deny from 2025-07-01
	clk := &clock{t: testNow}
	a := newAuthz(t, src, Policy{}, nil, func(c *Config) { c.Now = clk.Now; c.L1TTL = 24 * time.Hour * 60 })
	if d := mustDecide(t, a, p1Search); d.Effect != PermitNarrowed {
		t.Fatalf("on %v: %v, want permit", testNow, d.Effect)
	}
	clk.Add(10 * 24 * time.Hour)
	if d := mustDecide(t, a, p1Search); d.Effect != PermitNarrowed {
		t.Fatalf("ten days later: %v, want permit", d.Effect)
	}
	if got := src.loads.Load(); got != 1 {
		t.Fatalf("loads before the period = %d, want 1 (cached)", got)
	}
	clk.Add(10 * 24 * time.Hour) // past 2025-07-01
	if d := mustDecide(t, a, p1Search); d.Effect != Deny {
		t.Fatalf("after the period started: %v, want deny", d.Effect)
	}
}

// A source error is an error, never a permit, and is not cached.
func TestSourceErrorIsNotAPermit(t *testing.T) {
	src := newMemConsents()
	src.fail = errors.New("database down")
	a := newAuthz(t, src, Policy{}, nil)
	d, err := a.Decide(context.Background(), p1Search)
	if err == nil {
		t.Fatalf("Decide with a failing source = %v, want an error", d.Effect)
	}
	if !fhir.IsKind(err, fhir.KindInternal) {
		t.Errorf("error kind = %v, want KindInternal", fhir.ErrorKind(err))
	}
	if err := a.Check(context.Background(), p1Search, obsVital); err == nil || fhir.IsKind(err, fhir.KindForbidden) {
		t.Errorf("Check with a failing source = %v, want the internal error", err)
	}
	src.mu.Lock()
	src.fail = nil
	src.mu.Unlock()
	if d := mustDecide(t, a, p1Search); d.Effect != PermitNarrowed {
		t.Errorf("after the source recovered: %v", d.Effect)
	}
}

// An unreadable Consent fails the decision rather than being skipped.
func TestUnreadableConsentFails(t *testing.T) {
	src := newMemConsents()
	src.set("p1", &fhir.Resource{Type: "Consent", ID: "bad", Body: []byte(`{"resourceType":"Consent","status":`)})
	a := newAuthz(t, src, Policy{}, nil)
	if _, err := a.Decide(context.Background(), p1Search); err == nil {
		t.Fatal("Decide with an unreadable Consent succeeded")
	}
}

// The L1 stays within its size.
func TestL1Bounded(t *testing.T) {
	a := newAuthz(t, newMemConsents(), Policy{}, nil, func(c *Config) { c.L1Size = 50 })
	for i := range 200 {
		req := p1Search
		req.Scopes = []string{"user/Observation.rs"}
		req.FHIRUser = "Practitioner/x"
		req.TargetPatient = fmt.Sprintf("p%d", i)
		mustDecide(t, a, req)
	}
	if n := a.size.Load(); n > 50 || n < 1 {
		t.Errorf("L1 holds %d decisions, want 1..50", n)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	total := 0
	for _, ts := range a.tenants {
		total += len(ts.entries)
	}
	if int64(total) != a.size.Load() {
		t.Errorf("size counter %d, entries %d", a.size.Load(), total)
	}
}

func TestDecideRejectsBadRequests(t *testing.T) {
	a := newAuthz(t, newMemConsents(), Policy{}, nil)
	for name, req := range map[string]Request{
		"no tenant":           {Action: ActionRead, Type: "Observation"},
		"no action":           {Tenant: tenant, Type: "Observation"},
		"read without a type": {Tenant: tenant, Action: ActionRead},
		"bad target":          {Tenant: tenant, Action: ActionRead, Type: "Observation", TargetPatient: "a/b"},
	} {
		if _, err := a.Decide(context.Background(), req); err == nil {
			t.Errorf("%s: Decide succeeded", name)
		}
	}
}

// Filter keeps, in order, what each resource's own decision permits:
// a system-level search with patient/*.rs and a consent denying HIV tests.
func TestFilter(t *testing.T) {
	src := newMemConsents(consent("c1", "p1", denyHIV))
	a := newAuthz(t, src, Policy{}, nil)
	req := Request{Tenant: tenant, ClientID: "app", Scopes: []string{"patient/*.rs"}, LaunchPatient: "p1", Action: ActionSearch}
	tomb := &fhir.Resource{Type: "Observation", ID: "gone", VersionID: 2, Deleted: true}
	in := []*fhir.Resource{obsVital, obsHIV, obsP2, patientRes("p1"), patientRes("p2"), organization("o1"), obsDevice, tomb, obsGlucose}
	got, err := a.Filter(context.Background(), req, in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.Ref())
	}
	want := []string{"Observation/vital", "Patient/p1", "Organization/o1", "Observation/glucose"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("Filter (-want +got):\n%s", diff)
	}
	if len(in) != 9 {
		t.Error("Filter changed its input")
	}

	// A system scope that bypasses consent sees everything, tombstones
	// included.
	sys := newAuthz(t, src, Policy{SystemBypassesConsent: true}, nil)
	all, err := sys.Filter(context.Background(), Request{Tenant: tenant, Scopes: []string{"system/*.rs"}, Action: ActionHistory}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(in) {
		t.Errorf("system scope kept %d of %d", len(all), len(in))
	}
}

func TestQueryPatient(t *testing.T) {
	ref := func(name, typ, id string) fhir.Param {
		return fhir.Param{Name: name, Type: fhir.ParamReference, Values: []fhir.Value{{RefType: typ, RefID: id}}}
	}
	tests := []struct {
		name string
		q    fhir.Query
		want string
	}{
		{"patient=", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("patient", "Patient", "p1")}}, "p1"},
		{"patient= bare id", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("patient", "", "p1")}}, "p1"},
		{"subject=Patient/", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("subject", "Patient", "p1")}}, "p1"},
		{"subject=Device/", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("subject", "Device", "d1")}}, ""},
		{"subject= bare id", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("subject", "", "p1")}}, ""},
		{"Patient _id", fhir.Query{Type: "Patient", Params: []fhir.Param{pToken("_id", "", Coding{Code: "p1"})}}, "p1"},
		{"two values", fhir.Query{Type: "Observation", Params: []fhir.Param{{Name: "patient", Type: fhir.ParamReference,
			Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}, {RefType: "Patient", RefID: "p2"}}}}}, ""},
		{"two patients ANDed", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("patient", "Patient", "p1"), ref("subject", "Patient", "p2")}}, ""},
		{"same patient twice", fhir.Query{Type: "Observation", Params: []fhir.Param{ref("patient", "Patient", "p1"), ref("subject", "Patient", "p1")}}, "p1"},
		{"none", fhir.Query{Type: "Observation", Params: []fhir.Param{pToken("code", "", Coding{loinc, "1"})}}, ""},
	}
	for _, tc := range tests {
		if got := QueryPatient(&tc.q); got != tc.want {
			t.Errorf("%s: QueryPatient = %q, want %q", tc.name, got, tc.want)
		}
	}
}
