package servertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// WithAuth turns SMART authorization on, as `pulsewire serve` runs by
// default, with a random admin token (Server.AdminToken) that the token
// helpers use to register clients and users. mod may change the rest of
// the authorization config (consent model, Redis ...). Without WithAuth
// a test server runs with authorization off.
func WithAuth(mod ...func(*app.AuthConfig)) Option {
	return func(c *app.Config) {
		c.Auth.Mode = app.AuthSMART
		c.Auth.AdminToken = randomHex(16)
		for _, m := range mod {
			m(&c.Auth)
		}
	}
}

// WithRedis shares the decision cache through Redis at url under prefix
// (use adapters/redis/redistest for a prefix that is cleaned up); the
// authorization server's state is in the store either way.
func WithRedis(url, prefix string) Option {
	return func(c *app.Config) { c.Auth.RedisURL, c.Auth.RedisPrefix = url, prefix }
}

// WithPublicURL sets the public base URL: two servers given the same one
// (and the same store) accept each other's tokens.
func WithPublicURL(u string) Option { return func(c *app.Config) { c.PublicBaseURL = u } }

// WithDataDir puts the embedded store in dir (shared by two servers).
func WithDataDir(dir string) Option { return func(c *app.Config) { c.DataDir = dir } }

// publicRoot is where clients are told the server is: the public URL, or
// the listening address.
func (s *Server) publicRoot() string {
	if s.publicURL != "" {
		return strings.TrimRight(s.publicURL, "/")
	}
	return s.URL
}

// AuthBase is the tenant's authorization server endpoint prefix
// (/t/{tenant}/auth) at the listening address.
func (s *Server) AuthBase(tenant string) string { return s.URL + "/t/" + tenant + "/auth" }

// BackendToken registers a backend service (a confidential-asymmetric
// client with a fresh ES384 key) allowed scopes, and returns an access
// token from the token endpoint's client_credentials grant with a
// private_key_jwt assertion (SMART backend services).
func (s *Server) BackendToken(t testing.TB, tenant string, scopes ...string) string {
	t.Helper()
	return s.BackendTokenFor(t, tenant, scopes, scopes...)
}

// BackendTokenFor is BackendToken for a client registered with the scopes
// registered that asks for requested (narrower ones, say).
func (s *Server) BackendTokenFor(t testing.TB, tenant string, registered []string, requested ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	kid := "k-" + randomHex(4)
	if err := pub.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	id := "backend-" + randomHex(6)
	s.admin(t, tenant, "/admin/clients", smart.ClientSpec{ID: id, Type: registry.ConfidentialAsymmetric,
		Scope: strings.Join(registered, " "), JWKS: jwks})

	claims, err := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": s.publicRoot() + "/t/" + tenant + "/auth/token",
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": randomHex(16)})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.TypeKey: "JWT", jws.KeyIDKey: kid} {
		if err := hdr.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	assertion, err := jws.Sign(claims, jws.WithKey(jwa.ES384(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return s.token(t, tenant, url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(requested, " ")},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {string(assertion)}})
}

// LaunchToken returns an access token of an EHR launch with patient in
// context: the admin API creates the launch, a signed-in practitioner
// approves scopes (besides launch) for a public client on the login and
// approval pages, and the code is exchanged with PKCE.
func (s *Server) LaunchToken(t testing.TB, tenant, patient string, scopes ...string) string {
	t.Helper()
	var launch struct {
		Launch string `json:"launch"`
	}
	s.admin(t, tenant, "/auth/launch", map[string]string{"patient": patient}, &launch)
	return s.authCode(t, tenant, "Practitioner/servertest", launch.Launch, scopes).AccessToken
}

// UserToken returns an access token of a standalone launch by a user
// whose FHIR resource is fhirUser ("Practitioner/1"), for scopes, through
// the login and approval pages and the code exchange with PKCE.
func (s *Server) UserToken(t testing.TB, tenant, fhirUser string, scopes ...string) string {
	t.Helper()
	return s.authCode(t, tenant, fhirUser, "", scopes).AccessToken
}

// Tokens is a token response, with the public client it was issued to.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"` // with offline_access or online_access
	ClientID     string `json:"-"`
}

// UserTokens is UserToken returning the whole token response (ask for
// offline_access to get a refresh token) and the client id, which the
// client sends to the token and revocation endpoints.
func (s *Server) UserTokens(t testing.TB, tenant, fhirUser string, scopes ...string) Tokens {
	t.Helper()
	return s.authCode(t, tenant, fhirUser, "", scopes)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="(req|csrf)" value="([^"]*)">`)

// authCode runs the authorization code flow for a new public client.
func (s *Server) authCode(t testing.TB, tenant, fhirUser, launch string, scopes []string) Tokens {
	t.Helper()
	asked := append([]string{"openid", "fhirUser"}, scopes...)
	if launch != "" {
		asked = append(asked, "launch")
	}
	const redirect = "http://127.0.0.1/servertest/callback"
	client := "app-" + randomHex(6)
	s.admin(t, tenant, "/admin/clients", smart.ClientSpec{ID: client, Type: registry.Public,
		RedirectURIs: []string{redirect}, Scope: strings.Join(asked, " ")})
	user, password := s.user(t, tenant, fhirUser)

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := randomHex(32)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"scope": {strings.Join(asked, " ")}, "state": {"st-" + randomHex(4)}, "aud": {s.publicRoot() + "/t/" + tenant + "/fhir"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if launch != "" {
		q.Set("launch", launch)
	}
	auth := s.AuthBase(tenant)
	page := pageStep(t, browser, http.MethodGet, auth+"/authorize?"+q.Encode(), nil, "authorize")
	page = pageStep(t, browser, http.MethodPost, auth+"/login",
		url.Values{"username": {user}, "password": {password}, "req": {page.req}, "csrf": {page.csrf}}, "login")
	form := url.Values{"action": {"approve"}, "scope": asked, "req": {page.req}, "csrf": {page.csrf}}
	resp := send(t, browser, http.MethodPost, auth+"/approve", form)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("approve: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tr := s.tokens(t, tenant, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {client}})
	tr.ClientID = client
	return tr
}

type page struct{ req, csrf string }

// pageStep sends a request of the login flow and reads the next page's
// hidden fields.
func pageStep(t testing.TB, c *http.Client, method, u string, form url.Values, what string) page {
	t.Helper()
	resp := send(t, c, method, u, form)
	b, _ := io.ReadAll(resp.Body)
	var p page
	for _, m := range hiddenField.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "req" {
			p.req = m[2]
		} else {
			p.csrf = m[2]
		}
	}
	if resp.StatusCode != http.StatusOK || p.req == "" || p.csrf == "" {
		t.Fatalf("%s: %d, want a page with a form:\n%s", what, resp.StatusCode, b)
	}
	return p
}

// send sends a form (nil: no body); the body stays readable.
func send(t testing.TB, c *http.Client, method, u string, form url.Values) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// user returns the login of the tenant's test user for fhirUser, creating
// it on first use.
func (s *Server) user(t testing.TB, tenant, fhirUser string) (username, password string) {
	t.Helper()
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	key := tenant + " " + fhirUser
	if u, ok := s.users[key]; ok {
		return u[0], u[1]
	}
	username, password = "user-"+randomHex(6), randomHex(12)
	s.admin(t, tenant, "/admin/users", smart.UserSpec{Username: username, Password: password, FHIRUser: fhirUser})
	if s.users == nil {
		s.users = map[string][2]string{}
	}
	s.users[key] = [2]string{username, password}
	return username, password
}

// admin POSTs body as JSON to the tenant's admin path (under /t/{tenant})
// with the admin token, expecting 201, and decodes the answer into out.
func (s *Server) admin(t testing.TB, tenant, path string, body any, out ...any) {
	t.Helper()
	if s.AdminToken == "" {
		t.Fatal("servertest: the token helpers need WithAuth")
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/t/"+tenant+path, strings.NewReader(string(b)))
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
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
	}
	for _, o := range out {
		if err := json.Unmarshal(rb, o); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}

// token posts form to the token endpoint and returns the access token.
func (s *Server) token(t testing.TB, tenant string, form url.Values) string {
	t.Helper()
	return s.tokens(t, tenant, form).AccessToken
}

// tokens posts form to the token endpoint and returns its answer.
func (s *Server) tokens(t testing.TB, tenant string, form url.Values) Tokens {
	t.Helper()
	resp, err := http.PostForm(s.AuthBase(tenant)+"/token", form)
	if err != nil {
		t.Fatalf("token endpoint: %v", err)
	}
	defer resp.Body.Close()
	var tr Tokens
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("token endpoint (%s): %d %s", form.Get("grant_type"), resp.StatusCode, b)
	}
	return tr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
