package postgres

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// seedSQL bulk-loads n synthetic Observations of patients patients (the
// same shape and index rows as syntheticObservation) with set-based SQL, as
// the owner: fast enough for a million rows. Each is version 1, which lives
// in resources alone.
const seedSQL = `
INSERT INTO tenants VALUES ('bench', 0) ON CONFLICT DO NOTHING;
CREATE TEMP TABLE seed AS
  SELECT i, 'o' || i AS id, 'p' || (i % $P) AS pid, (ARRAY['8867-4','8480-6','8462-4','59408-5','8310-5','9279-1'])[1 + (i / $P) % 6] AS code,
         (1767225600 + (i / $P) * 60)::bigint * 1000000 AS at
  FROM generate_series(0, $N - 1) AS i;
INSERT INTO resources SELECT 'bench', 'Observation', id, 1, at, 0, convert_to(repeat('x', 1000), 'UTF8') FROM seed;
INSERT INTO idx_token SELECT 'bench', 'Observation', id, p, s, c, '' FROM seed,
  LATERAL (VALUES ('category', 'http://terminology.hl7.org/CodeSystem/observation-category', 'vital-signs'),
                  ('code', 'http://loinc.org', code), ('code', 'urn:iso:std:iso:11073:10101', '147842')) AS v(p, s, c);
INSERT INTO search_observation (tenant, id, subject_id, subject_type, device_id, device_type, status_code, status_system, status_text,
    date_lo, date_hi, value_quantity_num, value_quantity_lo, value_quantity_hi, value_quantity_system, value_quantity_code, codes)
  SELECT 'bench', id, pid, 'Patient', 'd' || pid, 'Device', 'final', '', '', at, at + 1000000,
    60 + i % 40, 59.5 + i % 40, 60.5 + i % 40, 'http://unitsofmeasure.org', '/min',
    ARRAY['http://loinc.org' || E'\t' || code, 'urn:iso:std:iso:11073:10101' || E'\t' || '147842',
          'category' || E'\n' || 'http://terminology.hl7.org/CodeSystem/observation-category' || E'\t' || 'vital-signs',
          'category' || E'\n' || 'vital-signs'] FROM seed;
INSERT INTO search_observation_code (tenant, subject_id, subject_type, code, date_hi, id)
  SELECT 'bench', pid, 'Patient', c, at + 1000000, id FROM seed,
  LATERAL (VALUES ('http://loinc.org' || E'\t' || code), ('urn:iso:std:iso:11073:10101' || E'\t' || '147842')) AS v(c);
`

// TestExplainLatestVitals checks the plans of the "latest vitals" search
// (custom and generic, as pgx's prepared statements get both, and the
// store pins the generic one: storesql.GenericPlanHint) over a bulk loaded
// data set: no table scanned sequentially, no sort, no probe of the token
// rows. It loads PULSEWIRE_EXPLAIN_N Observations (default 20,000) of
// PULSEWIRE_EXPLAIN_PATIENTS patients (default 100) and prints the plans
// with -v; the shape at the bench's size:
//
//	PULSEWIRE_EXPLAIN_N=1000000 PULSEWIRE_EXPLAIN_PATIENTS=1000 go test -run ExplainLatest -v ./adapters/postgres
func TestExplainLatestVitals(t *testing.T) {
	t.Parallel()
	n, patients := envInt("PULSEWIRE_EXPLAIN_N", 20000), envInt("PULSEWIRE_EXPLAIN_PATIENTS", 100)
	s, schema := openTestStore(t)
	ctx := context.Background()
	start := time.Now()
	bulkSeed(t, schema, n, patients)
	t.Logf("loaded %d Observations of %d patients in %s", n, patients, time.Since(start).Round(time.Millisecond))

	// One code (the patient's code rows of it) and the GraphQL form, the
	// patient's typed rows filtered by the categories on them.
	byCategory := latestVitals("p7", "")
	byCategory.Params[1] = fhir.Param{Name: "category", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "vital-signs"}}}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for i, q := range []*fhir.Query{latestVitals("p7", "8480-6"), byCategory} {
		index := []string{"search_observation_code_latest", "search_observation_subject"}[i]
		sql, args, err := storesql.Search(dialect, "bench", q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SQL: %s", sql)
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			var plan []string
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, setTenantSQL, "bench"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
					return err
				}
				// Warm the cache, then measure.
				for range 2 {
					rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
					if err != nil {
						return err
					}
					if plan, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			text := strings.Join(plan, "\n")
			t.Logf("%s:\n%s", mode, text)
			if strings.Contains(text, "Seq Scan") || strings.Contains(text, "Hash") {
				t.Errorf("%s plan scans or hashes a table", mode)
			}
			// storesql's latest search walks an index in date order and
			// stops when the page is full: nothing to sort, no probe of
			// the token rows (the code is in the code rows' key, the
			// category on the typed row's index tuple).
			if !strings.Contains(text, "Index Only Scan using "+index) || strings.Contains(text, "Sort") {
				t.Errorf("%s plan does not read the patient's rows in date order off %s", mode, index)
			}
			if strings.Contains(text, "idx_token") {
				t.Errorf("%s plan probes idx_token", mode)
			}
			if !strings.Contains(text, "rows=11 loops=1") {
				t.Errorf("%s plan does not find a page and one more", mode)
			}
		}
	}
}

// bulkSeed loads seedSQL into schema, as the owner, then vacuums: VACUUM
// sets the visibility map, as autovacuum would, so index-only scans need no
// heap visits.
func bulkSeed(tb testing.TB, schema string, n, patients int) {
	tb.Helper()
	ctx := context.Background()
	admin := pgtest.AdminConn(tb)
	if _, err := admin.Exec(ctx, "SET search_path = "+schema); err != nil {
		tb.Fatal(err)
	}
	seed := strings.NewReplacer("$N", strconv.Itoa(n), "$P", strconv.Itoa(patients)).Replace(seedSQL)
	if _, err := admin.Exec(ctx, seed); err != nil {
		tb.Fatalf("seeding: %v", err)
	}
	for _, table := range []string{"resources", "resource_versions", "idx_token", "idx_string", "idx_date", "idx_ref", "idx_number", "search_observation", "search_observation_code"} {
		if _, err := admin.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			tb.Fatalf("vacuum: %v", err)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// supersedeSeedSQL gives every tenth seeded Observation a second version, as
// an update would: version 1 moves to resource_versions, a minute older.
const supersedeSeedSQL = `
INSERT INTO resource_versions SELECT tenant, type, id, version, last_updated - 60000000, deleted, body
  FROM resources WHERE tenant = 'bench' AND type = 'Observation' AND substr(id, 2)::int % 10 = 0;
UPDATE resources SET version = 2 WHERE tenant = 'bench' AND type = 'Observation' AND substr(id, 2)::int % 10 = 0;
INSERT INTO resources SELECT 'bench', 'Patient', 'p' || i, 1, 1767225600000000 + i, 0, convert_to('{}', 'UTF8')
  FROM generate_series(0, $P - 1) AS i;
`

// TestExplainHistory checks that type and system history pages are read
// off the last_updated indexes of resources and resource_versions, newest
// first, and merged (Merge Append): no table is scanned, no whole history
// sorted, in the custom and the generic plan (pgx prepares statements). It
// loads PULSEWIRE_EXPLAIN_N Observations (default 20,000) and prints the
// plans with -v.
func TestExplainHistory(t *testing.T) {
	t.Parallel()
	n, patients := envInt("PULSEWIRE_EXPLAIN_N", 20000), envInt("PULSEWIRE_EXPLAIN_PATIENTS", 100)
	s, schema := openTestStore(t)
	ctx := context.Background()
	bulkSeed(t, schema, n, patients)
	admin := pgtest.AdminConn(t)
	if _, err := admin.Exec(ctx, "SET search_path = "+schema); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, strings.ReplaceAll(supersedeSeedSQL, "$P", strconv.Itoa(patients))); err != nil {
		t.Fatalf("superseding: %v", err)
	}
	for _, table := range []string{"resources", "resource_versions"} {
		if _, err := admin.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			t.Fatalf("vacuum: %v", err)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, tc := range []struct {
		name    string
		q       fhir.HistoryQuery
		indexes []string // walked backward, one per table
	}{
		{"system", fhir.HistoryQuery{Count: 50, Offset: 100}, []string{"resources_tenant_lu", "resource_versions_tenant_lu"}},
		{"type", fhir.HistoryQuery{Type: "Observation", Count: 50, Offset: 100}, []string{"resources_last_updated", "resource_versions_type_lu"}},
		{"type since", fhir.HistoryQuery{Type: "Observation", Since: storesql.FromMicros(1767225600000000), Count: 50}, []string{"resources_last_updated", "resource_versions_type_lu"}},
	} {
		sql, args, err := storesql.History(dialect, "bench", &tc.q)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			text := explain(t, conn, mode, sql, args)
			t.Logf("%s, %s:\n%s", tc.name, mode, text)
			if strings.Contains(text, "Seq Scan") || strings.Contains(text, "Bitmap") {
				t.Errorf("%s, %s: the plan scans a table", tc.name, mode)
			}
			if !strings.Contains(text, "Merge Append") {
				t.Errorf("%s, %s: the plan does not merge the two tables' walks", tc.name, mode)
			}
			for _, idx := range tc.indexes {
				if !strings.Contains(text, "Index Scan Backward using "+idx+" ") {
					t.Errorf("%s, %s: the plan does not walk %s newest first", tc.name, mode, idx)
				}
			}
			// Ties on last_updated are ordered in small groups, never the
			// whole history at once.
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "Sort") && !strings.Contains(line, "Incremental Sort") && strings.Contains(line, "->") {
					t.Errorf("%s, %s: a full sort: %s", tc.name, mode, strings.TrimSpace(line))
				}
			}
		}
	}
}

// explain returns the EXPLAIN ANALYZE of sql, run in tenant bench as a
// prepared statement under plan_cache_mode mode: EXPLAIN of the statement
// itself would always plan it for its arguments (a custom plan).
func explain(t *testing.T, conn *pgxpool.Conn, mode, sql string, args []any) string {
	t.Helper()
	ctx := context.Background()
	lits := make([]string, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case string:
			lits[i] = "'" + strings.ReplaceAll(a, "'", "''") + "'"
		case int64:
			lits[i] = strconv.FormatInt(a, 10)
		default:
			t.Fatalf("argument %d: unexpected type %T", i, a)
		}
	}
	var plan []string
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, stmt := range []string{"SELECT set_config('pulsewire.tenant', 'bench', true)", "SET LOCAL plan_cache_mode = " + mode,
			"PREPARE explained AS " + sql} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		defer tx.Exec(ctx, "DEALLOCATE explained")
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE explained("+strings.Join(lits, ", ")+")")
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", mode, err)
	}
	return strings.Join(plan, "\n")
}

// TestLatestSearchGenericPlan: the latest search (storesql.GenericPlanHint)
// runs on its prepared statement's generic plan from the first execution,
// by code rows and by category alike, alone and among other searches; in
// PostgreSQL's default mode it would be planned anew for five executions
// at least, and for every one where the custom estimates stay lower. The
// pin ends with its statement: a search after it in the same batch, and
// the session, keep the server's setting (here force_custom_plan).
func TestLatestSearchGenericPlan(t *testing.T) {
	t.Parallel()
	s, schema := openTestStoreConns(t, 1) // one backend: its prepared statements are the store's
	ctx := context.Background()
	bulkSeed(t, schema, 2000, 20)
	byCategory := latestVitals("p3", "")
	byCategory.Params[1] = fhir.Param{Name: "category", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "vital-signs"}}}
	other := &fhir.Query{Type: "Observation", Count: 5, Params: []fhir.Param{
		{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "8480-6"}}}}}
	// A server set to custom plans: the pin must not outlive its statement.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_custom_plan"); err != nil {
		t.Fatal(err)
	}
	conn.Release()
	for i := range 8 {
		p := "p" + strconv.Itoa(i)
		res, err := s.Search(ctx, "bench", latestVitals(p, "8867-4"))
		if err != nil || len(res.Resources) == 0 {
			t.Fatalf("latest search of %s: %v, %d found", p, err, len(res.Resources))
		}
		// other follows the pinned statement in one batch.
		if _, err := s.SearchMany(ctx, "bench", []*fhir.Query{byCategory, other}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err = s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '%search_observation%' AND statement NOT LIKE '%idx_token%'`)
	if err != nil {
		t.Fatal(err)
	}
	type stmt struct {
		SQL             string
		Generic, Custom int64
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stmt])
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 2 {
		t.Fatalf("%d latest-search statements prepared, want 2 (by code rows, by category): %v", len(stmts), stmts)
	}
	for _, st := range stmts {
		if !strings.HasPrefix(st.SQL, storesql.GenericPlanHint) || st.Custom != 0 || st.Generic != 8 {
			t.Errorf("%d generic and %d custom plans, want 8 and 0: %s", st.Generic, st.Custom, st.SQL)
		}
	}
	var generic int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), -1) FROM pg_prepared_statements
		WHERE statement LIKE 'SELECT r.type%idx_token%'`).Scan(&generic); err != nil || generic != 0 {
		t.Errorf("the search after the pinned one: %d generic plans (%v), want 0 under force_custom_plan", generic, err)
	}
	var mode string
	if err := conn.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil || mode != "force_custom_plan" {
		t.Errorf("plan_cache_mode after the searches: %q, %v; want the server's force_custom_plan", mode, err)
	}
}
