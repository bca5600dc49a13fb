package rest_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCreateReadUpdateDelete(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")

	// The client's id is ignored on create.
	body := strings.Replace(patientJSON("p-1"), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"client-chosen",`, 1)
	r := do(t, http.MethodPost, base+"/Patient", body)
	mustStatus(t, r, http.StatusCreated)
	created := r.json(t)
	id := str(created, "id")
	if id == "" || id == "client-chosen" {
		t.Fatalf("server id = %q, want a new server-assigned id", id)
	}
	if got, want := r.header.Get("Location"), base+"/Patient/"+id+"/_history/1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got := r.header.Get("ETag"); got != `W/"1"` {
		t.Errorf(`ETag = %q, want W/"1"`, got)
	}
	if _, err := time.Parse(http.TimeFormat, r.header.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified %q: %v", r.header.Get("Last-Modified"), err)
	}
	if got := r.header.Get("Content-Type"); got != "application/fhir+json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if str(created, "meta", "versionId") != "1" {
		t.Errorf("meta.versionId = %v", path(created, "meta", "versionId"))
	}

	r = do(t, http.MethodGet, base+"/Patient/"+id, "")
	mustStatus(t, r, http.StatusOK)
	if diff := cmp.Diff(created, r.json(t)); diff != "" {
		t.Errorf("read differs from create response (-want +got):\n%s", diff)
	}
	if r.header.Get("ETag") != `W/"1"` || r.header.Get("Last-Modified") == "" {
		t.Errorf("read headers: ETag %q Last-Modified %q", r.header.Get("ETag"), r.header.Get("Last-Modified"))
	}
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+id, "", "If-None-Match", `W/"1"`), http.StatusNotModified)

	upd := strings.Replace(patientJSON("p-1"), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)
	r = do(t, http.MethodPut, base+"/Patient/"+id, upd)
	mustStatus(t, r, http.StatusOK)
	if r.header.Get("ETag") != `W/"2"` || r.header.Get("Location") != "" {
		t.Errorf("update: ETag %q Location %q", r.header.Get("ETag"), r.header.Get("Location"))
	}

	r = do(t, http.MethodPut, base+"/Patient/"+id, upd, "If-Match", `W/"1"`)
	mustStatus(t, r, http.StatusPreconditionFailed)
	r = do(t, http.MethodPut, base+"/Patient/"+id, upd, "If-Match", `W/"2"`)
	mustStatus(t, r, http.StatusOK)
	if r.header.Get("ETag") != `W/"3"` {
		t.Errorf("ETag after If-Match update = %q", r.header.Get("ETag"))
	}

	mustStatus(t, do(t, http.MethodDelete, base+"/Patient/"+id, "", "If-Match", `W/"2"`), http.StatusPreconditionFailed)
	r = do(t, http.MethodDelete, base+"/Patient/"+id, "", "If-Match", `W/"3"`)
	mustStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("delete body = %s", r.body)
	}
	r = do(t, http.MethodGet, base+"/Patient/"+id, "")
	mustStatus(t, r, http.StatusGone)
	if c := str(r.json(t), "issue", 0, "code"); c != "deleted" {
		t.Errorf("gone issue code = %q", c)
	}
	// Deleting again is not an error.
	mustStatus(t, do(t, http.MethodDelete, base+"/Patient/"+id, ""), http.StatusNoContent)

	r = do(t, http.MethodGet, base+"/Patient/"+id+"/_history/1", "")
	mustStatus(t, r, http.StatusOK)
	if str(r.json(t), "meta", "versionId") != "1" || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("vread 1: %s", r.body)
	}
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+id+"/_history/4", ""), http.StatusGone)
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+id+"/_history/99", ""), http.StatusNotFound)
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+id+"/_history/x", ""), http.StatusNotFound)
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/nope", ""), http.StatusNotFound)

	// The other tenant does not see acme's resources.
	mustStatus(t, do(t, http.MethodGet, s.base("globex")+"/Patient/"+id+"/_history/1", ""), http.StatusNotFound)
}

func TestUpdateAsCreate(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	body := strings.Replace(patientJSON("x"), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"chosen-1",`, 1)
	r := do(t, http.MethodPut, base+"/Patient/chosen-1", body)
	mustStatus(t, r, http.StatusCreated)
	if got, want := r.header.Get("Location"), base+"/Patient/chosen-1/_history/1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/chosen-1", ""), http.StatusOK)
}

func TestPrefer(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	tests := []struct {
		prefer   string
		wantType string // resourceType of the body; "" for no body
	}{
		{"", "Patient"},
		{"return=representation", "Patient"},
		{"return=minimal", ""},
		{"return=OperationOutcome", "OperationOutcome"},
	}
	for _, tt := range tests {
		t.Run(tt.prefer, func(t *testing.T) {
			r := do(t, http.MethodPost, base+"/Patient", patientJSON("prefer"), "Prefer", tt.prefer)
			mustStatus(t, r, http.StatusCreated)
			if r.header.Get("Location") == "" || r.header.Get("ETag") == "" {
				t.Errorf("missing Location/ETag: %v", r.header)
			}
			if tt.wantType == "" {
				if len(r.body) != 0 {
					t.Errorf("body = %s, want none", r.body)
				}
				return
			}
			if got := str(r.json(t), "resourceType"); got != tt.wantType {
				t.Errorf("resourceType = %q, want %q", got, tt.wantType)
			}
		})
	}
	t.Run("delete OperationOutcome", func(t *testing.T) {
		id := create(t, base, "Patient", patientJSON("d"))
		r := do(t, http.MethodDelete, base+"/Patient/"+id, "", "Prefer", "return=OperationOutcome")
		mustStatus(t, r, http.StatusOK)
		if str(r.json(t), "resourceType") != "OperationOutcome" {
			t.Errorf("body = %s", r.body)
		}
	})
}

func TestMetadata(t *testing.T) {
	s := newServer(t)
	r := do(t, http.MethodGet, s.base("acme")+"/metadata", "")
	mustStatus(t, r, http.StatusOK)
	if got, want := str(r.json(t), "implementation", "url"), s.base("acme"); got != want {
		t.Errorf("base URL given to Capability = %q, want %q", got, want)
	}
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestServerIDsAreUUIDs: server-assigned ids are UUID v7 (fhir.NewID), in
// the order they were made.
func TestServerIDsAreUUIDs(t *testing.T) {
	s := newServer(t)
	first := create(t, s.base("acme"), "Patient", patientJSON("u"))
	time.Sleep(time.Millisecond)
	second := create(t, s.base("acme"), "Patient", patientJSON("v"))
	for _, id := range []string{first, second} {
		if !uuidPattern.MatchString(id) {
			t.Errorf("id %q is not a UUID v7", id)
		}
	}
	if second <= first {
		t.Errorf("ids %s then %s: not in creation order", first, second)
	}
}
