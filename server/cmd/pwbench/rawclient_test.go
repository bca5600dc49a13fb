package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRawConn: the generator's client reads what net/http's server writes
// (fixed-length, chunked and empty bodies, Connection: close) and keeps
// the connection in step across requests.
func TestRawConn(t *testing.T) {
	var conns, gotBody, gotAuth []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns = append(conns, r.RemoteAddr)
		b, _ := io.ReadAll(r.Body)
		gotBody = append(gotBody, string(b))
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/fixed":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/chunked":
			w.WriteHeader(http.StatusCreated)
			for range 3 {
				io.WriteString(w, strings.Repeat("x", 5000))
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	srv.Start()
	defer srv.Close()
	rc := newRawConn(strings.TrimPrefix(srv.URL, "http://"), time.Now().Add(time.Minute))
	defer rc.close()
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/fixed", "", 200},
		{"POST", "/chunked", `{"a":1}`, 201},
		{"GET", "/empty", "", 204},
		{"GET", "/fixed", "", 200},
		{"GET", "/close", "", 418},
		{"GET", "/fixed", "", 200},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
		req.Header.Set("Authorization", "Bearer t")
		status, err := rc.do(req)
		if err != nil || status != tc.want {
			t.Fatalf("%s %s: status %d, %v; want %d", tc.method, tc.path, status, err, tc.want)
		}
	}
	// One connection until the server closed it after /close, then a new one.
	for i, c := range conns {
		if same := c == conns[0]; same != (i < 5) {
			t.Errorf("request %d came on connection %s (first %s)", i, c, conns[0])
		}
	}
	if gotBody[1] != `{"a":1}` || gotAuth[0] != "Bearer t" {
		t.Errorf("server got body %q, authorization %q", gotBody[1], gotAuth[0])
	}
}
