package smart_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// refusingState is the test's State whose writes of revocations fail
// while refuse is set (the database gone between the token check and the
// revocation).
type refusingState struct {
	registry.State
	refuse atomic.Bool
}

var errUnreachable = errors.New("state store unreachable")

func (e *refusingState) PutState(ctx context.Context, tenant, key string, v []byte, ttl time.Duration) (bool, error) {
	if e.refuse.Load() && strings.HasPrefix(key, "family:") {
		return false, errUnreachable
	}
	return e.State.PutState(ctx, tenant, key, v, ttl)
}

func (e *refusingState) Revoke(ctx context.Context, tenant, id string, ttl time.Duration) error {
	if e.refuse.Load() {
		return errUnreachable
	}
	return e.State.Revoke(ctx, tenant, id, ttl)
}

// TestRevocationNotStoredIsNotOK: when the revocation cannot be stored the
// endpoint does not answer 200 (RFC 7009 §2.2.1: the client must then
// assume the token still works, and may retry), and a retry once the store
// is back revokes the token — for an access token and for a refresh token
// (whose record survives the failed attempt).
func TestRevocationNotStoredIsNotOK(t *testing.T) {
	eph := &refusingState{}
	h := newHarness(t, func(c *smart.Config) { eph.State, c.State = c.State, eph })
	setupApp(h)
	revoke := func(token string) tokenResponse {
		return h.formPost(h.auth("acme")+"/revoke", url.Values{"token": {token}, "client_id": {"growth-chart"}})
	}
	for _, kind := range []string{"access_token", "refresh_token"} {
		t.Run(kind, func(t *testing.T) {
			tr := userToken(t, h, "patient/Observation.rs offline_access")
			eph.refuse.Store(true)
			if r := revoke(tr.str(kind)); r.status == http.StatusOK {
				t.Fatalf("revocation that could not be stored answered 200")
			}
			eph.refuse.Store(false)
			if status, _, _ := h.whoami("acme", tr.str("access_token")); status != http.StatusOK {
				t.Fatalf("after the failed revocation the access token does not work: %d", status)
			}
			if r := revoke(tr.str(kind)); r.status != http.StatusOK {
				t.Fatalf("retried revocation: %d %v", r.status, r.body)
			}
			if status, _, _ := h.whoami("acme", tr.str("access_token")); status != http.StatusUnauthorized {
				t.Errorf("after the retried revocation the access token works: %d", status)
			}
		})
	}
}
