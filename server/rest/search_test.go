package rest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSearchPagingFollowsNextLinks(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("pg"))
	want := map[string]bool{}
	for i := range 23 {
		want[create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", fmt.Sprintf("2024-01-%02dT10:00:00Z", i+1)))] = true
	}
	create(t, base, "Observation", observationJSON("Patient/other", "8867-4", "2024-01-01"))

	next := base + "/Observation?subject=Patient/" + pid + "&_count=5&_sort=-date&_total=accurate&unknownparam=1"
	got := map[string]bool{}
	pages := 0
	var prevDates []string
	for next != "" {
		pages++
		if pages > 10 {
			t.Fatal("too many pages")
		}
		r := do(t, http.MethodGet, next, "")
		mustStatus(t, r, http.StatusOK)
		b := r.json(t)
		if str(b, "type") != "searchset" {
			t.Fatalf("type = %q", str(b, "type"))
		}
		if tot := path(b, "total"); tot != float64(23) {
			t.Errorf("total = %v, want 23", tot)
		}
		self := link(b, "self")
		u, err := url.Parse(self)
		if err != nil || !u.IsAbs() {
			t.Fatalf("self link %q not absolute", self)
		}
		for _, p := range []string{"subject", "_count", "_sort", "_total"} {
			if !u.Query().Has(p) {
				t.Errorf("self link %q lacks %s", self, p)
			}
		}
		if u.Query().Has("unknownparam") {
			t.Errorf("self link %q carries the ignored parameter", self)
		}
		for _, e := range entries(b) {
			switch str(e, "search", "mode") {
			case "match":
				id := str(e, "resource", "id")
				if got[id] {
					t.Errorf("duplicate %s", id)
				}
				got[id] = true
				if str(e, "fullUrl") != base+"/Observation/"+id {
					t.Errorf("fullUrl = %q", str(e, "fullUrl"))
				}
				prevDates = append(prevDates, str(e, "resource", "effectiveDateTime"))
			case "outcome":
				if str(e, "resource", "issue", 0, "severity") != "warning" {
					t.Errorf("outcome entry: %v", e)
				}
			default:
				t.Errorf("unexpected entry mode %q", str(e, "search", "mode"))
			}
		}
		if pages > 1 && link(b, "previous") == "" {
			t.Errorf("page %d has no previous link", pages)
		}
		next = link(b, "next")
	}
	if pages != 5 {
		t.Errorf("pages = %d, want 5", pages)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids over all pages (-want +got):\n%s", diff)
	}
	if !sort.SliceIsSorted(prevDates, func(i, j int) bool { return prevDates[i] > prevDates[j] }) {
		t.Errorf("dates not descending: %v", prevDates)
	}
}

func TestSearchLenientAndStrict(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	create(t, base, "Patient", patientJSON("ls"))
	r := do(t, http.MethodGet, base+"/Patient?colour=blue&gender=female", "")
	mustStatus(t, r, http.StatusOK)
	b := r.json(t)
	var modes []string
	for _, e := range entries(b) {
		modes = append(modes, str(e, "search", "mode"))
	}
	if diff := cmp.Diff([]string{"match", "outcome"}, modes); diff != "" {
		t.Errorf("entry modes (-want +got):\n%s", diff)
	}
	if self := link(b, "self"); strings.Contains(self, "colour") || !strings.Contains(self, "gender=female") {
		t.Errorf("self = %q", self)
	}
	r = do(t, http.MethodGet, base+"/Patient?colour=blue&gender=female", "", "Prefer", "handling=strict")
	mustStatus(t, r, http.StatusBadRequest)
	if str(r.json(t), "resourceType") != "OperationOutcome" {
		t.Errorf("strict body: %s", r.body)
	}
}

func TestSearchIncludes(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("inc"))
	did := create(t, base, "Device", `{"resourceType":"Device","status":"active","patient":{"reference":"Patient/`+pid+`"}}`)
	obs := strings.Replace(observationJSON("Patient/"+pid, "8867-4", "2024-02-01"), `"subject"`, `"device":{"reference":"Device/`+did+`"},"subject"`, 1)
	oid := create(t, base, "Observation", obs)

	tests := []struct {
		query string
		want  []string // "mode Type/id", sorted
	}{
		{"/Observation?_id=" + oid + "&_include=Observation:subject", []string{"include Patient/" + pid, "match Observation/" + oid}},
		{"/Observation?_id=" + oid + "&_include=Observation:device", []string{"include Device/" + did, "match Observation/" + oid}},
		{"/Device?_id=" + did + "&_include=Device:patient", []string{"include Patient/" + pid, "match Device/" + did}},
		{"/Patient?_id=" + pid + "&_revinclude=Observation:subject", []string{"include Observation/" + oid, "match Patient/" + pid}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := do(t, http.MethodGet, base+tt.query, "")
			mustStatus(t, r, http.StatusOK)
			var got []string
			for _, e := range entries(r.json(t)) {
				got = append(got, str(e, "search", "mode")+" "+str(e, "resource", "resourceType")+"/"+str(e, "resource", "id"))
			}
			sort.Strings(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchSummaryAndElements(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("se"))
	create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", "2024-02-01"))
	create(t, base, "Observation", observationJSON("Patient/"+pid, "8480-6", "2024-02-02"))

	r := do(t, http.MethodGet, base+"/Observation?subject=Patient/"+pid+"&_summary=count", "")
	mustStatus(t, r, http.StatusOK)
	b := r.json(t)
	if path(b, "total") != float64(2) || len(entries(b)) != 0 {
		t.Errorf("_summary=count: total %v, %d entries", path(b, "total"), len(entries(b)))
	}

	r = do(t, http.MethodGet, base+"/Observation?subject=Patient/"+pid+"&_elements=subject", "")
	mustStatus(t, r, http.StatusOK)
	for _, e := range entries(r.json(t)) {
		res := path(e, "resource").(map[string]any)
		var keys []string
		for k := range res {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// code and status are mandatory and always kept.
		if diff := cmp.Diff([]string{"code", "id", "meta", "resourceType", "status", "subject"}, keys); diff != "" {
			t.Errorf("_elements keys (-want +got):\n%s", diff)
		}
		if !hasSubsetted(res) {
			t.Errorf("no SUBSETTED tag: %v", res["meta"])
		}
	}

	r = do(t, http.MethodGet, base+"/Patient/"+pid+"?_summary=true", "")
	mustStatus(t, r, http.StatusOK)
	p := r.json(t)
	if p["name"] == nil || p["birthDate"] == nil || !hasSubsetted(p) {
		t.Errorf("_summary=true read: %s", r.body)
	}
	r = do(t, http.MethodGet, base+"/Patient/"+pid+"?_summary=text", "")
	if p := r.json(t); p["name"] != nil || !hasSubsetted(p) {
		t.Errorf("_summary=text read: %s", r.body)
	}
}

func hasSubsetted(res map[string]any) bool {
	tags, _ := path(res, "meta", "tag").([]any)
	for _, tg := range tags {
		if str(tg, "code") == "SUBSETTED" {
			return true
		}
	}
	return false
}

func TestPostSearch(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("ps"))
	create(t, base, "Patient", patientJSON("other"))
	req, err := http.NewRequest(http.MethodPost, base+"/Patient/_search", strings.NewReader("identifier=urn:sys|ps"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{status: res.StatusCode, header: res.Header, body: b}
	mustStatus(t, r, http.StatusOK)
	sb := r.json(t)
	if e := entries(sb); len(e) != 1 || str(e[0], "resource", "id") != pid {
		t.Errorf("POST _search entries: %s", r.body)
	}
	// The self link repeats the form parameters as a GET query.
	if self := link(sb, "self"); !strings.HasPrefix(self, base+"/Patient?") || !strings.Contains(self, "identifier=urn%3Asys%7Cps") {
		t.Errorf("self = %q", self)
	}
}

func TestLastN(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("ln"))
	other := create(t, base, "Patient", patientJSON("ln2"))
	hr := map[string]string{}
	for _, d := range []string{"2024-03-01", "2024-03-03", "2024-03-02"} {
		hr[d] = create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", d))
	}
	bp := create(t, base, "Observation", observationJSON("Patient/"+pid, "8480-6", "2024-03-01"))
	create(t, base, "Observation", observationJSON("Patient/"+other, "8867-4", "2024-03-05"))

	tests := []struct {
		query string
		want  []string
	}{
		{"?patient=Patient/" + pid, []string{hr["2024-03-03"], bp}},
		{"?subject=Patient/" + pid + "&max=2&code=http://loinc.org|8867-4", []string{hr["2024-03-03"], hr["2024-03-02"]}},
		{"?patient=Patient/" + pid + "&category=vital-signs&max=5", []string{hr["2024-03-03"], hr["2024-03-02"], hr["2024-03-01"], bp}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := do(t, http.MethodGet, base+"/Observation/$lastn"+tt.query, "")
			mustStatus(t, r, http.StatusOK)
			var got []string
			for _, e := range entries(r.json(t)) {
				got = append(got, str(e, "resource", "id"))
			}
			sort.Strings(got)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("$lastn ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	id := create(t, base, "Patient", patientJSON("h"))
	upd := strings.Replace(patientJSON("h"), `"Patient",`, `"Patient","id":"`+id+`",`, 1)
	mustStatus(t, do(t, http.MethodPut, base+"/Patient/"+id, upd), http.StatusOK)
	mustStatus(t, do(t, http.MethodPut, base+"/Patient/"+id, upd), http.StatusOK)
	mustStatus(t, do(t, http.MethodDelete, base+"/Patient/"+id, ""), http.StatusNoContent)
	create(t, base, "Patient", patientJSON("h2"))
	create(t, base, "Device", `{"resourceType":"Device","status":"active"}`)

	r := do(t, http.MethodGet, base+"/Patient/"+id+"/_history", "")
	mustStatus(t, r, http.StatusOK)
	b := r.json(t)
	if str(b, "type") != "history" {
		t.Errorf("type = %q", str(b, "type"))
	}
	var got []string
	for _, e := range entries(b) {
		got = append(got, str(e, "request", "method")+" "+str(e, "response", "status")+" "+str(e, "response", "etag"))
	}
	want := []string{`DELETE 204 No Content W/"4"`, `PUT 200 OK W/"3"`, `PUT 200 OK W/"2"`, `POST 201 Created W/"1"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instance history (-want +got):\n%s", diff)
	}
	mustStatus(t, do(t, http.MethodGet, base+"/Patient/never/_history", ""), http.StatusNotFound)

	// Type history paged two at a time: 5 Patient versions.
	next := base + "/Patient/_history?_count=2"
	n, pages := 0, 0
	seen := map[string]bool{}
	for next != "" && pages < 10 {
		pages++
		r := do(t, http.MethodGet, next, "")
		mustStatus(t, r, http.StatusOK)
		b := r.json(t)
		for _, e := range entries(b) {
			key := str(e, "fullUrl") + " " + str(e, "response", "etag")
			if seen[key] {
				t.Errorf("duplicate %s", key)
			}
			seen[key] = true
			n++
		}
		next = link(b, "next")
	}
	if n != 5 || pages != 3 {
		t.Errorf("type history: %d versions on %d pages, want 5 on 3", n, pages)
	}

	// System history has all 6 versions; _since in the future has none.
	r = do(t, http.MethodGet, base+"/_history", "")
	if got := len(entries(r.json(t))); got != 6 {
		t.Errorf("system history entries = %d, want 6", got)
	}
	r = do(t, http.MethodGet, base+"/_history?_since=2999-01-01T00:00:00Z", "")
	mustStatus(t, r, http.StatusOK)
	if got := len(entries(r.json(t))); got != 0 {
		t.Errorf("_since future entries = %d", got)
	}
	mustStatus(t, do(t, http.MethodGet, base+"/_history?_since=yesterday", ""), http.StatusBadRequest)
}

// TestDerivedSearchParams: Observation's patient (subject restricted to
// Patient) and combo-code (code or component code) have no index entries of
// their own (fhir.DerivedParam); searches, includes and sorts by them give
// what the R4 definitions say.
func TestDerivedSearchParams(t *testing.T) {
	s := newServer(t)
	base := s.base("acme")
	pid := create(t, base, "Patient", patientJSON("derived"))
	bp := strings.Replace(observationJSON("Patient/"+pid, "85354-9", "2024-02-01T10:00:00Z"), `"subject"`,
		`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}],"subject"`, 1)
	o1 := create(t, base, "Observation", bp)
	o2 := create(t, base, "Observation", observationJSON("Group/g1", "85354-9", "2024-02-02T10:00:00Z"))
	o3 := create(t, base, "Observation", observationJSON("Patient/"+pid, "8867-4", "2024-02-03T10:00:00Z"))

	tests := []struct {
		query string
		want  []string // "mode Type/id", in order
	}{
		{"/Observation?patient=Patient/" + pid + "&_sort=-date", []string{"match Observation/" + o3, "match Observation/" + o1}},
		{"/Observation?patient=" + pid + "&_sort=date", []string{"match Observation/" + o1, "match Observation/" + o3}},
		{"/Observation?subject=Group/g1", []string{"match Observation/" + o2}},
		{"/Observation?patient:missing=true", []string{"match Observation/" + o2}},
		{"/Observation?patient:missing=false&_sort=date", []string{"match Observation/" + o1, "match Observation/" + o3}},
		{"/Observation?combo-code=8480-6", []string{"match Observation/" + o1}},
		{"/Observation?combo-code=http://loinc.org|85354-9&_sort=date", []string{"match Observation/" + o1, "match Observation/" + o2}},
		{"/Observation?combo-code:not=85354-9", []string{"match Observation/" + o3}},
		{"/Observation?combo-code=8867-4,8480-6&_sort=-date", []string{"match Observation/" + o3, "match Observation/" + o1}},
		{"/Observation?_id=" + o1 + "&_include=Observation:patient", []string{"match Observation/" + o1, "include Patient/" + pid}},
		{"/Observation?_id=" + o2 + "&_include=Observation:patient", []string{"match Observation/" + o2}},
		{"/Patient?_id=" + pid + "&_revinclude=Observation:patient", []string{"match Patient/" + pid, "include Observation/" + o1, "include Observation/" + o3}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := do(t, http.MethodGet, base+tt.query, "")
			mustStatus(t, r, http.StatusOK)
			var got []string
			for _, e := range entries(r.json(t)) {
				got = append(got, str(e, "search", "mode")+" "+str(e, "resource", "resourceType")+"/"+str(e, "resource", "id"))
			}
			// Includes come after the matches; their order among
			// themselves is by id.
			want := tt.want
			sortIncludes := func(xs []string) {
				i := 0
				for i < len(xs) && strings.HasPrefix(xs[i], "match ") {
					i++
				}
				sort.Strings(xs[i:])
			}
			sortIncludes(got)
			want = append([]string(nil), want...)
			sortIncludes(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}
