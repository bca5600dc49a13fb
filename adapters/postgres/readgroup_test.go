package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestRunReadsMixed hands runReads one group mixing tenants, types, a
// duplicate, a missing and a deleted resource, in an order that interleaves
// them: each member gets its own tenant's current row of its own type/id,
// nil when there is none, the tombstone of a delete, and nothing of the
// other tenant's rows of the same type/id.
func TestRunReadsMixed(t *testing.T) {
	s := newStore(t).(*Store)
	ctx := context.Background()
	for _, tn := range []string{"acme", "globex"} {
		if err := s.EnsureTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, tn, &fhir.Write{Type: "Patient", ID: "p1",
			Body: json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","gender":%q}`, tn))})
		mustPut(t, s, tn, &fhir.Write{Type: "Observation", ID: "p1", Body: obsBody(tn + "-status")})
	}
	mustPut(t, s, "acme", &fhir.Write{Type: "Observation", ID: "o2", Body: obsBody("final")})
	mustPut(t, s, "acme", &fhir.Write{Type: "Patient", ID: "gone", Body: json.RawMessage(`{"resourceType":"Patient"}`)})
	if err := s.Tx(ctx, "acme", func(tx fhir.Tx) error { _, err := tx.Delete(ctx, "Patient", "gone", 0); return err }); err != nil {
		t.Fatal(err)
	}

	type want struct {
		found, deleted bool
		contains       string // a fragment of the body
	}
	members := []struct {
		tenant, typ, id string
		want            want
	}{
		{"globex", "Observation", "p1", want{found: true, contains: `"globex-status"`}},
		{"acme", "Patient", "p1", want{found: true, contains: `"acme"`}},
		{"globex", "Patient", "p1", want{found: true, contains: `"globex"`}},
		{"acme", "Observation", "o2", want{found: true, contains: `"final"`}},
		{"globex", "Observation", "o2", want{}}, // acme's only
		{"acme", "Observation", "p1", want{found: true, contains: `"acme-status"`}},
		{"acme", "Patient", "gone", want{found: true, deleted: true}},
		{"acme", "Patient", "p1", want{found: true, contains: `"acme"`}}, // twice in one group
		{"acme", "Device", "p1", want{}},
	}
	reqs := make([]*readReq, len(members))
	for i, m := range members {
		reqs[i] = &readReq{tenant: m.tenant, typ: m.typ, id: m.id, done: make(chan struct{})}
	}
	byMember := append([]*readReq(nil), reqs...) // runReads reorders its slice
	s.runReads(reqs)
	for i, m := range members {
		r := byMember[i]
		select {
		case <-r.done:
		default:
			t.Fatalf("%s %s/%s: done not closed", m.tenant, m.typ, m.id)
		}
		if r.err != nil {
			t.Fatalf("%s %s/%s: %v", m.tenant, m.typ, m.id, r.err)
		}
		if got := r.res != nil; got != m.want.found {
			t.Errorf("%s %s/%s: found %v, want %v", m.tenant, m.typ, m.id, got, m.want.found)
			continue
		}
		if r.res == nil {
			continue
		}
		if r.res.Type != m.typ || r.res.ID != m.id || r.res.Deleted != m.want.deleted {
			t.Errorf("%s %s/%s: got %s/%s deleted %v, want deleted %v", m.tenant, m.typ, m.id, r.res.Type, r.res.ID, r.res.Deleted, m.want.deleted)
		}
		if m.want.contains != "" && (!json.Valid(r.res.Body) || !bytes.Contains(r.res.Body, []byte(m.want.contains))) {
			t.Errorf("%s %s/%s: body %s, want it to contain %s", m.tenant, m.typ, m.id, r.res.Body, m.want.contains)
		}
	}
}

// TestExplainReadGroup pins the plan of a group's query (readManySQL) over
// 20k bulk-loaded Observations, custom and generic (pgx prepares it): one
// index scan of the primary key for all the ids, no sequential scan, no
// hash or sort.
func TestExplainReadGroup(t *testing.T) {
	s, schema := openTestStore(t)
	ctx := context.Background()
	bulkSeed(t, schema, 20000, 100)
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprintf("o%d", i*997%20000)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		var plan []string
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, setTenantSQL, "bench"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+readManySQL, "bench", "Observation", ids)
			if err != nil {
				return err
			}
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "Index Scan using resources_pkey") || strings.Contains(text, "Seq Scan") ||
			strings.Contains(text, "Hash") || strings.Contains(text, "Sort") || !strings.Contains(text, "rows=16 loops=1") {
			t.Errorf("%s plan is not one primary-key index scan returning the 16 rows:\n%s", mode, text)
		}
	}
}

// TestReadGroupPlansGenerically: read groups run readManySQL on a generic
// plan (setTenantGenericSQL), not on a custom plan made anew for each
// group, and the setting ends with the group's transaction.
func TestReadGroupPlansGenerically(t *testing.T) {
	s, _ := openTestStoreConns(t, 1) // one connection: its prepared statements are the groups'
	ctx := context.Background()
	mustTenant(t, s, "acme")
	for i := range 3 {
		mustPut(t, s, "acme", &fhir.Write{Type: "Observation", ID: fmt.Sprintf("o%d", i), Body: obsBody("final")})
	}
	const groups = 8
	for i := range groups {
		if _, err := s.Read(ctx, "acme", "Observation", fmt.Sprintf("o%d", i%3)); err != nil {
			t.Fatal(err)
		}
	}
	var generic, custom int64
	var mode string
	if err := s.pool.QueryRow(ctx, `SELECT generic_plans, custom_plans, current_setting('plan_cache_mode') FROM pg_prepared_statements
		WHERE statement = $1`, readManySQL).Scan(&generic, &custom, &mode); err != nil {
		t.Fatalf("readManySQL among the connection's prepared statements: %v", err)
	}
	if custom != 0 || generic < groups {
		t.Errorf("readManySQL ran %d times on a generic plan and %d on custom ones; want %d+ and 0", generic, custom, groups)
	}
	if mode != "auto" {
		t.Errorf("plan_cache_mode after the groups = %q, want auto (the setting is the group transaction's)", mode)
	}
}
