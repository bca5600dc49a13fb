package postgres

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// seedSQL bulk-loads n synthetic Observations of patients patients (the
// same shape and index rows as syntheticObservation) with set-based SQL, as
// the owner: fast enough for a million rows.
const seedSQL = `
INSERT INTO tenants VALUES ('bench', 0) ON CONFLICT DO NOTHING;
CREATE TEMP TABLE seed AS
  SELECT i, 'o' || i AS id, 'p' || (i % $P) AS pid, (ARRAY['8867-4','8480-6','8462-4','59408-5','8310-5','9279-1'])[1 + (i / $P) % 6] AS code,
         (1767225600 + (i / $P) * 60)::bigint * 1000000 AS at
  FROM generate_series(0, $N - 1) AS i;
INSERT INTO resources SELECT 'bench', 'Observation', id, 1, at, 0, convert_to(repeat('x', 1000), 'UTF8') FROM seed;
INSERT INTO resource_versions SELECT 'bench', 'Observation', id, 1, at, 0, convert_to(repeat('x', 1000), 'UTF8') FROM seed;
INSERT INTO idx_token SELECT 'bench', 'Observation', id, p, s, c, '' FROM seed,
  LATERAL (VALUES ('status', '', 'final'), ('category', 'http://terminology.hl7.org/CodeSystem/observation-category', 'vital-signs'),
                  ('code', 'http://loinc.org', code), ('code', 'urn:iso:std:iso:11073:10101', '147842'), ('combo-code', 'http://loinc.org', code)) AS v(p, s, c);
INSERT INTO idx_ref SELECT 'bench', 'Observation', id, p, t, r, at + 1000000,
    ARRAY['http://loinc.org' || E'\t' || code, 'urn:iso:std:iso:11073:10101' || E'\t' || '147842'] FROM seed,
  LATERAL (VALUES ('subject', 'Patient', pid), ('patient', 'Patient', pid), ('device', 'Device', 'd' || pid)) AS v(p, t, r);
INSERT INTO idx_date SELECT 'bench', 'Observation', id, 'date', at, at + 1000000 FROM seed;
INSERT INTO idx_number SELECT 'bench', 'Observation', id, 'value-quantity', 60 + i % 40, 59.5 + i % 40, 60.5 + i % 40, 'http://unitsofmeasure.org', '/min' FROM seed;
`

// TestExplainLatestVitals prints the plans of the "latest vitals" search
// (custom and generic, as pgx's prepared statements get both) over a bulk
// loaded data set, and fails if they scan a table sequentially. It runs only
// when PULSEWIRE_EXPLAIN is set (the load takes a while):
//
//	PULSEWIRE_EXPLAIN=1 PULSEWIRE_EXPLAIN_N=1000000 PULSEWIRE_EXPLAIN_PATIENTS=1000 go test -run ExplainLatest -v ./adapters/postgres
func TestExplainLatestVitals(t *testing.T) {
	if os.Getenv("PULSEWIRE_EXPLAIN") == "" {
		t.Skip("set PULSEWIRE_EXPLAIN=1 to load a data set and print the latest-vitals plans")
	}
	n, patients := envInt("PULSEWIRE_EXPLAIN_N", 100000), envInt("PULSEWIRE_EXPLAIN_PATIENTS", 100)
	s, schema := openTestStore(t)
	ctx := context.Background()
	start := time.Now()
	bulkSeed(t, schema, n, patients)
	t.Logf("loaded %d Observations of %d patients in %s", n, patients, time.Since(start).Round(time.Millisecond))

	sql, args, err := storesql.Search(dialect, "bench", latestVitals("p7", "8480-6"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SQL: %s", sql)
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
		if strings.Contains(text, "Seq Scan") {
			t.Errorf("%s plan scans a table sequentially", mode)
		}
		// storesql's latest search walks idx_ref_value in date order and
		// stops when the page is full: nothing to sort.
		if !strings.Contains(text, "Index Only Scan using idx_ref_value") || strings.Contains(text, "Sort") {
			t.Errorf("%s plan does not read the patient's rows in date order off idx_ref_value", mode)
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
	for _, table := range []string{"resources", "resource_versions", "idx_token", "idx_string", "idx_date", "idx_ref", "idx_number"} {
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
