package rest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func entryJSON(fullURL, method, url, resource, extra string) string {
	s := `{`
	if fullURL != "" {
		s += `"fullUrl":"` + fullURL + `",`
	}
	if resource != "" {
		s += `"resource":` + resource + `,`
	}
	return s + `"request":{"method":"` + method + `","url":"` + url + `"` + extra + `}}`
}

func bundleJSON(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func TestTransaction(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	existing := create(t, base, "Patient", patientJSON("old"))
	puid := "urn:uuid:2f1c6b8e-1111-4a2b-9c3d-000000000001"
	duid := "urn:uuid:2f1c6b8e-1111-4a2b-9c3d-000000000002"
	obs := observationJSON(puid, "8867-4", "2024-04-01")
	obs = strings.Replace(obs, `"subject"`, `"device":{"reference":"`+duid+`"},"subject"`, 1)
	tx := bundleJSON("transaction",
		entryJSON("", "GET", "Patient?identifier=urn:sys|tx", "", ""), // runs last: sees the new Patient
		entryJSON("urn:uuid:obs", "POST", "Observation", obs, ""),
		entryJSON(puid, "POST", "Patient", patientJSON("tx"), `,"ifNoneExist":"identifier=urn:sys|tx"`),
		entryJSON(duid, "POST", "Device", `{"resourceType":"Device","status":"active","patient":{"reference":"`+puid+`"}}`, ""),
		entryJSON("", "DELETE", "Patient/"+existing, "", ""),
	)
	r := do(t, http.MethodPost, base, tx)
	mustStatus(t, r, http.StatusOK)
	b := r.json(t)
	if str(b, "type") != "transaction-response" {
		t.Fatalf("type = %q", str(b, "type"))
	}
	var statuses []string
	for _, e := range entries(b) {
		statuses = append(statuses, str(e, "response", "status"))
	}
	if diff := cmp.Diff([]string{"200 OK", "201 Created", "201 Created", "201 Created", "204 No Content"}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	es := entries(b)
	pid := str(es[2], "resource", "id")
	did := str(es[3], "resource", "id")
	if loc := str(es[2], "response", "location"); loc != "Patient/"+pid+"/_history/1" {
		t.Errorf("location = %q", loc)
	}
	if str(es[2], "response", "etag") != `W/"1"` || str(es[2], "response", "lastModified") == "" {
		t.Errorf("response: %v", path(es[2], "response"))
	}
	// The search entry ran after the writes, inside the transaction.
	if got := len(entries(path(es[0], "resource").(map[string]any))); got != 1 {
		t.Errorf("GET entry matches = %d, want 1", got)
	}
	// References were rewritten in the stored resources.
	r = do(t, http.MethodGet, base+"/Observation/"+str(es[1], "resource", "id"), "")
	mustStatus(t, r, http.StatusOK)
	o := r.json(t)
	if got := str(o, "subject", "reference"); got != "Patient/"+pid {
		t.Errorf("subject = %q, want Patient/%s", got, pid)
	}
	if got := str(o, "device", "reference"); got != "Device/"+did {
		t.Errorf("device = %q, want Device/%s", got, did)
	}
	// and in the index: search by the rewritten reference finds it.
	r = do(t, http.MethodGet, base+"/Observation?subject=Patient/"+pid+"&device=Device/"+did, "")
	if got := len(entries(r.json(t))); got != 1 {
		t.Errorf("search by rewritten references = %d entries", got)
	}
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+existing, ""), http.StatusGone)

	// Running it again: the conditional Patient matches (200) and the
	// Observation now points to the existing Patient.
	r = do(t, http.MethodPost, base, bundleJSON("transaction",
		entryJSON(puid, "POST", "Patient", patientJSON("tx"), `,"ifNoneExist":"identifier=urn:sys|tx"`),
		entryJSON("", "POST", "Observation", observationJSON(puid, "8867-4", "2024-04-02"), ""),
	))
	mustStatus(t, r, http.StatusOK)
	es = entries(r.json(t))
	if str(es[0], "response", "status") != "200 OK" {
		t.Errorf("conditional entry status = %q", str(es[0], "response", "status"))
	}
	if got := str(es[1], "resource", "subject", "reference"); got != "Patient/"+pid {
		t.Errorf("second subject = %q, want Patient/%s", got, pid)
	}
}

func TestTransactionAllOrNothing(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	victim := create(t, base, "Patient", patientJSON("victim"))
	tests := []struct {
		name   string
		bundle string
		status int
	}{
		{"invalid resource", bundleJSON("transaction",
			entryJSON("urn:uuid:a", "POST", "Patient", patientJSON("aon"), ""),
			entryJSON("", "DELETE", "Patient/"+victim, "", ""),
			entryJSON("", "POST", "Observation", `{"resourceType":"Observation","status":"final"}`, ""),
		), http.StatusUnprocessableEntity},
		{"version conflict", bundleJSON("transaction",
			entryJSON("urn:uuid:a", "POST", "Patient", patientJSON("aon"), ""),
			entryJSON("", "DELETE", "Patient/"+victim, "", ""),
			entryJSON("", "PUT", "Patient/"+victim, strings.Replace(patientJSON("v"), `"Patient",`, `"Patient","id":"`+victim+`",`, 1), `,"ifMatch":"W/\"7\""`),
		), http.StatusPreconditionFailed},
		{"read of a missing resource", bundleJSON("transaction",
			entryJSON("urn:uuid:a", "POST", "Patient", patientJSON("aon"), ""),
			entryJSON("", "DELETE", "Patient/"+victim, "", ""),
			entryJSON("", "GET", "Patient/missing", "", ""),
		), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base, tt.bundle)
			mustStatus(t, r, tt.status)
			oo := r.json(t)
			if str(oo, "resourceType") != "OperationOutcome" || !strings.Contains(str(oo, "issue", 0, "diagnostics"), "Bundle.entry[2]") {
				t.Errorf("outcome: %s", r.body)
			}
			r = do(t, http.MethodGet, base+"/Patient?identifier=urn:sys|aon&_summary=count", "")
			if got := path(r.json(t), "total"); got != float64(0) {
				t.Errorf("Patients written by a failed transaction: %v", got)
			}
			mustStatus(t, do(t, http.MethodGet, base+"/Patient/"+victim, ""), http.StatusOK)
		})
	}
}

func TestBatch(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("b"))
	r := do(t, http.MethodPost, base, bundleJSON("batch",
		entryJSON("", "POST", "Patient", patientJSON("batch-ok"), ""),
		entryJSON("", "POST", "Observation", `{"resourceType":"Observation","status":"final"}`, ""),
		entryJSON("", "GET", "Patient/"+pid, "", ""),
		entryJSON("", "GET", "Patient/missing", "", ""),
		entryJSON("", "PUT", "Patient/"+pid, strings.Replace(patientJSON("b"), `"Patient",`, `"Patient","id":"`+pid+`",`, 1), ""),
		`{"resource":`+patientJSON("x")+`}`,
	))
	mustStatus(t, r, http.StatusOK)
	b := r.json(t)
	if str(b, "type") != "batch-response" {
		t.Fatalf("type = %q", str(b, "type"))
	}
	var got []string
	for _, e := range entries(b) {
		got = append(got, str(e, "response", "status")+" "+str(e, "response", "outcome", "issue", 0, "code"))
	}
	want := []string{"201 Created ", "422 Unprocessable Entity required", "200 OK ", "404 Not Found not-found", "200 OK ", "400 Bad Request invalid"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batch results (-want +got):\n%s", diff)
	}
	r = do(t, http.MethodGet, base+"/Patient?identifier=urn:sys|batch-ok&_summary=count", "")
	if got := path(r.json(t), "total"); got != float64(1) {
		t.Errorf("batch-created Patient count = %v", got)
	}
}

func TestTransactionConditionalPutAndMinimal(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	puid := "urn:uuid:7d0a1f00-0000-4000-8000-000000000001"
	tx := bundleJSON("transaction",
		entryJSON(puid, "PUT", "Patient?identifier=urn:sys|cput", patientJSON("cput"), ""),
		entryJSON("", "POST", "Device", `{"resourceType":"Device","status":"active","patient":{"reference":"`+puid+`"}}`, `,"ifNoneExist":"patient=`+puid+`"`),
	)
	var pid string
	for run, want := range []string{"201 Created", "200 OK"} {
		r := do(t, http.MethodPost, base, tx, "Prefer", "return=minimal")
		mustStatus(t, r, http.StatusOK)
		es := entries(r.json(t))
		if got := str(es[0], "response", "status"); got != want {
			t.Errorf("run %d: conditional PUT status = %q, want %q", run, got, want)
		}
		if path(es[0], "resource") != nil {
			t.Errorf("run %d: return=minimal entry has a resource", run)
		}
		id := strings.TrimPrefix(str(es[0], "fullUrl"), base+"/Patient/")
		if pid == "" {
			pid = id
		} else if id != pid {
			t.Errorf("run %d: Patient id %q, want %q", run, id, pid)
		}
		// The ifNoneExist condition named the Patient through its urn:uuid.
		if got := str(es[1], "response", "status"); got != []string{"201 Created", "200 OK"}[run] {
			t.Errorf("run %d: conditional Device status = %q", run, got)
		}
	}
	r := do(t, http.MethodGet, base+"/Device?patient=Patient/"+pid+"&_summary=count", "")
	if got := path(r.json(t), "total"); got != float64(1) {
		t.Errorf("Devices of the Patient = %v, want 1", got)
	}
}
