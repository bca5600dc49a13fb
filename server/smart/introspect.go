package smart

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// introspect is RFC 7662 token introspection with SMART's required fields
// (token-introspection.html). Callers authenticate as a confidential client
// (client_secret_basic or private_key_jwt), or present a bearer token of
// the tenant with a system/ scope (a backend service, as the SMART page
// allows), or the admin token. Any valid token of the tenant can be
// introspected; an invalid, expired or revoked one is {"active": false}.
func (s *Server) introspect(c *echo.Context) error {
	tenant := c.Param("tenant")
	form, oe := postForm(c)
	if oe != nil {
		return s.oauthError(c, oe)
	}
	ep := s.endpoints(c.Request(), tenant)
	if oe := s.introspectionCaller(c, tenant, form, ep); oe != nil {
		return s.oauthError(c, oe)
	}
	token := form.Get("token")
	if token == "" {
		return s.oauthError(c, errInvalidRequest("token is required"))
	}
	ctx := c.Request().Context()
	// Our access tokens are JWTs; our refresh tokens are opaque (no dot).
	resp := &oidc.IntrospectionResponse{}
	if strings.Contains(token, ".") {
		g, err := s.authenticateToken(ctx, tenant, token, ep.base)
		switch {
		case err == nil:
			resp = grantIntrospection(g, ep.base)
		case !fhir.IsKind(err, fhir.KindUnauthorized):
			return s.oauthError(c, errServer(err))
		}
	} else {
		rec, err := s.refreshRecord(ctx, tenant, token)
		if err != nil {
			return s.oauthError(c, errServer(err))
		}
		if rec != nil {
			resp = &oidc.IntrospectionResponse{Active: true, Scope: rec.Scopes, ClientID: rec.ClientID,
				Expiration: oidc.FromTime(time.Unix(rec.Expires, 0)), Subject: rec.Subject, Issuer: rec.Issuer}
			resp.Claims = contextClaims(rec.Patient, rec.Encounter, rec.FHIRUser, ep.base)
		}
	}
	noStore(c.Response().Header())
	return c.JSON(http.StatusOK, resp)
}

// grantIntrospection is the introspection response of an active token.
func grantIntrospection(g *Grant, base string) *oidc.IntrospectionResponse {
	resp := &oidc.IntrospectionResponse{
		Active: true, Scope: g.Scopes, ClientID: g.ClientID, TokenType: oidc.BearerToken,
		Expiration: oidc.FromTime(g.ExpiresAt), Subject: g.Subject, Issuer: g.Issuer, JWTID: g.TokenID,
	}
	resp.Claims = contextClaims(g.Patient, g.Encounter, g.FHIRUser, base)
	return resp
}

// contextClaims are the SMART launch context and fhirUser of a token.
func contextClaims(patient, encounter, fhirUser, base string) map[string]any {
	m := map[string]any{}
	if patient != "" {
		m["patient"] = patient
	}
	if encounter != "" {
		m["encounter"] = encounter
	}
	if fhirUser != "" {
		if !strings.Contains(fhirUser, "://") {
			fhirUser = base + "/" + fhirUser
		}
		m["fhirUser"] = fhirUser
	}
	return m
}

// refreshRecord returns the live record of a refresh token, or nil.
func (s *Server) refreshRecord(ctx context.Context, tenant, rt string) (*grantRecord, error) {
	b, ok, err := s.getState(ctx, tenant, "refresh", hashKey(rt))
	if err != nil || !ok {
		return nil, err
	}
	var rec grantRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	_, revoked, err := s.getState(ctx, tenant, "family", rec.Family)
	if err != nil || revoked {
		return nil, err
	}
	return &rec, nil
}

// introspectionCaller authenticates the caller of the introspection
// endpoint.
func (s *Server) introspectionCaller(c *echo.Context, tenant string, form map[string][]string, ep endpoints) *oidc.Error {
	h := c.Request().Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		if s.adminTok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminTok)) == 1 {
			return nil
		}
		g, err := s.authenticateToken(c.Request().Context(), tenant, tok, ep.base)
		if err != nil {
			if fhir.IsKind(err, fhir.KindUnauthorized) {
				return errInvalidClient("the bearer token of the caller is not valid")
			}
			return errServer(err)
		}
		for _, sc := range g.Scopes {
			if strings.HasPrefix(sc, "system/") {
				return nil
			}
		}
		return errInvalidClient("introspection needs a backend-service token (system/ scope) or client authentication")
	}
	cl, oe := s.authenticateClient(c, tenant, form, ep)
	if oe != nil {
		return oe
	}
	if cl.Type == registry.Public {
		return errInvalidClient("public clients may not introspect tokens")
	}
	return nil
}

// revoke is RFC 7009 token revocation. The client authenticates (public
// clients name themselves) and may revoke only its own tokens. Revoking a
// refresh token revokes its family and the access token issued with it;
// an access token is revoked until it expires. The answer is 200 whether
// or not the token was valid (§2.2).
func (s *Server) revoke(c *echo.Context) error {
	tenant := c.Param("tenant")
	form, oe := postForm(c)
	if oe != nil {
		return s.oauthError(c, oe)
	}
	ep := s.endpoints(c.Request(), tenant)
	cl, oe := s.authenticateClient(c, tenant, form, ep)
	if oe != nil {
		return s.oauthError(c, oe)
	}
	token := form.Get("token")
	if token == "" {
		return s.oauthError(c, errInvalidRequest("token is required"))
	}
	ctx := c.Request().Context()
	if strings.Contains(token, ".") {
		g, err := s.authenticateToken(ctx, tenant, token, ep.base)
		switch {
		case err == nil && !g.External:
			if g.ClientID != cl.ID {
				return s.oauthError(c, oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client"))
			}
			if err := s.revokeJTI(ctx, tenant, g.Issuer, g.TokenID, g.ExpiresAt.Unix()); err != nil {
				// Not 200: the client must assume the token still works
				// (RFC 7009 §2.2.1) and may try again.
				return s.oauthError(c, errServer(err))
			}
		case err != nil && !fhir.IsKind(err, fhir.KindUnauthorized):
			return s.oauthError(c, errServer(err))
		}
	} else {
		rec, err := s.refreshRecord(ctx, tenant, token)
		if err != nil {
			return s.oauthError(c, errServer(err))
		}
		if rec != nil {
			if rec.ClientID != cl.ID {
				return s.oauthError(c, oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client"))
			}
			// The revocations first: a failure leaves the record, so the
			// client's retry finds the token and revokes it then.
			if err := s.revokeFamily(ctx, tenant, rec.Family); err != nil {
				return s.oauthError(c, errServer(err))
			}
			if err := s.revokeJTI(ctx, tenant, rec.Issuer, rec.AccessJTI, rec.AccessExp); err != nil {
				return s.oauthError(c, errServer(err))
			}
			if err := s.delState(ctx, tenant, "refresh", hashKey(token)); err != nil {
				return s.oauthError(c, errServer(err))
			}
		}
	}
	noStore(c.Response().Header())
	return c.NoContent(http.StatusOK)
}
