package rest_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestConditionalCreate(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	cond := "identifier=urn:sys|cc-1"
	r := do(t, http.MethodPost, base+"/Patient", patientJSON("cc-1"), "If-None-Exist", cond)
	mustStatus(t, r, http.StatusCreated)
	id := str(r.json(t), "id")
	r = do(t, http.MethodPost, base+"/Patient", patientJSON("cc-1"), "If-None-Exist", cond)
	mustStatus(t, r, http.StatusOK)
	if got := str(r.json(t), "id"); got != id {
		t.Errorf("matched id = %q, want %q", got, id)
	}
	if r.header.Get("ETag") != `W/"1"` {
		t.Errorf("ETag = %q", r.header.Get("ETag"))
	}
	// Two matches: 412.
	create(t, base, "Patient", patientJSON("dup"))
	create(t, base, "Patient", patientJSON("dup"))
	r = do(t, http.MethodPost, base+"/Patient", patientJSON("dup"), "If-None-Exist", "identifier=urn:sys|dup")
	mustStatus(t, r, http.StatusPreconditionFailed)
	if c := str(r.json(t), "issue", 0, "code"); c != "multiple-matches" {
		t.Errorf("code = %q", c)
	}
	// An unknown parameter in a condition is an error, not ignored.
	mustStatus(t, do(t, http.MethodPost, base+"/Patient", patientJSON("q"), "If-None-Exist", "colour=blue"), http.StatusBadRequest)
}

// TestConditionalCreateRace: 50 concurrent creates with one condition make
// exactly one resource; every other request gets 200 and its id.
func TestConditionalCreateRace(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	const n = 50
	type result struct {
		status int
		id     string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(t, http.MethodPost, base+"/Patient", patientJSON("race"), "If-None-Exist", "identifier=urn:sys|race")
			results[i] = result{status: r.status}
			if r.status < 300 {
				results[i].id = str(r.json(t), "id")
			}
		}()
	}
	wg.Wait()
	created, ok := 0, 0
	id := ""
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			ok++
		default:
			t.Errorf("status %d", r.status)
		}
		if id == "" {
			id = r.id
		} else if r.id != id {
			t.Errorf("ids differ: %q and %q", id, r.id)
		}
	}
	if created != 1 || ok != n-1 {
		t.Errorf("created %d, ok %d; want 1 and %d", created, ok, n-1)
	}
	r := do(t, http.MethodGet, base+"/Patient?identifier=urn:sys|race&_summary=count", "")
	if got := path(r.json(t), "total"); got != float64(1) {
		t.Errorf("matching Patients = %v, want 1", got)
	}
}

func TestConditionalUpdate(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	url := base + "/Patient?identifier=urn:sys|cu"
	r := do(t, http.MethodPut, url, patientJSON("cu"))
	mustStatus(t, r, http.StatusCreated)
	id := str(r.json(t), "id")
	if r.header.Get("Location") == "" {
		t.Error("no Location on conditional create-by-update")
	}
	r = do(t, http.MethodPut, url, patientJSON("cu"))
	mustStatus(t, r, http.StatusOK)
	if str(r.json(t), "id") != id || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("second conditional update: id %q etag %q", str(r.json(t), "id"), r.header.Get("ETag"))
	}
	// Body id that differs from the match: 400.
	other := strings.Replace(patientJSON("cu"), `"Patient",`, `"Patient","id":"someone-else",`, 1)
	mustStatus(t, do(t, http.MethodPut, url, other), http.StatusBadRequest)
	// No match and a body id: created with that id.
	withID := strings.Replace(patientJSON("cu-new"), `"Patient",`, `"Patient","id":"given-id",`, 1)
	r = do(t, http.MethodPut, base+"/Patient?identifier=urn:sys|cu-new", withID)
	mustStatus(t, r, http.StatusCreated)
	if str(r.json(t), "id") != "given-id" {
		t.Errorf("id = %q, want given-id", str(r.json(t), "id"))
	}
	// Several matches: 412.
	create(t, base, "Patient", patientJSON("many"))
	create(t, base, "Patient", patientJSON("many"))
	mustStatus(t, do(t, http.MethodPut, base+"/Patient?identifier=urn:sys|many", patientJSON("many")), http.StatusPreconditionFailed)
}

// TestConditionalUpdateRace: concurrent conditional updates with one
// condition create one resource and update it n-1 times.
func TestConditionalUpdateRace(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = do(t, http.MethodPut, base+"/Patient?identifier=urn:sys|curace", patientJSON("curace")).status
		}()
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Errorf("status %d", st)
		}
	}
	if created != 1 {
		t.Errorf("created %d, want 1", created)
	}
	r := do(t, http.MethodGet, base+"/Patient?identifier=urn:sys|curace", "")
	b := r.json(t)
	if got := len(entries(b)); got != 1 {
		t.Fatalf("matches = %d, want 1", got)
	}
	if v := str(entries(b)[0], "resource", "meta", "versionId"); v != "20" {
		t.Errorf("versionId = %s, want 20", v)
	}
}
