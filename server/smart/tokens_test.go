package smart_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// userToken runs a standalone launch with the picker and returns the
// token response.
func userToken(t *testing.T, h *harness, scope string) tokenResponse {
	t.Helper()
	code, verifier := codeFor(t, h, "acme", "growth-chart", appRedirect, scope, nil, url.Values{"patient": {"pat-1"}})
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	if tr.status != http.StatusOK {
		t.Fatalf("token: %d %v", tr.status, tr.body)
	}
	return tr
}

func backendToken(t *testing.T, h *harness) string {
	t.Helper()
	tr := h.token("acme", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", h.assertionClaims("acme", "bulk-exporter"), nil), "system/Observation.rs"))
	if tr.status != http.StatusOK {
		t.Fatalf("backend token: %d %v", tr.status, tr.body)
	}
	return tr.str("access_token")
}

// introspect calls the introspection endpoint as the caller bearer (a
// token), or with basic client credentials.
func (h *harness) introspect(token, bearer string, basic ...string) tokenResponse {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.auth("acme")+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if len(basic) > 0 {
		id, secret, _ := strings.Cut(basic[0], ":")
		req.SetBasicAuth(id, secret)
	}
	resp, b := h.do(req, nil)
	r := tokenResponse{status: resp.StatusCode, header: resp.Header}
	_ = jsonUnmarshal(b, &r.body)
	return r
}

func TestIntrospection(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	setupBackend(t, h)
	secret := h.addClient("acme", smart.ClientSpec{ID: "resource-server", Type: registry.ConfidentialSymmetric,
		RedirectURIs: []string{"https://rs.example/cb"}, Scope: "user/*.rs"})
	scope := "launch/patient patient/Observation.rs openid fhirUser offline_access"
	tr := userToken(t, h, scope)
	caller := backendToken(t, h)

	active := h.introspect(tr.str("access_token"), caller)
	if active.status != http.StatusOK {
		t.Fatalf("introspect: %d %v", active.status, active.body)
	}
	want := map[string]any{"active": true, "scope": scope, "client_id": "growth-chart", "patient": "pat-1",
		"fhirUser": h.base("acme") + "/Practitioner/prac-1", "sub": "dr.jones", "iss": h.base("acme")}
	got := map[string]any{}
	for k := range want {
		got[k] = active.body[k]
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("introspection (-want +got):\n%s", d)
	}
	if exp, _ := active.body["exp"].(float64); time.Unix(int64(exp), 0).Before(time.Now()) {
		t.Errorf("exp = %v, want the token's future expiry", active.body["exp"])
	}
	if active.header.Get("Cache-Control") != "no-store" {
		t.Error("introspection without Cache-Control: no-store")
	}
	// A confidential client may introspect too; the refresh token is active.
	if r := h.introspect(tr.str("refresh_token"), "", "resource-server:"+secret); r.status != http.StatusOK || r.body["active"] != true || r.body["client_id"] != "growth-chart" {
		t.Errorf("refresh token by a confidential client: %d %v", r.status, r.body)
	}
	for name, tok := range map[string]string{"garbage": "garbage", "forged JWT": tr.str("id_token"), "unknown refresh token": "abcdef"} {
		if r := h.introspect(tok, caller); r.status != http.StatusOK || !cmp.Equal(r.body, map[string]any{"active": false}) {
			t.Errorf("%s: %d %v, want exactly {active: false}", name, r.status, r.body)
		}
	}
	// Who may introspect: not anonymous callers, public clients or user tokens.
	for name, r := range map[string]tokenResponse{
		"anonymous":     h.introspect(tr.str("access_token"), ""),
		"public client": h.formPost(h.auth("acme")+"/introspect", url.Values{"token": {tr.str("access_token")}, "client_id": {"growth-chart"}}),
		"user token":    h.introspect(tr.str("access_token"), tr.str("access_token")),
	} {
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Errorf("%s: %d %v, want 401 invalid_client", name, r.status, r.body)
		}
	}
	// Revoked: inactive.
	if r := h.formPost(h.auth("acme")+"/revoke", url.Values{"token": {tr.str("access_token")}, "client_id": {"growth-chart"}}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	if r := h.introspect(tr.str("access_token"), caller); r.body["active"] != false {
		t.Errorf("revoked token introspected as %v", r.body)
	}
}

func TestRevocation(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	h.addClient("acme", smart.ClientSpec{ID: "other-app", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "patient/Observation.rs"})
	revoke := func(token, client string) tokenResponse {
		return h.formPost(h.auth("acme")+"/revoke", url.Values{"token": {token}, "client_id": {client}})
	}
	tr := userToken(t, h, "patient/Observation.rs offline_access")
	at := tr.str("access_token")
	if status, _, _ := h.whoami("acme", at); status != http.StatusOK {
		t.Fatalf("before revocation: %d", status)
	}
	// Another client cannot revoke it.
	if r := revoke(at, "other-app"); r.status != http.StatusBadRequest {
		t.Errorf("revocation by another client: %d %v, want 400", r.status, r.body)
	}
	if status, _, _ := h.whoami("acme", at); status != http.StatusOK {
		t.Errorf("a refused revocation revoked the token: %d", status)
	}
	if r := revoke(at, "growth-chart"); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	status, challenge, _ := h.whoami("acme", at)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("revoked token: %d %q, want 401 invalid_token", status, challenge)
	}
	// Revoking the refresh token kills it and the access token issued with it.
	tr = userToken(t, h, "patient/Observation.rs offline_access")
	if r := revoke(tr.str("refresh_token"), "growth-chart"); r.status != http.StatusOK {
		t.Fatalf("revoke refresh: %d %v", r.status, r.body)
	}
	if r := h.token("acme", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.str("refresh_token")}, "client_id": {"growth-chart"}}); r.status != http.StatusBadRequest {
		t.Errorf("revoked refresh token: %d %v", r.status, r.body)
	}
	if status, _, _ := h.whoami("acme", tr.str("access_token")); status != http.StatusUnauthorized {
		t.Errorf("access token of a revoked refresh token: %d, want 401", status)
	}
	// RFC 7009 §2.2: an invalid token is not an error.
	if r := revoke("not-a-token", "growth-chart"); r.status != http.StatusOK {
		t.Errorf("revoking garbage: %d, want 200", r.status)
	}
}

func TestBearerCheck(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	tr := userToken(t, h, "patient/Observation.rs")
	at := tr.str("access_token")
	cases := []struct {
		name, tenant, token string
		wantChallenge       string
	}{
		{"no token", "acme", "", `Bearer realm="fhir"`},
		{"garbage", "acme", "garbage", `error="invalid_token"`},
		{"tenant A token on tenant B", "globex", at, `error="invalid_token"`},
		{"tampered payload", "acme", tamper(at), `error="invalid_token"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, challenge, _ := h.whoami(c.tenant, c.token)
			if status != http.StatusUnauthorized || !strings.Contains(challenge, c.wantChallenge) {
				t.Errorf("%d %q, want 401 with %s", status, challenge, c.wantChallenge)
			}
		})
	}
	// Even with its own keys loaded, globex rejects acme's token.
	_ = fetchJWKS(t, h, "globex")
	if status, _, _ := h.whoami("globex", at); status != http.StatusUnauthorized {
		t.Errorf("acme token on globex after globex has keys: %d", status)
	}
	// Expired: the server's clock moves past the hour.
	h.clock.advance(61 * time.Minute)
	if status, challenge, _ := h.whoami("acme", at); status != http.StatusUnauthorized || !strings.Contains(challenge, "expired") {
		t.Errorf("expired token: %d %q", status, challenge)
	}
}

// tamper changes the scope claim of a JWT without re-signing it.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	p, _ := b64.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "patient/Observation.rs", "patient/*.cruds_____", 1))
	parts[1] = b64.EncodeToString(p)
	return strings.Join(parts, ".")
}

// TestExternalIssuer: a tenant configured to trust an outside issuer's
// JWKS accepts its tokens; other tenants do not.
func TestExternalIssuer(t *testing.T) {
	testKeys(t)
	jwks := publicJWKS(t, map[string]any{"ext-1": rsaIssuer})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(idp.Close)
	const iss = "https://idp.example/realms/clinic"
	h := newHarness(t, func(c *smart.Config) {
		c.ExternalIssuers = map[string][]smart.ExternalIssuer{"acme": {{Issuer: iss, JWKSURL: idp.URL + "/certs"}}}
	})
	claims := func(mutate func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss, "sub": "ext-user", "aud": []string{h.base("acme"), "account"}, "azp": "ehr-app",
			"exp": time.Now().Add(5 * time.Minute).Unix(), "scope": "user/Observation.rs openid", "jti": newJTI(),
			"fhirUser": h.base("acme") + "/Practitioner/ext-9"}
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	good := signJWT(t, rsaIssuer, jwa.RS256(), "ext-1", claims(nil), nil)
	status, _, g := h.whoami("acme", good)
	if status != http.StatusOK {
		t.Fatalf("external token: %d", status)
	}
	want := &smart.Grant{Tenant: "acme", ClientID: "ehr-app", Subject: "ext-user", FHIRUser: "Practitioner/ext-9",
		Scopes: []string{"user/Observation.rs", "openid"}, Issuer: iss, External: true}
	if d := cmp.Diff(want, g, cmpIgnoreTokenFields); d != "" {
		t.Errorf("grant (-want +got):\n%s", d)
	}
	cases := map[string]struct{ tenant, token string }{
		"tenant without the issuer": {"globex", good},
		"wrong aud":                 {"acme", signJWT(t, rsaIssuer, jwa.RS256(), "ext-1", claims(func(c map[string]any) { c["aud"] = "https://other.example/fhir" }), nil)},
		"expired":                   {"acme", signJWT(t, rsaIssuer, jwa.RS256(), "ext-1", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), nil)},
		"unknown key":               {"acme", signJWT(t, rsaOther, jwa.RS256(), "ext-2", claims(nil), nil)},
		"wrong key, right kid":      {"acme", signJWT(t, rsaOther, jwa.RS256(), "ext-1", claims(nil), nil)},
		"HS256":                     {"acme", signJWT(t, []byte("a shared secret that is long enough!!"), jwa.HS256(), "ext-1", claims(nil), nil)},
		"alg none":                  {"acme", unsigned(claims(nil), "ext-1")},
		"untrusted issuer":          {"acme", signJWT(t, rsaIssuer, jwa.RS256(), "ext-1", claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if status, _, _ := h.whoami(c.tenant, c.token); status != http.StatusUnauthorized {
				t.Errorf("%d, want 401", status)
			}
		})
	}
}

// TestKeyRotation: after a rotation new tokens carry the new kid, tokens
// of the old key still verify, and the old key leaves the JWKS after the
// overlap.
func TestKeyRotation(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	old := userToken(t, h, "patient/Observation.rs").str("access_token")
	oldKid := kidOf(t, old)
	if _, err := smart.RotateKey(context.Background(), h.reg, "acme", h.clock.now()); err != nil {
		t.Fatal(err)
	}
	h.clock.advance(2 * time.Minute) // past the key cache: the new key is published, not yet signing
	if n := fetchJWKS(t, h, "acme").Len(); n != 2 {
		t.Errorf("JWKS right after rotation has %d keys, want 2 (the new key published first)", n)
	}
	if kidOf(t, userToken(t, h, "patient/Observation.rs").str("access_token")) != oldKid {
		t.Error("the new key signs before relying parties could have fetched it")
	}
	h.clock.advance(4 * time.Minute) // the new key is five minutes old
	fresh := userToken(t, h, "patient/Observation.rs").str("access_token")
	if kidOf(t, fresh) == oldKid {
		t.Error("a token signed after the activation delay still uses the old key")
	}
	if status, _, _ := h.whoami("acme", old); status != http.StatusOK {
		t.Errorf("token of the superseded key: %d, want 200", status)
	}
	if n := fetchJWKS(t, h, "acme").Len(); n != 2 {
		t.Errorf("JWKS after rotation has %d keys, want 2", n)
	}
	h.clock.advance(25 * time.Hour)
	set := fetchJWKS(t, h, "acme")
	if _, ok := set.LookupKeyID(oldKid); ok || set.Len() != 1 {
		t.Errorf("JWKS a day after rotation: %d keys, old key published %v; want only the new key", set.Len(), ok)
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	var hdr struct {
		Kid string `json:"kid"`
	}
	b, _ := b64.DecodeString(strings.Split(token, ".")[0])
	if err := jsonUnmarshal(b, &hdr); err != nil || hdr.Kid == "" {
		t.Fatalf("no kid in %s", b)
	}
	return hdr.Kid
}

func TestAdminAPI(t *testing.T) {
	h := newHarness(t)
	call := func(token, method, path, body string) int {
		req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, _ := h.do(req, nil)
		return resp.StatusCode
	}
	if got := call("", http.MethodGet, "/t/acme/admin/clients", ""); got != http.StatusUnauthorized {
		t.Errorf("no admin token: %d, want 401", got)
	}
	if got := call("wrong", http.MethodGet, "/t/acme/admin/clients", ""); got != http.StatusUnauthorized {
		t.Errorf("wrong admin token: %d, want 401", got)
	}
	if got := call(adminToken, http.MethodPost, "/t/acme/auth/launch", `{"patient":"pat-1"}`); got != http.StatusCreated {
		t.Errorf("launch with the admin token: %d", got)
	}
	if got := call("", http.MethodPost, "/t/acme/auth/launch", `{"patient":"pat-1"}`); got != http.StatusUnauthorized {
		t.Errorf("launch without the admin token: %d, want 401", got)
	}

	secret := h.addClient("acme", smart.ClientSpec{ID: "svc", Type: registry.ConfidentialSymmetric, RedirectURIs: []string{"https://svc.example/cb"}, Scope: "user/*.rs"})
	resp, m := h.admin(http.MethodGet, "/t/acme/admin/clients/svc", nil)
	if resp.StatusCode != http.StatusOK || m["client_secret"] != nil || strings.Contains(jsonString(m), secret) {
		t.Errorf("GET client: %d %v: want the client without its secret", resp.StatusCode, m)
	}
	stored, err := h.reg.Client(context.Background(), "acme", "svc")
	if err != nil || stored.SecretHash == "" || strings.Contains(stored.SecretHash, secret) {
		t.Errorf("stored client %+v: want only a hash of the secret", stored)
	}
	resp, m = h.admin(http.MethodGet, "/t/acme/admin/clients", nil)
	if cs, _ := m["clients"].([]any); resp.StatusCode != http.StatusOK || len(cs) != 1 {
		t.Errorf("list: %d %v", resp.StatusCode, m)
	}
	if resp, _ := h.admin(http.MethodGet, "/t/globex/admin/clients/svc", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("client of acme via globex: %d, want 404", resp.StatusCode)
	}

	bad := map[string]smart.ClientSpec{
		"duplicate id":                 {ID: "svc", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "user/*.rs"},
		"public without redirect":      {ID: "x1", Type: registry.Public, Scope: "user/*.rs"},
		"unknown type":                 {ID: "x2", Type: "magic", RedirectURIs: []string{appRedirect}, Scope: "user/*.rs"},
		"no scope":                     {ID: "x3", Type: registry.Public, RedirectURIs: []string{appRedirect}},
		"http redirect, not loopback":  {ID: "x4", Type: registry.Public, RedirectURIs: []string{"http://app.example/cb"}, Scope: "user/*.rs"},
		"redirect with fragment":       {ID: "x5", Type: registry.Public, RedirectURIs: []string{"https://app.example/cb#x"}, Scope: "user/*.rs"},
		"javascript redirect":          {ID: "x6", Type: registry.Public, RedirectURIs: []string{"javascript:alert(1)"}, Scope: "user/*.rs"},
		"asymmetric without keys":      {ID: "x7", Type: registry.ConfidentialAsymmetric, Scope: "system/*.rs"},
		"asymmetric with both":         {ID: "x8", Type: registry.ConfidentialAsymmetric, Scope: "system/*.rs", JWKSURL: "https://k.example/jwks", JWKS: []byte(`{"keys":[]}`)},
		"jwks_uri over http":           {ID: "x9", Type: registry.ConfidentialAsymmetric, Scope: "system/*.rs", JWKSURL: "http://k.example/jwks"},
		"jwks with a private key":      {ID: "x10", Type: registry.ConfidentialAsymmetric, Scope: "system/*.rs", JWKS: privateJWKS(t)},
		"jwks on a public client":      {ID: "x11", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "user/*.rs", JWKSURL: "https://k.example/jwks"},
		"client id with a space":       {ID: "a b", Type: registry.Public, RedirectURIs: []string{appRedirect}, Scope: "user/*.rs"},
		"jwks key without kid (empty)": {ID: "x12", Type: registry.ConfidentialAsymmetric, Scope: "system/*.rs", JWKS: []byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}`)},
	}
	for name, spec := range bad {
		t.Run(name, func(t *testing.T) {
			resp, m := h.admin(http.MethodPost, "/t/acme/admin/clients", spec)
			want := http.StatusBadRequest
			if name == "duplicate id" {
				want = http.StatusConflict
			}
			if resp.StatusCode != want {
				t.Errorf("%d %v, want %d", resp.StatusCode, m, want)
			}
		})
	}
	if resp, _ := h.admin(http.MethodDelete, "/t/acme/admin/clients/svc", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
	if resp, _ := h.admin(http.MethodGet, "/t/acme/admin/clients/svc", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d", resp.StatusCode)
	}

	h.addUser("acme", smart.UserSpec{Username: "nurse", Password: "long enough pw", FHIRUser: "Practitioner/n1"})
	resp, m = h.admin(http.MethodGet, "/t/acme/admin/users", nil)
	if us, _ := m["users"].([]any); resp.StatusCode != http.StatusOK || len(us) != 1 || strings.Contains(jsonString(m), "$2") {
		t.Errorf("users: %d %v (want one user, no password hash)", resp.StatusCode, m)
	}
	for name, spec := range map[string]smart.UserSpec{
		"short password":    {Username: "u1", Password: "short", FHIRUser: "Practitioner/1"},
		"fhirUser type":     {Username: "u2", Password: "long enough pw", FHIRUser: "Observation/1"},
		"fhirUser absolute": {Username: "u3", Password: "long enough pw", FHIRUser: "https://x/Practitioner/1"},
	} {
		if resp, _ := h.admin(http.MethodPost, "/t/acme/admin/users", spec); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("user %s: %d, want 400", name, resp.StatusCode)
		}
	}
	if resp, _ := h.admin(http.MethodDelete, "/t/acme/admin/users/nurse", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE user: %d", resp.StatusCode)
	}

	// No admin token configured: the admin API is off.
	off := newHarness(t, func(c *smart.Config) { c.AdminToken = "" })
	req, _ := http.NewRequest(http.MethodGet, off.srv.URL+"/t/acme/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer ")
	if resp, _ := off.do(req, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin API without a configured token: %d, want 403", resp.StatusCode)
	}
}
