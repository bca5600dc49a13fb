package conformance

import (
	"fmt"
	"net/url"
	"slices"
)

// This file states what Pulsewire's SMART authorization server claims: the
// document served at [base]/.well-known/smart-configuration
// (https://hl7.org/fhir/smart-app-launch/conformance.html). It is pure: it
// builds the document, server/smart serves it.

// SMARTCapabilities are the SMART capabilities Pulsewire supports
// (https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities).
// Scope enforcement behind permission-* is server/authz's.
var SMARTCapabilities = []string{
	"launch-ehr",
	"launch-standalone",
	"authorize-post",
	"client-public",
	"client-confidential-symmetric",
	"client-confidential-asymmetric",
	"sso-openid-connect",
	"context-ehr-patient",
	"context-ehr-encounter",
	"context-standalone-patient",
	"permission-offline",
	"permission-online",
	"permission-patient",
	"permission-user",
	"permission-v1",
	"permission-v2",
}

// SMARTScopes are the scopes advertised in scopes_supported when the caller
// names none (the list is not exhaustive, as the spec allows).
var SMARTScopes = []string{
	"openid", "fhirUser", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
	"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
	"patient/*.read", "user/*.read", "system/*.read",
}

// What the token and authorization endpoints accept.
var (
	SMARTGrantTypes         = []string{"authorization_code", "refresh_token", "client_credentials"}
	SMARTResponseTypes      = []string{"code"}
	SMARTCodeChallenge      = []string{"S256"} // never "plain" (SMART 2.x)
	SMARTTokenAuthMethods   = []string{"client_secret_basic", "private_key_jwt"}
	SMARTTokenAuthAlgs      = []string{"RS384", "ES384"}
	SMARTIDTokenSigningAlgs = []string{"RS256"}
)

// SMARTOptions are one tenant's SMART endpoints. All URLs are absolute.
type SMARTOptions struct {
	Issuer                string // the tenant's FHIR base URL (also the OpenID issuer)
	AuthorizationEndpoint string
	TokenEndpoint         string
	JWKSURI               string
	IntrospectionEndpoint string
	RevocationEndpoint    string
	// Scopes for scopes_supported; nil means SMARTScopes.
	Scopes []string
}

// SMARTConfiguration is the smart-configuration document.
type SMARTConfiguration struct {
	Issuer                                     string   `json:"issuer"`
	JWKSURI                                    string   `json:"jwks_uri"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	Capabilities                               []string `json:"capabilities"`
}

// SMARTConfig builds the smart-configuration document for o. It returns an
// error when an endpoint is not an absolute http(s) URL.
func SMARTConfig(o SMARTOptions) (*SMARTConfiguration, error) {
	for name, v := range map[string]string{
		"issuer": o.Issuer, "authorization_endpoint": o.AuthorizationEndpoint, "token_endpoint": o.TokenEndpoint,
		"jwks_uri": o.JWKSURI, "introspection_endpoint": o.IntrospectionEndpoint, "revocation_endpoint": o.RevocationEndpoint,
	} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("smart-configuration %s %q: want an absolute http(s) URL without query or fragment", name, v)
		}
	}
	scopes := o.Scopes
	if scopes == nil {
		scopes = SMARTScopes
	}
	return &SMARTConfiguration{
		Issuer:                            o.Issuer,
		JWKSURI:                           o.JWKSURI,
		AuthorizationEndpoint:             o.AuthorizationEndpoint,
		GrantTypesSupported:               slices.Clone(SMARTGrantTypes),
		TokenEndpoint:                     o.TokenEndpoint,
		TokenEndpointAuthMethodsSupported: slices.Clone(SMARTTokenAuthMethods),
		TokenEndpointAuthSigningAlgValuesSupported: slices.Clone(SMARTTokenAuthAlgs),
		ScopesSupported:               slices.Clone(scopes),
		ResponseTypesSupported:        slices.Clone(SMARTResponseTypes),
		IntrospectionEndpoint:         o.IntrospectionEndpoint,
		RevocationEndpoint:            o.RevocationEndpoint,
		CodeChallengeMethodsSupported: slices.Clone(SMARTCodeChallenge),
		Capabilities:                  slices.Clone(SMARTCapabilities),
	}, nil
}
