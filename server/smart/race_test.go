package smart_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// TestCodeExchangeRace: of concurrent exchanges of one code, exactly one
// gets tokens.
func TestCodeExchangeRace(t *testing.T) {
	h := newHarness(t)
	setupApp(h)
	code, verifier := codeFor(t, h, "acme", "growth-chart", appRedirect, "patient/Observation.rs", nil, nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, h.auth("acme")+"/token", stringsReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Errorf("%d exchanges of one code succeeded, want 1", n)
	}
}

// BenchmarkAuthenticate is the bearer check of one request with the
// tenant's own access token (RS256 verify, claims, revocation lookup).
func BenchmarkAuthenticate(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t)
	defer h.srv.Close()
	setupApp(h)
	code, verifier := codeFor(t, h, "acme", "growth-chart", appRedirect, "patient/Observation.rs", nil, nil)
	tr := h.token("acme", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {verifier}, "client_id": {"growth-chart"}})
	req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, h.base("acme")+"/Observation/1", nil)
	req.Host = h.srv.Listener.Addr().String()
	req.Header.Set("Authorization", "Bearer "+tr.str("access_token"))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.s.Authenticate(req, "acme"); err != nil {
			b.Fatal(err)
		}
	}
}
