package smart

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// signingAlg is the algorithm of the tenant keys: RS256, what OpenID
// Connect requires every relying party to verify for id_tokens.
const signingAlg = "RS256"

// GenerateSigningKey returns a new RSA 2048 RS256 signing key whose kid is
// its RFC 7638 thumbprint.
func GenerateSigningKey(now time.Time) (*registry.SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("importing public key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("computing key thumbprint: %w", err)
	}
	return &registry.SigningKey{ID: base64.RawURLEncoding.EncodeToString(tp), Algorithm: signingAlg,
		Private: der, Created: now.UTC()}, nil
}

// RotateKey adds a new signing key for tenant. Running servers publish it
// within Config.KeyCacheTTL and sign with it once it is five minutes old
// (keyActivation); the key it supersedes stays published for
// Config.KeyOverlap after that.
func RotateKey(ctx context.Context, reg registry.Store, tenant string, now time.Time) (*registry.SigningKey, error) {
	k, err := GenerateSigningKey(now)
	if err != nil {
		return nil, err
	}
	if err := reg.AddSigningKey(ctx, tenant, k); err != nil {
		return nil, fmt.Errorf("storing signing key of tenant %s: %w", tenant, err)
	}
	return k, nil
}

// EnsureKeys gives every tenant listed a signing key if it has none yet
// (the first start); otherwise keys are created on first use.
func (s *Server) EnsureKeys(ctx context.Context, tenants ...string) error {
	for _, t := range tenants {
		if _, err := s.keys.reload(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// tenantKeys are a tenant's keys as loaded.
type tenantKeys struct {
	kid    string          // of the signing key
	priv   *rsa.PrivateKey // the signing key
	public map[string]*rsa.PublicKey
	jwks   []byte // the published public keys, as a JWK Set
	loaded time.Time
}

// keyCache holds each tenant's keys for KeyCacheTTL. Loads are serialized,
// so that two requests of a tenant without keys do not generate two.
type keyCache struct {
	s      *Server
	mu     sync.Mutex
	m      map[string]*tenantKeys
	loadMu sync.Mutex
}

func newKeyCache(s *Server) *keyCache { return &keyCache{s: s, m: map[string]*tenantKeys{}} }

func (kc *keyCache) cached(tenant string) *tenantKeys {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.m[tenant]
}

// get returns the tenant's keys, loading them when absent or stale.
func (kc *keyCache) get(ctx context.Context, tenant string) (*tenantKeys, error) {
	if tk := kc.cached(tenant); tk != nil && kc.s.now().Sub(tk.loaded) < kc.s.ttl.keyCache {
		return tk, nil
	}
	return kc.reload(ctx, tenant)
}

// publicKey returns the published key kid of the tenant. An unknown kid
// reloads the keys once (another process may have rotated them), at most
// every five seconds.
func (kc *keyCache) publicKey(ctx context.Context, tenant, kid string) (*rsa.PublicKey, error) {
	tk, err := kc.get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if pub := tk.public[kid]; pub != nil {
		return pub, nil
	}
	if kc.s.now().Sub(tk.loaded) < 5*time.Second {
		return nil, nil
	}
	if tk, err = kc.reload(ctx, tenant); err != nil {
		return nil, err
	}
	return tk.public[kid], nil
}

// reload reads the tenant's keys from the registry, creating the first one
// when there is none.
func (kc *keyCache) reload(ctx context.Context, tenant string) (*tenantKeys, error) {
	kc.loadMu.Lock()
	defer kc.loadMu.Unlock()
	// Another request may have loaded them while this one waited.
	if tk := kc.cached(tenant); tk != nil && kc.s.now().Sub(tk.loaded) < time.Second {
		return tk, nil
	}
	ks, err := kc.s.reg.SigningKeys(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	if len(ks) == 0 {
		k, err := RotateKey(ctx, kc.s.reg, tenant, kc.s.now())
		if err != nil {
			return nil, err
		}
		kc.s.log.Info("created the first signing key of a tenant", "tenant", tenant, "kid", k.ID)
		ks = []*registry.SigningKey{k}
	}
	tk, err := kc.s.buildKeys(ks)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	kc.m[tenant] = tk
	kc.mu.Unlock()
	return tk, nil
}

// keyActivation is how long a new key is published before it signs: the
// JWKS is served with max-age 300, so every relying party that caches it
// has seen the new key before a token signed with it reaches them.
const keyActivation = 5 * time.Minute

// buildKeys turns the registry's keys (newest first) into tenantKeys: the
// newest key older than keyActivation signs (the oldest when none is that
// old, as for a tenant's first key); newer keys are already
// published, and a key superseded less than KeyOverlap ago still is, so
// tokens it signed verify until they expire.
func (s *Server) buildKeys(ks []*registry.SigningKey) (*tenantKeys, error) {
	now := s.now()
	tk := &tenantKeys{public: map[string]*rsa.PublicKey{}, loaded: now}
	set := jwk.NewSet()
	active := len(ks) - 1
	for i, k := range ks {
		if now.Sub(k.Created) >= keyActivation {
			active = i
			break
		}
	}
	for i, k := range ks {
		if i > active && now.Sub(ks[i-1].Created) > s.ttl.keyOverlap {
			break
		}
		if k.Algorithm != signingAlg {
			return nil, fmt.Errorf("signing key %s has algorithm %q; only %s is supported", k.ID, k.Algorithm, signingAlg)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("decoding signing key %s: %w", k.ID, err)
		}
		priv, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %s is not an RSA key", k.ID)
		}
		if i == active {
			tk.kid, tk.priv = k.ID, priv
		}
		tk.public[k.ID] = &priv.PublicKey
		pub, err := jwk.Import(&priv.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("importing public key %s: %w", k.ID, err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: k.ID, jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: jwk.ForSignature} {
			if err := pub.Set(name, v); err != nil {
				return nil, fmt.Errorf("setting %s of public key %s: %w", name, k.ID, err)
			}
		}
		if err := set.AddKey(pub); err != nil {
			return nil, fmt.Errorf("adding public key %s: %w", k.ID, err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding JWKS: %w", err)
	}
	tk.jwks = b
	return tk, nil
}
