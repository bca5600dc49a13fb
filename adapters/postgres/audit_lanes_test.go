package postgres

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// These tests show how commits choose lanes of a tenant's audit chain
// (migration 0043) by holding commits or lanes open, never by timing: a
// commit held inside its seal keeps its lane locked, and a lane held by
// another connection is locked exactly as a committing transaction holds it.

// auditEvent returns an AuditEvent to append, its body split around the
// chain link.
func auditEvent(id string) *chain.Event {
	return &chain.Event{ID: id, LastUpdated: storesql.Now(),
		Prefix: []byte(`{"resourceType":"AuditEvent","id":"` + id + `","extension":[{"url":"` + chain.ExtensionURL + `","extension":`),
		Suffix: []byte(`}]}`)}
}

// appendEvent appends one AuditEvent in a transaction of its own.
func appendEvent(ctx context.Context, s *Store, tenant, id string) error {
	return s.Tx(ctx, tenant, func(tx fhir.Tx) error {
		return tx.(chain.Appender).AppendAudit(ctx, []*chain.Event{auditEvent(id)})
	})
}

// laneOf returns the lane and sequence number AuditEvent/id was chained at.
func laneOf(t *testing.T, conn *pgx.Conn, tenant, id string) (lane int, seq int64) {
	t.Helper()
	if err := conn.QueryRow(context.Background(), "SELECT lane, seq FROM audit_chain WHERE tenant = $1 AND id = $2",
		tenant, id).Scan(&lane, &seq); err != nil {
		t.Fatalf("chain entry of AuditEvent/%s: %v", id, err)
	}
	return lane, seq
}

// waitBlockedBy waits until at least n backends wait, directly or through
// other waiters, for locks held by the backend pid; it fails if done
// reports first (what was to wait finished).
func waitBlockedBy(t *testing.T, conn *pgx.Conn, pid uint32, n int, done <-chan error) {
	t.Helper()
	for {
		var waiting int
		if err := conn.QueryRow(context.Background(), `WITH RECURSIVE w(pid) AS (
				SELECT pid FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))
				UNION SELECT a.pid FROM pg_stat_activity a, w WHERE w.pid = ANY(pg_blocking_pids(a.pid)))
			SELECT count(*) FROM w`, int32(pid)).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("finished without waiting for the held lock: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// intactLanes verifies the tenant's chain and returns the sequence number
// of each lane that has events.
func intactLanes(t *testing.T, s *Store, tenant string) map[int]int64 {
	t.Helper()
	r, err := audit.Verify(context.Background(), s, tenant)
	if err != nil {
		t.Fatalf("Verify(%s): %v", tenant, err)
	}
	if r.Break != nil {
		t.Fatalf("Verify(%s): broken at %v", tenant, r.Break)
	}
	used := map[int]int64{}
	for _, h := range r.Heads.Lanes {
		if h.Seq > 0 {
			used[h.Lane] = h.Seq
		}
	}
	return used
}

// openWithLanes opens a store with tenants, each with one AuditEvent
// ("ae-first-<tenant>") in lane 0: a tenant's first commit creates its
// lanes (a transaction creating them is waited for by the others, until it
// commits).
func openWithLanes(t *testing.T, tenants ...string) (*Store, string) {
	t.Helper()
	s, schema := openTestStore(t)
	ctx := context.Background()
	for _, tn := range tenants {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if err := appendEvent(ctx, s, tn, "ae-first-"+tn); err != nil {
			t.Fatal(err)
		}
	}
	return s, schema
}

// TestAuditLanesConcurrentCommits: two audited transactions of one tenant
// committing at the same time hold different lanes. The first is held
// inside its seal (an AFTER INSERT trigger on audit_chain waits for an
// advisory lock the test holds), so its lane stays locked; the second
// commits meanwhile, in another lane. With one head per tenant the second
// would wait for the first.
func TestAuditLanesConcurrentCommits(t *testing.T) {
	s, schema := openWithLanes(t, "acme")
	ctx := context.Background()
	admin := adminIn(t, schema)
	key := rand.Int64()
	for _, stmt := range []string{
		fmt.Sprintf(`CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN PERFORM pg_advisory_xact_lock(%d); RETURN NULL; END $$`, key),
		`CREATE TRIGGER hold_commit AFTER INSERT ON audit_chain FOR EACH ROW
			WHEN (NEW.id = 'ae-held') EXECUTE FUNCTION hold_commit()`,
		fmt.Sprintf("SELECT pg_advisory_lock(%d)", key),
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var adminPID uint32
	if err := admin.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&adminPID); err != nil {
		t.Fatal(err)
	}

	held := make(chan error, 1)
	go func() { held <- appendEvent(ctx, s, "acme", "ae-held") }()
	waitBlockedBy(t, pgtest.AdminConn(t), adminPID, 1, held)

	// A guard against a hang, not a measure: the lanes make this commit
	// independent of the held one.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := appendEvent(cctx, s, "acme", "ae-free"); err != nil {
		t.Fatalf("a commit beside a held one: %v", err)
	}
	select {
	case err := <-held:
		t.Fatalf("the held commit finished before it was released: %v", err)
	default:
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", key)); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatalf("the held commit: %v", err)
	}

	heldLane, heldSeq := laneOf(t, admin, "acme", "ae-held")
	freeLane, freeSeq := laneOf(t, admin, "acme", "ae-free")
	if heldLane == freeLane {
		t.Errorf("both commits took lane %d", heldLane)
	}
	// Lane 0 has ae-first-acme; the held commit, first to seal, took lane 0
	// after it, and the free one the next free lane.
	if heldLane != 0 || heldSeq != 2 || freeLane != 1 || freeSeq != 1 {
		t.Errorf("held commit at lane %d seq %d, free one at lane %d seq %d; want 0/2 and 1/1", heldLane, heldSeq, freeLane, freeSeq)
	}
	if got := intactLanes(t, s, "acme"); len(got) != 2 {
		t.Errorf("lanes used: %v, want two", got)
	}
}

// TestAuditLanesAllHeld: when every lane of the tenant is held, a commit
// waits for one and then commits in it; nothing fails.
func TestAuditLanesAllHeld(t *testing.T) {
	s, schema := openWithLanes(t, "acme")
	ctx := context.Background()
	admin := adminIn(t, schema)
	var lanes []int
	if err := admin.QueryRow(ctx, "SELECT array_agg(lane ORDER BY lane) FROM audit_heads WHERE tenant = 'acme'").Scan(&lanes); err != nil {
		t.Fatal(err)
	}
	if len(lanes) != 8 {
		t.Fatalf("the tenant's first commit made lanes %v, want 8", lanes)
	}
	release, pid := holdLanes(t, schema, "acme", lanes...)
	done := make(chan error, 1)
	go func() { done <- appendEvent(ctx, s, "acme", "ae-waiting") }()
	waitBlockedBy(t, pgtest.AdminConn(t), pid, 1, done)
	release()
	if err := <-done; err != nil {
		t.Fatalf("a commit that waited for a lane: %v", err)
	}
	if got := intactLanes(t, s, "acme"); len(got) == 0 || sum(got) != 2 {
		t.Errorf("lanes used: %v, want 2 events", got)
	}
}

// TestAuditLanesGroupOfTenants: a transaction carrying several tenants (a
// group commit) takes one lane per tenant, in tenant name order. While
// every lane of tenant b is held, such a transaction holds its lane of
// tenant a and waits for b; another commit of tenant a takes another lane
// meanwhile, and a second transaction for a and b, also in another lane of
// a, waits too; once b's lanes are released all commit (no deadlock:
// PostgreSQL would fail one with 40P01).
func TestAuditLanesGroupOfTenants(t *testing.T) {
	s, schema := openWithLanes(t, "a", "b")
	ctx := context.Background()
	release, pid := holdLanes(t, schema, "b", 0, 1, 2, 3, 4, 5, 6, 7)
	admin := pgtest.AdminConn(t)
	group := func(id string) chan error {
		done := make(chan error, 1)
		// Queued b first: the seal still takes a's lane first.
		go func() { done <- commitGroup(ctx, s, [2]string{"b", id + "-b"}, [2]string{"a", id + "-a"}) }()
		return done
	}
	g1 := group("g1")
	waitBlockedBy(t, admin, pid, 1, g1)
	if err := appendEvent(ctx, s, "a", "ae-alone"); err != nil {
		t.Fatalf("a commit of tenant a beside a group waiting for b: %v", err)
	}
	g2 := group("g2")
	waitBlockedBy(t, admin, pid, 2, g2)
	release()
	for _, g := range []chan error{g1, g2} {
		if err := <-g; err != nil {
			t.Fatalf("a group commit of tenants a and b: %v", err)
		}
	}
	conn := adminIn(t, schema)
	g1a, _ := laneOf(t, conn, "a", "g1-a")
	alone, _ := laneOf(t, conn, "a", "ae-alone")
	g2a, _ := laneOf(t, conn, "a", "g2-a")
	// Both went while the first group held its lane of a.
	if g1a == alone || g1a == g2a {
		t.Errorf("tenant a's lanes: group 1 %d, alone %d, group 2 %d; want the others beside group 1's", g1a, alone, g2a)
	}
	if got := intactLanes(t, s, "a"); sum(got) != 4 {
		t.Errorf("tenant a's lanes %v, want 4 events", got)
	}
	if got := intactLanes(t, s, "b"); sum(got) != 3 {
		t.Errorf("tenant b's lanes %v, want 3 events", got)
	}
}

// TestAuditLanesManyGroups: transactions carrying one to three tenants,
// queued in random order, committing from many connections at once, as
// the store's group commit sends them (pulsewire_audit_append per tenant,
// last) and as a release before 0100 did (audit_pending and the seal
// trigger). None fails (a deadlock would fail one with 40P01: these
// transactions are not retried), and every tenant's chain verifies with
// every event.
func TestAuditLanesManyGroups(t *testing.T) {
	t.Run("store", func(t *testing.T) { manyGroups(t, storeGroup) })
	t.Run("trigger", func(t *testing.T) { manyGroups(t, commitGroup) })
}

func manyGroups(t *testing.T, commit func(context.Context, *Store, ...[2]string) error) {
	s, _ := openTestStoreConns(t, 16)
	ctx := context.Background()
	tenants := []string{"a", "b", "c"}
	for _, tn := range tenants {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	const workers, perWorker = 16, 15
	var mu sync.Mutex
	counts := map[string]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range perWorker {
				var evs [][2]string
				for _, k := range rng.Perm(len(tenants))[:1+rng.IntN(len(tenants))] {
					evs = append(evs, [2]string{tenants[k], fmt.Sprintf("ae-%d-%d-%s", w, i, tenants[k])})
				}
				if err := commit(ctx, s, evs...); err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				for _, e := range evs {
					counts[e[0]]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, tn := range tenants {
		got := intactLanes(t, s, tn)
		if sum(got) != counts[tn] {
			t.Errorf("tenant %s: lanes %v, want %d events", tn, got, counts[tn])
		}
		t.Logf("tenant %s: events per lane %v", tn, got)
	}
}

// storeGroup commits one AuditEvent for each (tenant, id) through the
// store's group commit, each as a transaction of its own in the group.
func storeGroup(ctx context.Context, s *Store, events ...[2]string) error {
	var reqs []*commitReq
	for _, e := range events {
		ev := auditEvent(e[1])
		reqs = append(reqs, &commitReq{tenant: e[0],
			audits: []auditWrite{{id: ev.ID, lu: storesql.Micros(ev.LastUpdated), prefix: ev.Prefix, suffix: ev.Suffix}}})
	}
	return s.commitGroup(ctx, reqs)
}

// TestAuditSealedAtCommit: events appended before and after a statement
// that sends the transaction's queued writes (here a read) are all sealed,
// in the order appended, by the one append at COMMIT.
func TestAuditSealedAtCommit(t *testing.T) {
	s, schema := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a")
	err := s.Tx(ctx, "a", func(tx fhir.Tx) error {
		ap := tx.(chain.Appender)
		if err := ap.AppendAudit(ctx, []*chain.Event{auditEvent("ae-1"), auditEvent("ae-2")}); err != nil {
			return err
		}
		if _, err := tx.Read(ctx, "a", "Patient", "nobody"); !fhir.IsKind(err, fhir.KindNotFound) {
			return fmt.Errorf("read: %v", err)
		}
		return ap.AppendAudit(ctx, []*chain.Event{auditEvent("ae-3")})
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := adminIn(t, schema)
	for i, id := range []string{"ae-1", "ae-2", "ae-3"} {
		if lane, seq := laneOf(t, conn, "a", id); lane != 0 || seq != int64(i+1) {
			t.Errorf("%s at lane %d seq %d, want lane 0 seq %d", id, lane, seq, i+1)
		}
	}
	if got := intactLanes(t, s, "a"); !maps.Equal(got, map[int]int64{0: 3}) {
		t.Errorf("lanes %v, want lane 0 at 3", got)
	}
}

// commitGroup commits, as the application role, one transaction queueing
// an AuditEvent for each (tenant, id) in order, switching
// pulsewire.tenant as a group commit does.
func commitGroup(ctx context.Context, s *Store, events ...[2]string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, e := range events {
			ev := auditEvent(e[1])
			if _, err := tx.Exec(ctx, setTenantSQL, e[0]); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO audit_pending (tenant, id, lu, prefix, suffix) VALUES ($1, $2, $3, $4, $5)`,
				e[0], ev.ID, storesql.Micros(ev.LastUpdated), ev.Prefix, ev.Suffix); err != nil {
				return fmt.Errorf("queueing %s for %s: %w", ev.ID, e[0], err)
			}
		}
		return nil
	})
}

func sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestAuditMigrationToLanes: a chain written before migration 0043 (one
// head per tenant) verifies after it as lane 0, its entries, bodies and
// head unchanged, and grows from there: in lane 0 while that is free, in
// the lanes the tenant then gets once it is held.
func TestAuditMigrationToLanes(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: dsn, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.migrateTo(ctx, 42); err != nil {
		t.Fatalf("migrating to 0042: %v", err)
	}
	for _, tn := range []string{"acme", "globex"} {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	// As the store of that release appended: through audit_pending and the
	// seal trigger (the store of this one calls pulsewire_audit_append of
	// 0100).
	for i := range 3 {
		if err := commitGroup(ctx, s, [2]string{"acme", fmt.Sprintf("old-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := commitGroup(ctx, s, [2]string{"acme", "old-3"}, [2]string{"acme", "old-4"}); err != nil {
		t.Fatal(err)
	}
	if err := commitGroup(ctx, s, [2]string{"globex", "old-g"}); err != nil {
		t.Fatal(err)
	}

	type entry struct {
		Tenant string
		Lane   int
		Seq    int64
		ID     string
		Body   []byte
	}
	type head struct {
		Tenant string
		Lane   int
		Seq    int64
		Hash   []byte
	}
	admin := adminIn(t, schema)
	read := func(entriesSQL, headsSQL string) ([]entry, []head) {
		t.Helper()
		rows, err := admin.Query(ctx, entriesSQL)
		if err != nil {
			t.Fatal(err)
		}
		es, err := pgx.CollectRows(rows, pgx.RowToStructByPos[entry])
		if err != nil {
			t.Fatal(err)
		}
		rows, err = admin.Query(ctx, headsSQL)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[head])
		if err != nil {
			t.Fatal(err)
		}
		return es, hs
	}
	// The 0042 layout has no lane: read it as lane 0.
	wantEntries, wantHeads := read(
		`SELECT c.tenant, 0, c.seq, c.id, r.body FROM audit_chain c
			JOIN resources r ON r.tenant = c.tenant AND r.type = 'AuditEvent' AND r.id = c.id ORDER BY c.tenant, c.seq`,
		`SELECT tenant, 0, seq, hash FROM audit_heads ORDER BY tenant`)
	if len(wantEntries) != 6 || len(wantHeads) != 2 {
		t.Fatalf("before 0043: %d chain entries and %d heads, want 6 and 2", len(wantEntries), len(wantHeads))
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating from 0042: %v", err)
	}
	gotEntries, gotHeads := read(
		`SELECT c.tenant, c.lane, c.seq, c.id, r.body FROM audit_chain c
			JOIN resources r ON r.tenant = c.tenant AND r.type = 'AuditEvent' AND r.id = c.id ORDER BY c.tenant, c.lane, c.seq`,
		`SELECT tenant, lane, seq, hash FROM audit_heads ORDER BY tenant, lane`)
	if d := cmp.Diff(wantEntries, gotEntries); d != "" {
		t.Errorf("chain entries across 0043 (-before +after):\n%s", d)
	}
	if d := cmp.Diff(wantHeads, gotHeads); d != "" {
		t.Errorf("chain heads across 0043 (-before +after):\n%s", d)
	}
	if got := intactLanes(t, s, "acme"); !maps.Equal(got, map[int]int64{0: 5}) {
		t.Errorf("acme's lanes after 0043: %v, want lane 0 at 5", got)
	}
	if got := intactLanes(t, s, "globex"); !maps.Equal(got, map[int]int64{0: 1}) {
		t.Errorf("globex's lanes after 0043: %v, want lane 0 at 1", got)
	}

	if err := appendEvent(ctx, s, "acme", "new-0"); err != nil {
		t.Fatal(err)
	}
	release, _ := holdLanes(t, schema, "acme", 0)
	if err := appendEvent(ctx, s, "acme", "new-1"); err != nil {
		t.Fatal(err)
	}
	release()
	if got := intactLanes(t, s, "acme"); !maps.Equal(got, map[int]int64{0: 6, 1: 1}) {
		t.Errorf("acme's lanes after two more commits, one beside a held lane 0: %v, want lane 0 at 6, lane 1 at 1", got)
	}
}
