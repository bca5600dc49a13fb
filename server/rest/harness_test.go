package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/adapters/postgres"
	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/adapters/sqlite"
	"github.com/pulsewire/pulsewire/conformance/validate"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/search"
)

var (
	validatorOnce sync.Once
	validator     *validate.Validator
	validatorErr  error
)

func sharedValidator(t *testing.T) *validate.Validator {
	t.Helper()
	validatorOnce.Do(func() { validator, validatorErr = validate.New() })
	if validatorErr != nil {
		t.Fatalf("validate.New: %v", validatorErr)
	}
	return validator
}

// testServer is the API on a real SQLite store behind an httptest server.
type testServer struct {
	*httptest.Server
	store fhir.Store
	logs  *syncBuffer
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

type serverOpts struct {
	wrap    func(fhir.Store) fhir.Store
	maxBody int64
	auditor rest.Auditor // records reads too
}

func newServer(t *testing.T, opts ...func(*serverOpts)) *testServer {
	t.Helper()
	var o serverOpts
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	st := openStore(t)
	for _, tn := range []string{"acme", "globex"} {
		if err := st.EnsureTenant(ctx, tn); err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
	}
	var store fhir.Store = st
	if o.wrap != nil {
		store = o.wrap(st)
	}
	logs := &syncBuffer{}
	api := rest.New(rest.Config{
		Store:     store,
		Registry:  search.NewRegistry(),
		Validator: sharedValidator(t),
		Capability: func(base string) ([]byte, error) {
			return json.Marshal(map[string]any{"resourceType": "CapabilityStatement", "status": "active", "implementation": map[string]string{"url": base}})
		},
		MaxBodyBytes: o.maxBody,
		Auditor:      o.auditor,
		AuditReads:   o.auditor != nil,
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	e := echo.New()
	api.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: st, logs: logs}
}

// openStore opens the store the suite runs on: SQLite by default, or a fresh
// PostgreSQL schema when PULSEWIRE_TEST_STORE=postgres (make test runs this
// package both ways).
func openStore(t *testing.T) fhir.Store {
	t.Helper()
	ctx := context.Background()
	switch backend := os.Getenv("PULSEWIRE_TEST_STORE"); backend {
	case "", "sqlite":
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pulsewire.db"))
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	case "postgres":
		dsn, _ := pgtest.Schema(t)
		st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, MaxConns: 16})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return st
	default:
		t.Fatalf("PULSEWIRE_TEST_STORE=%q: want sqlite or postgres", backend)
		return nil
	}
}

func (s *testServer) base(tenant string) string { return s.URL + "/t/" + tenant + "/fhir" }

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not JSON (%v): %s", err, r.body)
	}
	return m
}

// do sends a request; headers are "Name", "value" pairs.
func do(t *testing.T, method, url, body string, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

func mustStatus(t *testing.T, r *response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body: %s", r.status, want, r.body)
	}
}

// create POSTs a resource and returns its server id.
func create(t *testing.T, base, typ, body string) string {
	t.Helper()
	r := do(t, http.MethodPost, base+"/"+typ, body)
	mustStatus(t, r, http.StatusCreated)
	id, _ := r.json(t)["id"].(string)
	if id == "" {
		t.Fatalf("created %s has no id: %s", typ, r.body)
	}
	return id
}

// path walks a decoded JSON value: keys for objects, ints for arrays.
func path(v any, steps ...any) any {
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, steps ...any) string {
	s, _ := path(v, steps...).(string)
	return s
}

func entries(b map[string]any) []any {
	e, _ := b["entry"].([]any)
	return e
}

func link(b map[string]any, rel string) string {
	for _, l := range path(b, "link").([]any) {
		if str(l, "relation") == rel {
			return str(l, "url")
		}
	}
	return ""
}

func patientJSON(identifier string) string {
	return `{"resourceType":"Patient","identifier":[{"system":"urn:sys","value":"` + identifier + `"}],"name":[{"family":"Doe","given":["Jan"]}],"gender":"female","birthDate":"1980-02-03"}`
}

func observationJSON(patientRef, code, date string) string {
	return `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"subject":{"reference":"` + patientRef + `"},` +
		`"effectiveDateTime":"` + date + `","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
}
