package smart_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

const (
	appRedirect = "https://app.example/callback"
	userPass    = "correct horse battery"
)

// setupApp registers a public app and a practitioner user in acme.
func setupApp(h *harness) {
	h.addClient("acme", smart.ClientSpec{ID: "growth-chart", Name: "Growth Chart", Type: registry.Public,
		RedirectURIs: []string{appRedirect},
		Scope:        "patient/Observation.rs patient/Patient.r user/Observation.rs"})
	h.addUser("acme", smart.UserSpec{Username: "dr.jones", Password: userPass, FHIRUser: "Practitioner/prac-1", Name: "Dr Jones"})
}

// fetchJWKS follows the OpenID discovery document to the tenant's keys.
func fetchJWKS(t *testing.T, h *harness, tenant string) jwk.Set {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.base(tenant)+"/.well-known/openid-configuration", nil)
	resp, b := h.do(req, nil)
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &disc) != nil {
		t.Fatalf("openid-configuration: %d %s", resp.StatusCode, b)
	}
	if disc.Issuer != h.base(tenant) {
		t.Errorf("issuer = %q, want %q", disc.Issuer, h.base(tenant))
	}
	req, _ = http.NewRequest(http.MethodGet, disc.JWKSURI, nil)
	resp, b = h.do(req, nil)
	set, err := jwk.Parse(b)
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("jwks: %d %v", resp.StatusCode, err)
	}
	return set
}

// verifyJWT checks token's RS256 signature against the tenant's JWKS and
// returns its header typ and claims.
func verifyJWT(t *testing.T, h *harness, tenant, token string) (string, map[string]any) {
	t.Helper()
	set := fetchJWKS(t, h, tenant)
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatalf("parsing JWT: %v", err)
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if alg, _ := hdr.Algorithm(); alg != jwa.RS256() {
		t.Errorf("alg = %v, want RS256", alg)
	}
	kid, _ := hdr.KeyID()
	key, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("kid %q not in the JWKS", kid)
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(jwa.RS256(), key))
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	typ, _ := hdr.Type()
	return typ, claims
}

// TestAuthorizationCodeFlow is a standalone launch of a public app by a
// practitioner: login page (a wrong password first), approval page listing
// the scopes and the patient picker, code, token response (fields and
// headers), id_token (signature and claims), the bearer check, and a code
// replay that is refused and revokes what the code issued.
func TestAuthorizationCodeFlow(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	verifier, challenge := pkce()
	scope := "launch/patient patient/Observation.rs patient/Patient.r openid fhirUser offline_access"
	params := h.authzParams("acme", "growth-chart", appRedirect, scope, challenge)
	params.Set("nonce", "n-0S6")
	b := h.browser()

	resp, page := b.get(h.auth("acme") + "/authorize?" + params.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Growth Chart") {
		t.Fatalf("authorize: %d\n%s", resp.StatusCode, page)
	}
	for _, hd := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(hd) == "" {
			t.Errorf("login page without %s", hd)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the login page carries a script")
	}
	req, csrf := hidden(t, page)
	resp, page = b.post(h.auth("acme")+"/login", url.Values{"req": {req}, "csrf": {csrf}, "username": {"dr.jones"}, "password": {"wrong password"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "not correct") || !strings.Contains(page, `name="password"`) {
		t.Fatalf("wrong password: %d, want the login page again with an error:\n%s", resp.StatusCode, page)
	}
	req, csrf = hidden(t, page)
	resp, page = b.post(h.auth("acme")+"/login", url.Values{"req": {req}, "csrf": {csrf}, "username": {"dr.jones"}, "password": {userPass}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Approve access") {
		t.Fatalf("login: %d\n%s", resp.StatusCode, page)
	}
	// The approval page lists every scope asked for and offers the tenant's patients.
	for _, want := range append(strings.Fields(scope), "Dr Jones", "Alpha Testpatient", `value="pat-1"`, `name="patient"`) {
		if !strings.Contains(page, want) {
			t.Errorf("approval page does not show %q", want)
		}
	}
	q := b.approve("acme", page, url.Values{"scope": strings.Fields(scope), "patient": {"pat-1"}})
	if q.Get("state") != "state-123" || q.Get("code") == "" {
		t.Fatalf("redirect query %v: want the code and state-123", q)
	}
	code := q.Get("code")

	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}}
	tr := h.token("acme", form)
	if tr.status != http.StatusOK {
		t.Fatalf("token: %d %v", tr.status, tr.body)
	}
	if got := []string{tr.header.Get("Cache-Control"), tr.header.Get("Pragma")}; !cmp.Equal(got, []string{"no-store", "no-cache"}) {
		t.Errorf("Cache-Control, Pragma = %v, want no-store, no-cache", got)
	}
	want := map[string]any{"token_type": "Bearer", "expires_in": float64(3600), "scope": scope, "patient": "pat-1"}
	got := map[string]any{}
	for k := range want {
		got[k] = tr.body[k]
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("token response (-want +got):\n%s", d)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token"} {
		if tr.str(k) == "" {
			t.Errorf("token response without %s", k)
		}
	}

	typ, idc := verifyJWT(t, h, "acme", tr.str("id_token"))
	wantID := map[string]any{"iss": h.base("acme"), "sub": "dr.jones", "aud": "growth-chart", "nonce": "n-0S6",
		"fhirUser": h.base("acme") + "/Practitioner/prac-1"}
	gotID := map[string]any{}
	for k := range wantID {
		gotID[k] = idc[k]
	}
	if aud, ok := idc["aud"].([]any); ok && len(aud) == 1 {
		gotID["aud"] = aud[0]
	}
	if d := cmp.Diff(wantID, gotID); d != "" {
		t.Errorf("id_token claims (-want +got):\n%s", d)
	}
	if typ != "JWT" {
		t.Errorf("id_token typ = %q, want JWT", typ)
	}
	typ, atc := verifyJWT(t, h, "acme", tr.str("access_token"))
	if typ != "at+jwt" || atc["tenant"] != "acme" || atc["client_id"] != "growth-chart" || atc["aud"] != h.base("acme") {
		t.Errorf("access token typ %q claims %v", typ, atc)
	}

	status, _, g := h.whoami("acme", tr.str("access_token"))
	if status != http.StatusOK {
		t.Fatalf("bearer check: %d", status)
	}
	wantGrant := &smart.Grant{Tenant: "acme", ClientID: "growth-chart", Subject: "dr.jones", FHIRUser: "Practitioner/prac-1",
		Scopes: strings.Fields(scope), Patient: "pat-1", Issuer: h.base("acme")}
	if d := cmp.Diff(wantGrant, g, cmpopts.IgnoreFields(smart.Grant{}, "TokenID", "ExpiresAt")); d != "" {
		t.Errorf("grant (-want +got):\n%s", d)
	}
	// The id_token is not an access token.
	if status, _, _ := h.whoami("acme", tr.str("id_token")); status != http.StatusUnauthorized {
		t.Errorf("id_token as bearer: %d, want 401", status)
	}

	// Code replay: refused, and what the code issued is revoked.
	if again := h.token("acme", form); again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
		t.Errorf("code reuse: %d %v, want 400 invalid_grant", again.status, again.body)
	}
	if status, _, _ := h.whoami("acme", tr.str("access_token")); status != http.StatusUnauthorized {
		t.Errorf("access token after code replay: %d, want 401 (revoked)", status)
	}
	if r := h.token("acme", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}, "client_id": {"growth-chart"}}); r.status != http.StatusBadRequest {
		t.Errorf("refresh token after code replay: %d %v, want 400", r.status, r.body)
	}
}

// codeFor runs a whole authorization (sign-in and approval of every scope
// offered) and returns the code and verifier.
func codeFor(t *testing.T, h *harness, tenant, client, redirect, scope string, extra url.Values, approveExtra url.Values) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	params := h.authzParams(tenant, client, redirect, scope, challenge)
	for k, v := range extra {
		params[k] = v
	}
	b := h.browser()
	page := b.signIn(tenant, params, "dr.jones", userPass)
	form := url.Values{"scope": strings.Fields(scope)}
	for k, v := range approveExtra {
		form[k] = v
	}
	q := b.approve(tenant, page, form)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), verifier
}

func TestEHRLaunch(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	resp, m := h.admin(http.MethodPost, "/t/acme/auth/launch", map[string]string{"patient": "pat-2", "encounter": "enc-9"})
	launch, _ := m["launch"].(string)
	if resp.StatusCode != http.StatusCreated || launch == "" {
		t.Fatalf("creating launch context: %d %v", resp.StatusCode, m)
	}
	scope := "launch patient/Observation.rs openid fhirUser"
	verifier, challenge := pkce()
	params := h.authzParams("acme", "growth-chart", appRedirect, scope, challenge)
	params.Set("launch", launch)
	b := h.browser()
	page := b.signIn("acme", params, "dr.jones", userPass)
	if strings.Contains(page, `name="patient"`) {
		t.Error("an EHR launch shows the patient picker; the context comes from the launch")
	}
	q := b.approve("acme", page, url.Values{"scope": strings.Fields(scope)})
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	if tr.status != http.StatusOK {
		t.Fatalf("token: %d %v", tr.status, tr.body)
	}
	if d := cmp.Diff([]string{"pat-2", "enc-9"}, []string{tr.str("patient"), tr.str("encounter")}); d != "" {
		t.Errorf("launch context in the token response (-want +got):\n%s", d)
	}
	if tr.str("refresh_token") != "" {
		t.Error("a refresh token without offline_access or online_access")
	}
	_, _, g := h.whoami("acme", tr.str("access_token"))
	if g == nil || g.Patient != "pat-2" || g.Encounter != "enc-9" {
		t.Errorf("grant %+v: want patient pat-2, encounter enc-9", g)
	}

	// An unknown launch id goes back to the app as invalid_request.
	params.Set("launch", "no-such-launch")
	resp, _ = b.get(h.auth("acme") + "/authorize?" + params.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "invalid_request" {
		t.Errorf("unknown launch: %d %s, want a redirect with invalid_request", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestStandaloneLaunchPatientUser: a patient signing in is the patient in
// context, without a picker.
func TestStandaloneLaunchPatientUser(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	h.addUser("acme", smart.UserSpec{Username: "alpha", Password: userPass, FHIRUser: "Patient/pat-1"})
	verifier, challenge := pkce()
	scope := "launch/patient patient/Observation.rs"
	b := h.browser()
	page := b.signIn("acme", h.authzParams("acme", "growth-chart", appRedirect, scope, challenge), "alpha", userPass)
	if strings.Contains(page, `name="patient"`) {
		t.Error("a patient user is shown the patient picker")
	}
	q := b.approve("acme", page, url.Values{"scope": strings.Fields(scope)})
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	if tr.status != http.StatusOK || tr.str("patient") != "pat-1" {
		t.Errorf("token: %d patient %q, want pat-1", tr.status, tr.str("patient"))
	}
}

// TestApprovalChoices: unchecking scopes narrows the grant; a picker
// without a chosen patient asks again; deny goes back as access_denied.
func TestApprovalChoices(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	scope := "launch/patient patient/Observation.rs patient/Patient.r"
	_, challenge := pkce()
	params := h.authzParams("acme", "growth-chart", appRedirect, scope, challenge)

	b := h.browser()
	page := b.signIn("acme", params, "dr.jones", userPass)
	req, csrf := hidden(t, page)
	resp, page := b.post(h.auth("acme")+"/approve", url.Values{"req": {req}, "csrf": {csrf}, "action": {"approve"},
		"scope": strings.Fields(scope), "patient": {"not-a-patient"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Select a patient") {
		t.Fatalf("approve with an unknown patient: %d, want the page again asking for a patient:\n%s", resp.StatusCode, page)
	}
	// Searching narrows the picker.
	req, csrf = hidden(t, page)
	_, page = b.post(h.auth("acme")+"/approve", url.Values{"req": {req}, "csrf": {csrf}, "action": {"search"}, "q": {"beta"}})
	if !strings.Contains(page, "Beta Testpatient") || strings.Contains(page, "Alpha Testpatient") {
		t.Errorf("patient search for beta shows:\n%s", page)
	}
	q := b.approve("acme", page, url.Values{"scope": {"launch/patient", "patient/Observation.rs"}, "patient": {"pat-2"}})
	code := q.Get("code")
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {"wrong-verifier-wrong-verifier-wrong-verifier-1"}, "client_id": {"growth-chart"}})
	if tr.status != http.StatusBadRequest || tr.str("error") != "invalid_grant" {
		t.Errorf("wrong code_verifier: %d %v, want 400 invalid_grant", tr.status, tr.body)
	}

	b = h.browser()
	page = b.signIn("acme", params, "dr.jones", userPass)
	req, csrf = hidden(t, page)
	resp, _ = b.post(h.auth("acme")+"/approve", url.Values{"req": {req}, "csrf": {csrf}, "action": {"deny"}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "state-123" {
		t.Errorf("deny: %d %s, want access_denied with the state", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestNarrowedApproval(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	scope := "patient/Observation.rs patient/Patient.r"
	verifier, challenge := pkce()
	b := h.browser()
	page := b.signIn("acme", h.authzParams("acme", "growth-chart", appRedirect, scope, challenge), "dr.jones", userPass)
	q := b.approve("acme", page, url.Values{"scope": {"patient/Patient.r"}})
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	if tr.str("scope") != "patient/Patient.r" {
		t.Errorf("scope = %q, want only the approved patient/Patient.r", tr.str("scope"))
	}
}

// TestPageCSRF: the login form needs the CSRF token of the page and the
// cookie of the browser that opened it.
func TestPageCSRF(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	_, challenge := pkce()
	params := h.authzParams("acme", "growth-chart", appRedirect, "patient/Observation.rs", challenge)
	cases := []struct {
		name string
		send func(b *browser, req, csrf string) (*http.Response, string)
	}{
		{"wrong csrf field", func(b *browser, req, _ string) (*http.Response, string) {
			return b.post(h.auth("acme")+"/login", url.Values{"req": {req}, "csrf": {"forged"}, "username": {"dr.jones"}, "password": {userPass}})
		}},
		{"another browser (no cookie)", func(_ *browser, req, csrf string) (*http.Response, string) {
			return h.browser().post(h.auth("acme")+"/login", url.Values{"req": {req}, "csrf": {csrf}, "username": {"dr.jones"}, "password": {userPass}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := h.browser()
			_, page := b.get(h.auth("acme") + "/authorize?" + params.Encode())
			req, csrf := hidden(t, page)
			resp, body := c.send(b, req, csrf)
			if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "Approve access") {
				t.Errorf("%d, want 403 and no approval page", resp.StatusCode)
			}
		})
	}
}

// TestAuthorizeErrors: errors before the client and redirect URI are
// trusted are shown as a page; after, they go back to the app with the
// state.
func TestAuthorizeErrors(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	_, challenge := pkce()
	cases := []struct {
		name      string
		mutate    func(url.Values)
		wantPage  bool   // an error page (400), no redirect
		wantError string // else the error code sent to the redirect URI
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "nope") }, true, ""},
		{"unregistered redirect_uri", func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }, true, ""},
		{"redirect_uri prefix only", func(v url.Values) { v.Set("redirect_uri", appRedirect+"/more") }, true, ""},
		{"plain PKCE", func(v url.Values) {
			v.Set("code_challenge_method", "plain")
			v.Set("code_challenge", strings.Repeat("a", 43))
		}, false, "invalid_request"},
		{"no code_challenge_method", func(v url.Values) { v.Del("code_challenge_method") }, false, "invalid_request"},
		{"no code_challenge", func(v url.Values) { v.Del("code_challenge") }, false, "invalid_request"},
		{"malformed code_challenge", func(v url.Values) { v.Set("code_challenge", "short") }, false, "invalid_request"},
		{"wrong aud", func(v url.Values) { v.Set("aud", "https://other.example/fhir") }, false, "invalid_request"},
		{"aud of another tenant", func(v url.Values) { v.Set("aud", h.base("globex")) }, false, "invalid_request"},
		{"no aud", func(v url.Values) { v.Del("aud") }, false, "invalid_request"},
		{"response_type token", func(v url.Values) { v.Set("response_type", "token") }, false, "unsupported_response_type"},
		{"launch scope without launch", func(v url.Values) { v.Set("scope", "launch patient/Observation.rs") }, false, "invalid_request"},
		{"no grantable scope", func(v url.Values) { v.Set("scope", "system/Observation.rs") }, false, "invalid_scope"},
		{"repeated parameter", func(v url.Values) { v.Add("scope", "patient/Patient.r") }, false, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := h.authzParams("acme", "growth-chart", appRedirect, "patient/Observation.rs", challenge)
			c.mutate(params)
			resp, body := h.browser().get(h.auth("acme") + "/authorize?" + params.Encode())
			if c.wantPage {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "Authorization failed") {
					t.Errorf("%d Location %q, want a 400 error page", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), appRedirect+"?") {
				t.Fatalf("%d Location %q, want a redirect to the app", resp.StatusCode, resp.Header.Get("Location"))
			}
			got := []string{loc.Query().Get("error"), loc.Query().Get("state")}
			if d := cmp.Diff([]string{c.wantError, "state-123"}, got); d != "" {
				t.Errorf("error and state (-want +got):\n%s", d)
			}
		})
	}
	// Missing state: the error still goes back, without state.
	params := h.authzParams("acme", "growth-chart", appRedirect, "patient/Observation.rs", challenge)
	params.Del("state")
	resp, _ := h.browser().get(h.auth("acme") + "/authorize?" + params.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("error") != "invalid_request" {
		t.Errorf("no state: Location %q, want invalid_request", resp.Header.Get("Location"))
	}
}

// TestAuthorizePost: authorize-post sends the same parameters as a form.
func TestAuthorizePost(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	_, challenge := pkce()
	resp, page := h.browser().post(h.auth("acme")+"/authorize", h.authzParams("acme", "growth-chart", appRedirect, "patient/Observation.rs", challenge))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Errorf("POST authorize: %d, want the login page", resp.StatusCode)
	}
}

// TestTokenErrors covers the authorization_code grant's refusals.
func TestTokenErrors(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	h.addClient("acme", smart.ClientSpec{ID: "other-app", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "patient/Observation.rs"})
	cases := []struct {
		name       string
		mutate     func(url.Values)
		wantStatus int
		wantError  string
	}{
		{"wrong redirect_uri", func(v url.Values) { v.Set("redirect_uri", appRedirect+"2") }, 400, "invalid_grant"},
		{"missing redirect_uri", func(v url.Values) { v.Del("redirect_uri") }, 400, "invalid_request"},
		{"missing code_verifier", func(v url.Values) { v.Del("code_verifier") }, 400, "invalid_request"},
		{"plain verifier (the challenge itself)", nil, 400, "invalid_grant"},
		{"code of another client", func(v url.Values) { v.Set("client_id", "other-app") }, 400, "invalid_grant"},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, 401, "invalid_client"},
		{"no client", func(v url.Values) { v.Del("client_id") }, 401, "invalid_client"},
		{"unsupported grant_type", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"no grant_type", func(v url.Values) { v.Del("grant_type") }, 400, "invalid_request"},
		{"unknown code", func(v url.Values) { v.Set("code", "forged") }, 400, "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, verifier := codeFor(t, h, "acme", "growth-chart", appRedirect, "patient/Observation.rs", nil, nil)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
				"code_verifier": {verifier}, "client_id": {"growth-chart"}}
			if c.mutate != nil {
				c.mutate(form)
			} else {
				form.Set("code_verifier", s256(verifier)) // the challenge itself, as with plain PKCE
			}
			tr := h.token("acme", form)
			if tr.status != c.wantStatus || tr.str("error") != c.wantError {
				t.Errorf("%d %v, want %d %s", tr.status, tr.body, c.wantStatus, c.wantError)
			}
			if tr.header.Get("Cache-Control") != "no-store" {
				t.Error("error response without Cache-Control: no-store")
			}
			if c.wantStatus == http.StatusUnauthorized && tr.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Codes expire: a code used after its TTL is refused.
	t.Run("expired code", func(t *testing.T) {
		hx := newHarness(t, func(c *smart.Config) { c.CodeTTL = 50 * time.Millisecond })
		setupApp(hx)
		code, verifier := codeFor(t, hx, "acme", "growth-chart", appRedirect, "patient/Observation.rs", nil, nil)
		time.Sleep(120 * time.Millisecond)
		tr := hx.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
			"code_verifier": {verifier}, "client_id": {"growth-chart"}})
		if tr.status != http.StatusBadRequest || tr.str("error") != "invalid_grant" {
			t.Errorf("%d %v, want 400 invalid_grant", tr.status, tr.body)
		}
	})
}

// TestRefresh: rotation, narrowing, widening refused, reuse detection.
func TestRefresh(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	scope := "patient/Observation.rs patient/Patient.r offline_access"
	code, verifier := codeFor(t, h, "acme", "growth-chart", appRedirect, scope, nil, nil)
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	rt := tr.str("refresh_token")
	if rt == "" {
		t.Fatalf("no refresh token: %v", tr.body)
	}
	refresh := func(token, scope string) tokenResponse {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"growth-chart"}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return h.token("acme", f)
	}
	// Widening is refused, and does not use the token up.
	if r := refresh(rt, "patient/Observation.rs user/Observation.rs offline_access"); r.status != http.StatusBadRequest || r.str("error") != "invalid_scope" {
		t.Errorf("widening refresh: %d %v, want 400 invalid_scope", r.status, r.body)
	}
	// Another client cannot use it.
	h.addClient("acme", smart.ClientSpec{ID: "thief", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "patient/Observation.rs"})
	if r := h.token("acme", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"thief"}}); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Errorf("refresh by another client: %d %v, want invalid_grant", r.status, r.body)
	}
	r1 := refresh(rt, "patient/Observation.rs offline_access")
	if r1.status != http.StatusOK || r1.str("scope") != "patient/Observation.rs offline_access" || r1.str("refresh_token") == "" {
		t.Fatalf("narrowing refresh: %d %v", r1.status, r1.body)
	}
	if r1.header.Get("Cache-Control") != "no-store" {
		t.Error("refresh response without Cache-Control: no-store")
	}
	_, _, g := h.whoami("acme", r1.str("access_token"))
	if g == nil || !cmp.Equal(g.Scopes, []string{"patient/Observation.rs", "offline_access"}) {
		t.Errorf("grant after narrowing: %+v", g)
	}
	// The narrowed grant stays narrowed: asking back for Patient.r is widening.
	if r := refresh(r1.str("refresh_token"), scope); r.status != http.StatusBadRequest || r.str("error") != "invalid_scope" {
		t.Errorf("widening back after narrowing: %d %v, want invalid_scope", r.status, r.body)
	}
	r2 := refresh(r1.str("refresh_token"), "")
	if r2.status != http.StatusOK || r2.str("scope") != "patient/Observation.rs offline_access" {
		t.Fatalf("refresh without scope: %d %v", r2.status, r2.body)
	}
	// Reusing a rotated token fails and revokes the family: the newest token dies too.
	if r := refresh(r1.str("refresh_token"), ""); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Errorf("reused refresh token: %d %v, want invalid_grant", r.status, r.body)
	}
	if r := refresh(r2.str("refresh_token"), ""); r.status != http.StatusBadRequest {
		t.Errorf("refresh token of a revoked family: %d %v, want 400", r.status, r.body)
	}
}

func TestDiscovery(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodGet, h.base("acme")+"/.well-known/smart-configuration", nil)
	req.Header.Set("Accept", "text/html") // SMART: JSON whatever Accept says
	resp, b := h.do(req, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("smart-configuration: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("smart-configuration is not readable cross-origin (CORS)")
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	auth := h.auth("acme")
	req, _ = http.NewRequest(http.MethodOptions, auth+"/token", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, _ := h.do(req, nil); resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("token preflight: %d %v", resp.StatusCode, resp.Header)
	}
	want := map[string]any{
		"issuer": h.base("acme"), "authorization_endpoint": auth + "/authorize", "token_endpoint": auth + "/token",
		"jwks_uri": auth + "/jwks", "introspection_endpoint": auth + "/introspect", "revocation_endpoint": auth + "/revoke",
		"code_challenge_methods_supported": []any{"S256"},
		"grant_types_supported":            []any{"authorization_code", "refresh_token", "client_credentials"},
	}
	got := map[string]any{}
	for k := range want {
		got[k] = doc[k]
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("smart-configuration (-want +got):\n%s", d)
	}
	caps, _ := doc["capabilities"].([]any)
	for _, c := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
		"client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient", "permission-v1",
		"permission-v2", "permission-patient", "permission-user", "sso-openid-connect", "authorize-post"} {
		if !slices.Contains(caps, any(c)) {
			t.Errorf("capability %s missing", c)
		}
	}
	set := fetchJWKS(t, h, "acme")
	if set.Len() != 1 {
		t.Fatalf("JWKS has %d keys, want 1", set.Len())
	}
	k, _ := set.Key(0)
	if kid, _ := k.KeyID(); kid == "" {
		t.Error("published key without kid")
	}
	if priv, _ := jwk.IsPrivateKey(k); priv {
		t.Error("the JWKS publishes a private key")
	}
	// Unknown tenants have no authorization server.
	req, _ = http.NewRequest(http.MethodGet, h.base("nosuch")+"/.well-known/smart-configuration", nil)
	if resp, _ := h.do(req, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown tenant: %d, want 404", resp.StatusCode)
	}
}
