// Package audittest is the shared test suite of server/audit on a real
// store: adapters/sqlite and adapters/postgres run it from their
// audit_test.go, each with a Tamperer that changes rows behind the
// store's back as someone with direct database access would. It checks
// that writes and their AuditEvents commit together, that the chain stays
// gap-free and race-free under concurrent writers and recorders, that
// AuditEvents are append-only and searchable, and that Verify finds every
// kind of tampering.
package audittest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Tamperer changes a store's rows directly, bypassing the store, its
// hooks, triggers and row-level security.
type Tamperer interface {
	// SetBody overwrites the body of AuditEvent/id in its row (an event
	// is stored once: it is never superseded).
	SetBody(t *testing.T, tenant, id string, body []byte)
	// DeleteEvent deletes the row of AuditEvent/id.
	DeleteEvent(t *testing.T, tenant, id string)
	// InsertEvent stores body as version 1 of AuditEvent/id (its one
	// row), outside the chain.
	InsertEvent(t *testing.T, tenant, id string, body []byte)
	// DeleteChainEntry deletes the chain entry at a position.
	DeleteChainEntry(t *testing.T, tenant string, at At)
	// InsertChainEntry makes AuditEvent/id the chain entry at a position,
	// moving the lane's entries from there on one place up.
	InsertChainEntry(t *testing.T, tenant string, at At, id string)
	// SwapChainEntries swaps the events of the chain entries at a and b.
	SwapChainEntries(t *testing.T, tenant string, a, b At)
	// SetHead overwrites the head of one lane of the tenant's chain.
	SetHead(t *testing.T, tenant string, lane int, seq int64, hash chain.Hash)
}

// At is a position in a tenant's chain.
type At struct {
	Lane int
	Seq  int64
}

// LaneHolder is implemented by the Tamperer of a store that gives a
// tenant's chain several lanes (PostgreSQL): it holds lanes the way a
// committing transaction does, so that appends meanwhile take another
// lane, and the suite checks tampering in a chain of several lanes.
type LaneHolder interface {
	// HoldLanes holds the tenant's lanes (which exist once the tenant has
	// appended) until release is called.
	HoldLanes(t *testing.T, tenant string, lanes ...int) (release func())
}

// Open returns a fresh, migrated store with nothing written yet and no
// write hooks, and its Tamperer.
type Open func(t *testing.T) (chain.Store, Tamperer)

// Run runs the suite.
func Run(t *testing.T, open Open) {
	t.Run("WritesAreAudited", func(t *testing.T) { testWrites(t, open) })
	t.Run("WriteAndAuditCommitTogether", func(t *testing.T) { testAtomic(t, open) })
	t.Run("AppendOnly", func(t *testing.T) { testAppendOnly(t, open) })
	t.Run("Recorder", func(t *testing.T) { testRecorder(t, open) })
	t.Run("ConcurrentChain", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("VerifyFindsTampering", func(t *testing.T) { testTamper(t, open) })
	t.Run("PatientSearch", func(t *testing.T) { testPatientSearch(t, open) })
}

var reg = search.NewRegistry()

// fixedNow is the clock of the Auditors under test.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// newAuditor opens a store, installs the audit hook (and extra hooks
// after it) and registers tenants.
func newAuditor(t *testing.T, open Open, tenants []string, extra ...fhir.WriteHook) (*audit.Auditor, chain.Store, Tamperer) {
	t.Helper()
	s, tam := open(t)
	a, err := audit.New(audit.Config{Store: s, Registry: reg, Now: func() time.Time { return fixedNow }, BatchSize: 64})
	if err != nil {
		t.Fatalf("audit.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h, ok := s.(fhir.Hooked)
	if !ok {
		t.Fatalf("%T does not run write hooks", s)
	}
	h.AddWriteHook(a.Hook())
	for _, x := range extra {
		h.AddWriteHook(x)
	}
	for _, tn := range tenants {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant(%s): %v", tn, err)
		}
	}
	return a, s, tam
}

func patientBody(id string) []byte {
	return []byte(`{"resourceType":"Patient","id":"` + id + `","active":true}`)
}

func obsBody(patient string) []byte {
	return []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/` + patient + `"}}`)
}

// put writes one resource in its own transaction, with the store's index.
func put(ctx context.Context, s fhir.Store, tenant, typ, id string, body []byte) (*fhir.Resource, error) {
	idx, err := reg.Extract(typ, body)
	if err != nil {
		return nil, err
	}
	var res *fhir.Resource
	err = s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		var err error
		res, _, err = tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: body, Index: idx})
		return err
	})
	return res, err
}

func mustPut(t *testing.T, ctx context.Context, s fhir.Store, tenant, typ, id string, body []byte) *fhir.Resource {
	t.Helper()
	res, err := put(ctx, s, tenant, typ, id, body)
	if err != nil {
		t.Fatalf("Put %s/%s: %v", typ, id, err)
	}
	return res
}

// auditEvent is what the suite reads of a stored AuditEvent.
type auditEvent struct {
	ID       string `json:"id"`
	Action   string `json:"action"`
	Outcome  string `json:"outcome"`
	Desc     string `json:"outcomeDesc"`
	Recorded string `json:"recorded"`
	Subtype  []struct {
		Code string `json:"code"`
	} `json:"subtype"`
	Agent []struct {
		Type struct {
			Coding []struct {
				Code string `json:"code"`
			} `json:"coding"`
		} `json:"type"`
		Who struct {
			Reference  string `json:"reference"`
			Display    string `json:"display"`
			Identifier struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
		} `json:"who"`
		Requestor bool `json:"requestor"`
	} `json:"agent"`
	Entity []struct {
		What struct {
			Reference string `json:"reference"`
		} `json:"what"`
		Role struct {
			Code string `json:"code"`
		} `json:"role"`
		Query       string `json:"query"`
		Description string `json:"description"`
	} `json:"entity"`
}

// summary is an AuditEvent in one line, for comparisons: action,
// subtypes, outcome, the agents (client id, user, module) and the entities.
func (e *auditEvent) summary() string {
	var sub, agents, ents []string
	for _, s := range e.Subtype {
		sub = append(sub, s.Code)
	}
	for _, a := range e.Agent {
		who := a.Who.Reference + a.Who.Display + a.Who.Identifier.Value
		agents = append(agents, a.Type.Coding[0].Code+"="+who)
	}
	for _, x := range e.Entity {
		v := x.What.Reference
		if x.Query != "" {
			q, _ := base64.StdEncoding.DecodeString(x.Query)
			v = "?" + string(q) + " (" + x.Description + ")"
		}
		ents = append(ents, x.Role.Code+":"+v)
	}
	s := fmt.Sprintf("%s %s %s agents[%s] entities[%s]", e.Action, strings.Join(sub, ","), e.Outcome,
		strings.Join(agents, " "), strings.Join(ents, " "))
	if e.Desc != "" {
		s += " (" + e.Desc + ")"
	}
	return s
}

// entries returns every chain entry of the tenant, lane after lane, each
// lane in sequence order.
func entries(t *testing.T, ctx context.Context, s chain.Store, tenant string) []chain.Entry {
	t.Helper()
	hs, err := s.AuditHeads(ctx, tenant)
	if err != nil {
		t.Fatalf("AuditHeads: %v", err)
	}
	var out []chain.Entry
	for _, h := range hs.Lanes {
		es, err := s.AuditEntries(ctx, tenant, h.Lane, 0, 100000)
		if err != nil {
			t.Fatalf("AuditEntries: %v", err)
		}
		out = append(out, es...)
	}
	return out
}

// events returns the tenant's AuditEvents in chain order (lane after
// lane), checking the chain first. Events committed one after the other
// on an otherwise idle store are all in one lane, in commit order.
func events(t *testing.T, ctx context.Context, s chain.Store, tenant string) []auditEvent {
	t.Helper()
	intact(t, ctx, s, tenant)
	es := entries(t, ctx, s, tenant)
	out := make([]auditEvent, len(es))
	for i, e := range es {
		if err := json.Unmarshal(e.Body, &out[i]); err != nil {
			t.Fatalf("AuditEvent %s: %v", e.ID, err)
		}
	}
	return out
}

// intact fails unless the tenant's chain verifies.
func intact(t *testing.T, ctx context.Context, s chain.Store, tenant string) *audit.Report {
	t.Helper()
	r, err := audit.Verify(ctx, s, tenant)
	if err != nil {
		t.Fatalf("Verify(%s): %v", tenant, err)
	}
	if r.Break != nil {
		t.Fatalf("Verify(%s): chain broken at %v", tenant, r.Break)
	}
	return r
}

// searchAudit runs an AuditEvent search and returns the ids found.
func searchAudit(t *testing.T, ctx context.Context, s fhir.Store, tenant, query string) []string {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := reg.Parse("AuditEvent", v, search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatalf("parsing %q: %v", query, err)
	}
	res, err := s.Search(ctx, tenant, q)
	if err != nil {
		t.Fatalf("search AuditEvent?%s: %v", query, err)
	}
	var ids []string
	for _, r := range res.Resources {
		ids = append(ids, r.ID)
	}
	return ids
}

// testWrites: every Put and Delete appends its AuditEvent in BALP form,
// with the principal of the context (or the unknown system agent), and
// the events are found by FHIR search on the store's own index.
func testWrites(t *testing.T, open Open) {
	ctx := context.Background()
	_, s, _ := newAuditor(t, open, []string{"acme"})
	app := audit.WithPrincipal(ctx, audit.Principal{ClientID: "chart-app", FHIRUser: "Practitioner/dr1", Subject: "drsmith", TokenID: "jti-1", Address: "10.0.0.7"})
	ingest := audit.WithPrincipal(ctx, audit.System("ingest"))

	mustPut(t, app, s, "acme", "Patient", "p1", patientBody("p1"))
	mustPut(t, ingest, s, "acme", "Observation", "o1", obsBody("p1"))
	mustPut(t, ctx, s, "acme", "Observation", "o1", obsBody("p1"))
	if err := s.Tx(app, "acme", func(tx fhir.Tx) error {
		_, err := tx.Delete(app, "Observation", "o1", 0)
		return err
	}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	evs := events(t, ctx, s, "acme")
	var got []string
	for _, e := range evs {
		got = append(got, e.summary())
	}
	want := []string{
		"C create 0 agents[110153=chart-app AUT=Practitioner/dr1 110152=pulsewire] entities[4:Patient/p1/_history/1 1:Patient/p1]",
		"C create 0 agents[110150=ingest 110152=pulsewire] entities[4:Observation/o1/_history/1 1:Patient/p1]",
		"U update 0 agents[110150=unknown 110152=pulsewire] entities[4:Observation/o1/_history/2 1:Patient/p1]",
		"D delete 0 agents[110150=chart-app AUT=Practitioner/dr1 custodian=pulsewire] entities[4:Observation/o1/_history/3 1:Patient/p1]",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("AuditEvents of the writes (-want +got):\n%s", d)
	}
	if len(evs) == 4 {
		if r := evs[0].Recorded; r != fixedNow.Format(fhir.TimeFormat) {
			t.Errorf("recorded = %s, want %s", r, fixedNow.Format(fhir.TimeFormat))
		}
		// The user is the requestor, not the app.
		if !evs[0].Agent[1].Requestor || evs[0].Agent[0].Requestor {
			t.Errorf("requestor flags = app %v, user %v; want false, true", evs[0].Agent[0].Requestor, evs[0].Agent[1].Requestor)
		}
	}

	// FHIR search over the stored AuditEvents (what an auditor runs).
	all := make([]string, len(evs))
	for i, e := range evs {
		all[i] = e.ID
	}
	for _, tc := range []struct {
		query string
		want  []int // indexes into evs
	}{
		{"patient=p1", []int{0, 1, 2, 3}},
		{"action=D", []int{3}},
		{"agent=Practitioner/dr1", []int{0, 3}},
		{"entity=Observation/o1", []int{1, 2, 3}}, // reference search ignores the version
		{"subtype=http://hl7.org/fhir/restful-interaction|create", []int{0, 1}},
		{"outcome=0&action=U", []int{2}},
		{"date=" + fixedNow.Format("2006-01-02"), []int{0, 1, 2, 3}},
	} {
		var want []string
		for _, i := range tc.want {
			want = append(want, all[i])
		}
		got := searchAudit(t, ctx, s, "acme", tc.query)
		if d := cmp.Diff(sortedCopy(want), sortedCopy(got)); d != "" {
			t.Errorf("AuditEvent?%s (-want +got):\n%s", tc.query, d)
		}
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

var errLater = errors.New("a later hook refused the write")

// testAtomic: a write and its AuditEvent commit together. A hook added
// after the audit hook that fails, or fn failing after the write, rolls
// both back; the chain head does not move.
func testAtomic(t *testing.T, open Open) {
	ctx := context.Background()
	refuse := ""
	_, s, _ := newAuditor(t, open, []string{"acme"}, func(ctx context.Context, tx fhir.Tx, c fhir.Change) error {
		if c.Resource.ID == refuse {
			return errLater
		}
		return nil
	})
	mustPut(t, ctx, s, "acme", "Patient", "p1", patientBody("p1"))
	before := intact(t, ctx, s, "acme").Heads

	refuse = "o-refused"
	if _, err := put(ctx, s, "acme", "Observation", "o-refused", obsBody("p1")); !errors.Is(err, errLater) {
		t.Fatalf("Put with a failing later hook = %v, want its error", err)
	}
	refuse = ""
	errFn := errors.New("fn failed after writing")
	err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o-fn", Body: obsBody("p1"), Fresh: true}); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o-fn2", Body: obsBody("p1")}); err != nil {
			return err
		}
		return errFn
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("Tx = %v, want fn's error", err)
	}
	for _, id := range []string{"o-refused", "o-fn", "o-fn2"} {
		if _, err := s.Read(ctx, "acme", "Observation", id); !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("Observation/%s after rollback: %v, want not found", id, err)
		}
	}
	after := intact(t, ctx, s, "acme").Heads
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("chain heads moved though every write rolled back (-before +after):\n%s", d)
	}

	// A write that commits brings exactly its event.
	mustPut(t, ctx, s, "acme", "Observation", "o-ok", obsBody("p1"))
	if h := intact(t, ctx, s, "acme").Heads; h.Events() != before.Events()+1 || h.Stored != before.Stored+1 {
		t.Errorf("heads after one committed write = %d events, %d stored; want %d, %d", h.Events(), h.Stored, before.Events()+1, before.Stored+1)
	}
}

// testAppendOnly: AuditEvents cannot be created, updated or deleted
// through the store; the refusals are 403/405 kinds and change nothing.
func testAppendOnly(t *testing.T, open Open) {
	ctx := context.Background()
	a, s, _ := newAuditor(t, open, []string{"acme"})
	if err := a.RecordDurable(ctx, audit.Event{Tenant: "acme", Interaction: audit.Read, Type: "Patient", ID: "p1", Patient: "p1"}); err != nil {
		t.Fatalf("RecordDurable: %v", err)
	}
	es := entries(t, ctx, s, "acme")
	if len(es) != 1 {
		t.Fatalf("%d chain entries, want 1", len(es))
	}
	id := es[0].ID
	body := []byte(`{"resourceType":"AuditEvent","recorded":"2026-01-01T00:00:00Z","type":{"code":"rest"},"agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`)
	for _, tc := range []struct {
		name string
		fn   func(tx fhir.Tx) error
		kind fhir.Kind
	}{
		{"create", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, &fhir.Write{Type: "AuditEvent", ID: "forged", Body: body})
			return err
		}, fhir.KindForbidden},
		{"update", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, &fhir.Write{Type: "AuditEvent", ID: id, Body: body})
			return err
		}, fhir.KindNotSupported},
		{"delete", func(tx fhir.Tx) error {
			_, err := tx.Delete(ctx, "AuditEvent", id, 0)
			return err
		}, fhir.KindNotSupported},
	} {
		err := s.Tx(ctx, "acme", tc.fn)
		if !fhir.IsKind(err, tc.kind) {
			t.Errorf("%s of an AuditEvent through the store: %v, want kind %d", tc.name, err, tc.kind)
		}
	}
	if got := a.Stats().Refused; got != 3 {
		t.Errorf("Stats.Refused = %d, want 3", got)
	}
	r := intact(t, ctx, s, "acme")
	if r.Heads.Events() != 1 || r.Heads.Stored != 1 {
		t.Errorf("after refused writes: heads at %d events, %d stored; want 1, 1", r.Heads.Events(), r.Heads.Stored)
	}
	got, err := s.Read(ctx, "acme", "AuditEvent", id)
	if err != nil || !bytes.Equal(got.Body, es[0].Body) || got.VersionID != 1 {
		t.Errorf("AuditEvent/%s after refused writes: %v; want version 1 unchanged", id, err)
	}
}

// testRecorder: reads, searches and denials are recorded through the
// queue, in BALP form, and the link the store builds is exactly
// chain.Link.
func testRecorder(t *testing.T, open Open) {
	ctx := context.Background()
	a, s, _ := newAuditor(t, open, []string{"acme", "globex"})
	pctx := audit.WithPrincipal(ctx, audit.Principal{ClientID: "backend"})
	user := audit.Principal{ClientID: "chart-app", FHIRUser: "Practitioner/dr1"}
	for _, ev := range []audit.Event{
		{Tenant: "acme", Principal: user, Interaction: audit.Read, Type: "Observation", ID: "o1", Patient: "p1", RequestID: "req-1"},
		{Tenant: "acme", Principal: user, Interaction: audit.VRead, Type: "Observation", ID: "o1", Version: 2, Patient: "p1"},
		{Tenant: "acme", Principal: user, Interaction: audit.Search, Type: "Observation", Query: "patient=p1&code=8867-4", Patient: "p1"},
		{Tenant: "acme", Interaction: audit.Search, Query: "_type=Patient&name=Smith"},
		{Tenant: "acme", Principal: user, Interaction: audit.Operation, Operation: "$lastn", Type: "Observation", Query: "patient=p1&max=3", Patient: "p1"},
		{Tenant: "acme", Principal: user, Interaction: audit.History, Type: "Observation", ID: "o1", Patient: "p1"},
		{Tenant: "acme", Principal: user, Interaction: audit.Read, Type: "Patient", ID: "p2", Patient: "p2",
			Outcome: audit.OutcomeMinor, Reason: "consent-deny"},
		{Tenant: "acme", Principal: user, Interaction: audit.Read, Type: "Observation", ID: "o5",
			Resource: &fhir.Resource{Type: "Observation", ID: "o5", VersionID: 1, Body: obsBody("p9")}},
		{Tenant: "globex", Interaction: audit.Read, Type: "Patient", ID: "g1", Patient: "g1"},
	} {
		c := ctx // globex's event: no principal anywhere
		if ev.Tenant == "acme" {
			c = pctx // the principal of events that name none
		}
		if err := a.Record(c, ev); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	var got []string
	for _, e := range events(t, ctx, s, "acme") {
		got = append(got, e.summary())
	}
	want := []string{
		"R read 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[4:Observation/o1 1:Patient/p1 :]",
		"R vread 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[4:Observation/o1/_history/2 1:Patient/p1]",
		"E search,search-type 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[1:Patient/p1 24:?patient=p1&code=8867-4 (Observation?patient=&code=)]",
		"E search,search-system 0 agents[110152=backend 110153=pulsewire] entities[24:?_type=Patient&name=Smith (?_type=&name=)]",
		"E operation 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[1:Patient/p1 24:?patient=p1&max=3 (Observation/$lastn?patient=&max=)]",
		"E history,history-instance 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[4:Observation/o1 1:Patient/p1]",
		"R read 4 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[4:Patient/p2 1:Patient/p2] (consent-deny)",
		"R read 0 agents[110152=chart-app IRCP=Practitioner/dr1 110153=pulsewire] entities[4:Observation/o5 1:Patient/p9]",
	}
	// The recorder commits its batches concurrently, and concurrent
	// commits take different lanes: the events are compared as a set.
	slices.Sort(got)
	slices.Sort(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("recorded AuditEvents (-want +got):\n%s", d)
	}
	if g := events(t, ctx, s, "globex"); len(g) != 1 || !strings.Contains(g[0].summary(), "110150=unknown") {
		t.Errorf("globex's chain = %+v, want its one event, by the unknown system agent", g)
	}
	if st := a.Stats(); st.Recorded != 9 || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("Stats = %+v, want 9 recorded, none dropped or queued", st)
	}
	// Denials are found by outcome.
	if ids := searchAudit(t, ctx, s, "acme", "outcome=4"); len(ids) != 1 {
		t.Errorf("AuditEvent?outcome=4 found %d, want the one denial", len(ids))
	}

	// The store builds each link exactly as chain.Link does.
	prev := chain.Genesis
	for _, e := range entries(t, ctx, s, "acme") {
		if e.Seq == 1 {
			prev = chain.Genesis // a lane's first event
		}
		link := chain.Link(e.Seq, prev)
		if !bytes.Contains(e.Body, append([]byte(`"extension":`), link...)) {
			t.Errorf("event %d of lane %d: its body does not hold chain.Link(%d, prev) = %s:\n%s", e.Seq, e.Lane, e.Seq, link, e.Body)
		}
		prev = chain.Sum(e.Body)
	}

	// An unknown tenant's records are dropped, and RecordDurable says so.
	err := a.RecordDurable(ctx, audit.Event{Tenant: "nobody", Interaction: audit.Read, Type: "Patient", ID: "x"})
	if !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("RecordDurable for an unknown tenant = %v, want KindNotFound", err)
	}
	// A malformed event is refused at once.
	if err := a.Record(ctx, audit.Event{Tenant: "acme", Interaction: "peek"}); err == nil {
		t.Error("Record with an unknown interaction succeeded")
	}
}

var obsIndex, _ = reg.Extract("Observation", obsBody("p1"))

// testConcurrent: 50 writers and 50 recorders on two tenants at once; each
// chain ends up gap-free, verified, and holding every event exactly once.
func testConcurrent(t *testing.T, open Open) {
	ctx := context.Background()
	a, s, _ := newAuditor(t, open, []string{"acme", "globex"})
	const writers, perWriter = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*perWriter)
	for w := range writers {
		tenant := []string{"acme", "globex"}[w%2]
		wctx := audit.WithPrincipal(ctx, audit.Principal{ClientID: fmt.Sprintf("app-%d", w)})
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("o-%d-%d", w, i)
				// Half the writes are creates with a server-made id, which
				// a store may commit in groups with other transactions.
				fresh := i%2 == 0
				err := s.Tx(wctx, tenant, func(tx fhir.Tx) error {
					_, _, err := tx.Put(wctx, &fhir.Write{Type: "Observation", ID: id, Body: obsBody("p1"), Index: obsIndex, Fresh: fresh})
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", id, err)
				}
			}
		})
		wg.Go(func() {
			for i := range perWriter {
				if err := a.Record(wctx, audit.Event{Tenant: tenant, Interaction: audit.Read, Type: "Observation", ID: fmt.Sprintf("o-%d-%d", w, i)}); err != nil {
					errs <- err
				}
			}
		})
	}
	// Verify runs while the chain grows: events appended meanwhile are
	// not a broken link.
	stop := make(chan struct{})
	verified := make(chan int, 1)
	go func() {
		n := 0
		defer func() { verified <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := audit.Verify(ctx, s, "acme")
			if err != nil {
				errs <- err
				return
			}
			if r.Break != nil {
				errs <- fmt.Errorf("verify during appends: broken at %v", r.Break)
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-verified; n == 0 {
		t.Error("Verify never completed while the chain grew")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		r := intact(t, ctx, s, tenant)
		want := int64(writers / 2 * perWriter * 2) // a write and a read per item
		if r.Verified != want || r.Heads.Events() != want || r.Heads.Stored != want {
			t.Errorf("%s: verified %d, heads at %d, stored %d; want %d each", tenant, r.Verified, r.Heads.Events(), r.Heads.Stored, want)
		}
		seen := map[string]bool{}
		for _, e := range entries(t, ctx, s, tenant) {
			var ev auditEvent
			if err := json.Unmarshal(e.Body, &ev); err != nil {
				t.Fatal(err)
			}
			key := ev.Action + " " + ev.Entity[0].What.Reference
			key = strings.Split(key, "/_history/")[0]
			if seen[key] {
				t.Errorf("%s: %s recorded twice", tenant, key)
			}
			seen[key] = true
		}
	}
}

// testTamper: changing the stored chain behind the store's back, in each
// way an insider might, is reported by Verify at the right lane and place;
// each case runs on a tenant of its own. The lane tampered with holds five
// events. On a store with several lanes (its Tamperer is a LaneHolder)
// that is lane 1, between lane 0 (three events) and lane 2 (two), filled
// by holding the lanes before it; otherwise it is lane 0, the only one.
func testTamper(t *testing.T, open Open) {
	ctx := context.Background()
	cases := []struct {
		name   string
		lanes  bool // needs a store with several lanes
		tamper func(t *testing.T, tm Tamperer, tenant string, c *lane)
		seq    int64  // where in the tampered lane Verify reports the break; 0: the chain as a whole
		reason string // a phrase of its reason
	}{
		{"untouched", false, nil, 0, ""},
		{"body altered", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.SetBody(t, tenant, c.ids[1], bytes.Replace(c.bodies[1], []byte(`"outcome":"0"`), []byte(`"outcome":"4"`), 1))
		}, 2, "does not match the hash event 3 recorded"},
		{"last body altered", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.SetBody(t, tenant, c.ids[4], bytes.Replace(c.bodies[4], []byte(`"action":"R"`), []byte(`"action":"E"`), 1))
		}, 5, "the lane's head recorded"},
		{"event deleted", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.DeleteEvent(t, tenant, c.ids[2])
		}, 3, "resource is missing"},
		{"chain entry deleted", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.DeleteChainEntry(t, tenant, c.at(3))
		}, 3, "chain entry is missing"},
		{"event and chain entry deleted", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.DeleteEvent(t, tenant, c.ids[1])
			tm.DeleteChainEntry(t, tenant, c.at(2))
		}, 2, "chain entry is missing"},
		{"reordered", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.SwapChainEntries(t, tenant, c.at(2), c.at(4))
		}, 2, "reordered"},
		{"tail removed", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.DeleteEvent(t, tenant, c.ids[4])
			tm.DeleteChainEntry(t, tenant, c.at(5))
		}, 5, "events at the end were removed"},
		{"head rewound", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.SetHead(t, tenant, c.n, 3, chain.Sum(c.bodies[2]))
		}, 4, "head was rewound"},
		// A forged event that links correctly to the one before it: the
		// event it pushed along records its old place.
		{"event inserted", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.InsertEvent(t, tenant, "forged", forge(t, c.bodies[2], c.ids[2], "forged", 3, chain.Sum(c.bodies[1])))
			tm.InsertChainEntry(t, tenant, c.at(3), "forged")
		}, 4, "inserted"},
		{"event appended past the head", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.InsertEvent(t, tenant, "forged", forge(t, c.bodies[4], c.ids[4], "forged", 6, chain.Sum(c.bodies[4])))
			tm.InsertChainEntry(t, tenant, c.at(6), "forged")
		}, 6, "past its head"},
		{"event in a lane without a head", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.InsertEvent(t, tenant, "forged", forge(t, c.bodies[0], c.ids[0], "forged", 1, chain.Genesis))
			tm.InsertChainEntry(t, tenant, At{Lane: 9, Seq: 1}, "forged")
		}, 0, "entries were added outside"},
		{"event added outside the chain", false, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.InsertEvent(t, tenant, "forged", forge(t, c.bodies[4], c.ids[4], "forged", 6, chain.Sum(c.bodies[4])))
		}, 0, "events were added outside"},
		// Lane 2's second event, which records sequence 2 too, put in
		// place of lane 1's (and back): it follows another event.
		{"events moved between lanes", true, func(t *testing.T, tm Tamperer, tenant string, c *lane) {
			tm.SwapChainEntries(t, tenant, c.at(2), At{Lane: 2, Seq: 2})
		}, 1, "does not match the hash event 2 recorded"},
	}
	var tenants []string
	for i := range cases {
		tenants = append(tenants, fmt.Sprintf("t%d", i))
	}
	a, s, tm := newAuditor(t, open, tenants)
	holder, lanes := tm.(LaneHolder)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lanes && !lanes {
				t.Skip("the store keeps one lane per tenant")
			}
			tenant := tenants[i]
			n := 0
			record := func(count int) {
				t.Helper()
				for range count {
					// One at a time: each commits alone, into the lowest lane not held.
					if err := a.RecordDurable(ctx, audit.Event{Tenant: tenant, Interaction: audit.Read, Type: "Patient", ID: fmt.Sprintf("p%d", n), Patient: fmt.Sprintf("p%d", n)}); err != nil {
						t.Fatal(err)
					}
					n++
				}
			}
			c := &lane{}
			want := []int64{5}
			if lanes {
				c.n, want = 1, []int64{3, 5, 2}
				record(3)
				release := holder.HoldLanes(t, tenant, 0)
				record(5)
				release()
				release = holder.HoldLanes(t, tenant, 0, 1)
				record(2)
				release()
			} else {
				record(5)
			}
			hs, err := s.AuditHeads(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, h := range hs.Lanes {
				if h.Seq > 0 {
					got = append(got, h.Seq)
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("events per lane (-want +got):\n%s", d)
			}
			es, err := s.AuditEntries(ctx, tenant, c.n, 0, 10)
			if err != nil || len(es) != 5 {
				t.Fatalf("AuditEntries of lane %d: %d, %v; want 5", c.n, len(es), err)
			}
			for _, e := range es {
				c.ids, c.bodies = append(c.ids, e.ID), append(c.bodies, e.Body)
			}
			if tc.tamper != nil {
				tc.tamper(t, tm, tenant, c)
			}
			r, err := audit.Verify(ctx, s, tenant)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			switch {
			case tc.tamper == nil && r.Break != nil:
				t.Fatalf("Verify of an untouched chain: broken at %v", r.Break)
			case tc.tamper == nil:
				if r.Verified != int64(n) {
					t.Errorf("Verified = %d, want %d", r.Verified, n)
				}
			case r.Break == nil:
				t.Fatalf("Verify did not notice (verified %d)", r.Verified)
			case r.Break.Seq != tc.seq || (tc.seq > 0 && r.Break.Lane != c.n) || !strings.Contains(r.Break.Reason, tc.reason):
				t.Errorf("Verify reported %v; want lane %d, sequence %d, %q", r.Break, c.n, tc.seq, tc.reason)
			}
		})
	}

	// An AuditEvent written around the auditor (no hook on this store) is
	// outside the chain, which Verify reports too.
	s2, _ := open(t)
	a2, err := audit.New(audit.Config{Store: s2, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close(ctx)
	if err := s2.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := a2.RecordDurable(ctx, audit.Event{Tenant: "acme", Interaction: audit.Read, Type: "Patient", ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, ctx, s2, "acme", "AuditEvent", "forged", []byte(`{"resourceType":"AuditEvent","recorded":"2026-01-01T00:00:00Z"}`))
	r, err := audit.Verify(ctx, s2, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if r.Break == nil || !strings.Contains(r.Break.Reason, "outside") {
		t.Errorf("Verify with an AuditEvent outside the chain: %v, want it reported", r.Break)
	}
}

// lane is the lane a tamper case works on: its number and its five
// events, in sequence order.
type lane struct {
	n      int
	ids    []string
	bodies [][]byte
}

func (c *lane) at(seq int64) At { return At{Lane: c.n, Seq: seq} }

// forge makes a new event from a stored body: id replaced by newID, and a
// link at seq after prev, as an insider who knows the chain would.
func forge(t *testing.T, body []byte, id, newID string, seq int64, prev chain.Hash) []byte {
	t.Helper()
	oldSeq, oldPrev, err := chain.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Replace(body, []byte(`"id":"`+id+`"`), []byte(`"id":"`+newID+`"`), 1)
	if bytes.Equal(b, body) {
		t.Fatalf("the body of AuditEvent/%s does not hold its id", id)
	}
	return bytes.Replace(b, chain.Link(oldSeq, oldPrev), chain.Link(seq, prev), 1)
}

// BenchRecord measures how many read events per second the Auditor makes
// durable on a store: b.N events recorded from 64 goroutines, then Flush.
// open returns a fresh, migrated store.
func BenchRecord(b *testing.B, open func(b *testing.B) chain.Store) {
	s := open(b)
	ctx := context.Background()
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		b.Fatal(err)
	}
	a, err := audit.New(audit.Config{Store: s, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(ctx)
	p := audit.Principal{ClientID: "bench-app", FHIRUser: "Practitioner/dr1", TokenID: "jti"}
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + 63) / 64
	for g := range 64 {
		wg.Go(func() {
			for i := range per {
				id := fmt.Sprintf("o%d-%d", g, i)
				if err := a.Record(ctx, audit.Event{Tenant: "acme", Principal: p, Interaction: audit.Read, Type: "Observation", ID: id, Patient: "p1"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := a.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := a.Stats()
	b.ReportMetric(float64(st.Recorded)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.Recorded)/float64(max(st.Batches, 1)), "events/batch")
}

// testPatientSearch: AuditEvent?patient= finds an event by a Patient agent
// (a patient user acting) and by a Patient entity (the data's patient);
// the parameter is derived from agent and entity (fhir.DerivedParam), so
// this holds the store's derived search to the definition.
func testPatientSearch(t *testing.T, open Open) {
	ctx := context.Background()
	_, s, _ := newAuditor(t, open, []string{"acme"})
	patientUser := audit.WithPrincipal(ctx, audit.Principal{ClientID: "portal", FHIRUser: "Patient/p2", Subject: "p2-login"})
	clinician := audit.WithPrincipal(ctx, audit.Principal{ClientID: "chart-app", FHIRUser: "Practitioner/dr1"})
	mustPut(t, patientUser, s, "acme", "Observation", "o1", obsBody("p1"))
	mustPut(t, clinician, s, "acme", "Observation", "o3", obsBody("p3"))
	evs := events(t, ctx, s, "acme")
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"patient=p2", []string{evs[0].ID}},         // the acting patient (agent)
		{"patient=Patient/p1", []string{evs[0].ID}}, // the data's patient (entity)
		{"patient=p3", []string{evs[1].ID}},
		{"patient=dr1", nil}, // a Practitioner agent is not a patient
		{"patient=o1", nil},  // nor an Observation entity
	} {
		got := searchAudit(t, ctx, s, "acme", tc.query)
		if !slices.Equal(got, tc.want) {
			t.Errorf("AuditEvent?%s = %v, want %v", tc.query, got, tc.want)
		}
	}
}
