package smart

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwksCache fetches the JWK Sets of clients (jwks_uri) and external
// issuers and keeps each for ttl. A forced refresh (after an unknown kid)
// is honoured at most every minRefetch per URL, so that a client sending
// random kids cannot make the server hammer the URL. When a refetch fails
// the last good set is kept.
type jwksCache struct {
	client *http.Client
	ttl    time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*jwksEntry
}

type jwksEntry struct {
	mu      sync.Mutex // serializes fetches of one URL
	set     jwk.Set
	fetched time.Time
}

const (
	minRefetch   = 10 * time.Second
	maxJWKSBytes = 256 << 10
)

func newJWKSCache(c *http.Client, ttl time.Duration, now func() time.Time) *jwksCache {
	return &jwksCache{client: c, ttl: ttl, now: now, m: map[string]*jwksEntry{}}
}

// get returns the set at url, fetching it when absent, older than ttl, or
// when force is set and the cached one is older than minRefetch.
func (c *jwksCache) get(ctx context.Context, url string, force bool) (jwk.Set, error) {
	c.mu.Lock()
	e := c.m[url]
	if e == nil {
		e = &jwksEntry{}
		c.m[url] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	age := c.now().Sub(e.fetched)
	if e.set != nil && age < c.ttl && (!force || age < minRefetch) {
		return e.set, nil
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	set, err := jwk.Fetch(fctx, url, jwk.WithHTTPClient(c.client), jwk.WithMaxFetchBodySize(maxJWKSBytes))
	if err != nil {
		if e.set != nil {
			return e.set, nil
		}
		return nil, fmt.Errorf("fetching the JWKS failed")
	}
	e.set, e.fetched = set, c.now()
	return set, nil
}
