package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/adapters/redis/redistest"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/servertest"
	"github.com/pulsewire/pulsewire/server/smart"
)

// call sends a request with a bearer token and returns status and body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// matchIDs returns the ids of a searchset's entries, sorted.
func matchIDs(t *testing.T, b []byte) []string {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatalf("not a Bundle: %v: %s", err, b)
	}
	var out []string
	for _, e := range bundle.Entry {
		out = append(out, e.Resource.ID)
	}
	slices.Sort(out)
	return out
}

const optOutConsent = `{"resourceType":"Consent","id":"c1","status":"active",` +
	`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
	`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],` +
	`"patient":{"reference":"Patient/p1"},` +
	`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},` +
	`"provision":{"type":"deny"}}`

func observation(id, patient string) string {
	return `{"resourceType":"Observation","id":"` + id + `","status":"final",` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/` + patient + `"},` +
		`"effectiveDateTime":"2026-01-02T03:04:05Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
}

// TestAuthReplicasShareDecisions runs two servers on one store (which
// also keeps the authorization server's state) and one Redis (L2 of the
// decision cache):
// a Consent written through the first changes what the second decides
// within a second — deny, permit, deny again.
func TestAuthReplicasShareDecisions(t *testing.T) {
	prefix := redistest.Prefix(t)
	redistest.Store(t, prefix) // skips without Redis; deletes the keys at the end
	shared := []servertest.Option{
		servertest.WithAuth(), servertest.WithRedis(redistest.URL(), prefix),
		servertest.WithPublicURL("http://pulsewire.test"),
	}
	if os.Getenv("PULSEWIRE_TEST_STORE") == "postgres" {
		dsn, _ := pgtest.Schema(t)
		shared = append(shared, servertest.WithPostgres(dsn))
	} else {
		shared = append(shared, servertest.WithDataDir(t.TempDir()))
	}
	s1 := servertest.Start(t, shared...)
	s2 := servertest.Start(t, shared...)

	sys := s1.BackendToken(t, "acme", "system/*.cruds")
	doc := s1.UserToken(t, "acme", "Practitioner/doc-1", "user/Observation.rs")
	for _, w := range []struct{ rel, body string }{
		{"Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
		{"Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
		{"Observation/o1", observation("o1", "p1")},
		{"Observation/o2", observation("o2", "p2")},
	} {
		if st, b := call(t, http.MethodPut, s1.FHIRBase("acme")+"/"+w.rel, sys, w.body); st != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", w.rel, st, b)
		}
	}
	search := s2.FHIRBase("acme") + "/Observation"
	if st, b := call(t, http.MethodGet, search, doc, ""); st != http.StatusOK || !cmp.Equal(matchIDs(t, b), []string{"o1", "o2"}) {
		t.Fatalf("replica 2 before any Consent: %d %s", st, b)
	}
	for _, step := range []struct {
		method, body string
		want         []string
	}{
		{http.MethodPut, optOutConsent, []string{"o2"}},
		{http.MethodDelete, "", []string{"o1", "o2"}},
		{http.MethodPut, optOutConsent, []string{"o2"}},
	} {
		if st, b := call(t, step.method, s1.FHIRBase("acme")+"/Consent/c1", sys, step.body); st >= 300 {
			t.Fatalf("%s Consent on replica 1: %d %s", step.method, st, b)
		}
		start := time.Now()
		var got []string
		for time.Since(start) < time.Second {
			st, b := call(t, http.MethodGet, search, doc, "")
			if st != http.StatusOK {
				t.Fatalf("replica 2 search: %d %s", st, b)
			}
			if got = matchIDs(t, b); cmp.Equal(got, step.want) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := cmp.Diff(step.want, got); d != "" {
			t.Fatalf("replica 2 one second after %s Consent on replica 1 (-want +got):\n%s", step.method, d)
		}
		t.Logf("%s Consent: replica 2 decided on it after %v", step.method, time.Since(start).Round(time.Millisecond))
	}
}

func TestAuthOffWarns(t *testing.T) {
	var logs bytes.Buffer
	s := servertest.Start(t, servertest.WithLogger(&logs))
	if !strings.Contains(logs.String(), "authorization is OFF: development only") {
		t.Errorf("no warning that authorization is off in the start log:\n%s", logs.String())
	}
	// Off means off: no token needed, and no authorization server routes.
	if st, b := call(t, http.MethodGet, s.FHIRBase("acme")+"/Observation", "", ""); st != http.StatusOK {
		t.Errorf("search without a token, authorization off: %d %s", st, b)
	}
	if st, _ := call(t, http.MethodGet, s.FHIRBase("acme")+"/.well-known/smart-configuration", "", ""); st != http.StatusNotFound {
		t.Errorf("smart-configuration with authorization off: %d, want 404", st)
	}
}

func TestAuthConfigRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth app.AuthConfig
	}{
		{"unknown mode", app.AuthConfig{Mode: "maybe"}},
		{"unknown consent model", app.AuthConfig{ConsentModel: "sometimes"}},
		{"bad Redis URL", app.AuthConfig{RedisURL: "http://not-redis"}},
		{"bad external issuer", app.AuthConfig{ExternalIssuers: map[string][]smart.ExternalIssuer{"acme": {{Issuer: "https://idp.example"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), Tenants: []string{"acme"}, Auth: tc.auth,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				a.Close()
				t.Fatal("app.New accepted the configuration")
			}
		})
	}
}

func TestParseExternalIssuers(t *testing.T) {
	got, err := app.ParseExternalIssuers(`{"acme":[{"issuer":"https://ehr.example","jwks_uri":"https://ehr.example/jwks","audience":"fhir"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]smart.ExternalIssuer{"acme": {{Issuer: "https://ehr.example", JWKSURL: "https://ehr.example/jwks", Audience: "fhir"}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, bad := range []string{`[]`, `{"acme":[{"iss":"x"}]}`, `{`} {
		if _, err := app.ParseExternalIssuers(bad); err == nil {
			t.Errorf("ParseExternalIssuers(%s) accepted it", bad)
		}
	}
	if m, err := app.ParseExternalIssuers(" "); err != nil || m != nil {
		t.Errorf("empty: %v, %v", m, err)
	}
}
