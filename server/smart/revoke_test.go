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
)

// refusingEphemeral is the in-process Ephemeral whose writes of
// revocations fail while refuse is set (Redis gone between the token check
// and the revocation).
type refusingEphemeral struct {
	smart.Ephemeral
	refuse atomic.Bool
}

func (e *refusingEphemeral) SetNX(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	if e.refuse.Load() && (strings.Contains(key, ":revoked:") || strings.Contains(key, ":family:")) {
		return false, errors.New("ephemeral store unreachable")
	}
	return e.Ephemeral.SetNX(ctx, key, v, ttl)
}

// TestRevocationNotStoredIsNotOK: when the revocation cannot be stored the
// endpoint does not answer 200 (RFC 7009 §2.2.1: the client must then
// assume the token still works, and may retry), and a retry once the store
// is back revokes the token — for an access token and for a refresh token
// (whose record survives the failed attempt).
func TestRevocationNotStoredIsNotOK(t *testing.T) {
	eph := &refusingEphemeral{Ephemeral: smart.NewMemoryEphemeral()}
	h := newHarness(t, func(c *smart.Config) { c.Ephemeral = eph })
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
