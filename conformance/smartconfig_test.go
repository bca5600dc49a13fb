package conformance_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/conformance"
)

func smartOptions() conformance.SMARTOptions {
	base := "https://fhir.example.org/t/acme"
	return conformance.SMARTOptions{
		Issuer:                base + "/fhir",
		AuthorizationEndpoint: base + "/auth/authorize",
		TokenEndpoint:         base + "/auth/token",
		JWKSURI:               base + "/auth/jwks",
		IntrospectionEndpoint: base + "/auth/introspect",
		RevocationEndpoint:    base + "/auth/revoke",
	}
}

// TestSMARTConfigRequiredFields checks the document against the rules of
// https://hl7.org/fhir/smart-app-launch/conformance.html#metadata and of the
// capabilities it claims.
func TestSMARTConfigRequiredFields(t *testing.T) {
	cfg, err := conformance.SMARTConfig(smartOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"authorization_endpoint", "token_endpoint", "capabilities", "code_challenge_methods_supported",
		"issuer", "jwks_uri", "grant_types_supported", "scopes_supported", "introspection_endpoint", "revocation_endpoint"} {
		if v, ok := doc[field]; !ok || v == "" || v == nil {
			t.Errorf("field %s missing or empty", field)
		}
	}
	strs := func(field string) []string {
		var out []string
		for _, v := range doc[field].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if d := cmp.Diff([]string{"S256"}, strs("code_challenge_methods_supported")); d != "" {
		t.Errorf("code_challenge_methods_supported: S256 only, never plain (-want +got):\n%s", d)
	}
	caps := strs("capabilities")
	for _, c := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
		"client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient", "permission-v1",
		"permission-v2", "permission-patient", "permission-user", "sso-openid-connect", "authorize-post"} {
		if !slices.Contains(caps, c) {
			t.Errorf("capability %s not claimed", c)
		}
	}
	// client-confidential-asymmetric needs private_key_jwt with RS384 or ES384.
	if !slices.Contains(strs("token_endpoint_auth_methods_supported"), "private_key_jwt") {
		t.Error("token_endpoint_auth_methods_supported lacks private_key_jwt")
	}
	if d := cmp.Diff([]string{"RS384", "ES384"}, strs("token_endpoint_auth_signing_alg_values_supported")); d != "" {
		t.Errorf("token_endpoint_auth_signing_alg_values_supported (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"authorization_code", "refresh_token", "client_credentials"}, strs("grant_types_supported")); d != "" {
		t.Errorf("grant_types_supported (-want +got):\n%s", d)
	}
	if doc["issuer"] != "https://fhir.example.org/t/acme/fhir" {
		t.Errorf("issuer = %v, want the FHIR base URL", doc["issuer"])
	}
}

func TestSMARTConfigScopes(t *testing.T) {
	o := smartOptions()
	o.Scopes = []string{"system/Observation.rs"}
	cfg, err := conformance.SMARTConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"system/Observation.rs"}, cfg.ScopesSupported); d != "" {
		t.Errorf("ScopesSupported (-want +got):\n%s", d)
	}
	// The returned lists are copies: changing one does not change the claims.
	cfg.Capabilities[0] = "changed"
	if again, _ := conformance.SMARTConfig(o); again.Capabilities[0] == "changed" {
		t.Error("SMARTConfig shares its capability slice with callers")
	}
}

func TestSMARTConfigRejectsBadURLs(t *testing.T) {
	for name, mutate := range map[string]func(*conformance.SMARTOptions){
		"relative token endpoint": func(o *conformance.SMARTOptions) { o.TokenEndpoint = "/auth/token" },
		"empty issuer":            func(o *conformance.SMARTOptions) { o.Issuer = "" },
		"jwks with query":         func(o *conformance.SMARTOptions) { o.JWKSURI += "?x=1" },
		"ftp authorize":           func(o *conformance.SMARTOptions) { o.AuthorizationEndpoint = "ftp://h/a" },
	} {
		t.Run(name, func(t *testing.T) {
			o := smartOptions()
			mutate(&o)
			if _, err := conformance.SMARTConfig(o); err == nil {
				t.Error("SMARTConfig accepted it")
			}
		})
	}
}
