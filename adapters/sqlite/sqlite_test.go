package sqlite

import (
	"context"
	"database/sql"
	"errors"
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

// TestBusyIsTransient: SQLite's "database is locked" (another connection
// holds the write lock past busy_timeout) reaches the API as
// KindUnavailable (503, retry), other driver errors as KindInternal. The
// errors are real: two connections to one file, the second with no
// busy_timeout.
func TestBusyIsTransient(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "busy.db")
	openConn := func() *sql.Conn {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	holder, other := openConn(), openConn()
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer holder.ExecContext(ctx, "ROLLBACK")
	_, busy := other.ExecContext(ctx, "BEGIN IMMEDIATE")
	if busy == nil {
		t.Fatal("a second writer began while the first held the lock")
	}
	_, syntax := other.ExecContext(ctx, "SELEKT 1")
	for _, tc := range []struct {
		name string
		err  error
		want fhir.Kind
	}{
		{"locked", busy, fhir.KindUnavailable},
		{"syntax", syntax, fhir.KindInternal},
	} {
		var fe *fhir.Error
		if !errors.As(internal("writing", tc.err), &fe) || fe.Kind != tc.want {
			t.Errorf("%s (%v): internal gives %v; want kind %v", tc.name, tc.err, fe, tc.want)
		}
	}
}
