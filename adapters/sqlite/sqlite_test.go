package sqlite

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/fhir/storetest"
)

func openTemp(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fhir.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pulsewire.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.EnsureTenant(ctx, "acme"); err != nil {
		t.Fatalf("EnsureTenant: %v", err)
	}
	var want *fhir.Resource
	err = s.Tx(ctx, "acme", func(tx fhir.Tx) error {
		want, _, err = tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: []byte(`{"resourceType":"Patient"}`),
			Index: []fhir.IndexEntry{{Param: "gender", Type: fhir.ParamToken, Code: "female"}}})
		return err
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Reopening runs the migrations again: they must be a no-op.
	s2 := openTemp(t, path)
	if ok, err := s2.TenantExists(ctx, "acme"); err != nil || !ok {
		t.Fatalf("TenantExists after reopen = %v, %v", ok, err)
	}
	got, err := s2.Read(ctx, "acme", "Patient", "p1")
	if err != nil {
		t.Fatalf("Read after reopen: %v", err)
	}
	if got.VersionID != want.VersionID || !got.LastUpdated.Equal(want.LastUpdated) || string(got.Body) != string(want.Body) {
		t.Errorf("after reopen got %+v, want %+v", got, want)
	}
	res, err := s2.Search(ctx, "acme", &fhir.Query{Type: "Patient", Count: 10,
		Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "female"}}}}})
	if err != nil || len(res.Resources) != 1 {
		t.Fatalf("search after reopen: %v, %v", res, err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s2.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(files) {
		t.Errorf("schema_migrations has %d rows (%v), want one per migration file (%d)", n, err, len(files))
	}
}
