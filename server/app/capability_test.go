package app_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestMetadataDeclaresSMART: with authorization on, /metadata declares the
// SMART-on-FHIR security service with the same OAuth endpoints as the
// tenant's smart-configuration; with it off, it declares none.
func TestMetadataDeclaresSMART(t *testing.T) {
	getJSON := func(t *testing.T, url string, v any) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	type capStmt struct {
		Rest []struct {
			Security *struct {
				Extension []struct {
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}

	srv := servertest.Start(t, servertest.WithAuth())
	var cs capStmt
	getJSON(t, srv.FHIRBase("acme")+"/metadata", &cs)
	var sc struct {
		Authorize  string `json:"authorization_endpoint"`
		Token      string `json:"token_endpoint"`
		Revoke     string `json:"revocation_endpoint"`
		Introspect string `json:"introspection_endpoint"`
	}
	getJSON(t, srv.FHIRBase("acme")+"/.well-known/smart-configuration", &sc)
	if cs.Rest[0].Security == nil || len(cs.Rest[0].Security.Extension) != 1 {
		t.Fatalf("metadata declares no SMART security: %+v", cs.Rest[0].Security)
	}
	got := map[string]string{}
	for _, e := range cs.Rest[0].Security.Extension[0].Extension {
		got[e.URL] = e.ValueURI
	}
	want := map[string]string{"authorize": sc.Authorize, "token": sc.Token, "revoke": sc.Revoke, "introspect": sc.Introspect}
	for k, v := range want {
		if v == "" || got[k] != v {
			t.Errorf("oauth-uris %s = %q, smart-configuration says %q", k, got[k], v)
		}
	}

	off := servertest.Start(t)
	var plain capStmt
	getJSON(t, off.FHIRBase("acme")+"/metadata", &plain)
	if plain.Rest[0].Security != nil {
		t.Errorf("with authorization off, metadata declares security")
	}
}

// TestNarrowerScopesAreGranted: a backend registered with system/*.rs may
// ask for system/Observation.rs and gets a token that reads Observations
// and not Patients; a scope it did not register is not granted.
func TestNarrowerScopesAreGranted(t *testing.T) {
	srv := servertest.Start(t, servertest.WithAuth())
	token := srv.BackendTokenFor(t, "acme", []string{"system/*.rs"}, "system/Observation.rs")
	for path, want := range map[string]int{"/Observation?_count=1": http.StatusOK, "/Patient?_count=1": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodGet, srv.FHIRBase("acme")+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s with system/Observation.rs: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
