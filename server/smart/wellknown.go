package smart

import (
	"net/http"

	"github.com/labstack/echo/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/pulsewire/pulsewire/conformance"
)

// smartConfiguration serves [base]/.well-known/smart-configuration
// (conformance.html#using-well-known): always JSON, whatever Accept says.
func (s *Server) smartConfiguration(c *echo.Context) error {
	ep := s.endpoints(c.Request(), c.Param("tenant"))
	cfg, err := conformance.SMARTConfig(conformance.SMARTOptions{
		Issuer: ep.base, AuthorizationEndpoint: ep.authorize, TokenEndpoint: ep.token, JWKSURI: ep.jwks,
		IntrospectionEndpoint: ep.introspect, RevocationEndpoint: ep.revoke,
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSON(http.StatusOK, cfg)
}

// openIDConfiguration serves [base]/.well-known/openid-configuration: the
// OpenID Provider metadata of the tenant, whose issuer is its FHIR base.
func (s *Server) openIDConfiguration(c *echo.Context) error {
	ep := s.endpoints(c.Request(), c.Param("tenant"))
	methods := make([]oidc.AuthMethod, len(conformance.SMARTTokenAuthMethods))
	for i, m := range conformance.SMARTTokenAuthMethods {
		methods[i] = oidc.AuthMethod(m)
	}
	grants := make([]oidc.GrantType, len(conformance.SMARTGrantTypes))
	for i, g := range conformance.SMARTGrantTypes {
		grants[i] = oidc.GrantType(g)
	}
	doc := oidc.DiscoveryConfiguration{
		Issuer:                                     ep.base,
		AuthorizationEndpoint:                      ep.authorize,
		TokenEndpoint:                              ep.token,
		IntrospectionEndpoint:                      ep.introspect,
		RevocationEndpoint:                         ep.revoke,
		JwksURI:                                    ep.jwks,
		ScopesSupported:                            conformance.SMARTScopes,
		ResponseTypesSupported:                     conformance.SMARTResponseTypes,
		GrantTypesSupported:                        grants,
		SubjectTypesSupported:                      []string{"public"},
		IDTokenSigningAlgValuesSupported:           conformance.SMARTIDTokenSigningAlgs,
		TokenEndpointAuthMethodsSupported:          methods,
		TokenEndpointAuthSigningAlgValuesSupported: conformance.SMARTTokenAuthAlgs,
		ClaimsSupported:                            []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "fhirUser"},
		CodeChallengeMethodsSupported:              []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256},
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSON(http.StatusOK, doc)
}

// jwksHandler serves the tenant's public signing keys.
func (s *Server) jwksHandler(c *echo.Context) error {
	tk, err := s.keys.get(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, tk.jwks)
}
