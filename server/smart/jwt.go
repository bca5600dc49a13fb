package smart

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Access tokens are JWTs in the spirit of RFC 9068 (typ at+jwt), signed
// RS256 with the tenant's key. The claims are a flat struct rather than
// zitadel/oidc's AccessTokenClaims: they are decoded on every API request,
// and that type's map-merging (Un)MarshalJSON costs allocations for claims
// (scope, tenant, patient...) we know in advance.
type accessClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	ExpiresAt int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	ID        string `json:"jti"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	Tenant    string `json:"tenant"`
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"` // absolute URL, as in the id_token
}

// JWS typ values: access tokens are refused where id_tokens would do and
// the other way round.
const (
	typAccess = "at+jwt"
	typID     = "JWT"
)

// sign signs claims with the tenant's current key.
func (s *Server) sign(ctx context.Context, tenant string, claims any, typ string) (string, error) {
	tk, err := s.keys.get(ctx, tenant)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, tk.kid); err != nil {
		return "", fmt.Errorf("setting kid: %w", err)
	}
	if err := hdr.Set(jws.TypeKey, typ); err != nil {
		return "", fmt.Errorf("setting typ: %w", err)
	}
	b, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), tk.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return string(b), nil
}

// joseHeader is the part of a JWS header needed to pick the key. It is
// read before verification only to choose the key and algorithm; jwx
// verifies the signature.
type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// peek decodes the header and the (unverified) payload of a compact JWS.
func peek(token string, payload any) (joseHeader, error) {
	var h joseHeader
	parts := bytes.Split([]byte(token), []byte{'.'})
	if len(parts) != 3 {
		return h, errorString("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(string(parts[0]))
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return h, errorString("malformed JWS header")
	}
	pb, err := base64.RawURLEncoding.DecodeString(string(parts[1]))
	if err != nil || json.Unmarshal(pb, payload) != nil {
		return h, errorString("malformed JWT claims")
	}
	return h, nil
}

// verifyOwn verifies an access token this server issued for tenant:
// signature (RS256, a published key of the tenant), typ, iss and aud (the
// tenant's FHIR base), the tenant claim, and expiry. Revocation is checked
// by the caller.
func (s *Server) verifyOwn(ctx context.Context, tenant, token string, h joseHeader, base string) (*accessClaims, error) {
	if h.Alg != signingAlg || h.Typ != typAccess || h.Kid == "" {
		return nil, errorString("not an access token of this server")
	}
	pub, err := s.keys.publicKey(ctx, tenant, h.Kid)
	if err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errorString("unknown signing key")
	}
	payload, err := jws.VerifyCompactFast(pub, []byte(token), jwa.RS256())
	if err != nil {
		return nil, errorString("signature verification failed")
	}
	var cl accessClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, errorString("malformed claims")
	}
	switch {
	case cl.Issuer != base || cl.Audience != base:
		return nil, errorString("issued for another FHIR server")
	case cl.Tenant != tenant:
		return nil, errorString("issued for another tenant")
	case !s.now().Before(time.Unix(cl.ExpiresAt, 0)):
		return nil, errorString("expired")
	case cl.ID == "":
		return nil, errorString("no jti")
	}
	return &cl, nil
}
