package rest_test

import (
	"net/http"
	"testing"
)

// TestCORS: a browser app on another origin may call the FHIR API: the
// preflight is answered (no token needed for it) and responses are
// readable, with no credentials allowed; requests without Origin get no
// CORS headers.
func TestCORS(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	req, _ := http.NewRequest(http.MethodOptions, base+"/Observation?patient=p1", nil)
	req.Header.Set("Origin", "https://app.example.org")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d, allow-origin %q, allow-credentials %q", resp.StatusCode,
			resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"))
	}
	for _, h := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("preflight lacks %s", h)
		}
	}

	req, _ = http.NewRequest(http.MethodGet, base+"/metadata", nil)
	req.Header.Set("Origin", "https://app.example.org")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("GET with Origin: %d, allow-origin %q, expose %q", resp.StatusCode,
			resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Expose-Headers"))
	}

	resp, err = http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request without Origin got CORS headers")
	}
}
