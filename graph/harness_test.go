package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv/memkv"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/servertest"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// The tests run the real server (servertest, with SMART authorization on;
// on PostgreSQL when PULSEWIRE_TEST_STORE=postgres, else SQLite) for its store, its REST API and its token endpoint, and the GraphQL
// handler over the same store beside it: a smart.Server on the same client
// registry and public URL (so it accepts the real server's tokens) and an
// authz.Authorizer on the same store — the wiring server/app is to do.

const (
	tenant   = "acme"
	loinc    = "http://loinc.org"
	catSys   = "http://terminology.hl7.org/CodeSystem/observation-category"
	heartCd  = "8867-4"
	tempCd   = "8310-5"
	glucose  = "2345-7"
	vitalCat = "vital-signs"
	labCat   = "laboratory"
)

// env is a running server and the GraphQL API beside it.
type env struct {
	srv   *servertest.Server
	store fhir.Store
	reg   *search.Registry
	h     *graph.Handler
	gql   *httptest.Server
	sys   string // a backend token with system/*.cruds, to write test data
	logs  *syncBuffer
}

type envConfig struct {
	limits     graph.Limits
	supergraph []byte
	remotes    map[string]graph.Remote
	wrap       func(graph.Store) graph.Store
	open       bool // graph.Open: authorization off
	opts       []servertest.Option
}

type envOption func(*envConfig)

func withLimits(l graph.Limits) envOption { return func(c *envConfig) { c.limits = l } }

// withWards serves the test supergraph (pulsewire + wards) with the wards
// subgraph at u.
func withWards(u string, timeout ...int) envOption {
	return func(c *envConfig) {
		sg, err := os.ReadFile("testdata/supergraph/config.json")
		if err != nil {
			panic(err)
		}
		c.supergraph = sg
		r := graph.Remote{URL: u}
		if len(timeout) > 0 {
			r.Timeout = msec(timeout[0])
		}
		c.remotes = map[string]graph.Remote{"wards": r}
	}
}

func withStore(wrap func(graph.Store) graph.Store) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	base := []servertest.Option{servertest.WithAuth()}
	if os.Getenv("PULSEWIRE_TEST_STORE") == "postgres" {
		// As the REST suite: the whole suite again on PostgreSQL.
		base = append(base, servertest.Postgres(t))
	}
	srv := servertest.Start(t, append(base, cfg.opts...)...)
	store := srv.App.Store()
	reg := search.NewRegistry()
	regStore, ok := store.(registry.Store)
	if !ok {
		t.Fatal("the store keeps no SMART client registry")
	}
	sm, err := smart.New(smart.Config{Registry: regStore, Tenants: store, PublicBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	az, err := authz.New(authz.Config{Consents: authz.StoreConsents{Store: store}, Registry: reg, KV: memkv.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = az.Close() })
	gs, ok := store.(graph.Store)
	if !ok {
		t.Fatalf("the store (%T) is not a graph.Store", store)
	}
	if cfg.wrap != nil {
		gs = cfg.wrap(gs)
	}
	var (
		auth       graph.Authenticator = sm
		authorizer graph.Authorizer    = graph.AuthzAuthorizer{Decider: az}
	)
	if cfg.open {
		auth, authorizer = graph.Open{}, graph.Open{}
	}
	logs := &syncBuffer{}
	h, err := graph.New(graph.Config{
		Store: gs, Registry: reg, Auth: auth, Authorizer: authorizer,
		Supergraph: cfg.supergraph, Remotes: cfg.remotes, Limits: cfg.limits,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	e := echo.New()
	h.Register(e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return &env{srv: srv, store: store, reg: reg, h: h, gql: ts, sys: srv.BackendToken(t, tenant, "system/*.cruds"), logs: logs}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// put writes a resource through the REST API (validated and indexed as any
// client's) and fails the test unless it is stored.
func (e *env) put(t testing.TB, body string) {
	t.Helper()
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &head); err != nil {
		t.Fatalf("test resource is not JSON: %v", err)
	}
	u := e.srv.FHIRBase(tenant) + "/" + head.ResourceType + "/" + head.ID
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.sys)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s/%s: %d %s", head.ResourceType, head.ID, resp.StatusCode, b)
	}
}

// restIDs runs a REST search (all pages) with token and returns the ids of
// the matches, in order.
func (e *env) restIDs(t testing.TB, token, typ, query string) []string {
	t.Helper()
	u := e.srv.FHIRBase(tenant) + "/" + typ + "?" + query
	var ids []string
	for u != "" {
		var b struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
				} `json:"resource"`
				Search struct {
					Mode string `json:"mode"`
				} `json:"search"`
			} `json:"entry"`
		}
		e.restGet(t, token, u, &b)
		u = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				u = l.URL
			}
		}
		for _, en := range b.Entry {
			if en.Search.Mode == "match" {
				ids = append(ids, en.Resource.ID)
			}
		}
	}
	return ids
}

func (e *env) restGet(t testing.TB, token, u string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// gqlResponse is a GraphQL response.
type gqlResponse struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// codes lists the errors' extension codes, in order.
func (r *gqlResponse) codes() []string {
	var out []string
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}

// query posts a GraphQL request to path (relative to the GraphQL server)
// with token and decodes the response.
func (e *env) query(t testing.TB, path, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	return e.post(t, path, token, nil, query, vars)
}

// queryWith is query with extra request headers.
func (e *env) queryWith(t testing.TB, path, token string, header map[string]string, query string) *gqlResponse {
	t.Helper()
	return e.post(t, path, token, header, query, nil)
}

func (e *env) post(t testing.TB, path, token string, header map[string]string, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.gql.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := &gqlResponse{Status: resp.StatusCode}
	if err := json.Unmarshal(b, r); err != nil {
		t.Fatalf("POST %s: %d, not a GraphQL response: %s", path, resp.StatusCode, b)
	}
	return r
}

// gateway queries the gateway of the tenant.
func (e *env) gateway(t testing.TB, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	return e.query(t, "/t/"+tenant+"/graphql", token, query, vars)
}

// subgraph queries the pulsewire subgraph of the tenant directly.
func (e *env) subgraph(t testing.TB, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	return e.query(t, "/t/"+tenant+"/graphql/subgraph", token, query, vars)
}

// decode decodes the data of a response into out, failing on errors
// unless allowErrors.
func (r *gqlResponse) decode(t testing.TB, out any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		t.Fatalf("decoding data %s: %v", r.Data, err)
	}
}

// Test data builders.

func patientJSON(id, family, given, gender, birth string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true,"name":[{"family":%q,"given":[%q]}],"gender":%q,"birthDate":%q,
		"identifier":[{"system":"urn:mrn","value":"mrn-%s"}]}`, id, family, given, gender, birth, id)
}

// obsJSON is an Observation of patient (a Patient id) with a category and
// LOINC code, at effective, made by device (a Device id, or "").
func obsJSON(id, patient, category, code, effective, device string, value float64) string {
	dev := ""
	if device != "" {
		dev = fmt.Sprintf(`,"device":{"reference":"Device/%s"}`, device)
	}
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",
		"category":[{"coding":[{"system":%q,"code":%q}]}],
		"code":{"coding":[{"system":%q,"code":%q}]},
		"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,
		"valueQuantity":{"value":%v,"unit":"1","system":"http://unitsofmeasure.org","code":"1"}%s}`,
		id, catSys, category, loinc, code, patient, effective, value, dev)
}

func deviceJSON(id, patient string) string {
	p := ""
	if patient != "" {
		p = fmt.Sprintf(`,"patient":{"reference":"Patient/%s"}`, patient)
	}
	return fmt.Sprintf(`{"resourceType":"Device","id":%q,"status":"active","manufacturer":"Acme Devices","serialNumber":"sn-%s"%s}`, id, id, p)
}

// dusJSON associates device with patient from start (to end, or open).
func dusJSON(id, device, patient, start, end string) string {
	period := fmt.Sprintf(`{"start":%q}`, start)
	status := "active"
	if end != "" {
		period = fmt.Sprintf(`{"start":%q,"end":%q}`, start, end)
		status = "completed"
	}
	return fmt.Sprintf(`{"resourceType":"DeviceUseStatement","id":%q,"status":%q,"subject":{"reference":"Patient/%s"},
		"device":{"reference":"Device/%s"},"timingPeriod":%s}`, id, status, patient, device, period)
}

// denyConsent is an active privacy Consent of patient that denies
// everything.
func denyConsent(id, patient string) string {
	return fmt.Sprintf(`{"resourceType":"Consent","id":%q,"status":"active",
		"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
		"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
		"patient":{"reference":"Patient/%s"},
		"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},
		"provision":{"type":"deny"}}`, id, patient)
}

// countingStore counts the store calls of the GraphQL API by kind and
// resource type ("Search Patient", "Read Patient", "ReadMany Patient",
// "LastN Observation", "SearchMany DeviceUseStatement+Device").
type countingStore struct {
	graph.Store
	mu sync.Mutex
	n  map[string]int
}

func newCountingStore(s graph.Store) *countingStore {
	return &countingStore{Store: s, n: map[string]int{}}
}

func (c *countingStore) count(k string) {
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
}

func (c *countingStore) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	c.count("Read " + typ)
	return c.Store.Read(ctx, tenant, typ, id)
}

func (c *countingStore) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	c.count("Search " + q.Type)
	return c.Store.Search(ctx, tenant, q)
}

func (c *countingStore) SearchMany(ctx context.Context, tenant string, qs []*fhir.Query) ([]*fhir.SearchResult, error) {
	types := make([]string, len(qs))
	for i, q := range qs {
		types[i] = q.Type
	}
	c.count("SearchMany " + strings.Join(types, "+"))
	return c.Store.SearchMany(ctx, tenant, qs)
}

func (c *countingStore) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	c.count("ReadMany " + typ)
	return c.Store.ReadMany(ctx, tenant, typ, ids)
}

func (c *countingStore) LastN(ctx context.Context, tenant string, q *fhir.Query, max int) ([]*fhir.Resource, error) {
	c.count("LastN " + q.Type)
	return c.Store.LastN(ctx, tenant, q, max)
}

func (c *countingStore) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	c.n = map[string]int{}
	return out
}

func queryString(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }
