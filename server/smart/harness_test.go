package smart_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/smarttest"
)

const adminToken = "test-admin-token"

// harness is the authorization server on a real HTTP server (port 0),
// with a protected route that echoes the Grant the bearer check returns.
type harness struct {
	t     *testing.T
	srv   *httptest.Server
	s     *smart.Server
	reg   *smarttest.Memory
	clock *clock
}

// clock is the server's clock: real time plus an offset tests advance.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// patientList is the PatientLister of the tests (synthetic patients).
type patientList []smart.PatientChoice

func (p patientList) ListPatients(_ context.Context, tenant, query string, limit int) ([]smart.PatientChoice, error) {
	var out []smart.PatientChoice
	for _, c := range p {
		if tenant == "acme" && strings.Contains(strings.ToLower(c.Display), strings.ToLower(query)) && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (p patientList) PatientExists(_ context.Context, tenant, id string) (bool, error) {
	for _, c := range p {
		if c.ID == id && tenant == "acme" {
			return true, nil
		}
	}
	return false, nil
}

var testPatients = patientList{{ID: "pat-1", Display: "Alpha Testpatient"}, {ID: "pat-2", Display: "Beta Testpatient"}}

func newHarness(t *testing.T, mutate ...func(*smart.Config)) *harness {
	t.Helper()
	reg := smarttest.NewMemory()
	for _, tn := range []string{"acme", "globex"} {
		if err := reg.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{}
	cfg := smart.Config{Registry: reg, State: reg, Tenants: reg, Patients: testPatients, AdminToken: adminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.now}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := smart.New(cfg)
	if err != nil {
		t.Fatalf("smart.New: %v", err)
	}
	e := echo.New()
	e.HTTPErrorHandler = rest.ErrorHandler(cfg.Logger)
	s.Register(e)
	e.GET("/t/:tenant/fhir/whoami", func(c *echo.Context) error {
		g, ok := smart.GrantFrom(c.Request().Context())
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "no grant in context")
		}
		return c.JSON(http.StatusOK, g)
	}, s.Middleware())
	// The FHIR API's catch-all read route: the static .well-known routes
	// must win over it in echo's router.
	e.GET("/t/:tenant/fhir/:type/:id", func(c *echo.Context) error { return c.NoContent(http.StatusTeapot) })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, s: s, reg: reg, clock: clk}
}

func (h *harness) base(tenant string) string { return h.srv.URL + "/t/" + tenant + "/fhir" }
func (h *harness) auth(tenant string) string { return h.srv.URL + "/t/" + tenant + "/auth" }

// do sends a request and returns the response with its body read.
func (h *harness) do(req *http.Request, c *http.Client) (*http.Response, []byte) {
	h.t.Helper()
	if c == nil {
		c = noRedirects(nil)
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

func noRedirects(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// admin calls the admin API with a JSON body (nil for none).
func (h *harness) admin(method, path string, body any) (*http.Response, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, b := h.do(req, nil)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// addClient registers a client of tenant acme and returns its secret ("" for
// non-symmetric clients).
func (h *harness) addClient(tenant string, spec smart.ClientSpec) string {
	h.t.Helper()
	resp, m := h.admin(http.MethodPost, "/t/"+tenant+"/admin/clients", spec)
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("adding client %s: %d %v", spec.ID, resp.StatusCode, m)
	}
	s, _ := m["client_secret"].(string)
	return s
}

func (h *harness) addUser(tenant string, spec smart.UserSpec) {
	h.t.Helper()
	if resp, m := h.admin(http.MethodPost, "/t/"+tenant+"/admin/users", spec); resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("adding user %s: %d %v", spec.Username, resp.StatusCode, m)
	}
}

// pkce returns a fresh verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	return verifier, s256(verifier)
}

// s256 is the PKCE S256 challenge of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser is a user agent with its own cookies that does not follow
// redirects (so the test sees where the server sends it).
type browser struct {
	h *harness
	c *http.Client
}

func (h *harness) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return &browser{h: h, c: noRedirects(jar)}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	resp, body := b.h.do(req, b.c)
	return resp, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := b.h.do(req, b.c)
	return resp, string(body)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="(req|csrf)" value="([^"]*)">`)

// hidden returns the req and csrf fields of a page.
func hidden(t *testing.T, page string) (req, csrf string) {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == "req" {
			req = m[2]
		} else {
			csrf = m[2]
		}
	}
	if req == "" || csrf == "" {
		t.Fatalf("page without req/csrf fields:\n%s", page)
	}
	return req, csrf
}

// authzParams are the authorization request parameters of a test.
func (h *harness) authzParams(tenant, client, redirect, scope, challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"state-123"}, "aud": {h.base(tenant)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

// signIn drives the login page from an authorization request and returns
// the approval page.
func (b *browser) signIn(tenant string, params url.Values, user, password string) string {
	b.h.t.Helper()
	resp, page := b.get(b.h.auth(tenant) + "/authorize?" + params.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		b.h.t.Fatalf("authorize: %d, want the login page:\n%s", resp.StatusCode, page)
	}
	req, csrf := hidden(b.h.t, page)
	resp, page = b.post(b.h.auth(tenant)+"/login", url.Values{"req": {req}, "csrf": {csrf}, "username": {user}, "password": {password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Approve access") {
		b.h.t.Fatalf("login: %d, want the approval page:\n%s", resp.StatusCode, page)
	}
	return page
}

// approve submits the approval page and returns the redirect's query.
func (b *browser) approve(tenant, page string, extra url.Values) url.Values {
	b.h.t.Helper()
	req, csrf := hidden(b.h.t, page)
	form := url.Values{"req": {req}, "csrf": {csrf}, "action": {"approve"}}
	for k, v := range extra {
		form[k] = v
	}
	resp, body := b.post(b.h.auth(tenant)+"/approve", form)
	if resp.StatusCode != http.StatusSeeOther {
		b.h.t.Fatalf("approve: %d, want 303:\n%s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.h.t.Fatal(err)
	}
	return loc.Query()
}

// tokenResponse is a token endpoint answer.
type tokenResponse struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenResponse) str(k string) string { s, _ := r.body[k].(string); return s }

// token posts form to the token endpoint; basic is "id:secret" or "".
func (h *harness) token(tenant string, form url.Values, basic ...string) tokenResponse {
	h.t.Helper()
	return h.formPost(h.auth(tenant)+"/token", form, basic...)
}

func (h *harness) formPost(u string, form url.Values, basic ...string) tokenResponse {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) > 0 {
		id, secret, _ := strings.Cut(basic[0], ":")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, b := h.do(req, nil)
	r := tokenResponse{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// whoami calls the protected route with token and returns the status, the
// WWW-Authenticate header and the grant.
func (h *harness) whoami(tenant, token string) (int, string, *smart.Grant) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.base(tenant)+"/whoami", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, b := h.do(req, nil)
	var g smart.Grant
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &g); err != nil {
			h.t.Fatalf("grant: %v: %s", err, b)
		}
		return resp.StatusCode, "", &g
	}
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nil
}
