package rest_test

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/servertest"
)

// The authorization tests run the whole server (servertest, the wiring of
// the binary) with SMART authorization on, on the store the suite runs on
// (PULSEWIRE_TEST_STORE), and get their tokens from its token endpoint.

const (
	catSystem  = "http://terminology.hl7.org/CodeSystem/observation-category"
	vitalScope = "patient/Observation.rs?category=" + catSystem + "|vital-signs"
)

// storeOptions picks the store of the suite for a servertest server.
func storeOptions(t *testing.T) []servertest.Option {
	t.Helper()
	if os.Getenv("PULSEWIRE_TEST_STORE") == "postgres" {
		return []servertest.Option{servertest.Postgres(t)}
	}
	return nil
}

// authFixture is a server with authorization on and, in tenant acme, the
// patients p1 and p2 with Observations: p1 a vital sign, a lab result and a
// vital sign performed by p2 (so that its performer include is p2's); p2 a
// vital sign.
type authFixture struct {
	s    *servertest.Server
	base string // acme's FHIR base
	sys  string // a backend token with system/*.cruds
}

func newAuthFixture(t *testing.T, opts ...servertest.Option) *authFixture {
	t.Helper()
	s := servertest.Start(t, append(append(storeOptions(t), servertest.WithAuth()), opts...)...)
	f := &authFixture{s: s, base: s.FHIRBase("acme")}
	f.sys = s.BackendToken(t, "acme", "system/*.cruds")
	for _, p := range []string{"p1", "p2"} {
		f.put(t, f.sys, "Patient/"+p, `{"resourceType":"Patient","id":"`+p+`","name":[{"family":"Test"}]}`, http.StatusCreated)
	}
	f.put(t, f.sys, "Observation/p1-vital", obsJSON("p1-vital", "p1", "vital-signs", "8867-4", ""), http.StatusCreated)
	f.put(t, f.sys, "Observation/p1-lab", obsJSON("p1-lab", "p1", "laboratory", "2345-7", ""), http.StatusCreated)
	f.put(t, f.sys, "Observation/p1-perf", obsJSON("p1-perf", "p1", "vital-signs", "8310-5", `"performer":[{"reference":"Patient/p2"}]`), http.StatusCreated)
	f.put(t, f.sys, "Observation/p2-vital", obsJSON("p2-vital", "p2", "vital-signs", "8867-4", ""), http.StatusCreated)
	return f
}

// obsJSON is an Observation of patient with a category and LOINC code;
// extra adds top-level members.
func obsJSON(id, patient, category, code, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	idMember := ""
	if id != "" {
		idMember = `"id":"` + id + `",`
	}
	return `{"resourceType":"Observation",` + idMember + `"status":"final",` +
		`"category":[{"coding":[{"system":"` + catSystem + `","code":"` + category + `"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"subject":{"reference":"Patient/` + patient + `"},` +
		`"effectiveDateTime":"2026-01-02T03:04:05Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}` + extra + `}`
}

// consentJSON is an active privacy Consent of patient whose base
// provision is deny (opt-out of all sharing).
func consentJSON(id, patient string) string {
	return `{"resourceType":"Consent","id":"` + id + `","status":"active",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],` +
		`"patient":{"reference":"Patient/` + patient + `"},` +
		`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},` +
		`"provision":{"type":"deny"}}`
}

func (f *authFixture) req(t *testing.T, tok, method, rel, body string) *response {
	t.Helper()
	return do(t, method, f.base+"/"+rel, body, "Authorization", "Bearer "+tok)
}

func (f *authFixture) put(t *testing.T, tok, ref, body string, want int) {
	t.Helper()
	mustStatus(t, f.req(t, tok, http.MethodPut, ref, body), want)
}

// ids returns the Type/id of a Bundle's entries of mode (match, include),
// sorted.
func ids(t *testing.T, r *response, mode string) []string {
	t.Helper()
	var out []string
	for _, e := range entries(r.json(t)) {
		if mode == "" || str(e, "search", "mode") == mode {
			out = append(out, str(e, "resource", "resourceType")+"/"+str(e, "resource", "id"))
		}
	}
	slices.Sort(out)
	return out
}

// mustDeny checks a 403 OperationOutcome with issue code forbidden and the
// reason code in its details.
func mustDeny(t *testing.T, r *response, reason string) {
	t.Helper()
	mustStatus(t, r, http.StatusForbidden)
	oo := r.json(t)
	got := []string{str(oo, "resourceType"), str(oo, "issue", 0, "code"),
		str(oo, "issue", 0, "details", "coding", 0, "system"), str(oo, "issue", 0, "details", "coding", 0, "code")}
	want := []string{"OperationOutcome", "forbidden", "urn:pulsewire:authz-reason", reason}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("denial (-want +got):\n%s\n%s", d, r.body)
	}
}

func TestAuthTokensRequired(t *testing.T) {
	f := newAuthFixture(t)
	s := f.s

	t.Run("no token", func(t *testing.T) {
		r := do(t, http.MethodGet, f.base+"/Observation/p1-vital", "")
		mustStatus(t, r, http.StatusUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="fhir"` {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		if str(r.json(t), "resourceType") != "OperationOutcome" {
			t.Errorf("401 body is not an OperationOutcome: %s", r.body)
		}
	})
	t.Run("invalid token", func(t *testing.T) {
		r := f.req(t, "not.a.token", http.MethodGet, "Observation", "")
		mustStatus(t, r, http.StatusUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
	t.Run("another tenant's token", func(t *testing.T) {
		globex := s.BackendToken(t, "globex", "system/*.rs")
		mustStatus(t, f.req(t, globex, http.MethodGet, "Observation/p1-vital", ""), http.StatusUnauthorized)
		// The same token works on its own tenant.
		mustStatus(t, do(t, http.MethodGet, s.FHIRBase("globex")+"/Observation", "", "Authorization", "Bearer "+globex), http.StatusOK)
	})
	t.Run("public documents", func(t *testing.T) {
		for _, u := range []string{f.base + "/metadata", f.base + "/.well-known/smart-configuration"} {
			mustStatus(t, do(t, http.MethodGet, u, ""), http.StatusOK)
		}
	})
	t.Run("every data route", func(t *testing.T) {
		for _, rt := range []struct{ method, rel string }{
			{"GET", "Observation"}, {"POST", "Observation/_search"}, {"GET", "Observation/$lastn"},
			{"GET", "_history"}, {"GET", "Observation/_history"}, {"GET", "Observation/p1-vital/_history"},
			{"GET", "Observation/p1-vital/_history/1"}, {"PUT", "Observation/p1-vital"}, {"DELETE", "Observation/p1-vital"},
			{"POST", "Observation"}, {"PUT", "Observation?identifier=x"}, {"POST", ""},
		} {
			if r := do(t, rt.method, f.base+"/"+rt.rel, ""); r.status != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, want 401", rt.method, rt.rel, r.status)
			}
		}
	})
}

func TestAuthPatientScope(t *testing.T) {
	f := newAuthFixture(t)
	tok := f.s.LaunchToken(t, "acme", "p1", "patient/Observation.rs", "patient/Patient.rs")

	mustStatus(t, f.req(t, tok, http.MethodGet, "Observation/p1-vital", ""), http.StatusOK)
	mustStatus(t, f.req(t, tok, http.MethodGet, "Observation/p1-vital/_history/1", ""), http.StatusOK)
	mustDeny(t, f.req(t, tok, http.MethodGet, "Observation/p2-vital", ""), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodGet, "Observation/p2-vital/_history/1", ""), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodGet, "Patient/p2", ""), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodGet, "Observation?patient=p2", ""), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodGet, "Encounter", ""), "scope-missing")

	searches := []struct {
		name, query, mode string
		want              []string
	}{
		{"narrowed to the launch patient", "Observation", "match",
			[]string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital"}},
		{"POST _search", "", "match", []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital"}},
		{"own patient named", "Observation?subject=Patient/p1&code=http://loinc.org|8867-4", "match", []string{"Observation/p1-vital"}},
		{"include of another patient dropped", "Observation?_include=Observation:performer", "include", nil},
		{"include of the patient kept", "Observation?_include=Observation:subject", "include", []string{"Patient/p1"}},
		{"revinclude filtered", "Patient?_revinclude=Observation:performer", "include", nil},
		{"patients", "Patient", "match", []string{"Patient/p1"}},
		{"lastn", "Observation/$lastn?max=5", "match", []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital"}},
	}
	for _, tc := range searches {
		t.Run(tc.name, func(t *testing.T) {
			var r *response
			if tc.query == "" {
				r = do(t, http.MethodPost, f.base+"/Observation/_search", "", "Authorization", "Bearer "+tok,
					"Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = f.req(t, tok, http.MethodGet, tc.query, "")
			}
			mustStatus(t, r, http.StatusOK)
			if d := cmp.Diff(tc.want, ids(t, r, tc.mode)); d != "" {
				t.Errorf("%s entries (-want +got):\n%s", tc.mode, d)
			}
		})
	}
	t.Run("exact narrowing keeps the total", func(t *testing.T) {
		r := f.req(t, tok, http.MethodGet, "Observation?_summary=count", "")
		mustStatus(t, r, http.StatusOK)
		if got := path(r.json(t), "total"); got != float64(3) {
			t.Errorf("total = %v, want 3", got)
		}
	})
	t.Run("history", func(t *testing.T) {
		f.put(t, f.sys, "Observation/p2-vital", obsJSON("p2-vital", "p2", "vital-signs", "8867-4", `"note":[{"text":"v2"}]`), http.StatusOK)
		for _, tc := range []struct {
			rel  string
			want []string
		}{
			{"Observation/_history", []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital"}},
			{"_history", []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital", "Patient/p1"}},
			{"Observation/p2-vital/_history", nil},
		} {
			// System-level history takes a wildcard scope: with scopes
			// on named types it is denied, with patient/*.rs filtered.
			tok := tok
			if tc.rel == "_history" {
				mustDeny(t, f.req(t, tok, http.MethodGet, tc.rel, ""), "scope-missing")
				tok = f.s.LaunchToken(t, "acme", "p1", "patient/*.rs")
			}
			r := f.req(t, tok, http.MethodGet, tc.rel, "")
			mustStatus(t, r, http.StatusOK)
			// The AuditEvents of p1's data are in p1's compartment too
			// (audit_test.go checks them); this is about the data.
			got := slices.DeleteFunc(ids(t, r, ""), func(id string) bool { return strings.HasPrefix(id, "AuditEvent/") })
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("%s (-want +got):\n%s", tc.rel, d)
			}
			if _, has := r.json(t)["total"]; has {
				t.Errorf("%s: a filtered history has a total", tc.rel)
			}
		}
	})
	t.Run("no write without c or u", func(t *testing.T) {
		mustDeny(t, f.req(t, tok, http.MethodPost, "Observation", obsJSON("", "p1", "vital-signs", "8867-4", "")), "scope-missing")
		mustDeny(t, f.req(t, tok, http.MethodPut, "Observation/p1-vital", obsJSON("p1-vital", "p1", "vital-signs", "8867-4", "")), "scope-missing")
		mustDeny(t, f.req(t, tok, http.MethodDelete, "Observation/p1-vital", ""), "scope-missing")
	})
}

func TestAuthGranularScope(t *testing.T) {
	f := newAuthFixture(t)
	tok := f.s.LaunchToken(t, "acme", "p1", vitalScope)
	r := f.req(t, tok, http.MethodGet, "Observation", "")
	mustStatus(t, r, http.StatusOK)
	if d := cmp.Diff([]string{"Observation/p1-perf", "Observation/p1-vital"}, ids(t, r, "match")); d != "" {
		t.Errorf("search (-want +got):\n%s", d)
	}
	mustStatus(t, f.req(t, tok, http.MethodGet, "Observation/p1-vital", ""), http.StatusOK)
	mustDeny(t, f.req(t, tok, http.MethodGet, "Observation/p1-lab", ""), "scope-restriction")
	r = f.req(t, tok, http.MethodGet, "Observation?category=laboratory", "")
	mustStatus(t, r, http.StatusOK)
	if got := ids(t, r, "match"); len(got) != 0 {
		t.Errorf("laboratory search under a vital-signs scope: %v", got)
	}
	r = f.req(t, tok, http.MethodGet, "Observation/$lastn?max=3", "")
	mustStatus(t, r, http.StatusOK)
	if d := cmp.Diff([]string{"Observation/p1-perf", "Observation/p1-vital"}, ids(t, r, "match")); d != "" {
		t.Errorf("$lastn (-want +got):\n%s", d)
	}
}

func TestAuthPatientWrites(t *testing.T) {
	f := newAuthFixture(t)
	tok := f.s.LaunchToken(t, "acme", "p1", "patient/Observation.cruds")

	r := f.req(t, tok, http.MethodPost, "Observation", obsJSON("", "p1", "vital-signs", "8867-4", ""))
	mustStatus(t, r, http.StatusCreated)
	mustDeny(t, f.req(t, tok, http.MethodPost, "Observation", obsJSON("", "p2", "vital-signs", "8867-4", "")), "patient-not-in-context")
	// Update-as-create is a create; moving p1's Observation to p2, or
	// changing p2's, is not allowed.
	f.put(t, tok, "Observation/p1-new", obsJSON("p1-new", "p1", "vital-signs", "8867-4", ""), http.StatusCreated)
	mustDeny(t, f.req(t, tok, http.MethodPut, "Observation/p1-vital", obsJSON("p1-vital", "p2", "vital-signs", "8867-4", "")), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodPut, "Observation/p2-vital", obsJSON("p2-vital", "p1", "vital-signs", "8867-4", "")), "patient-not-in-context")
	mustDeny(t, f.req(t, tok, http.MethodDelete, "Observation/p2-vital", ""), "patient-not-in-context")
	mustStatus(t, f.req(t, tok, http.MethodDelete, "Observation/p1-new", ""), http.StatusNoContent)

	// Conditional create: the condition is a search; a match the caller
	// may not see fails it rather than creating a duplicate.
	f.put(t, f.sys, "Observation/p2-ident", obsJSON("p2-ident", "p2", "vital-signs", "8867-4", `"identifier":[{"system":"urn:test","value":"dup"}]`), http.StatusCreated)
	r = do(t, http.MethodPost, f.base+"/Observation", obsJSON("", "p1", "vital-signs", "8867-4", ""),
		"Authorization", "Bearer "+tok, "If-None-Exist", "identifier=urn:test|dup")
	mustDeny(t, r, "patient-not-in-context")
	r = f.req(t, tok, http.MethodPut, "Observation?identifier=urn:test|dup", obsJSON("", "p1", "vital-signs", "8867-4", ""))
	mustDeny(t, r, "patient-not-in-context")
}

func TestAuthBundles(t *testing.T) {
	f := newAuthFixture(t)
	tok := f.s.LaunchToken(t, "acme", "p1", "patient/Observation.cruds")
	mine := obsJSON("", "p1", "vital-signs", "8867-4", `"identifier":[{"system":"urn:test","value":"tx-1"}]`)
	theirs := obsJSON("", "p2", "vital-signs", "8867-4", `"identifier":[{"system":"urn:test","value":"tx-2"}]`)
	body := func(typ string) string {
		return bundleJSON(typ,
			entryJSON("urn:uuid:00000000-0000-4000-8000-000000000001", "POST", "Observation", mine, ""),
			entryJSON("urn:uuid:00000000-0000-4000-8000-000000000002", "POST", "Observation", theirs, ""),
			entryJSON("", "GET", "Observation/p2-vital", "", ""),
			entryJSON("", "GET", "Observation?code=http://loinc.org|8867-4", "", ""))
	}
	count := func(value string) int {
		r := f.req(t, f.sys, http.MethodGet, "Observation?identifier=urn:test|"+value, "")
		mustStatus(t, r, http.StatusOK)
		return len(ids(t, r, "match"))
	}

	r := do(t, http.MethodPost, f.base, body("transaction"), "Authorization", "Bearer "+tok)
	mustDeny(t, r, "patient-not-in-context")
	if n1, n2 := count("tx-1"), count("tx-2"); n1 != 0 || n2 != 0 {
		t.Fatalf("a denied transaction wrote %d and %d resources, want none", n1, n2)
	}

	r = do(t, http.MethodPost, f.base, body("batch"), "Authorization", "Bearer "+tok)
	mustStatus(t, r, http.StatusOK)
	var statuses []string
	for _, e := range entries(r.json(t)) {
		statuses = append(statuses, str(e, "response", "status"))
	}
	if d := cmp.Diff([]string{"201 Created", "403 Forbidden", "403 Forbidden", "200 OK"}, statuses); d != "" {
		t.Errorf("batch statuses (-want +got):\n%s", d)
	}
	if got := str(entries(r.json(t))[1], "response", "outcome", "issue", 0, "details", "coding", 0, "code"); got != "patient-not-in-context" {
		t.Errorf("batch entry 1 denial reason = %q", got)
	}
	search := path(entries(r.json(t))[3], "resource")
	var found []string
	for _, e := range entries(search.(map[string]any)) {
		found = append(found, str(e, "resource", "subject", "reference"))
	}
	slices.Sort(found)
	found = slices.Compact(found)
	if d := cmp.Diff([]string{"Patient/p1"}, found); d != "" {
		t.Errorf("batch search entry subjects (-want +got):\n%s", d)
	}
	if n1, n2 := count("tx-1"), count("tx-2"); n1 != 1 || n2 != 0 {
		t.Errorf("batch wrote %d and %d, want 1 and 0", n1, n2)
	}
}

func TestAuthConsent(t *testing.T) {
	f := newAuthFixture(t)
	doc := f.s.UserToken(t, "acme", "Practitioner/doc-1", "user/Observation.rs", "user/Patient.rs")
	visible := func(t *testing.T) []string {
		t.Helper()
		r := f.req(t, doc, http.MethodGet, "Observation", "")
		mustStatus(t, r, http.StatusOK)
		return ids(t, r, "match")
	}
	all := []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital", "Observation/p2-vital"}
	if d := cmp.Diff(all, visible(t)); d != "" {
		t.Fatalf("before any Consent (-want +got):\n%s", d)
	}
	// Deny, permit (the Consent deleted), deny again: each takes effect on
	// the very next request.
	for round, write := range []struct {
		method string
		status int
		want   []string
	}{
		{http.MethodPut, http.StatusCreated, []string{"Observation/p2-vital"}},
		{http.MethodDelete, http.StatusNoContent, all},
		{http.MethodPut, http.StatusCreated, []string{"Observation/p2-vital"}},
	} {
		body := ""
		if write.method == http.MethodPut {
			body = consentJSON("c1", "p1")
		}
		mustStatus(t, f.req(t, f.sys, write.method, "Consent/c1", body), write.status)
		if d := cmp.Diff(write.want, visible(t)); d != "" {
			t.Errorf("round %d, after %s Consent (-want +got):\n%s", round, write.method, d)
		}
		r := f.req(t, doc, http.MethodGet, "Observation/p1-vital", "")
		if write.method == http.MethodPut {
			mustDeny(t, r, "consent-deny")
			mustDeny(t, f.req(t, doc, http.MethodGet, "Observation?patient=p1", ""), "consent-deny")
		} else {
			mustStatus(t, r, http.StatusOK)
		}
	}
	// The total is left out where the narrowing is not exact (consents of
	// patients the query does not name).
	r := f.req(t, doc, http.MethodGet, "Observation?_total=accurate", "")
	mustStatus(t, r, http.StatusOK)
	if _, has := r.json(t)["total"]; has {
		t.Errorf("a filtered search reports a total: %s", r.body)
	}
	// A backend service is governed by Consent too (the tenant policy does
	// not let system scopes bypass it by default).
	r = f.req(t, f.s.BackendToken(t, "acme", "system/Observation.rs"), http.MethodGet, "Observation", "")
	mustStatus(t, r, http.StatusOK)
	if d := cmp.Diff([]string{"Observation/p2-vital"}, ids(t, r, "match")); d != "" {
		t.Errorf("backend search under p1's opt-out (-want +got):\n%s", d)
	}
}

func TestAuthSystemScope(t *testing.T) {
	f := newAuthFixture(t)
	tok := f.s.BackendToken(t, "acme", "system/Observation.rs")
	r := f.req(t, tok, http.MethodGet, "Observation", "")
	mustStatus(t, r, http.StatusOK)
	want := []string{"Observation/p1-lab", "Observation/p1-perf", "Observation/p1-vital", "Observation/p2-vital"}
	if d := cmp.Diff(want, ids(t, r, "match")); d != "" {
		t.Errorf("system search (-want +got):\n%s", d)
	}
	mustStatus(t, f.req(t, tok, http.MethodGet, "Observation/p2-vital", ""), http.StatusOK)
	mustDeny(t, f.req(t, tok, http.MethodGet, "Patient/p1", ""), "scope-missing")
	mustDeny(t, f.req(t, tok, http.MethodPost, "Observation", obsJSON("", "p1", "vital-signs", "8867-4", "")), "scope-missing")
}

func TestAuthIngestOperatorRoutes(t *testing.T) {
	f := newAuthFixture(t)
	u := f.s.URL + "/t/acme/ingest/dead-letters"
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"patient token", f.s.LaunchToken(t, "acme", "p1", "patient/Observation.rs"), http.StatusForbidden},
		{"system token without wildcard", f.s.BackendToken(t, "acme", "system/Observation.rs"), http.StatusForbidden},
		{"system wildcard token", f.s.BackendToken(t, "acme", "system/*.rs"), http.StatusOK},
		{"admin token", f.s.AdminToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.token != "" {
				hdr = []string{"Authorization", "Bearer " + tc.token}
			}
			mustStatus(t, do(t, http.MethodGet, u, "", hdr...), tc.want)
		})
	}
	// Writes need c or u: a read-only system token may not replay.
	r := do(t, http.MethodPost, f.s.URL+"/t/acme/ingest/associations", `{}`,
		"Authorization", "Bearer "+f.s.BackendToken(t, "acme", "system/*.rs"))
	mustStatus(t, r, http.StatusForbidden)
	// Device keys still authenticate readings, not access tokens.
	r = do(t, http.MethodPost, f.s.URL+"/t/acme/ingest/readings", `[]`, "Authorization", "Bearer "+f.sys)
	mustStatus(t, r, http.StatusUnauthorized)
}
