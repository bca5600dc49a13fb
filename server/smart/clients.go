package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// ClientSpec is a client registration as the admin API and the CLI take it
// (field names after RFC 7591).
type ClientSpec struct {
	ID           string              `json:"client_id,omitempty"` // "": generated
	Name         string              `json:"client_name,omitempty"`
	Type         registry.ClientType `json:"type"`
	RedirectURIs []string            `json:"redirect_uris,omitempty"`
	Scope        string              `json:"scope"` // space-delimited scopes the client may be granted
	JWKS         json.RawMessage     `json:"jwks,omitempty"`
	JWKSURL      string              `json:"jwks_uri,omitempty"`
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

// NewClient validates spec and returns the client to store and, for a
// confidential-symmetric client, its secret (shown once; only its SHA-256
// is stored). Errors are *fhir.Error KindInvalid.
func NewClient(spec ClientSpec, now time.Time) (*registry.Client, string, error) {
	invalid := func(format string, args ...any) (*registry.Client, string, error) {
		return nil, "", fhir.Errorf(fhir.KindInvalid, format, args...)
	}
	c := &registry.Client{ID: spec.ID, Name: strings.TrimSpace(spec.Name), Type: spec.Type,
		Scopes: splitScopes(spec.Scope), JWKSURL: spec.JWKSURL, Created: now.UTC()}
	if c.ID == "" {
		c.ID = randomToken(16)
	}
	if !clientIDPattern.MatchString(c.ID) {
		return invalid("client_id must be 1 to 128 letters, digits or ._~-")
	}
	if !c.Type.Valid() {
		return invalid("type must be public, confidential-symmetric or confidential-asymmetric")
	}
	if len(c.Name) > 200 {
		return invalid("client_name is longer than 200 characters")
	}
	if len(c.Scopes) == 0 {
		return invalid("scope must list the scopes the client may be granted")
	}
	for _, sc := range c.Scopes {
		if len(sc) > 512 || strings.ContainsAny(sc, "\"\\") {
			return invalid("scope contains an invalid scope")
		}
	}
	for _, u := range spec.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, "", err
		}
		c.RedirectURIs = append(c.RedirectURIs, u)
	}
	if c.Type != registry.ConfidentialAsymmetric && len(c.RedirectURIs) == 0 {
		return invalid("redirect_uris is required for a %s client", c.Type)
	}
	hasJWKS := len(spec.JWKS) > 0 && string(spec.JWKS) != "null"
	switch {
	case c.Type != registry.ConfidentialAsymmetric && (hasJWKS || c.JWKSURL != ""):
		return invalid("jwks and jwks_uri are only for confidential-asymmetric clients")
	case c.Type == registry.ConfidentialAsymmetric && hasJWKS == (c.JWKSURL != ""):
		return invalid("a confidential-asymmetric client has exactly one of jwks and jwks_uri")
	case hasJWKS:
		if err := checkClientJWKS(spec.JWKS); err != nil {
			return nil, "", err
		}
		c.JWKS = append([]byte(nil), spec.JWKS...)
	case c.JWKSURL != "":
		if err := checkFetchURL(c.JWKSURL); err != nil {
			return invalid("jwks_uri: %v", err)
		}
	}
	var secret string
	if c.Type == registry.ConfidentialSymmetric {
		secret = randomToken(32)
		c.SecretHash = secretHash(secret)
	}
	return c, secret, nil
}

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// checkRedirectURI accepts an absolute URI without fragment: https, http
// on a loopback host (native apps, RFC 8252 §7.3), or a private-use scheme
// (RFC 8252 §7.1); never javascript:, data: or file:.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" || len(s) > 2000 {
		return fhir.Errorf(fhir.KindInvalid, "each redirect URI must be an absolute URI without fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return fhir.Errorf(fhir.KindInvalid, "an https redirect URI needs a host")
		}
	case "http":
		if !isLoopback(u.Hostname()) {
			return fhir.Errorf(fhir.KindInvalid, "http redirect URIs are only allowed on loopback hosts; use https")
		}
	case "javascript", "data", "file", "vbscript":
		return fhir.Errorf(fhir.KindInvalid, "redirect URI scheme not allowed")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkFetchURL accepts the URL of a JWKS the server fetches: https, or
// http on a loopback host (development and tests).
func checkFetchURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "":
		return errorString("must be an absolute URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return errorString("must be https (http only on a loopback host)")
}

type errorString string

func (e errorString) Error() string { return string(e) }

// checkClientJWKS accepts a JWK Set of public RSA or EC keys, each with a
// kid unique in the set (client-confidential-asymmetric.html).
func checkClientJWKS(b []byte) error {
	set, err := jwk.Parse(b)
	if err != nil {
		return fhir.Errorf(fhir.KindInvalid, "jwks is not a valid JWK Set")
	}
	if set.Len() == 0 {
		return fhir.Errorf(fhir.KindInvalid, "jwks has no keys")
	}
	seen := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" || seen[kid] {
			return fhir.Errorf(fhir.KindInvalid, "every key of jwks needs a kid, unique in the set")
		}
		seen[kid] = true
		if kty := k.KeyType(); kty != jwa.RSA() && kty != jwa.EC() {
			return fhir.Errorf(fhir.KindInvalid, "jwks keys must be RSA or EC keys")
		}
		if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
			return fhir.Errorf(fhir.KindInvalid, "jwks must hold public keys only")
		}
	}
	return nil
}

// Client authentication at the token, introspection and revocation
// endpoints (RFC 6749 §2.3, RFC 7523 §2.2, client-confidential-*.html).

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateClient returns the calling client: one authenticated with
// client_secret_basic or private_key_jwt, or a public client naming itself
// with client_id. A confidential client that does not authenticate is
// refused with invalid_client.
func (s *Server) authenticateClient(c *echo.Context, tenant string, form map[string][]string, ep endpoints) (*registry.Client, *oidc.Error) {
	ctx := c.Request().Context()
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	formID := get("client_id")
	basicID, basicSecret, hasBasic := c.Request().BasicAuth()
	atype, assertion := get("client_assertion_type"), get("client_assertion")
	if hasBasic && (atype != "" || assertion != "") {
		return nil, errInvalidRequest("use one client authentication method")
	}
	switch {
	case hasBasic:
		// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil || (formID != "" && formID != id) {
			return nil, errInvalidClient("client authentication failed")
		}
		cl, err := s.reg.Client(ctx, tenant, id)
		if fhir.IsKind(err, fhir.KindNotFound) {
			return nil, errInvalidClient("client authentication failed")
		}
		if err != nil {
			return nil, errServer(err)
		}
		if cl.Type != registry.ConfidentialSymmetric || cl.SecretHash == "" ||
			subtle.ConstantTimeCompare([]byte(secretHash(secret)), []byte(cl.SecretHash)) != 1 {
			return nil, errInvalidClient("client authentication failed")
		}
		return cl, nil
	case atype != "" || assertion != "":
		if atype != assertionType {
			return nil, errInvalidRequest("client_assertion_type must be %s", assertionType)
		}
		if assertion == "" {
			return nil, errInvalidRequest("client_assertion is required")
		}
		return s.verifyAssertion(ctx, tenant, assertion, formID, ep)
	case formID == "":
		return nil, errInvalidClient("client authentication is required")
	}
	cl, err := s.reg.Client(ctx, tenant, formID)
	if fhir.IsKind(err, fhir.KindNotFound) {
		return nil, errInvalidClient("unknown client")
	}
	if err != nil {
		return nil, errServer(err)
	}
	if cl.Type != registry.Public {
		return nil, errInvalidClient("a confidential client must authenticate")
	}
	return cl, nil
}

// assertionAlgs are the algorithms of client assertions (SMART requires
// servers to verify at least one of RS384 and ES384; we verify both).
var assertionAlgs = map[string]jwa.SignatureAlgorithm{"RS384": jwa.RS384(), "ES384": jwa.ES384()}

// maxAssertionLife is how far in the future an assertion may expire (SMART:
// "no more than five minutes"), plus clock skew.
const (
	maxAssertionLife = 5 * time.Minute
	clockSkew        = 30 * time.Second
)

type assertionClaims struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  oidc.Audience `json:"aud"`
	ExpiresAt *int64        `json:"exp"`
	NotBefore *int64        `json:"nbf"`
	IssuedAt  *int64        `json:"iat"`
	ID        string        `json:"jti"`
}

// verifyAssertion authenticates a private_key_jwt client: the JWT is
// signed (RS384 or ES384) by the key of the client's registered JWKS
// named by kid, iss = sub = client_id, aud is the token endpoint URL,
// exp is present and at most five minutes ahead, and the jti was not seen
// before (it is remembered until the assertion expires). Every failure is
// invalid_client (RFC 7523 §3.2).
func (s *Server) verifyAssertion(ctx context.Context, tenant, assertion, formID string, ep endpoints) (*registry.Client, *oidc.Error) {
	fail := func(format string, args ...any) (*registry.Client, *oidc.Error) {
		return nil, errInvalidClient("client assertion: "+format, args...)
	}
	msg, err := jws.Parse([]byte(assertion), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return fail("not a signed JWT")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	algv, _ := hdr.Algorithm()
	alg, ok := assertionAlgs[algv.String()]
	if !ok {
		return fail("alg must be RS384 or ES384")
	}
	kid, _ := hdr.KeyID()
	if kid == "" {
		return fail("kid header is required")
	}
	if typ, ok := hdr.Type(); ok && !strings.EqualFold(typ, "JWT") {
		return fail("typ must be JWT")
	}
	var claims assertionClaims
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
		return fail("claims are not valid JSON")
	}
	if claims.Issuer == "" || claims.Issuer != claims.Subject {
		return fail("iss and sub must both be the client_id")
	}
	if formID != "" && formID != claims.Issuer {
		return fail("client_id does not match iss")
	}
	cl, err := s.reg.Client(ctx, tenant, claims.Issuer)
	if fhir.IsKind(err, fhir.KindNotFound) {
		return fail("unknown client")
	}
	if err != nil {
		return nil, errServer(err)
	}
	if cl.Type != registry.ConfidentialAsymmetric {
		return fail("the client is not registered for private_key_jwt")
	}
	if jku, ok := hdr.JWKSetURL(); ok && jku != cl.JWKSURL {
		return fail("jku is not the client's registered JWKS URL")
	}
	key, oerr := s.clientKey(ctx, cl, kid, alg)
	if oerr != nil {
		return nil, oerr
	}
	if _, err := jws.Verify([]byte(assertion), jws.WithKey(alg, key)); err != nil {
		return fail("signature verification failed")
	}
	now := s.now()
	switch {
	case !slices.Contains(claims.Audience, ep.token):
		return fail("aud must be the token endpoint URL")
	case claims.ExpiresAt == nil:
		return fail("exp is required")
	case now.After(time.Unix(*claims.ExpiresAt, 0).Add(clockSkew)):
		return fail("expired")
	case time.Unix(*claims.ExpiresAt, 0).After(now.Add(maxAssertionLife + clockSkew)):
		return fail("exp is more than five minutes ahead")
	case claims.NotBefore != nil && time.Unix(*claims.NotBefore, 0).After(now.Add(clockSkew)):
		return fail("not valid yet (nbf)")
	case claims.IssuedAt != nil && time.Unix(*claims.IssuedAt, 0).After(now.Add(clockSkew)):
		return fail("issued in the future (iat)")
	case claims.ID == "" || len(claims.ID) > 256:
		return fail("jti is required")
	}
	// Replay: the jti is remembered until the assertion could no longer be
	// accepted anyway.
	ttl := max(time.Unix(*claims.ExpiresAt, 0).Add(clockSkew).Sub(now), time.Second)
	fresh, err := s.putState(ctx, tenant, "jti", hashKey(cl.ID+"\x00"+claims.ID), []byte{1}, ttl)
	if err != nil {
		return nil, errServer(err)
	}
	if !fresh {
		return fail("jti was already used")
	}
	return cl, nil
}

// clientKey finds the single key of the client's JWKS with this kid whose
// type fits alg. A JWKS URL is fetched (cached); an unknown kid refetches
// it once, in case the client rotated its keys.
func (s *Server) clientKey(ctx context.Context, cl *registry.Client, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, *oidc.Error) {
	if cl.JWKSURL == "" {
		set, err := jwk.Parse(cl.JWKS)
		if err != nil {
			return nil, errServer(err)
		}
		k, err := keyFor(set, kid, alg)
		if err != nil {
			return nil, errInvalidClient("client assertion: %v", err)
		}
		return k, nil
	}
	set, err := s.jwks.get(ctx, cl.JWKSURL, false)
	if err == nil {
		var k jwk.Key
		if k, err = keyFor(set, kid, alg); err == nil {
			return k, nil
		}
		if set, err = s.jwks.get(ctx, cl.JWKSURL, true); err == nil {
			if k, err = keyFor(set, kid, alg); err == nil {
				return k, nil
			}
		}
	}
	return nil, errInvalidClient("client assertion: %v", err)
}

// keyFor returns the one key of set with this kid whose key type fits alg
// (RSA for RS*/PS*, EC for ES*).
func keyFor(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	want := jwa.RSA()
	if strings.HasPrefix(alg.String(), "ES") {
		want = jwa.EC()
	}
	var found jwk.Key
	n := 0
	for i := range set.Len() {
		k, _ := set.Key(i)
		if id, _ := k.KeyID(); id == kid && k.KeyType() == want {
			found = k
			n++
		}
	}
	switch n {
	case 0:
		return nil, errorString("no key with that kid and key type")
	case 1:
		return found, nil
	}
	return nil, errorString("several keys with that kid and key type")
}
