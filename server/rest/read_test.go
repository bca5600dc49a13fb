package rest_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get sends a GET and returns the response with its body read, for tests
// that look at how the body was framed.
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestReadHeaders: a read answers with the stored body and its ETag,
// Last-Modified (meta.lastUpdated to the second), correlation headers and
// Content-Length; _elements and _summary still subset a read.
func TestReadHeaders(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("hdr-1"))
	oid := create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", "2026-01-02T03:04:05Z"))

	res, body := get(t, base+"/Observation/"+oid)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	r := &response{status: res.StatusCode, header: res.Header, body: body}
	obs := r.json(t)
	if got := res.Header.Get("ETag"); got != `W/"1"` {
		t.Errorf(`ETag = %q, want W/"1"`, got)
	}
	lu, err := time.Parse(time.RFC3339Nano, str(obs, "meta", "lastUpdated"))
	if err != nil {
		t.Fatalf("meta.lastUpdated: %v", err)
	}
	if got, want := res.Header.Get("Last-Modified"), lu.UTC().Format(http.TimeFormat); got != want {
		t.Errorf("Last-Modified = %q, want %q", got, want)
	}
	if id := res.Header.Get("X-Request-Id"); id == "" || res.Header.Get("X-Correlation-Id") != id {
		t.Errorf("X-Request-Id %q, X-Correlation-Id %q: want the same id", id, res.Header.Get("X-Correlation-Id"))
	}
	if got := res.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length = %q, body %d bytes", got, len(body))
	}

	res, body = get(t, base+"/Observation/"+oid+"?_elements=status")
	sub := (&response{status: res.StatusCode, header: res.Header, body: body}).json(t)
	if res.StatusCode != http.StatusOK || path(sub, "subject") != nil || str(sub, "status") != "final" ||
		!strings.Contains(string(body), `"SUBSETTED"`) {
		t.Errorf("_elements=status: status %d, body %s", res.StatusCode, body)
	}
	res, body = get(t, base+"/Observation/"+oid+"?_summary=true")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"SUBSETTED"`) || !strings.Contains(string(body), `"valueQuantity"`) {
		t.Errorf("_summary=true: status %d, body %s", res.StatusCode, body)
	}
}

// TestSearchContentLength: a search page larger than net/http's 2 KiB
// response buffer goes out with a Content-Length, not chunked (a chunked
// body takes more writes to the socket).
func TestSearchContentLength(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("cl-1"))
	for i := range 12 {
		create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", "2026-01-02T03:04:"+strconv.Itoa(10+i)+"Z"))
	}
	res, body := get(t, base+"/Observation?subject=Patient/"+pid+"&_sort=-date&_count=10")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if len(body) <= 2048 {
		t.Fatalf("page of %d bytes: want more than 2 KiB for this test", len(body))
	}
	if len(res.TransferEncoding) > 0 || res.ContentLength != int64(len(body)) {
		t.Errorf("Transfer-Encoding %v, Content-Length %d, body %d bytes: want the length, not chunked",
			res.TransferEncoding, res.ContentLength, len(body))
	}
	if n := len(entries((&response{body: body}).json(t))); n != 10 {
		t.Errorf("%d entries, want 10", n)
	}
}
