package rest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// The audit tests run the whole server with authorization on (see
// auth_test.go) and read the AuditEvents back through the FHIR API, as an
// auditor does, with a token of its own (system/AuditEvent.rs).

// event is what a test checks of an AuditEvent.
type event struct {
	Subtype string // the subtype codes, space-separated
	Action  string
	Outcome string
	Reason  string // outcomeDesc
	Client  string // the OAuth client
	User    string // the user agent's reference (fhirUser)
	Module  string // a module agent ("ingest", "unknown" ...), not the server
	Address string
	Policy  string // the token id
	What    string // the data entity
	Patient string // the patient entity's id
	Query   string // the query entity, decoded
}

// logged is one AuditEvent read back: its id, request id and summary.
type logged struct {
	id, requestID string
	ev            event
}

// auditLog flushes the audit trail and returns the AuditEvents that
// query (an AuditEvent search) finds, in the order of the search.
func (f *authFixture) auditLog(t *testing.T, auditor, query string) []logged {
	t.Helper()
	f.s.FlushAudit(t)
	r := f.req(t, auditor, http.MethodGet, "AuditEvent?_count=1000&"+query, "")
	mustStatus(t, r, http.StatusOK)
	var out []logged
	for _, e := range entries(r.json(t)) {
		if str(e, "search", "mode") == "match" {
			out = append(out, summarize(t, path(e, "resource")))
		}
	}
	return out
}

// ofRequest returns the summaries of the events of the request rid, sorted.
func ofRequest(log []logged, rid string) []event {
	var out []event
	for _, l := range log {
		if l.requestID == rid {
			out = append(out, l.ev)
		}
	}
	slices.SortFunc(out, func(a, b event) int { return strings.Compare(a.Subtype+a.What+a.Outcome, b.Subtype+b.What+b.Outcome) })
	return out
}

func events(log []logged) []event {
	out := make([]event, len(log))
	for i, l := range log {
		out[i] = l.ev
	}
	return out
}

func summarize(t *testing.T, ae any) logged {
	t.Helper()
	l := logged{id: str(ae, "id")}
	e := &l.ev
	var subtypes []string
	for i := 0; path(ae, "subtype", i) != nil; i++ {
		subtypes = append(subtypes, str(ae, "subtype", i, "code"))
	}
	e.Subtype = strings.Join(subtypes, " ")
	e.Action, e.Outcome, e.Reason = str(ae, "action"), str(ae, "outcome"), str(ae, "outcomeDesc")
	for i := 0; path(ae, "agent", i) != nil; i++ {
		a := path(ae, "agent", i)
		switch {
		case str(a, "who", "identifier", "system") == audit.ClientIDSystem:
			e.Client = str(a, "who", "identifier", "value")
		case str(a, "who", "reference") != "":
			e.User = str(a, "who", "reference")
		case str(a, "who", "display") != "pulsewire":
			e.Module = str(a, "who", "display")
		}
		if s := str(a, "network", "address"); s != "" {
			e.Address = s
		}
		if s := str(a, "policy", 0); s != "" {
			e.Policy = s
		}
	}
	for i := 0; path(ae, "entity", i) != nil; i++ {
		en := path(ae, "entity", i)
		switch {
		case str(en, "role", "code") == "4":
			e.What = str(en, "what", "reference")
		case str(en, "role", "code") == "1":
			e.Patient = strings.TrimPrefix(str(en, "what", "reference"), "Patient/")
		case str(en, "role", "code") == "24":
			q, err := base64.StdEncoding.DecodeString(str(en, "query"))
			if err != nil {
				t.Fatalf("AuditEvent/%s: entity.query is not base64: %v", l.id, err)
			}
			e.Query = string(q)
		case str(en, "type", "code") == "XrequestId":
			l.requestID = str(en, "what", "identifier", "value")
		}
	}
	return l
}

// claims returns the client id and token id of an access token (a JWT).
func claims(t *testing.T, token string) (clientID, jti string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ClientID string `json:"client_id"`
		ID       string `json:"jti"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.ClientID, c.ID
}

// reqID sends a request with X-Request-Id rid and the token tok ("": none).
func (f *authFixture) reqID(t *testing.T, rid, tok, method, rel, body string, headers ...string) *response {
	t.Helper()
	h := append([]string{"X-Request-Id", rid}, headers...)
	if tok != "" {
		h = append(h, "Authorization", "Bearer "+tok)
	}
	return do(t, method, f.base+"/"+rel, body, h...)
}

// TestAuditREST: every read-type interaction of the FHIR API, and every
// denial and 401, records one AuditEvent naming the client, the user, the
// token, the address, the data, the patient and the outcome; each entry of
// a batch too.
func TestAuditREST(t *testing.T) {
	f := newAuthFixture(t)
	app := f.s.LaunchToken(t, "acme", "p1", "patient/Observation.rs")
	appClient, appJTI := claims(t, app)
	auditor := f.s.BackendToken(t, "acme", "system/AuditEvent.rs")
	// What the launch token's events say of who acted.
	who := event{Client: appClient, User: "Practitioner/servertest", Address: "127.0.0.1", Policy: appJTI}
	as := func(e event) event {
		e.Client, e.User, e.Address, e.Policy = who.Client, who.User, who.Address, who.Policy
		return e
	}
	// The reason code of a denial, and the message of a 401.
	reason := func(r *response) string {
		oo := r.json(t)
		if s := str(oo, "issue", 0, "details", "coding", 0, "code"); s != "" {
			return s
		}
		return str(oo, "issue", 0, "diagnostics")
	}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	batch := bundleJSON("batch",
		entryJSON("", "GET", "Observation/p1-lab", "", ""),
		entryJSON("", "GET", "Observation/p2-vital", "", ""),
		entryJSON("", "GET", "Observation?subject=Patient/p1", "", ""),
		entryJSON("", "POST", "Observation", obsJSON("", "p1", "vital-signs", "8867-4", ""), ""))

	for _, tc := range []struct {
		name              string
		tok               string // "": none
		method, rel, body string
		headers           []string
		status            int
		want              func(r *response) []event
	}{
		{"read", app, "GET", "Observation/p1-vital", "", nil, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "read", Action: "R", Outcome: "0", What: "Observation/p1-vital", Patient: "p1"})}
		}},
		{"vread", app, "GET", "Observation/p1-vital/_history/1", "", nil, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "vread", Action: "R", Outcome: "0", What: "Observation/p1-vital/_history/1", Patient: "p1"})}
		}},
		{"denied read", app, "GET", "Observation/p2-vital", "", nil, http.StatusForbidden, func(r *response) []event {
			return []event{as(event{Subtype: "read", Action: "R", Outcome: "4", Reason: reason(r), What: "Observation/p2-vital", Patient: "p2"})}
		}},
		{"read without a token", "", "GET", "Observation/p1-lab", "", nil, http.StatusUnauthorized, func(r *response) []event {
			return []event{{Subtype: "read", Action: "R", Outcome: "4", Reason: reason(r), Module: "unknown", Address: "127.0.0.1", What: "Observation/p1-lab"}}
		}},
		{"search", app, "GET", "Observation?patient=p1&code=8867-4", "", nil, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "search search-type", Action: "E", Outcome: "0", Patient: "p1", Query: "patient=p1&code=8867-4"})}
		}},
		{"search by POST", app, "POST", "Observation/_search", "subject=Patient/p1", form, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "search search-type", Action: "E", Outcome: "0", Patient: "p1", Query: "subject=Patient%2Fp1"})}
		}},
		{"history", app, "GET", "Observation/p1-vital/_history", "", nil, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "history history-instance", Action: "E", Outcome: "0", What: "Observation/p1-vital", Patient: "p1"})}
		}},
		{"$lastn", app, "GET", "Observation/$lastn?patient=p1&max=2", "", nil, http.StatusOK, func(*response) []event {
			return []event{as(event{Subtype: "operation", Action: "E", Outcome: "0", Patient: "p1", Query: "patient=p1&max=2"})}
		}},
		{"denied create", app, "POST", "Observation", obsJSON("", "p1", "vital-signs", "8867-4", ""), nil, http.StatusForbidden, func(r *response) []event {
			return []event{as(event{Subtype: "create", Action: "C", Outcome: "4", Reason: reason(r)})}
		}},
		{"conditional create of an existing resource", app, "POST", "Observation", obsJSON("", "p1", "vital-signs", "8867-4", ""),
			[]string{"If-None-Exist", "_id=p1-vital"}, http.StatusOK, func(*response) []event {
				return []event{as(event{Subtype: "search search-type", Action: "E", Outcome: "0", Patient: "p1", Query: "_id=p1-vital"})}
			}},
		{"denied transaction", app, "POST", "", strings.Replace(batch, `"batch"`, `"transaction"`, 1), nil, http.StatusForbidden, func(r *response) []event {
			return []event{as(event{Subtype: "transaction", Action: "E", Outcome: "4", Reason: reason(r)})}
		}},
		{"batch", app, "POST", "", batch, nil, http.StatusOK, func(r *response) []event {
			denied := str(entries(r.json(t))[1], "response", "outcome", "issue", 0, "details", "coding", 0, "code")
			create := str(entries(r.json(t))[3], "response", "outcome", "issue", 0, "details", "coding", 0, "code")
			return []event{
				as(event{Subtype: "create", Action: "C", Outcome: "4", Reason: create}),
				as(event{Subtype: "read", Action: "R", Outcome: "0", What: "Observation/p1-lab", Patient: "p1"}),
				as(event{Subtype: "read", Action: "R", Outcome: "4", Reason: denied, What: "Observation/p2-vital", Patient: "p2"}),
				as(event{Subtype: "search search-type", Action: "E", Outcome: "0", Patient: "p1", Query: "subject=Patient%2Fp1"}),
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rid := "audit-" + strings.NewReplacer(" ", "-", "$", "").Replace(tc.name)
			r := f.reqID(t, rid, tc.tok, tc.method, tc.rel, tc.body, tc.headers...)
			mustStatus(t, r, tc.status)
			want := tc.want(r)
			slices.SortFunc(want, func(a, b event) int { return strings.Compare(a.Subtype+a.What+a.Outcome, b.Subtype+b.What+b.Outcome) })
			if d := cmp.Diff(want, ofRequest(f.auditLog(t, auditor, ""), rid)); d != "" {
				t.Errorf("AuditEvents of the request (-want +got):\n%s", d)
			}
		})
	}

	t.Run("a create is recorded once, in its transaction", func(t *testing.T) {
		sysClient, sysJTI := claims(t, f.sys)
		r := f.req(t, f.sys, http.MethodPost, "Observation", obsJSON("", "p2", "vital-signs", "8867-4", ""))
		mustStatus(t, r, http.StatusCreated)
		id := str(r.json(t), "id")
		want := []event{{Subtype: "create", Action: "C", Outcome: "0", Client: sysClient, Address: "127.0.0.1", Policy: sysJTI,
			What: "Observation/" + id + "/_history/1", Patient: "p2"}}
		// No flush: the write's record committed with it.
		r = f.req(t, auditor, http.MethodGet, "AuditEvent?entity=Observation/"+id, "")
		mustStatus(t, r, http.StatusOK)
		var got []event
		for _, e := range entries(r.json(t)) {
			if str(e, "search", "mode") == "match" {
				got = append(got, summarize(t, path(e, "resource")).ev)
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("AuditEvents of the create (-want +got):\n%s", d)
		}
	})

	t.Run("a failed transaction leaves no record", func(t *testing.T) {
		store := f.s.App.Store().(chain.Store)
		f.s.FlushAudit(t)
		before, err := store.AuditHeads(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		tx := bundleJSON("transaction",
			entryJSON("", "PUT", "Observation/tx-new", obsJSON("tx-new", "p1", "vital-signs", "8867-4", ""), ""),
			entryJSON("", "PUT", "Observation/p1-vital", obsJSON("p1-vital", "p1", "vital-signs", "8867-4", ""), `,"ifMatch":"W/\"99\""`))
		r := do(t, http.MethodPost, f.base, tx, "Authorization", "Bearer "+f.sys)
		mustStatus(t, r, http.StatusPreconditionFailed)
		f.s.FlushAudit(t)
		after, err := store.AuditHeads(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if after.Events() != before.Events() {
			t.Errorf("the audit chain went from %d to %d events over a failed transaction", before.Events(), after.Events())
		}
		mustStatus(t, f.req(t, f.sys, http.MethodGet, "Observation/tx-new", ""), http.StatusNotFound)
	})

	t.Run("AuditEvents are append-only", func(t *testing.T) {
		log := f.auditLog(t, auditor, "subtype=read")
		if len(log) == 0 {
			t.Fatal("no read recorded")
		}
		id := log[0].id
		body := `{"resourceType":"AuditEvent","id":"` + id + `","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z",` +
			`"agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
		sysClient, sysJTI := claims(t, f.sys)
		for _, tc := range []struct {
			method, rel, body string
			status            int
			want              event
		}{
			{"PUT", "AuditEvent/" + id, body, http.StatusMethodNotAllowed, event{Subtype: "update", Action: "U", What: "AuditEvent/" + id}},
			{"DELETE", "AuditEvent/" + id, "", http.StatusMethodNotAllowed, event{Subtype: "delete", Action: "D", What: "AuditEvent/" + id}},
			{"POST", "AuditEvent", strings.Replace(body, `"id":"`+id+`",`, "", 1), http.StatusForbidden, event{Subtype: "create", Action: "C"}},
		} {
			rid := "audit-append-only-" + tc.method
			r := f.reqID(t, rid, f.sys, tc.method, tc.rel, tc.body)
			mustStatus(t, r, tc.status)
			if got := str(r.json(t), "resourceType"); got != "OperationOutcome" {
				t.Errorf("%s %s answered a %s", tc.method, tc.rel, got)
			}
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("%s %s: 405 without Allow", tc.method, tc.rel)
			}
			want := tc.want
			want.Outcome, want.Reason = "4", str(r.json(t), "issue", 0, "diagnostics")
			want.Client, want.Address, want.Policy = sysClient, "127.0.0.1", sysJTI
			if d := cmp.Diff([]event{want}, ofRequest(f.auditLog(t, auditor, ""), rid)); d != "" {
				t.Errorf("%s %s: AuditEvents of the refusal (-want +got):\n%s", tc.method, tc.rel, d)
			}
		}
		r := f.req(t, auditor, http.MethodGet, "AuditEvent/"+id, "")
		mustStatus(t, r, http.StatusOK)
		if v := str(r.json(t), "meta", "versionId"); v != "1" {
			t.Errorf("AuditEvent/%s is at version %s after the refused writes", id, v)
		}
	})

	t.Run("the chain verifies after mixed traffic", func(t *testing.T) {
		f.s.FlushAudit(t)
		rep, err := audit.Verify(context.Background(), f.s.App.Store().(chain.Store), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Break != nil || rep.Verified != rep.Heads.Events() || rep.Verified < 20 {
			t.Errorf("verify: %d of %d events verified, break %v", rep.Verified, rep.Heads.Events(), rep.Break)
		}
	})
}

// TestAuditReadsOff: with reads not audited (pulsewire serve
// --audit-reads=false), a read or search records nothing; a write, a
// denial and a 401 still do.
func TestAuditReadsOff(t *testing.T) {
	f := newAuthFixture(t, servertest.WithAuditReads(false))
	app := f.s.LaunchToken(t, "acme", "p1", "patient/Observation.rs")
	auditor := f.s.BackendToken(t, "acme", "system/AuditEvent.rs")
	for _, tc := range []struct {
		name, tok, method, rel, body string
		status                       int
		want                         []string // subtype and outcome of each event
	}{
		{"read", app, "GET", "Observation/p1-vital", "", http.StatusOK, nil},
		{"search", app, "GET", "Observation?patient=p1", "", http.StatusOK, nil},
		{"not found", app, "GET", "Observation/nothing", "", http.StatusNotFound, nil},
		{"denied read", app, "GET", "Observation/p2-vital", "", http.StatusForbidden, []string{"read 4"}},
		{"401", "", "GET", "Observation/p1-vital", "", http.StatusUnauthorized, []string{"read 4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rid := "off-" + strings.ReplaceAll(tc.name, " ", "-")
			mustStatus(t, f.reqID(t, rid, tc.tok, tc.method, tc.rel, tc.body), tc.status)
			var got []string
			for _, e := range ofRequest(f.auditLog(t, auditor, ""), rid) {
				got = append(got, e.Subtype+" "+e.Outcome)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("AuditEvents (-want +got):\n%s", d)
			}
		})
	}
	t.Run("write", func(t *testing.T) {
		r := f.req(t, f.sys, http.MethodPut, "Observation/off-w", obsJSON("off-w", "p1", "vital-signs", "8867-4", ""))
		mustStatus(t, r, http.StatusCreated)
		var got []string
		for _, e := range events(f.auditLog(t, auditor, "entity="+url.QueryEscape("Observation/off-w"))) {
			got = append(got, e.Subtype+" "+e.Outcome)
		}
		if d := cmp.Diff([]string{"create 0"}, got); d != "" {
			t.Errorf("AuditEvents of the write (-want +got):\n%s", d)
		}
	})
}

// recorder is a rest.Auditor keeping what it is given, or failing every
// Record (a full queue) while failing is set.
type recorder struct {
	failing atomic.Bool
	mu      sync.Mutex
	got     []string // interaction, type, id and the principal's module and address
}

func (r *recorder) Record(ctx context.Context, ev audit.Event) error {
	if r.failing.Load() {
		return fhir.Errorf(fhir.KindInternal, "the audit queue is full")
	}
	p, _ := audit.PrincipalFrom(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, strings.Join([]string{string(ev.Interaction), ev.Type, ev.ID, p.Module, p.Address}, " "))
	return nil
}

// TestAuditFailsClosed: when a read's event cannot be recorded, the
// request fails with 500 and none of the data goes out.
func TestAuditFailsClosed(t *testing.T) {
	rec := &recorder{}
	s := newServer(t, func(o *serverOpts) { o.auditor = rec })
	base := s.base("acme")
	id := create(t, base, "Patient", patientJSON("fc-1"))

	rec.failing.Store(true)
	for _, tc := range []struct{ method, rel, body string }{
		{"GET", "Patient/" + id, ""},
		{"GET", "Patient/" + id + "/_history/1", ""},
		{"GET", "Patient?identifier=urn:sys|fc-1", ""},
		{"GET", "Patient/" + id + "/_history", ""},
		{"POST", "", bundleJSON("batch", entryJSON("", "GET", "Patient/"+id, "", ""))},
		{"POST", "", bundleJSON("transaction", entryJSON("", "GET", "Patient/"+id, "", ""))},
	} {
		r := do(t, tc.method, base+"/"+tc.rel, tc.body)
		if r.status != http.StatusInternalServerError || str(r.json(t), "issue", 0, "code") != "exception" || strings.Contains(string(r.body), "Doe") {
			t.Errorf("%s %s with the audit trail failing: %d %s, want 500 exception without the data", tc.method, tc.rel, r.status, r.body)
		}
	}

	rec.failing.Store(false)
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+id, ""), http.StatusOK)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Authorization is off: the caller is anonymous, at its address.
	if d := cmp.Diff([]string{"read Patient " + id + " anonymous 127.0.0.1"}, rec.got); d != "" {
		t.Errorf("recorded (-want +got):\n%s", d)
	}
}
