package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/pulsewire/pulsewire/server/servertest"
	"github.com/pulsewire/pulsewire/server/servertest/webdriver"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// TestBrowserLoginAndApproval drives SMART's authorization code flow
// (standalone launch of a public app with PKCE S256) through the login,
// approval and patient-picker pages in headless Chromium, against the
// whole server: a wrong password shows an error and sends nothing to the
// app; the approval page lists the scopes asked for; approving with a
// patient picked lands the browser on the app's redirect URI with a code
// and the state, and the code (with the verifier) buys tokens that carry
// that patient and read it over FHIR REST. Denying sends access_denied.
func TestBrowserLoginAndApproval(t *testing.T) {
	wd := webdriver.Start(t) // first: skip before starting anything else
	s := servertest.Start(t, servertest.WithAuth())
	const tenant = "acme"

	sys := s.BackendToken(t, tenant, "system/*.cruds")
	for id, name := range map[string]string{"bw-ada": `{"given":["Ada"],"family":"Quinn"}`, "bw-bob": `{"given":["Bob"],"family":"Stone"}`} {
		body := `{"resourceType":"Patient","id":"` + id + `","name":[` + name + `]}`
		if st, b := call(t, http.MethodPut, s.FHIRBase(tenant)+"/Patient/"+id, sys, body); st != http.StatusCreated {
			t.Fatalf("PUT Patient/%s: %d %s", id, st, b)
		}
	}

	app := newBrowserCallback(t)
	const (
		clientID = "vitals-viewer"
		username = "nurse.kim"
		password = "correct horse battery"
	)
	scopes := []string{"launch/patient", "openid", "fhirUser", "patient/*.rs"}
	browserAdmin(t, s, tenant, "/admin/clients", smart.ClientSpec{ID: clientID, Name: "Vitals Viewer", Type: registry.Public,
		RedirectURIs: []string{app.redirect}, Scope: strings.Join(scopes, " ")})
	browserAdmin(t, s, tenant, "/admin/users", smart.UserSpec{Username: username, Password: password,
		FHIRUser: "Practitioner/kim", Name: "Nurse Kim"})

	sess := wd.NewSession(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// start sends the browser to the authorization endpoint as the app
	// would, and returns the state and the PKCE verifier.
	start := func(p browserPage) (state, verifier string) {
		p.t.Helper()
		state, verifier = "st-"+browserRandom(8), browserRandom(32)
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {app.redirect},
			"scope": {strings.Join(scopes, " ")}, "state": {state}, "aud": {s.FHIRBase(tenant)},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		p.navigate(s.AuthBase(tenant) + "/authorize?" + q.Encode())
		if h1 := p.text("h1"); h1 != "Sign in" {
			p.t.Fatalf("authorize: page %q, want the sign-in page", h1)
		}
		if !strings.Contains(p.text("body"), "Vitals Viewer") {
			p.t.Error("the sign-in page does not name the app")
		}
		return state, verifier
	}
	signIn := func(p browserPage, pass string) {
		p.t.Helper()
		p.typeInto("#username", username)
		p.typeInto("#password", pass)
		p.submit(`form button[type="submit"]`)
	}

	t.Run("approve", func(t *testing.T) {
		p := browserPage{t: t, ctx: ctx, s: sess}
		state, verifier := start(p)

		signIn(p, "not the password")
		if msg := p.text(".error"); msg != "The username or password is not correct." {
			t.Errorf("wrong password: error %q", msg)
		}
		if h1 := p.text("h1"); h1 != "Sign in" {
			t.Fatalf("wrong password: page %q, want the sign-in page again", h1)
		}
		if u := p.url(); !strings.HasPrefix(u, s.AuthBase(tenant)+"/") {
			t.Errorf("wrong password: browser left the server for %s", u)
		}
		app.none(t, "after a wrong password")

		signIn(p, password)
		if h1 := p.text("h1"); h1 != "Approve access" {
			t.Fatalf("sign-in: page %q, want the approval page", h1)
		}
		if !strings.Contains(p.text("body"), "Signed in as Nurse Kim") {
			t.Error("the approval page does not say who is signed in")
		}
		if d := cmp.Diff(slices.Sorted(slices.Values(scopes)), slices.Sorted(slices.Values(p.texts("ul.scopes li code")))); d != "" {
			t.Errorf("scopes listed on the approval page (-want +got):\n%s", d)
		}
		for _, box := range p.all(`ul.scopes input[name="scope"]`) {
			if v, err := box.Property(ctx, "checked"); err != nil || string(v) != "true" {
				t.Errorf("a scope checkbox is not checked (%s, %v)", v, err)
			}
		}
		want := []string{"Ada Quinn (bw-ada)", "Bob Stone (bw-bob)", "Select a patient"}
		if d := cmp.Diff(want, slices.Sorted(slices.Values(p.texts("#patient option")))); d != "" {
			t.Errorf("patient picker (-want +got):\n%s", d)
		}
		p.click(`#patient option[value="bw-ada"]`)
		p.submit(`button[name="action"][value="approve"]`)

		landed := p.waitURL(app.redirect)
		got := app.next(t)
		if d := cmp.Diff([]string{"code", "state"}, slices.Sorted(maps.Keys(got))); d != "" {
			t.Fatalf("redirect query keys (-want +got):\n%s\n%s", d, got)
		}
		if got.Get("state") != state || got.Get("code") == "" {
			t.Fatalf("redirect: state %q (want %q), code %q", got.Get("state"), state, got.Get("code"))
		}
		if lu, err := url.Parse(landed); err != nil || lu.Query().Get("code") != got.Get("code") {
			t.Errorf("browser URL %s does not carry the code the app received", landed)
		}

		tr := browserExchange(t, s, tenant, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
			"redirect_uri": {app.redirect}, "code_verifier": {verifier}, "client_id": {clientID}})
		if tr.TokenType != "Bearer" || tr.AccessToken == "" || tr.ExpiresIn <= 0 {
			t.Errorf("token response: token_type %q, expires_in %d, access_token set %t", tr.TokenType, tr.ExpiresIn, tr.AccessToken != "")
		}
		if tr.Patient != "bw-ada" {
			t.Errorf("token response patient = %q, want the one picked, bw-ada", tr.Patient)
		}
		if d := cmp.Diff(slices.Sorted(slices.Values(scopes)), slices.Sorted(slices.Values(strings.Fields(tr.Scope)))); d != "" {
			t.Errorf("token response scope (-want +got):\n%s", d)
		}
		claims := browserVerifyJWT(t, s, tenant, tr.IDToken)
		wantClaims := map[string]any{"iss": s.FHIRBase(tenant), "sub": username, "aud": clientID,
			"fhirUser": s.FHIRBase(tenant) + "/Practitioner/kim"}
		gotClaims := map[string]any{}
		for k := range wantClaims {
			gotClaims[k] = claims[k]
		}
		if aud, ok := claims["aud"].([]any); ok && len(aud) == 1 {
			gotClaims["aud"] = aud[0]
		}
		if d := cmp.Diff(wantClaims, gotClaims); d != "" {
			t.Errorf("id_token claims (-want +got):\n%s", d)
		}

		st, b := call(t, http.MethodGet, s.FHIRBase(tenant)+"/Patient/bw-ada", tr.AccessToken, "")
		var pat struct{ ResourceType, ID string }
		if st != http.StatusOK || json.Unmarshal(b, &pat) != nil || pat.ResourceType != "Patient" || pat.ID != "bw-ada" {
			t.Errorf("GET Patient/bw-ada with the access token: %d %s", st, b)
		}
		if st, b := call(t, http.MethodGet, s.FHIRBase(tenant)+"/Patient/bw-bob", tr.AccessToken, ""); st != http.StatusForbidden {
			t.Errorf("GET Patient/bw-bob (not the patient in context): %d %s, want 403", st, b)
		}
	})

	t.Run("deny", func(t *testing.T) {
		p := browserPage{t: t, ctx: ctx, s: sess}
		state, _ := start(p)
		signIn(p, password)
		if h1 := p.text("h1"); h1 != "Approve access" {
			t.Fatalf("sign-in: page %q, want the approval page", h1)
		}
		p.submit(`button[name="action"][value="deny"]`)
		p.waitURL(app.redirect)
		got := app.next(t)
		if d := cmp.Diff(url.Values{"error": {"access_denied"}, "error_description": {"the user denied access"}, "state": {state}}, got); d != "" {
			t.Errorf("redirect after deny (-want +got):\n%s", d)
		}
	})
}

// browserPage is the browser session as one test sees it: every step
// fails the test when the browser cannot do it.
type browserPage struct {
	t   *testing.T
	ctx context.Context
	s   *webdriver.Session
}

func (p browserPage) navigate(u string) {
	p.t.Helper()
	if err := p.s.Navigate(p.ctx, u); err != nil {
		p.t.Fatal(err)
	}
}

func (p browserPage) find(css string) *webdriver.Element {
	p.t.Helper()
	e, err := p.s.Find(p.ctx, css)
	if err != nil {
		p.t.Fatal(err)
	}
	return e
}

func (p browserPage) all(css string) []*webdriver.Element {
	p.t.Helper()
	es, err := p.s.FindAll(p.ctx, css)
	if err != nil {
		p.t.Fatal(err)
	}
	return es
}

func (p browserPage) text(css string) string {
	p.t.Helper()
	s, err := p.find(css).Text(p.ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

func (p browserPage) texts(css string) []string {
	p.t.Helper()
	var out []string
	for _, e := range p.all(css) {
		s, err := e.Text(p.ctx)
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (p browserPage) typeInto(css, text string) {
	p.t.Helper()
	if err := p.find(css).SendKeys(p.ctx, text); err != nil {
		p.t.Fatal(err)
	}
}

func (p browserPage) click(css string) {
	p.t.Helper()
	if err := p.find(css).Click(p.ctx); err != nil {
		p.t.Fatal(err)
	}
}

// submit clicks a button that leaves the page, and waits for the next.
func (p browserPage) submit(css string) {
	p.t.Helper()
	if err := p.find(css).ClickAndWait(p.ctx); err != nil {
		p.t.Fatal(err)
	}
}

func (p browserPage) url() string {
	p.t.Helper()
	u, err := p.s.CurrentURL(p.ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}

func (p browserPage) waitURL(prefix string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	u, err := p.s.WaitURL(ctx, prefix)
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}

// browserCallback is the app's redirect URI: it records each query it
// receives.
type browserCallback struct {
	redirect string
	got      chan url.Values
}

func newBrowserCallback(t *testing.T) *browserCallback {
	t.Helper()
	cb := &browserCallback{got: make(chan url.Values, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser's favicon request
			return
		}
		select {
		case cb.got <- r.URL.Query():
		default:
			t.Errorf("the app's redirect URI was called more often than the test expects")
		}
		fmt.Fprint(w, "<!doctype html><title>Vitals Viewer</title><p>Back in the app.</p>")
	}))
	t.Cleanup(srv.Close)
	cb.redirect = srv.URL + "/callback"
	return cb
}

// next returns the query of the redirect the browser followed.
func (cb *browserCallback) next(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-cb.got:
		return q
	case <-time.After(5 * time.Second):
		t.Fatal("the browser was not sent to the app's redirect URI")
		return nil
	}
}

// none checks that nothing reached the redirect URI.
func (cb *browserCallback) none(t *testing.T, when string) {
	t.Helper()
	select {
	case q := <-cb.got:
		t.Errorf("%s the app's redirect URI received %s", when, q)
	default:
	}
}

// browserAdmin POSTs body to the tenant's admin API, expecting 201.
func browserAdmin(t *testing.T, s *servertest.Server, tenant, path string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/t/"+tenant+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		rb, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
	}
}

type browserTokens struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Patient     string `json:"patient"`
	IDToken     string `json:"id_token"`
}

// browserExchange posts form to the token endpoint over plain HTTP, as
// the app's back end does, expecting 200.
func browserExchange(t *testing.T, s *servertest.Server, tenant string, form url.Values) browserTokens {
	t.Helper()
	resp, err := http.PostForm(s.AuthBase(tenant)+"/token", form)
	if err != nil {
		t.Fatalf("token endpoint: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr browserTokens
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tr) != nil {
		t.Fatalf("token endpoint: %d %s", resp.StatusCode, b)
	}
	return tr
}

// browserVerifyJWT checks token's RS256 signature against the tenant's
// published keys and returns its claims.
func browserVerifyJWT(t *testing.T, s *servertest.Server, tenant, token string) map[string]any {
	t.Helper()
	st, b := get(t, s.AuthBase(tenant)+"/jwks")
	set, err := jwk.Parse(b)
	if st != http.StatusOK || err != nil {
		t.Fatalf("jwks: %d %v", st, err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		t.Fatalf("id_token is not a JWS: %v", err)
	}
	kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	key, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("id_token kid %q is not in the tenant's JWKS", kid)
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(jwa.RS256(), key))
	if err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("id_token claims: %v", err)
	}
	return claims
}

func browserRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
