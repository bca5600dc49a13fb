package smart_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// Test keys are generated per test run; none is committed.
var (
	keysOnce                    sync.Once
	rsaKey, rsaOther, rsaIssuer *rsa.PrivateKey
	ecKey                       *ecdsa.PrivateKey
)

func testKeys(t *testing.T) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&rsaKey, &rsaOther, &rsaIssuer} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// publicJWKS is the JWK Set of the public halves of keys, by kid.
func publicJWKS(t *testing.T, keys map[string]any) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, priv := range keys {
		var pub any
		switch k := priv.(type) {
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		}
		jk, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := jk.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(jk); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWT signs claims with key (alg, kid and extra header fields).
func signJWT(t *testing.T, key any, alg jwa.SignatureAlgorithm, kid string, claims map[string]any, extraHdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	if kid != "" {
		_ = hdr.Set(jws.KeyIDKey, kid)
	}
	for k, v := range extraHdr {
		_ = hdr.Set(k, v)
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unsigned is a JWT with alg none.
func unsigned(claims map[string]any, kid string) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertionClaims are the claims of a valid client assertion of client.
func (h *harness) assertionClaims(tenant, client string) map[string]any {
	return map[string]any{"iss": client, "sub": client, "aud": h.auth(tenant) + "/token",
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": newJTI()}
}

func backendForm(assertion, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
}

// setupBackend registers a backend service with an inline JWKS holding an
// RS384 and an ES384 key.
func setupBackend(t *testing.T, h *harness) {
	t.Helper()
	testKeys(t)
	h.addClient("acme", smart.ClientSpec{ID: "bulk-exporter", Type: registry.ConfidentialAsymmetric,
		Scope: "system/Observation.rs system/Patient.rs",
		JWKS:  publicJWKS(t, map[string]any{"rsa-1": rsaKey, "ec-1": ecKey})})
}

func TestBackendServices(t *testing.T) {
	h := newHarness(t)
	setupBackend(t, h)
	ok := func(name string, key any, alg jwa.SignatureAlgorithm, kid string) {
		t.Run(name, func(t *testing.T) {
			tr := h.token("acme", backendForm(signJWT(t, key, alg, kid, h.assertionClaims("acme", "bulk-exporter"), nil), "system/Observation.rs"))
			if tr.status != http.StatusOK {
				t.Fatalf("%d %v", tr.status, tr.body)
			}
			want := map[string]any{"token_type": "Bearer", "expires_in": float64(300), "scope": "system/Observation.rs"}
			got := map[string]any{"token_type": tr.body["token_type"], "expires_in": tr.body["expires_in"], "scope": tr.body["scope"]}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("token response (-want +got):\n%s", d)
			}
			for _, k := range []string{"refresh_token", "id_token", "patient"} {
				if _, has := tr.body[k]; has {
					t.Errorf("backend token response has %s", k)
				}
			}
			if tr.header.Get("Cache-Control") != "no-store" || tr.header.Get("Pragma") != "no-cache" {
				t.Errorf("headers %v", tr.header)
			}
			_, _, g := h.whoami("acme", tr.str("access_token"))
			if g == nil || g.ClientID != "bulk-exporter" || g.Subject != "bulk-exporter" || !cmp.Equal(g.Scopes, []string{"system/Observation.rs"}) {
				t.Errorf("grant %+v", g)
			}
		})
	}
	ok("RS384", rsaKey, jwa.RS384(), "rsa-1")
	ok("ES384", ecKey, jwa.ES384(), "ec-1")

	claims := func(mutate func(map[string]any)) map[string]any {
		c := h.assertionClaims("acme", "bulk-exporter")
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	replayed := signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), nil)
	if tr := h.token("acme", backendForm(replayed, "system/Observation.rs")); tr.status != http.StatusOK {
		t.Fatalf("first use of the replayed assertion: %d %v", tr.status, tr.body)
	}
	cases := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"replayed jti", backendForm(replayed, "system/Observation.rs"), 401, "invalid_client"},
		{"aud is the FHIR base", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { c["aud"] = h.base("acme") }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"aud of another tenant", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { c["aud"] = h.auth("globex") + "/token" }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"exp ten minutes ahead", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { c["exp"] = time.Now().Add(10 * time.Minute).Unix() }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"expired", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"no exp", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { delete(c, "exp") }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"no jti", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { delete(c, "jti") }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"unknown kid", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-9", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"no kid", backendForm(signJWT(t, rsaKey, jwa.RS384(), "", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"kid of a key of another type", backendForm(signJWT(t, rsaKey, jwa.RS384(), "ec-1", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"bad signature", backendForm(signJWT(t, rsaOther, jwa.RS384(), "rsa-1", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"alg none", backendForm(unsigned(claims(nil), "rsa-1"), "system/Observation.rs"), 401, "invalid_client"},
		{"HS256", backendForm(signJWT(t, []byte("a shared secret that is long enough!!"), jwa.HS256(), "rsa-1", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"RS256 (not offered)", backendForm(signJWT(t, rsaKey, jwa.RS256(), "rsa-1", claims(nil), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"iss is not sub", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(func(c map[string]any) { c["sub"] = "someone" }), nil), "system/Observation.rs"), 401, "invalid_client"},
		{"jku not registered", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), map[string]any{"jku": "https://evil.example/jwks"}), "system/Observation.rs"), 401, "invalid_client"},
		{"not a JWT", backendForm("not-a-jwt", "system/Observation.rs"), 401, "invalid_client"},
		{"bad assertion type", func() url.Values {
			f := backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), nil), "system/Observation.rs")
			f.Set("client_assertion_type", "not_an_assertion_type")
			return f
		}(), 400, "invalid_request"},
		{"bad grant type", func() url.Values {
			f := backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), nil), "system/Observation.rs")
			f.Set("grant_type", "not_a_grant_type")
			return f
		}(), 400, "unsupported_grant_type"},
		{"scope not registered", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), nil), "system/Encounter.rs"), 400, "invalid_scope"},
		{"user scope", backendForm(signJWT(t, rsaKey, jwa.RS384(), "rsa-1", claims(nil), nil), "user/Observation.rs"), 400, "invalid_scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := h.token("acme", c.form)
			if tr.status != c.wantStatus || tr.str("error") != c.wantError {
				t.Errorf("%d %v, want %d %s", tr.status, tr.body, c.wantStatus, c.wantError)
			}
			if tr.status == http.StatusUnauthorized && tr.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// A public client cannot use client_credentials.
	setupApp(h)
	if tr := h.token("acme", url.Values{"grant_type": {"client_credentials"}, "client_id": {"growth-chart"}, "scope": {"system/Observation.rs"}}); tr.status != http.StatusBadRequest || tr.str("error") != "unauthorized_client" {
		t.Errorf("client_credentials by a public client: %d %v, want 400 unauthorized_client", tr.status, tr.body)
	}
}

// TestBackendJWKSURL: keys fetched from the client's JWKS URL, cached, and
// refetched once when an unknown kid appears (client key rotation).
func TestBackendJWKSURL(t *testing.T) {
	testKeys(t)
	h := newHarness(t)
	var fetches atomic.Int32
	var mu sync.Mutex
	served := publicJWKS(t, map[string]any{"k1": rsaKey})
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(served)
	}))
	t.Cleanup(jwksSrv.Close)
	h.addClient("acme", smart.ClientSpec{ID: "svc", Type: registry.ConfidentialAsymmetric, Scope: "system/Observation.rs", JWKSURL: jwksSrv.URL + "/jwks.json"})

	get := func(key any, alg jwa.SignatureAlgorithm, kid string, hdr map[string]any) tokenResponse {
		return h.token("acme", backendForm(signJWT(t, key, alg, kid, h.assertionClaims("acme", "svc"), hdr), "system/Observation.rs"))
	}
	for i := range 2 {
		if tr := get(rsaKey, jwa.RS384(), "k1", nil); tr.status != http.StatusOK {
			t.Fatalf("request %d: %d %v", i, tr.status, tr.body)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for two assertions, want 1 (cached)", n)
	}
	// jku equal to the registered URL is accepted.
	if tr := get(rsaKey, jwa.RS384(), "k1", map[string]any{"jku": jwksSrv.URL + "/jwks.json"}); tr.status != http.StatusOK {
		t.Errorf("registered jku: %d %v", tr.status, tr.body)
	}
	// The client rotates to an EC key; the server refetches on the unknown kid.
	mu.Lock()
	served = publicJWKS(t, map[string]any{"k1": rsaKey, "k2": ecKey})
	mu.Unlock()
	h.clock.advance(15 * time.Second) // past the refetch guard
	if tr := get(ecKey, jwa.ES384(), "k2", nil); tr.status != http.StatusOK {
		t.Errorf("after client key rotation: %d %v", tr.status, tr.body)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (one refetch for the new kid)", n)
	}
	// Random kids do not make the server refetch again right away.
	if tr := get(ecKey, jwa.ES384(), "k3", nil); tr.status != http.StatusUnauthorized {
		t.Errorf("unknown kid: %d, want 401", tr.status)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times after an unknown kid within the guard, want 2", n)
	}
}

func TestClientSecretBasic(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	secret := h.addClient("acme", smart.ClientSpec{ID: "portal", Name: "Portal", Type: registry.ConfidentialSymmetric,
		RedirectURIs: []string{"https://portal.example/cb"}, Scope: "user/Observation.rs"})
	if len(secret) < 40 {
		t.Fatalf("client secret %q: want a generated secret of 256 bits", secret)
	}
	exchange := func(basic ...string) tokenResponse {
		code, verifier := codeFor(t, h, "acme", "portal", "https://portal.example/cb", "user/Observation.rs", nil, nil)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://portal.example/cb"}, "code_verifier": {verifier}}
		return h.token("acme", form, basic...)
	}
	if tr := exchange("portal:" + secret); tr.status != http.StatusOK || tr.str("access_token") == "" {
		t.Fatalf("client_secret_basic: %d %v", tr.status, tr.body)
	}
	for name, basic := range map[string][]string{"wrong secret": {"portal:" + secret + "x"}, "no authentication": nil, "unknown client": {"nobody:" + secret}} {
		t.Run(name, func(t *testing.T) {
			tr := exchange(basic...)
			if tr.status != http.StatusUnauthorized || tr.str("error") != "invalid_client" || tr.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%d %v WWW-Authenticate %q, want 401 invalid_client with a challenge", tr.status, tr.body, tr.header.Get("WWW-Authenticate"))
			}
		})
	}
}
