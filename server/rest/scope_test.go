package rest_test

import (
	"net/http"
	"testing"
)

// TestUnsupportedInteractionsAreRefusedClearly: PATCH and conditional
// delete are outside this API (the CapabilityStatement does not claim
// them): they get 405 with an OperationOutcome and change nothing.
func TestUnsupportedInteractionsAreRefusedClearly(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	id := create(t, base, "Patient", patientJSON("scope"))
	for _, tc := range []struct{ method, url string }{
		{http.MethodPatch, base + "/Patient/" + id},
		{http.MethodDelete, base + "/Patient?identifier=urn:sys|scope"},
	} {
		r := do(t, tc.method, tc.url, `[{"op":"replace","path":"/gender","value":"male"}]`)
		if r.status != http.StatusMethodNotAllowed || str(r.json(t), "resourceType") != "OperationOutcome" {
			t.Errorf("%s %s: %d %s, want 405 with an OperationOutcome", tc.method, tc.url, r.status, r.body)
		}
	}
	r := do(t, http.MethodGet, base+"/Patient/"+id, "")
	mustStatus(t, r, http.StatusOK)
	if str(r.json(t), "gender") != "female" {
		t.Errorf("the refused PATCH changed the patient: %s", r.body)
	}
}
