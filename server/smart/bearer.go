package smart

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Grant is who is calling and what they were granted, as an access token
// says. server/authz decides from it what the call may see. Treat it as
// read-only: its Scopes slice is shared with the server's cache.
type Grant struct {
	Tenant   string // the tenant of the URL, which the token was checked against
	ClientID string
	// Subject is the signed-in user's username, or the client id for
	// backend services; for external tokens, their sub.
	Subject string
	// FHIRUser is the user's FHIR resource as a relative reference
	// ("Practitioner/123", "Patient/456"), or "".
	FHIRUser string
	// Scopes are the granted scope strings, unparsed.
	Scopes    []string
	Patient   string // launch context: Patient id, or ""
	Encounter string // launch context: Encounter id, or ""
	Issuer    string // the token's iss
	External  bool   // issued by a configured external issuer
	TokenID   string // jti ("" when an external token has none)
	ExpiresAt time.Time
}

type grantKey struct{}

// WithGrant returns ctx carrying g.
func WithGrant(ctx context.Context, g *Grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

// GrantFrom returns the Grant Middleware stored in ctx.
func GrantFrom(ctx context.Context) (*Grant, bool) {
	g, ok := ctx.Value(grantKey{}).(*Grant)
	return g, ok && g != nil
}

// errNoToken: the request carries no bearer token (RFC 6750 §3.1: the
// challenge then has no error code).
var errNoToken = fhir.Errorf(fhir.KindUnauthorized, "an access token is required (Authorization: Bearer)")

// invalidToken is the error of a token that does not verify.
func invalidToken(reason string) *fhir.Error {
	return fhir.Errorf(fhir.KindUnauthorized, "invalid access token: %s", reason)
}

// Authenticate checks the request's bearer token for tenant (the tenant of
// the URL) and returns its grant. It accepts the tenant's own access tokens
// (signature, typ, iss and aud = the tenant's FHIR base URL, the tenant
// claim, expiry, not revoked) and tokens of the tenant's external issuers.
//
// Errors are *fhir.Error KindUnauthorized (401; Challenge gives the
// WWW-Authenticate value), or KindInternal when the key store fails, or
// the revocations cannot be brought up to date (see revocationSet) — never
// a silent pass.
func (s *Server) Authenticate(r *http.Request, tenant string) (*Grant, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errNoToken
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errNoToken
	}
	return s.authenticateToken(r.Context(), tenant, token, s.fhirBase(r, tenant))
}

func (s *Server) authenticateToken(ctx context.Context, tenant, token, base string) (*Grant, error) {
	key := tokenKey{tenant: tenant, base: base, token: token}
	g, rid, ok := s.verified.get(key, s.now())
	if !ok {
		var err error
		if g, err = s.verifyToken(ctx, tenant, token, base); err != nil {
			return nil, err
		}
		if g.TokenID != "" {
			rid = revocationID(g.Issuer, g.TokenID)
		}
		s.verified.put(key, g, rid, s.now())
	}
	if rid != "" {
		// In process (see revocationSet): no network call per request.
		revoked, err := s.revoked.revoked(ctx, tenant, rid)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInternal, "checking token revocation").Wrap(err)
		}
		if revoked {
			return nil, invalidToken("revoked")
		}
	}
	return g, nil
}

// verifyToken checks a token's signature and claims (not revocation).
func (s *Server) verifyToken(ctx context.Context, tenant, token, base string) (*Grant, error) {
	var peeked struct {
		Issuer string `json:"iss"`
	}
	h, err := peek(token, &peeked)
	if err != nil {
		return nil, invalidToken(err.Error())
	}
	var g *Grant
	switch x := s.issuerFor(tenant, peeked.Issuer); {
	case peeked.Issuer == base:
		cl, err := s.verifyOwn(ctx, tenant, token, h, base)
		if err != nil {
			return nil, tokenError(err)
		}
		g = &Grant{
			Tenant:    tenant,
			ClientID:  cl.ClientID,
			Subject:   cl.Subject,
			FHIRUser:  relativeRef(cl.FHIRUser, base),
			Scopes:    splitScopes(cl.Scope),
			Patient:   cl.Patient,
			Encounter: cl.Encounter,
			Issuer:    cl.Issuer,
			TokenID:   cl.ID,
			ExpiresAt: time.Unix(cl.ExpiresAt, 0),
		}
	case x != nil:
		if g, err = s.verifyExternal(ctx, tenant, token, h, x, base); err != nil {
			return nil, tokenError(err)
		}
	default:
		return nil, invalidToken("issued for another FHIR server or by an untrusted issuer")
	}
	return g, nil
}

// grantCache remembers the grants of tokens whose signature and claims
// were verified, so that a client's every request does not pay a
// signature verification (tens of microseconds for RS256), with the id
// its revocation would have (a hash, computed once). Entries live until
// the token expires, at most maxGrantAge; revocation is checked on every
// request, outside the cache. The cache holds at most maxGrants
// entries and is emptied when full (tokens are short-lived, so a simple
// reset beats an LRU's bookkeeping on the hot path).
type grantCache struct {
	mu sync.RWMutex
	m  map[tokenKey]cachedGrant
}

// tokenKey is what a verification depended on besides the token. A struct,
// not a concatenation: the token alone is near a kilobyte, which each
// request would otherwise copy into a new key.
type tokenKey struct{ tenant, base, token string }

type cachedGrant struct {
	g     Grant
	rid   string // revocationID of the token, "" when it has no jti
	until time.Time
}

const (
	maxGrants   = 10000
	maxGrantAge = 5 * time.Minute
)

func (c *grantCache) get(key tokenKey, now time.Time) (*Grant, string, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, "", false
	}
	g := e.g // a copy: callers may not change the cached grant
	return &g, e.rid, true
}

func (c *grantCache) put(key tokenKey, g *Grant, rid string, now time.Time) {
	until := now.Add(maxGrantAge)
	if g.ExpiresAt.Before(until) {
		until = g.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxGrants {
		c.m = make(map[tokenKey]cachedGrant)
	}
	c.m[key] = cachedGrant{g: *g, rid: rid, until: until}
}

// tokenError maps a verification failure: our own reasons (errorString)
// become invalid_token; anything else (the registry, a JWKS fetch) is an
// internal error.
func tokenError(err error) error {
	var es errorString
	if errors.As(err, &es) {
		return invalidToken(string(es))
	}
	return fhir.Errorf(fhir.KindInternal, "verifying access token").Wrap(err)
}

// Challenge returns the WWW-Authenticate value for an error of
// Authenticate (RFC 6750 §3): no error code when the token was missing,
// error="invalid_token" when it did not verify, "" for other errors.
func Challenge(err error) string {
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.KindUnauthorized {
		return ""
	}
	if fe == errNoToken {
		return `Bearer realm="fhir"`
	}
	return `Bearer realm="fhir", error="invalid_token", error_description="` + strings.ReplaceAll(fe.Msg, `"`, "'") + `"`
}

// Middleware authenticates every request of the routes it wraps (the
// tenant is the :tenant path parameter): on success the Grant is in the
// request context (GrantFrom); on failure it sets WWW-Authenticate and
// returns the *fhir.Error for the HTTPErrorHandler (401 OperationOutcome).
func (s *Server) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			g, err := s.Authenticate(c.Request(), c.Param("tenant"))
			if err != nil {
				if ch := Challenge(err); ch != "" {
					c.Response().Header().Set("WWW-Authenticate", ch)
				}
				return err
			}
			c.SetRequest(c.Request().WithContext(WithGrant(c.Request().Context(), g)))
			return next(c)
		}
	}
}
