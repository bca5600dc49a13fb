package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/sqlite"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/smart"
)

// TestStorePatients checks the standalone-launch patient picker over the
// store: name search, limit, stable order, display names, existence.
func TestStorePatients(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	reg := search.NewRegistry()
	put := func(id, body string) {
		idx, err := reg.Extract("Patient", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Tx(ctx, "acme", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: id, Body: []byte(body), Index: idx})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("pa", `{"resourceType":"Patient","id":"pa","name":[{"family":"Testperson","given":["Ada","B."]}]}`)
	put("pb", `{"resourceType":"Patient","id":"pb","name":[{"text":"Bea Sample"}]}`)
	put("pc", `{"resourceType":"Patient","id":"pc"}`)
	p := storePatients{store: st, reg: reg}

	for _, tc := range []struct {
		query string
		limit int
		want  []smart.PatientChoice
	}{
		{"", 10, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}, {ID: "pb", Display: "Bea Sample"}, {ID: "pc", Display: "pc"}}},
		{"", 2, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}, {ID: "pb", Display: "Bea Sample"}}},
		{"testp", 10, []smart.PatientChoice{{ID: "pa", Display: "Ada B. Testperson"}}},
		{"nobody", 10, []smart.PatientChoice{}},
	} {
		got, err := p.ListPatients(ctx, "acme", tc.query, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ListPatients(%q, %d) (-want +got):\n%s", tc.query, tc.limit, d)
		}
	}
	for id, want := range map[string]bool{"pa": true, "nope": false} {
		if got, err := p.PatientExists(ctx, "acme", id); err != nil || got != want {
			t.Errorf("PatientExists(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}
