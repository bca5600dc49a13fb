package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestGroupCommit: concurrent creates with server-made ids commit in groups
// (fewer transactions than creates), every one lands with its index rows,
// and a member that makes its group fail (here: its "fresh" id exists
// already) takes nobody down: the whole group runs again, each member on
// its own, and the existing resource gets a new version.
func TestGroupCommit(t *testing.T) {
	s := newStore(t).(*Store)
	ctx := context.Background()
	for _, tn := range []string{"acme", "globex"} {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tx(ctx, "globex", func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "dup-7", Body: json.RawMessage(`{"resourceType":"Observation","status":"final"}`)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Warm up: the tenants' registration checks are done outside groups.
	for _, tn := range []string{"acme", "globex"} {
		if _, err := s.Read(ctx, tn, "Observation", "none"); fhir.ErrorKind(err) != fhir.KindNotFound {
			t.Fatalf("warm-up read: %v", err)
		}
	}
	groups0, items0 := s.commits.groups.Load(), s.commits.items.Load()

	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			tn := []string{"acme", "globex"}[i%2]
			id := fmt.Sprintf("obs-%d", i)
			if i == 7 {
				id = "dup-7"
			}
			body := json.RawMessage(`{"resourceType":"Observation","status":"final"}`)
			errs[i] = s.Tx(ctx, tn, func(tx fhir.Tx) error {
				_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: id, Body: body, Fresh: true,
					Index: []fhir.IndexEntry{{Param: "status", Type: fhir.ParamToken, Code: "final"},
						{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: fmt.Sprintf("p%d", i%3)}}})
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
	groups, items := s.commits.groups.Load()-groups0, s.commits.items.Load()-items0
	if items < n || groups >= items {
		t.Errorf("%d grouped transactions in %d groups: want at least %d, in fewer groups", items, groups, n)
	}
	t.Logf("%d grouped transactions in %d groups", items, groups)

	for _, tn := range []string{"acme", "globex"} {
		res, err := s.Search(ctx, tn, &fhir.Query{Type: "Observation", Count: 1000, Total: true,
			Params: []fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		want := n / 2 // dup-7 included: its second version is indexed
		if res.Total != want {
			t.Errorf("%s: %d Observations found by status, want %d", tn, res.Total, want)
		}
	}
	if r, err := s.Read(ctx, "globex", "Observation", "dup-7"); err != nil || r.VersionID != 2 {
		t.Errorf("dup-7: %v, %v; want version 2", r, err)
	}
	res, err := s.Search(ctx, "acme", &fhir.Query{Type: "Observation", Count: 1000, Total: true,
		Params: []fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p0"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 34 { // even i < 200 with i%3 == 0
		t.Errorf("acme Observations of p0: %d, want 34", res.Total)
	}
}

// TestGroupRead: concurrent reads by id answered in groups find each its own
// resource, across tenants, and report missing and deleted ones as Read
// does.
func TestGroupRead(t *testing.T) {
	s := newStore(t).(*Store)
	ctx := context.Background()
	for _, tn := range []string{"acme", "globex"} {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			err := s.Tx(ctx, tn, func(tx fhir.Tx) error {
				_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: fmt.Sprintf("p%d", i),
					Body: json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","gender":%q}`, tn))})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error { _, err := tx.Delete(ctx, "Patient", "p3", 0); return err }); err != nil {
		t.Fatal(err)
	}
	groups0, items0 := s.reads.groups.Load(), s.reads.items.Load()
	var wg sync.WaitGroup
	for round := range 10 {
		for i := range 22 {
			for _, tn := range []string{"acme", "globex"} {
				wg.Go(func() {
					id := fmt.Sprintf("p%d", i)
					res, err := s.Read(ctx, tn, "Patient", id)
					switch {
					case i >= 20:
						if fhir.ErrorKind(err) != fhir.KindNotFound {
							t.Errorf("round %d: %s Patient/%s: %v, want not found", round, tn, id, err)
						}
					case i == 3 && tn == "acme":
						if fhir.ErrorKind(err) != fhir.KindGone {
							t.Errorf("round %d: %s Patient/%s: %v, want gone", round, tn, id, err)
						}
					case err != nil:
						t.Errorf("round %d: %s Patient/%s: %v", round, tn, id, err)
					case res.ID != id || !json.Valid(res.Body) || string(res.Body) == "" ||
						!containsGender(res.Body, tn):
						t.Errorf("round %d: %s Patient/%s read %s/%s %s", round, tn, id, res.Type, res.ID, res.Body)
					}
				})
			}
		}
	}
	wg.Wait()
	groups, items := s.reads.groups.Load()-groups0, s.reads.items.Load()-items0
	if items != 10*22*2 || groups >= items {
		t.Errorf("%d reads in %d groups: want %d, in fewer groups", items, groups, 10*22*2)
	}
	t.Logf("%d reads in %d groups", items, groups)
}

func containsGender(body []byte, g string) bool {
	var v struct{ Gender string }
	return json.Unmarshal(body, &v) == nil && v.Gender == g
}
