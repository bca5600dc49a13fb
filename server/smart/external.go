package smart

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ExternalIssuer is an outside authorization server (an EHR's, an identity
// provider's) whose access tokens a tenant accepts. Its tokens must be JWTs
// signed with a key of its JWKS, with iss = Issuer, an aud that includes
// Audience, and exp in the future.
type ExternalIssuer struct {
	Issuer  string `json:"issuer"`
	JWKSURL string `json:"jwks_uri"` // https, or http on a loopback host
	// Audience the tokens must name; "" means the tenant's FHIR base URL.
	Audience string `json:"audience,omitempty"`
}

func (x ExternalIssuer) validate() error {
	if x.Issuer == "" {
		return errors.New("issuer is empty")
	}
	if err := checkFetchURL(x.JWKSURL); err != nil {
		return errors.New("jwks_uri " + err.Error())
	}
	return nil
}

// externalAlgs are the signature algorithms accepted from external issuers
// (asymmetric only: never none or HMAC).
var externalAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(),
}

// externalClaims are read leniently (lenient in, strict out): aud a string
// or an array, the scope a string or an array, scp (Azure, Okta) and
// azp/cid for the client.
type externalClaims struct {
	Issuer    string                   `json:"iss"`
	Subject   string                   `json:"sub"`
	Audience  oidc.Audience            `json:"aud"`
	ExpiresAt *int64                   `json:"exp"`
	NotBefore *int64                   `json:"nbf"`
	ID        string                   `json:"jti"`
	ClientID  string                   `json:"client_id"`
	AZP       string                   `json:"azp"`
	CID       string                   `json:"cid"`
	Scope     oidc.SpaceDelimitedArray `json:"scope"`
	Scp       oidc.SpaceDelimitedArray `json:"scp"`
	Patient   string                   `json:"patient"`
	Encounter string                   `json:"encounter"`
	FHIRUser  string                   `json:"fhirUser"`
}

// issuerFor returns the tenant's configuration of issuer iss, or nil.
func (s *Server) issuerFor(tenant, iss string) *ExternalIssuer {
	for i, x := range s.external[tenant] {
		if x.Issuer == iss {
			return &s.external[tenant][i]
		}
	}
	return nil
}

// verifyExternal verifies a token of a configured external issuer and
// returns its grant.
func (s *Server) verifyExternal(ctx context.Context, tenant, token string, h joseHeader, x *ExternalIssuer, base string) (*Grant, error) {
	alg, ok := externalAlgs[h.Alg]
	if !ok {
		return nil, errorString("algorithm not accepted")
	}
	if h.Kid == "" {
		return nil, errorString("no kid")
	}
	set, err := s.jwks.get(ctx, x.JWKSURL, false)
	if err != nil {
		return nil, err
	}
	key, err := keyFor(set, h.Kid, alg)
	if err != nil {
		if set, err = s.jwks.get(ctx, x.JWKSURL, true); err != nil {
			return nil, err
		}
		if key, err = keyFor(set, h.Kid, alg); err != nil {
			return nil, errorString("unknown signing key")
		}
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(alg, key))
	if err != nil {
		return nil, errorString("signature verification failed")
	}
	var cl externalClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, errorString("malformed claims")
	}
	aud := x.Audience
	if aud == "" {
		aud = base
	}
	now := s.now()
	switch {
	case cl.Issuer != x.Issuer:
		return nil, errorString("wrong issuer")
	case !slices.Contains(cl.Audience, aud):
		return nil, errorString("issued for another FHIR server")
	case cl.ExpiresAt == nil || !now.Before(time.Unix(*cl.ExpiresAt, 0).Add(clockSkew)):
		return nil, errorString("expired")
	case cl.NotBefore != nil && time.Unix(*cl.NotBefore, 0).After(now.Add(clockSkew)):
		return nil, errorString("not valid yet")
	}
	g := &Grant{
		Tenant:    tenant,
		Issuer:    cl.Issuer,
		External:  true,
		Subject:   cl.Subject,
		ClientID:  firstNonEmpty(cl.ClientID, cl.AZP, cl.CID),
		Patient:   cl.Patient,
		Encounter: cl.Encounter,
		FHIRUser:  relativeRef(cl.FHIRUser, base),
		TokenID:   cl.ID,
		ExpiresAt: time.Unix(*cl.ExpiresAt, 0),
	}
	for _, sc := range append(cl.Scope, cl.Scp...) {
		if sc = strings.TrimSpace(sc); sc != "" && !slices.Contains(g.Scopes, sc) {
			g.Scopes = append(g.Scopes, sc)
		}
	}
	return g, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// relativeRef turns an absolute fhirUser URL on base into a relative
// reference ("Practitioner/1"); other values are returned as they are.
func relativeRef(ref, base string) string {
	if r, ok := strings.CutPrefix(ref, base+"/"); ok {
		return r
	}
	return ref
}
