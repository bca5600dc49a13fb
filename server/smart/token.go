package smart

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// grantRecord is what an authorization code or a refresh token stands for
// (stored in registry.State as JSON).
type grantRecord struct {
	ClientID    string   `json:"client_id"`
	RedirectURI string   `json:"redirect_uri,omitempty"`
	Challenge   string   `json:"code_challenge,omitempty"` // S256
	Scopes      []string `json:"scopes"`
	Subject     string   `json:"sub,omitempty"`       // username; the client id for backend services
	FHIRUser    string   `json:"fhir_user,omitempty"` // relative reference
	Patient     string   `json:"patient,omitempty"`
	Encounter   string   `json:"encounter,omitempty"`
	Nonce       string   `json:"nonce,omitempty"`
	AuthTime    int64    `json:"auth_time,omitempty"`
	Backend     bool     `json:"backend,omitempty"`
	// Refresh tokens: the token family (all rotations of one grant), its
	// absolute expiry, and the access token issued with it.
	Family    string `json:"family,omitempty"`
	Expires   int64  `json:"expires,omitempty"`
	AccessJTI string `json:"access_jti,omitempty"`
	AccessExp int64  `json:"access_exp,omitempty"`
	Issuer    string `json:"iss,omitempty"`
}

// issued is what one token response issued, remembered so that a replayed
// authorization code can revoke it (RFC 6749 §4.1.2).
type issued struct {
	Issuer string `json:"iss"`
	JTI    string `json:"jti"`
	Exp    int64  `json:"exp"`
	Family string `json:"family,omitempty"`
}

// tokenResponse is RFC 6749 §5.1 with SMART's launch context
// (app-launch.html#response-5).
type tokenResponse struct {
	oidc.AccessTokenResponse
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
}

// token is the token endpoint.
func (s *Server) token(c *echo.Context) error {
	tenant := c.Param("tenant")
	form, oe := postForm(c)
	if oe != nil {
		return s.oauthError(c, oe)
	}
	gt := form.Get("grant_type")
	switch gt {
	case "authorization_code", "refresh_token", "client_credentials":
	case "":
		return s.oauthError(c, errInvalidRequest("grant_type is required"))
	default:
		return s.oauthError(c, oidc.ErrUnsupportedGrantType().WithDescription("grant_type must be authorization_code, refresh_token or client_credentials"))
	}
	ep := s.endpoints(c.Request(), tenant)
	client, oe := s.authenticateClient(c, tenant, form, ep)
	if oe != nil {
		return s.oauthError(c, oe)
	}
	ctx := c.Request().Context()
	var resp *tokenResponse
	switch gt {
	case "authorization_code":
		resp, oe = s.codeGrant(ctx, tenant, ep, client, form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier"))
	case "refresh_token":
		resp, oe = s.refreshGrant(ctx, tenant, ep, client, form.Get("refresh_token"), form["scope"])
	case "client_credentials":
		resp, oe = s.clientCredentialsGrant(ctx, tenant, ep, client, form.Get("scope"))
	}
	if oe != nil {
		return s.oauthError(c, oe)
	}
	noStore(c.Response().Header())
	return c.JSON(http.StatusOK, resp)
}

// codeGrant exchanges an authorization code (single use) for tokens,
// checking the client, the exact redirect_uri and the PKCE S256 verifier.
// A code presented again revokes what its first exchange issued.
func (s *Server) codeGrant(ctx context.Context, tenant string, ep endpoints, client *registry.Client, code, redirect, verifier string) (*tokenResponse, *oidc.Error) {
	switch {
	case code == "":
		return nil, errInvalidRequest("code is required")
	case redirect == "":
		return nil, errInvalidRequest("redirect_uri is required")
	case verifier == "":
		return nil, errInvalidRequest("code_verifier is required (PKCE)")
	}
	b, ok, err := s.takeState(ctx, tenant, "code", hashKey(code))
	if err != nil {
		return nil, errServer(err)
	}
	if !ok {
		s.codeReplayed(ctx, tenant, code)
		return nil, errInvalidGrant("the authorization code is invalid, expired or already used")
	}
	var rec grantRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errServer(err)
	}
	switch {
	case rec.ClientID != client.ID:
		return nil, errInvalidGrant("the authorization code was issued to another client")
	case rec.RedirectURI != redirect:
		return nil, errInvalidGrant("redirect_uri does not match the authorization request")
	case !validVerifier(verifier) ||
		!oidc.VerifyCodeChallenge(&oidc.CodeChallenge{Challenge: rec.Challenge, Method: oidc.CodeChallengeMethodS256}, verifier):
		return nil, errInvalidGrant("code_verifier does not match the code_challenge")
	}
	resp, is, oe := s.issue(ctx, tenant, ep, &rec)
	if oe != nil {
		return nil, oe
	}
	if b, err := json.Marshal(is); err == nil {
		if _, err := s.putState(ctx, tenant, "codeused", hashKey(code), b, s.ttl.access); err != nil {
			s.log.Warn("remembering a used authorization code failed", "tenant", tenant, "err", err)
		}
	}
	return resp, nil
}

// validVerifier: RFC 7636 §4.1, 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, r := range v {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~') {
			return false
		}
	}
	return true
}

// codeReplayed revokes what the first exchange of a code issued.
func (s *Server) codeReplayed(ctx context.Context, tenant, code string) {
	b, ok, err := s.getState(ctx, tenant, "codeused", hashKey(code))
	if err != nil || !ok {
		return
	}
	var is issued
	if json.Unmarshal(b, &is) != nil {
		return
	}
	s.log.Warn("authorization code replayed; revoking the tokens it issued", "tenant", tenant)
	_ = s.revokeJTI(ctx, tenant, is.Issuer, is.JTI, is.Exp) // logged; the replayed code is refused either way
	if is.Family != "" {
		_ = s.revokeFamily(ctx, tenant, is.Family) // logged; the replayed code is refused either way
	}
}

// refreshGrant rotates a refresh token: the old one is consumed, the new
// one keeps the family and its absolute expiry. A scope parameter may only
// narrow the grant (the narrowed scopes stay narrowed). A rotated token
// presented again revokes the whole family.
func (s *Server) refreshGrant(ctx context.Context, tenant string, ep endpoints, client *registry.Client, rt string, scopeParam []string) (*tokenResponse, *oidc.Error) {
	if rt == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	b, ok, err := s.getState(ctx, tenant, "refresh", hashKey(rt))
	if err != nil {
		return nil, errServer(err)
	}
	if !ok {
		s.refreshReplayed(ctx, tenant, rt)
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	var rec grantRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errServer(err)
	}
	if _, revoked, err := s.getState(ctx, tenant, "family", rec.Family); err != nil {
		return nil, errServer(err)
	} else if revoked {
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	if rec.ClientID != client.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	if len(scopeParam) > 0 {
		asked := splitScopes(scopeParam[0])
		if len(asked) == 0 || !subsetOf(asked, rec.Scopes) {
			return nil, errInvalidScope("a refresh may only narrow the granted scopes")
		}
		rec.Scopes = slices.DeleteFunc(rec.Scopes, func(sc string) bool { return !slices.Contains(asked, sc) })
	}
	if _, ok, err := s.takeState(ctx, tenant, "refresh", hashKey(rt)); err != nil {
		return nil, errServer(err)
	} else if !ok { // used concurrently
		s.refreshReplayed(ctx, tenant, rt)
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	if ttl := time.Unix(rec.Expires, 0).Sub(s.now()); ttl > 0 {
		if _, err := s.putState(ctx, tenant, "refreshused", hashKey(rt), []byte(rec.Family), ttl); err != nil {
			s.log.Warn("remembering a used refresh token failed", "tenant", tenant, "err", err)
		}
	}
	resp, _, oe := s.issue(ctx, tenant, ep, &rec)
	return resp, oe
}

// refreshReplayed revokes the family of a refresh token that was already
// rotated (RFC 9700 §4.14.2: refresh token reuse detection).
func (s *Server) refreshReplayed(ctx context.Context, tenant, rt string) {
	b, ok, err := s.getState(ctx, tenant, "refreshused", hashKey(rt))
	if err != nil || !ok {
		return
	}
	s.log.Warn("rotated refresh token replayed; revoking its family", "tenant", tenant)
	_ = s.revokeFamily(ctx, tenant, string(b)) // logged; the replayed token is refused either way
}

// clientCredentialsGrant is SMART Backend Services: a private_key_jwt
// client gets a short access token for system/ scopes.
func (s *Server) clientCredentialsGrant(ctx context.Context, tenant string, ep endpoints, client *registry.Client, scope string) (*tokenResponse, *oidc.Error) {
	if client.Type != registry.ConfidentialAsymmetric {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client_credentials is for backend services authenticating with private_key_jwt")
	}
	if scope == "" {
		return nil, errInvalidScope("scope is required")
	}
	granted := s.grantable(client.Scopes, splitScopes(scope), true)
	if len(granted) == 0 {
		return nil, errInvalidScope("none of the requested scopes may be granted to this client")
	}
	resp, _, oe := s.issue(ctx, tenant, ep, &grantRecord{ClientID: client.ID, Subject: client.ID, Scopes: granted, Backend: true})
	return resp, oe
}

// issue signs the access token of rec and, as rec's scopes ask, an
// id_token (openid, for a signed-in user) and a refresh token
// (offline_access or online_access).
func (s *Server) issue(ctx context.Context, tenant string, ep endpoints, rec *grantRecord) (*tokenResponse, issued, *oidc.Error) {
	now := s.now()
	ttl := s.ttl.access
	if rec.Backend {
		ttl = s.ttl.backend
	}
	exp := now.Add(ttl)
	var fhirUser string
	if rec.FHIRUser != "" {
		fhirUser = ep.base + "/" + rec.FHIRUser
	}
	at := accessClaims{
		Issuer: ep.base, Subject: rec.Subject, Audience: ep.base, ExpiresAt: exp.Unix(), IssuedAt: now.Unix(),
		ID: randomToken(16), ClientID: rec.ClientID, Scope: joinScopes(rec.Scopes), Tenant: tenant,
		Patient: rec.Patient, Encounter: rec.Encounter, FHIRUser: fhirUser,
	}
	access, err := s.sign(ctx, tenant, at, typAccess)
	if err != nil {
		return nil, issued{}, errServer(err)
	}
	resp := &tokenResponse{
		AccessTokenResponse: oidc.AccessTokenResponse{AccessToken: access, TokenType: oidc.BearerToken,
			ExpiresIn: uint64(ttl / time.Second), Scope: rec.Scopes},
		Patient: rec.Patient, Encounter: rec.Encounter,
	}
	is := issued{Issuer: ep.base, JTI: at.ID, Exp: at.ExpiresAt}
	if rec.Backend {
		return resp, is, nil
	}
	if slices.Contains(rec.Scopes, "openid") && rec.Subject != "" {
		idc := oidc.NewIDTokenClaims(ep.base, rec.Subject, []string{rec.ClientID}, exp, time.Unix(rec.AuthTime, 0), rec.Nonce, "", nil, rec.ClientID, 0)
		idc.IssuedAt = oidc.FromTime(now)
		if slices.Contains(rec.Scopes, "fhirUser") && fhirUser != "" {
			idc.Claims = map[string]any{"fhirUser": fhirUser}
		}
		if resp.IDToken, err = s.sign(ctx, tenant, idc, typID); err != nil {
			return nil, issued{}, errServer(err)
		}
	}
	var refreshTTL time.Duration
	switch {
	case slices.Contains(rec.Scopes, "offline_access"):
		refreshTTL = s.ttl.offline
	case slices.Contains(rec.Scopes, "online_access"):
		refreshTTL = s.ttl.online
	default:
		return resp, is, nil
	}
	if rec.Family == "" {
		rec.Family = randomToken(16)
		rec.Expires = now.Add(refreshTTL).Unix()
	}
	remaining := time.Unix(rec.Expires, 0).Sub(now)
	if remaining <= 0 {
		return resp, is, nil
	}
	rec.AccessJTI, rec.AccessExp, rec.Issuer = at.ID, at.ExpiresAt, ep.base
	rec.RedirectURI, rec.Challenge = "", ""
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, issued{}, errServer(err)
	}
	rt := randomToken(32)
	if _, err := s.putState(ctx, tenant, "refresh", hashKey(rt), b, remaining); err != nil {
		return nil, issued{}, errServer(err)
	}
	resp.RefreshToken = rt
	is.Family = rec.Family
	return resp, is, nil
}

// revokeJTI marks an access token revoked until it expires: in the store,
// which other replicas follow (see revocationSet), and at once in this
// replica's set.
//
// It returns the store's error (also logged) so that the revocation
// endpoint does not answer 200 for a revocation that was not stored.
func (s *Server) revokeJTI(ctx context.Context, tenant, iss, jti string, exp int64) error {
	ttl := time.Unix(exp, 0).Add(clockSkew).Sub(s.now())
	if jti == "" || ttl <= 0 {
		return nil
	}
	id := revocationID(iss, jti)
	s.touch(tenant)
	if err := s.state.Revoke(ctx, tenant, id, ttl); err != nil {
		s.log.Error("revoking an access token failed", "tenant", tenant, "err", err)
		return err
	}
	s.revoked.add(tenant, id, time.Now().Add(ttl))
	return nil
}

// revokeFamily revokes every refresh token of a family.
func (s *Server) revokeFamily(ctx context.Context, tenant, family string) error {
	if family == "" {
		return nil
	}
	if _, err := s.putState(ctx, tenant, "family", family, []byte{1}, s.ttl.offline); err != nil {
		s.log.Error("revoking a refresh token family failed", "tenant", tenant, "err", err)
		return err
	}
	return nil
}
