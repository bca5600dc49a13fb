package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/adapters/redis/redistest"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// sharedStore is the store option of two replicas (and of their
// restarts): one SQLite data directory, or, with
// PULSEWIRE_TEST_STORE=postgres, one PostgreSQL schema.
func sharedStore(t *testing.T) servertest.Option {
	if os.Getenv("PULSEWIRE_TEST_STORE") == "postgres" {
		dsn, _ := pgtest.Schema(t)
		return servertest.WithPostgres(dsn)
	}
	return servertest.WithDataDir(t.TempDir())
}

// postForm posts form and returns the status and body.
func postForm(t *testing.T, u string, form url.Values) (int, []byte) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// revoke revokes a token of a public client at s's revocation endpoint
// (RFC 7009), expecting 200.
func revoke(t *testing.T, s *servertest.Server, token, clientID string) {
	t.Helper()
	if st, b := postForm(t, s.AuthBase("acme")+"/revoke", url.Values{"token": {token}, "client_id": {clientID}}); st != http.StatusOK {
		t.Fatalf("revoking on %s: %d %s", s.URL, st, b)
	}
}

// clientOf is the client_id claim of an access token.
func clientOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ClientID == "" {
		t.Fatalf("no client_id in the token: %v", err)
	}
	return c.ClientID
}

// within polls GET u with token until it answers want, failing the test
// if that takes longer than limit. It returns how long it took.
func within(t *testing.T, limit time.Duration, u, token string, want int, what string) time.Duration {
	t.Helper()
	start := time.Now()
	var st int
	var b []byte
	for {
		if st, b = call(t, http.MethodGet, u, token, ""); st == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: %d %s after %v, want %d within %v", what, st, b, time.Since(start).Round(time.Millisecond), want, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// searchWithin polls replica 2's Observation search until it returns
// want, failing the test if that takes longer than a second.
func searchWithin(t *testing.T, s *servertest.Server, token string, want []string, what string) {
	t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < time.Second {
		st, b := call(t, http.MethodGet, s.FHIRBase("acme")+"/Observation", token, "")
		if st != http.StatusOK {
			t.Fatalf("%s: search %d %s", what, st, b)
		}
		if got = matchIDs(t, b); cmp.Equal(got, want) {
			t.Logf("%s: replica 2 decided on it after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: replica 2 one second later (-want +got):\n%s", what, cmp.Diff(want, got))
}

// TestAuthReplicasWithoutRedis runs two servers on one store and one
// Redis reached through a proxy that is killed midway (connections
// dropped, nothing listening) and restarted. Consent deny, permit, deny
// are followed by replica 2 within a second each time; while Redis is
// down, tokens issued before still work, a backend service still gets a
// token, and a token revoked on replica 1 is refused by replica 2 within a
// second; once Redis is back, all of it still holds.
func TestAuthReplicasWithoutRedis(t *testing.T) {
	redistest.Require(t)
	px := redistest.StartProxy(t)
	prefix := redistest.Prefix(t)
	redistest.Store(t, prefix) // deletes the keys at the end
	shared := []servertest.Option{
		servertest.WithAuth(), servertest.WithRedis(px.URL(), prefix),
		servertest.WithPublicURL("http://pulsewire.test"), sharedStore(t),
	}
	s1 := servertest.Start(t, shared...)
	s2 := servertest.Start(t, shared...)

	sys := s1.BackendToken(t, "acme", "system/*.cruds")
	doc := s1.UserToken(t, "acme", "Practitioner/doc-1", "user/Observation.rs")
	victims := []string{
		s1.UserToken(t, "acme", "Practitioner/doc-2", "user/Observation.rs"),
		s1.UserToken(t, "acme", "Practitioner/doc-3", "user/Observation.rs"),
	}
	for _, w := range []struct{ rel, body string }{
		{"Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
		{"Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
		{"Observation/o1", observation("o1", "p1")},
		{"Observation/o2", observation("o2", "p2")},
	} {
		if st, b := call(t, http.MethodPut, s1.FHIRBase("acme")+"/"+w.rel, sys, w.body); st != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", w.rel, st, b)
		}
	}
	consent := func(method, body string) {
		t.Helper()
		if st, b := call(t, method, s1.FHIRBase("acme")+"/Consent/c1", sys, body); st >= 300 {
			t.Fatalf("%s Consent on replica 1: %d %s", method, st, b)
		}
	}
	searchWithin(t, s2, doc, []string{"o1", "o2"}, "before any Consent")
	o1 := s2.FHIRBase("acme") + "/Observation/o1"
	for _, v := range victims {
		if st, b := call(t, http.MethodGet, o1, v, ""); st != http.StatusOK {
			t.Fatalf("a token to be revoked later does not work on replica 2: %d %s", st, b)
		}
	}

	consent(http.MethodPut, optOutConsent)
	searchWithin(t, s2, doc, []string{"o2"}, "deny, Redis up")

	px.Kill()
	t.Log("Redis down")
	consent(http.MethodDelete, "")
	searchWithin(t, s2, doc, []string{"o1", "o2"}, "permit, Redis down")
	for _, s := range []*servertest.Server{s1, s2} {
		if st, b := call(t, http.MethodGet, s.FHIRBase("acme")+"/Observation/o2", sys, ""); st != http.StatusOK {
			t.Errorf("a token issued before Redis went down, on %s: %d %s", s.URL, st, b)
		}
	}
	fresh := s2.BackendToken(t, "acme", "system/Observation.rs") // fails the test unless 200
	if st, b := call(t, http.MethodGet, s1.FHIRBase("acme")+"/Observation/o1", fresh, ""); st != http.StatusOK {
		t.Errorf("a backend token obtained with Redis down: %d %s", st, b)
	}
	revoke(t, s1, victims[0], clientOf(t, victims[0]))
	if st, _ := call(t, http.MethodGet, s1.FHIRBase("acme")+"/Observation/o1", victims[0], ""); st != http.StatusUnauthorized {
		t.Errorf("the token just revoked on replica 1 still works there: %d", st)
	}
	took := within(t, time.Second, o1, victims[0], http.StatusUnauthorized, "token revoked on replica 1 with Redis down, on replica 2")
	t.Logf("revocation with Redis down: replica 2 refused the token after %v", took.Round(time.Millisecond))

	px.Restart()
	t.Log("Redis back")
	consent(http.MethodPut, optOutConsent)
	searchWithin(t, s2, doc, []string{"o2"}, "deny again, Redis back")
	revoke(t, s2, victims[1], clientOf(t, victims[1]))
	took = within(t, time.Second, s1.FHIRBase("acme")+"/Observation/o1", victims[1], http.StatusUnauthorized,
		"token revoked on replica 2 with Redis back, on replica 1")
	t.Logf("revocation with Redis back: replica 1 refused the token after %v", took.Round(time.Millisecond))
	for _, v := range victims {
		for _, s := range []*servertest.Server{s1, s2} {
			if st, _ := call(t, http.MethodGet, s.FHIRBase("acme")+"/Observation/o1", v, ""); st != http.StatusUnauthorized {
				t.Errorf("a revoked token works on %s after Redis came back: %d", s.URL, st)
			}
		}
	}
	if st, b := call(t, http.MethodGet, o1, doc, ""); st != http.StatusForbidden {
		t.Errorf("o1 under the opt-out on replica 2: %d %s, want 403", st, b)
	}
}

// TestAuthStateSurvivesRestart: the authorization server's state is in
// the store, not in process or Redis. Both replicas stop and Redis forgets
// everything (its keys are deleted); then a token revoked before is still
// refused, a token issued before still works, and a refresh token issued
// before still works (once: it rotates).
func TestAuthStateSurvivesRestart(t *testing.T) {
	prefix := redistest.Prefix(t)
	rs := redistest.Store(t, prefix) // skips without Redis; deletes the keys at the end
	shared := []servertest.Option{
		servertest.WithAuth(), servertest.WithRedis(redistest.URL(), prefix),
		servertest.WithPublicURL("http://pulsewire.test"), sharedStore(t),
	}
	var revoked, kept string
	var offline servertest.Tokens
	t.Run("first life", func(t *testing.T) {
		s1 := servertest.Start(t, shared...)
		s2 := servertest.Start(t, shared...)
		sys := s1.BackendToken(t, "acme", "system/*.cruds")
		if st, b := call(t, http.MethodPut, s1.FHIRBase("acme")+"/Patient/p1", sys, `{"resourceType":"Patient","id":"p1"}`); st != http.StatusCreated {
			t.Fatalf("PUT Patient: %d %s", st, b)
		}
		offline = s1.UserTokens(t, "acme", "Practitioner/doc-1", "user/Patient.rs", "offline_access")
		if offline.RefreshToken == "" {
			t.Fatal("no refresh token for offline_access")
		}
		revoked = s1.UserToken(t, "acme", "Practitioner/doc-2", "user/Patient.rs")
		kept = s1.UserToken(t, "acme", "Practitioner/doc-3", "user/Patient.rs")
		revoke(t, s2, revoked, clientOf(t, revoked))
		within(t, time.Second, s1.FHIRBase("acme")+"/Patient/p1", revoked, http.StatusUnauthorized, "revoked before the restart")
	})
	if t.Failed() {
		return
	}
	if err := rs.Clear(context.Background()); err != nil { // Redis restarted without persistence
		t.Fatal(err)
	}
	s1 := servertest.Start(t, shared...)
	s2 := servertest.Start(t, shared...)
	for _, s := range []*servertest.Server{s1, s2} {
		p1 := s.FHIRBase("acme") + "/Patient/p1"
		if st, _ := call(t, http.MethodGet, p1, revoked, ""); st != http.StatusUnauthorized {
			t.Errorf("a token revoked before the restart works on %s: %d", s.URL, st)
		}
		if st, b := call(t, http.MethodGet, p1, kept, ""); st != http.StatusOK {
			t.Errorf("a token issued before the restart fails on %s: %d %s", s.URL, st, b)
		}
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {offline.RefreshToken}, "client_id": {offline.ClientID}}
	st, b := postForm(t, s2.AuthBase("acme")+"/token", refresh)
	var tr servertest.Tokens
	if st != http.StatusOK || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("refresh after the restart: %d %s", st, b)
	}
	if st, b := call(t, http.MethodGet, s1.FHIRBase("acme")+"/Patient/p1", tr.AccessToken, ""); st != http.StatusOK {
		t.Errorf("the access token of the refresh: %d %s", st, b)
	}
	// The rotated refresh token is used: presenting it again is refused.
	if st, b := postForm(t, s1.AuthBase("acme")+"/token", refresh); st != http.StatusBadRequest {
		t.Errorf("the rotated refresh token presented again: %d %s, want 400", st, b)
	}
}
