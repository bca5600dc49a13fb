package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// openTestStore opens and migrates a store in a schema of its own. It is
// closed before the schema is dropped (cleanups run last-in first-out).
func openTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	dsn, schema := pgtest.Schema(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: dsn, MaxConns: 8})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, schema
}

func newStore(t *testing.T) fhir.Store {
	t.Helper()
	s, _ := openTestStore(t)
	return s
}

func obsBody(status string) []byte {
	return []byte(`{"resourceType":"Observation","status":"` + status + `","code":{"text":"hr"}}`)
}

func mustPut(t testing.TB, s *Store, tenant string, w *fhir.Write) *fhir.Resource {
	t.Helper()
	var res *fhir.Resource
	err := s.Tx(context.Background(), tenant, func(tx fhir.Tx) error {
		var err error
		res, _, err = tx.Put(context.Background(), w)
		return err
	})
	if err != nil {
		t.Fatalf("Put %s/%s: %v", w.Type, w.ID, err)
	}
	return res
}

func mustTenant(t testing.TB, s *Store, tenants ...string) {
	t.Helper()
	for _, tn := range tenants {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant %s: %v", tn, err)
		}
	}
}

func TestReadWriteBasics(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")

	r1 := mustPut(t, s, "a", &fhir.Write{Type: "Observation", ID: "o1", Body: obsBody("preliminary"),
		Index: []fhir.IndexEntry{{Param: "status", Type: fhir.ParamToken, Code: "preliminary"}}})
	r2 := mustPut(t, s, "a", &fhir.Write{Type: "Observation", ID: "o1", Body: obsBody("final"), IfMatch: 1,
		Index: []fhir.IndexEntry{{Param: "status", Type: fhir.ParamToken, Code: "final"}}})
	if r1.VersionID != 1 || r2.VersionID != 2 || !r2.LastUpdated.After(r1.LastUpdated) {
		t.Fatalf("versions %d@%s, %d@%s: want 1 then 2, later", r1.VersionID, r1.LastUpdated, r2.VersionID, r2.LastUpdated)
	}

	got, err := s.Read(ctx, "a", "Observation", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r2, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	v1, err := s.VRead(ctx, "a", "Observation", "o1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r1, v1); diff != "" {
		t.Errorf("VRead 1 (-want +got):\n%s", diff)
	}

	// The index follows the current version only.
	for _, tc := range []struct {
		code string
		want int
	}{{"final", 1}, {"preliminary", 0}} {
		res, err := s.Search(ctx, "a", &fhir.Query{Type: "Observation", Count: 10, Params: []fhir.Param{
			{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: tc.code}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Resources) != tc.want {
			t.Errorf("status=%s: %d matches, want %d", tc.code, len(res.Resources), tc.want)
		}
	}

	// If-Match mismatch.
	err = s.Tx(ctx, "a", func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o1", Body: obsBody("final"), IfMatch: 1})
		return err
	})
	if !fhir.IsKind(err, fhir.KindPreconditionFailed) {
		t.Errorf("stale If-Match: got %v, want KindPreconditionFailed", err)
	}

	// Delete, then read is gone, a second delete writes nothing, re-create continues the versions.
	var del *fhir.Resource
	if err := s.Tx(ctx, "a", func(tx fhir.Tx) (err error) { del, err = tx.Delete(ctx, "Observation", "o1", 0); return err }); err != nil {
		t.Fatal(err)
	}
	if del == nil || del.VersionID != 3 || !del.Deleted {
		t.Fatalf("Delete returned %+v, want tombstone version 3", del)
	}
	if _, err := s.Read(ctx, "a", "Observation", "o1"); !fhir.IsKind(err, fhir.KindGone) {
		t.Errorf("Read after delete: %v, want KindGone", err)
	}
	if _, err := s.VRead(ctx, "a", "Observation", "o1", 3); !fhir.IsKind(err, fhir.KindGone) {
		t.Errorf("VRead of tombstone: %v, want KindGone", err)
	}
	if err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
		d, err := tx.Delete(ctx, "Observation", "o1", 0)
		if d != nil {
			return errors.New("second delete wrote a version")
		}
		return err
	}); err != nil {
		t.Error(err)
	}
	var created bool
	if err := s.Tx(ctx, "a", func(tx fhir.Tx) (err error) {
		r, c, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o1", Body: obsBody("final")})
		if err == nil && r.VersionID != 4 {
			err = fmt.Errorf("re-created as version %d, want 4", r.VersionID)
		}
		created = c
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("re-create after delete: created = false, want true")
	}

	h, err := s.History(ctx, "a", &fhir.HistoryQuery{Type: "Observation", ID: "o1", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, v := range h.Versions {
		versions = append(versions, v.VersionID)
	}
	if diff := cmp.Diff([]int64{4, 3, 2, 1}, versions); diff != "" || h.Total != 4 {
		t.Errorf("history versions (-want +got):\n%s total %d", diff, h.Total)
	}

	// Not found and unknown tenant.
	if _, err := s.Read(ctx, "a", "Observation", "nope"); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("Read missing: %v, want KindNotFound", err)
	}
	for _, tenant := range []string{"zz", "Bad Tenant"} {
		if _, err := s.Read(ctx, tenant, "Observation", "o1"); !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("Read in tenant %q: %v, want KindNotFound", tenant, err)
		}
		if err := s.Tx(ctx, tenant, func(fhir.Tx) error { return nil }); !fhir.IsKind(err, fhir.KindNotFound) {
			t.Errorf("Tx in tenant %q: %v, want KindNotFound", tenant, err)
		}
	}
	if ok, err := s.TenantExists(ctx, "a"); !ok || err != nil {
		t.Errorf("TenantExists(a) = %v, %v", ok, err)
	}
	if ok, err := s.TenantExists(ctx, "zz"); ok || err != nil {
		t.Errorf("TenantExists(zz) = %v, %v", ok, err)
	}
}

// TestRowLevelSecurity proves isolation is in the database: a raw
// connection as the application role sees no row of tenant a when the
// setting names tenant b or nothing, and cannot write a's rows while set to b.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	s, schema := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a", "b")
	// Written twice: version 1 in resource_versions, 2 in resources.
	for range 2 {
		mustPut(t, s, "a", &fhir.Write{Type: "Observation", ID: "o1", Body: obsBody("final"),
			Index: []fhir.IndexEntry{{Param: "status", Type: fhir.ParamToken, Code: "final"}, {Param: "code", Type: fhir.ParamToken, Code: "c"}}})
	}

	conn := pgtest.AdminConn(t)
	if _, err := conn.Exec(ctx, "SET search_path = "+schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET ROLE pulsewire_app"); err != nil {
		t.Fatal(err)
	}
	count := func(t *testing.T, table, tenant string) int64 {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if tenant != "" {
			if _, err := tx.Exec(ctx, setTenantSQL, tenant); err != nil {
				t.Fatal(err)
			}
		}
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// status is in Observation's typed row (migration 0070), code in idx_token.
	tables := []string{"tenants", "resources", "resource_versions", "idx_token", "search_observation"}
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			if n := count(t, table, "a"); n != 1 {
				t.Errorf("as tenant a: %d rows, want 1", n)
			}
			if n := count(t, table, "b"); n != 0 && table != "tenants" {
				t.Errorf("as tenant b: %d rows, want 0", n)
			}
			if n := count(t, table, ""); n != 0 {
				t.Errorf("no tenant set: %d rows, want 0", n)
			}
		})
	}
	// tenants as b: only b's own row.
	if n := count(t, "tenants", "b"); n != 1 {
		t.Errorf("tenants as b: %d rows, want 1 (its own)", n)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, setTenantSQL, "b"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
		VALUES ('a', 'Observation', 'evil', 1, 0, 0, NULL)`)
	if code := pgCode(err); code != "42501" {
		t.Errorf("insert of tenant a's row as b: error %v (SQLSTATE %q), want 42501 (RLS WITH CHECK)", err, code)
	}
	_ = tx.Rollback(ctx)

	// Updates and deletes of a's rows as b touch nothing.
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, setTenantSQL, "b"); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"UPDATE resources SET body = NULL", "DELETE FROM resource_versions"} {
		ct, err := tx.Exec(ctx, stmt)
		if err != nil || ct.RowsAffected() != 0 {
			t.Errorf("%s as b: %d rows, %v; want 0 rows", stmt, ct.RowsAffected(), err)
		}
	}

	// And through the store: tenant b cannot read a's resource.
	if _, err := s.Read(ctx, "b", "Observation", "o1"); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("store Read as b: %v, want KindNotFound", err)
	}
}

// TestConcurrentUpdates: 16 goroutines updating one resource give versions
// 1..17 with no gap and no duplicate.
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	mustPut(t, s, "a", &fhir.Write{Type: "Patient", ID: "p1", Body: []byte(`{"resourceType":"Patient"}`)})

	var wg sync.WaitGroup
	versions := make(chan int64, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
				r, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: []byte(`{"resourceType":"Patient","gender":"other"}`),
					Index: []fhir.IndexEntry{{Param: "gender", Type: fhir.ParamToken, Code: fmt.Sprint(i)}}})
				if err == nil {
					versions <- r.VersionID
				}
				return err
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(versions)
	var got []int64
	for v := range versions {
		got = append(got, v)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	var want []int64
	for v := int64(2); v <= 17; v++ {
		want = append(want, v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions returned (-want +got):\n%s", diff)
	}
	h, err := s.History(ctx, "a", &fhir.HistoryQuery{Type: "Patient", ID: "p1", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	var stored []int64
	for _, v := range h.Versions {
		stored = append(stored, v.VersionID)
	}
	sort.Slice(stored, func(i, j int) bool { return stored[i] < stored[j] })
	if diff := cmp.Diff(append([]int64{1}, want...), stored); diff != "" {
		t.Errorf("stored versions (-want +got):\n%s", diff)
	}
	// Exactly one index row: the last writer's.
	res, err := s.Search(ctx, "a", &fhir.Query{Type: "Patient", Count: 10, Total: true,
		Params: []fhir.Param{{Name: "gender", Type: fhir.ParamToken, Modifier: "missing", Missing: new(false)}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1 {
		t.Errorf("gender:missing=false total %d, want 1", res.Total)
	}
}

// TestConcurrentCreate: racing creates of one new id make versions 1..n, never two version 1s.
func TestConcurrentCreate(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
				_, c, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "new", Body: []byte(`{"resourceType":"Patient"}`)})
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
				return err
			})
			if err != nil {
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d puts reported created, want 1", created)
	}
}

// TestLockSerializes: two transactions locking one key run one after the other.
func TestLockSerializes(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
				if err := tx.Lock(ctx, "Patient?identifier=x|1"); err != nil {
					return err
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if maxInside != 1 {
		t.Errorf("%d transactions held the lock at once, want 1", maxInside)
	}
}

// TestTxRollback: fn's error is returned unchanged and nothing is written.
func TestTxRollback(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	sentinel := errors.New("stop")
	err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Patient", ID: "p1", Body: []byte(`{"resourceType":"Patient"}`)}); err != nil {
			return err
		}
		if _, err := tx.Read(ctx, "a", "Patient", "p1"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		return sentinel
	})
	if err != sentinel {
		t.Fatalf("Tx returned %v, want the sentinel unchanged", err)
	}
	if _, err := s.Read(ctx, "a", "Patient", "p1"); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("Read after rollback: %v, want KindNotFound", err)
	}
}

// TestTxRetriesDeadlock: a deadlock between two transactions is retried, so
// both eventually succeed.
func TestTxRetriesDeadlock(t *testing.T) {
	t.Parallel()
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	attempts := 0
	both := make(chan struct{})
	var once sync.Once
	ready := 0
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, second := "k1", "k2"
			if i == 1 {
				first, second = second, first
			}
			err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
				mu.Lock()
				attempts++
				mu.Unlock()
				if err := tx.Lock(ctx, first); err != nil {
					return err
				}
				mu.Lock()
				ready++
				if ready == 2 {
					once.Do(func() { close(both) })
				}
				mu.Unlock()
				select {
				case <-both:
				case <-time.After(2 * time.Second):
				}
				return tx.Lock(ctx, second)
			})
			if err != nil {
				t.Errorf("tx %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if attempts < 3 {
		t.Errorf("%d attempts, want at least 3 (one retried after the deadlock)", attempts)
	}
}

// TestMigrate: running Migrate again, and from several stores at once, is fine.
func TestMigrate(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.Schema(t)
	ctx := context.Background()
	var stores []*Store
	for range 4 {
		s, err := Open(ctx, Config{DSN: dsn, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Migrate(ctx); err != nil {
				t.Errorf("concurrent Migrate %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pgtest.AdminConn(t).QueryRow(ctx, "SELECT count(*) FROM "+schema+".schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	if err := stores[0].EnsureTenant(ctx, "a"); err != nil {
		t.Errorf("EnsureTenant after migrations: %v", err)
	}
}

// TestRefusesBypassRole: a role that bypasses RLS is refused.
func TestRefusesBypassRole(t *testing.T) {
	t.Parallel()
	dsn, _ := pgtest.Schema(t)
	ctx := context.Background()
	var super bool
	if err := pgtest.AdminConn(t).QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("the test login role is not a superuser")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Config{DSN: dsn, Role: cfg.User})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("Ping as superuser role: %v, want refusal", err)
	}
}

// openTestStoreConns is openTestStore with a pool of conns connections.
func openTestStoreConns(tb testing.TB, conns int32) (*Store, string) {
	tb.Helper()
	dsn, schema := pgtest.Schema(tb)
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: dsn, MaxConns: conns})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return s, schema
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// TestFreshPut checks the blind write of a Fresh resource: one round trip
// for a new id, and a correct new version (not a failure) when the id
// exists after all, also inside a transaction that goes on after the Put.
func TestFreshPut(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	// A tenant not yet registered: nothing may be committed for it.
	err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
		_, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "f0", Body: obsBody("final"), Fresh: true})
		return err
	})
	if !fhir.IsKind(err, fhir.KindNotFound) {
		t.Fatalf("Put for an unregistered tenant: %v, want KindNotFound", err)
	}
	mustTenant(t, s, "acme")
	if _, err := s.Read(ctx, "acme", "Observation", "f0"); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Fatalf("Read of a Put refused for an unregistered tenant: %v, want KindNotFound", err)
	}
	put := func(id string, then func(fhir.Tx) error) (*fhir.Resource, bool) {
		t.Helper()
		var res *fhir.Resource
		var created bool
		err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
			var err error
			res, created, err = tx.Put(ctx, &fhir.Write{Type: "Observation", ID: id, Body: obsBody("final"), Fresh: true,
				Index: []fhir.IndexEntry{{Param: "status", Type: fhir.ParamToken, Code: "final"}}})
			if err != nil || then == nil {
				return err
			}
			return then(tx)
		})
		if err != nil {
			t.Fatalf("Put %s: %v", id, err)
		}
		return res, created
	}
	if res, created := put("f1", nil); res.VersionID != 1 || !created {
		t.Errorf("new: version %d, created %v; want 1, true", res.VersionID, created)
	}
	if res, created := put("f1", nil); res.VersionID != 2 || created {
		t.Errorf("existing: version %d, created %v; want 2, false", res.VersionID, created)
	}
	search := func(tx fhir.Tx) error {
		_, err := tx.Search(ctx, "acme", &fhir.Query{Type: "Observation", Count: 10})
		return err
	}
	if res, created := put("f1", search); res.VersionID != 3 || created {
		t.Errorf("existing, then a search: version %d, created %v; want 3, false", res.VersionID, created)
	}
	got, err := s.Read(ctx, "acme", "Observation", "f1")
	if err != nil || got.VersionID != 3 {
		t.Fatalf("Read = %v, %v; want version 3", got, err)
	}
	h, err := s.History(ctx, "acme", &fhir.HistoryQuery{Type: "Observation", ID: "f1", Count: 10})
	if err != nil || len(h.Versions) != 3 {
		t.Fatalf("History = %v, %v; want 3 versions", h, err)
	}
	res := idsWithStatus(t, s, "final")
	if diff := cmp.Diff([]string{"f1"}, res); diff != "" {
		t.Errorf("status=final (-want +got):\n%s", diff)
	}
}

func idsWithStatus(t *testing.T, s *Store, status string) []string {
	t.Helper()
	res, err := s.Search(context.Background(), "acme", &fhir.Query{Type: "Observation", Count: 10,
		Params: []fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: status}}}}})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	var ids []string
	for _, r := range res.Resources {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestInternalClassifiesTransient: database errors that mean "exhausted
// for now" (a full lock table reports out of memory, 53200) become
// KindUnavailable (503, retry); others stay internal; our own errors pass
// through.
func TestInternalClassifiesTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want fhir.Kind
	}{
		{&pgconn.PgError{Code: "53200", Message: "out of shared memory"}, fhir.KindUnavailable},
		{&pgconn.PgError{Code: "53300"}, fhir.KindUnavailable},
		{&pgconn.PgError{Code: "40P01"}, fhir.KindUnavailable},
		{&pgconn.PgError{Code: "57P03"}, fhir.KindUnavailable},
		{&pgconn.PgError{Code: "23505"}, fhir.KindInternal},
		{errors.New("connection reset"), fhir.KindInternal},
		{fhir.Errorf(fhir.KindConflict, "version"), fhir.KindConflict},
	} {
		var fe *fhir.Error
		if err := internal("doing", fmt.Errorf("wrapped: %w", tc.err)); !errors.As(err, &fe) || fe.Kind != tc.want {
			t.Errorf("internal(%v) = %v, want kind %v", tc.err, err, tc.want)
		}
	}
}

// TestSearchManyOneRoundTrip: searches that are one query each share one
// batch (one pooled connection, one round trip); the storetest suite
// checks that their results are Search's.
func TestSearchManyOneRoundTrip(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "acme")
	sub := func(id string) fhir.Param {
		return fhir.Param{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: id}}}
	}
	qs := []*fhir.Query{
		{Type: "Observation", Params: []fhir.Param{sub("p1")}, Count: 10},
		{Type: "DeviceUseStatement", Params: []fhir.Param{sub("p1")}, Count: 10},
		{Type: "Observation", Params: []fhir.Param{sub("p2")}, Count: 10},
	}
	acquired := func(fn func()) int64 {
		n := s.pool.Stat().AcquireCount()
		fn()
		return s.pool.Stat().AcquireCount() - n
	}
	if n := acquired(func() {
		for _, q := range qs {
			if _, err := s.Search(ctx, "acme", q); err != nil {
				t.Fatal(err)
			}
		}
	}); n != int64(len(qs)) {
		t.Fatalf("%d searches one by one took %d connections, want %d: the count does not measure round trips", len(qs), n, len(qs))
	}
	if n := acquired(func() {
		if _, err := s.SearchMany(ctx, "acme", qs); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("SearchMany of %d searches took %d round trips, want 1", len(qs), n)
	}
}
