package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsewire/pulsewire/adapters/postgres"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// The GraphQL workload (issue 6): "patient with latest 10 vitals and
// devices" through the gateway at 32 clients, on a data set of its own — the
// issue's 10,000 patients and 1,000,000 Observations (100 a patient), each
// patient with a Device in use now (a DeviceUseStatement with an open
// period), in the database -graphql-database — so that the other workloads
// keep measuring theirs (1,000 patients, 1,000 Observations each). The
// server runs as theirs does — authorization off, reads not audited — and
// then again with reads audited (graphql-audited: one AuditEvent per
// request, as get-auth-audited does for REST).

// graphqlQuery is issue 6's benchmark query.
const graphqlQuery = `query($id: ID!) { patient(id: $id) {
	id name { family given } gender birthDate
	observations(category: ["vital-signs"], first: 10) { nodes { id code { coding { system code } } effective valueQuantity { value unit } } }
	devices { id serialNumber manufacturer }
} }`

func devID(p int) string { return "bench-dev-" + strconv.Itoa(p) }

// graphqlWorkload seeds (once) and drives the GraphQL workload on its own
// database and server.
func graphqlWorkload(ctx context.Context, out io.Writer, bin string, c config) error {
	dsn, err := ensureDatabase(ctx, c.adminDSN, c.graphqlDatabase)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "migrating", c.graphqlDatabase)
	if b, err := exec.CommandContext(ctx, bin, "migrate", "--postgres", dsn).CombinedOutput(); err != nil {
		return fmt.Errorf("migrating: %v\n%s", err, b)
	}
	if err := seed(ctx, out, dsn, c.graphqlPatients, c.observations, false); err != nil {
		return err
	}
	// As for the main data set (see run): what a migration or the last
	// run left behind would slow this run's reads.
	fmt.Fprintln(out, "vacuuming", c.graphqlDatabase)
	if err := maintain(ctx, dsn, "VACUUM ANALYZE"); err != nil {
		return err
	}
	if err := graphqlRun(ctx, out, bin, dsn, c.graphqlDatabase, c, false); err != nil {
		return err
	}
	// The audited run writes an AuditEvent per request, tens of thousands
	// a run: on a copy, dropped afterwards, as the writing workloads of the
	// main data set (see run), so that the data set stays as seeded.
	scratch := c.graphqlDatabase + "_scratch"
	fmt.Fprintln(out, "copying", c.graphqlDatabase, "to", scratch, "for graphql-audited")
	scratchDSN, err := copyDatabase(ctx, c.adminDSN, c.graphqlDatabase, scratch)
	if err != nil {
		return err
	}
	defer func() {
		if err := dropDatabase(context.WithoutCancel(ctx), c.adminDSN, scratch); err != nil {
			fmt.Fprintln(out, "dropping", scratch+":", err)
		}
	}()
	return graphqlRun(ctx, out, bin, scratchDSN, scratch, c, true)
}

// graphqlRun drives the workload on a server of its own on database db,
// with reads audited (one AuditEvent per GraphQL request) or not.
func graphqlRun(ctx context.Context, out io.Writer, bin, dsn, db string, c config, audited bool) error {
	srv, err := startServer(ctx, bin, dsn, c.profile != "", false, audited)
	if err != nil {
		return err
	}
	defer srv.stop()
	name, target := "graphql", fmt.Sprintf(">= 5,000 req/s, p99 <= 20 ms (%d patients)", c.graphqlPatients)
	if audited {
		name, target = "graphql-audited", "(each request also writes an AuditEvent)"
	}
	url := srv.url + "/t/bench/graphql"
	mk := func(rng *rand.Rand) (*http.Request, int) {
		body, _ := json.Marshal(map[string]any{"query": graphqlQuery, "variables": map[string]any{"id": patID(rng.IntN(c.graphqlPatients) + 1)}})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req, http.StatusOK
	}
	// One request, checked: the data set answers the query as it should
	// (ten vitals, one device, no errors), so the figures measure that.
	if err := checkGraphQL(mk(rand.New(rand.NewPCG(1, 2)))); err != nil {
		return err
	}
	prof := make(chan error, 1)
	if c.profile != "" {
		go func() { prof <- srv.profile(ctx, filepath.Join(c.profile, name+".pprof"), c.duration) }()
	}
	db0 := backendsCPU(db)
	r, err := drive(ctx, srv, 32, c.duration, mk)
	if err != nil {
		return err
	}
	// The database's CPU: here only the backends of this workload's
	// database, which other work on the machine does not inflate (the
	// request count is about rps x duration).
	r.dbCPUPerReq = (backendsCPU(db) - db0) / time.Duration(max(1, int(r.rps*c.duration.Seconds())))
	if c.profile != "" {
		if err := <-prof; err != nil {
			return fmt.Errorf("profiling %s: %w", name, err)
		}
	}
	printResult(out, name, 32, r, target)
	return nil
}

// checkGraphQL sends one request and checks its answer has ten
// Observations, one device and no errors.
func checkGraphQL(req *http.Request, want int) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Patient struct {
				Observations struct{ Nodes []json.RawMessage }
				Devices      []json.RawMessage
			}
		}
		Errors []json.RawMessage
	}
	if resp.StatusCode != want {
		return fmt.Errorf("graphql: status %d, want %d", resp.StatusCode, want)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("graphql: decoding the response: %w", err)
	}
	if len(r.Errors) > 0 || len(r.Data.Patient.Observations.Nodes) != 10 || len(r.Data.Patient.Devices) != 1 {
		return fmt.Errorf("graphql: the data set does not answer the query as expected: %d observations, %d devices, errors %s",
			len(r.Data.Patient.Observations.Nodes), len(r.Data.Patient.Devices), r.Errors)
	}
	return nil
}

// seed loads a data set, skipping what is there: patients, each with a
// Device and a DeviceUseStatement, and observations Observations spread
// over them (observationJSON). It writes straight into the store
// (adapters/postgres), indexed as the REST API indexes
// (search.Registry.Extract), in transactions of about a thousand creates:
// a million Observations through the FHIR API take the best part of an
// hour on this machine, this way minutes. They come without the
// AuditEvents of writes through the API, which no workload reads.
//
// It gathers planner statistics after the patients and vacuums at the end,
// as autovacuum would on a production server: the development cluster
// runs with autovacuum off, and without statistics PostgreSQL plans the
// store's primary-key lookups as scans of another index; without a vacuum,
// index-only scans visit the heap.
func seed(ctx context.Context, out io.Writer, dsn string, patients, observations int, ingestPatients bool) error {
	st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, MaxConns: 4})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.EnsureTenant(ctx, benchTenant); err != nil {
		return err
	}
	s := &seeder{st: st, reg: search.NewRegistry(), out: out, start: time.Now()}

	const perChunk = seedChunk / 3 // patients, each with a Device and its DeviceUseStatement
	period := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	var pats []seedChunkOf
	for first := 1; first <= patients; first += perChunk {
		last := min(first+perChunk-1, patients)
		pats = append(pats, seedChunkOf{"DeviceUseStatement", dusID(first), dusID(last), func() []benchResource {
			var rs []benchResource
			for p := first; p <= last; p++ {
				for _, m := range []map[string]any{
					{"resourceType": "Patient", "id": patID(p), "gender": "unknown",
						"name": []any{map[string]any{"family": "Benchperson", "given": []any{strconv.Itoa(p)}}}},
					{"resourceType": "Device", "id": devID(p), "status": "active", "manufacturer": "Pulsewire Bench",
						"serialNumber": fmt.Sprintf("SN-%06d", p)},
					{"resourceType": "DeviceUseStatement", "id": dusID(p), "status": "active",
						"subject":      map[string]any{"reference": "Patient/" + patID(p)},
						"device":       map[string]any{"reference": "Device/" + devID(p)},
						"timingPeriod": map[string]any{"start": period}},
				} {
					b, _ := json.Marshal(m)
					rs = append(rs, benchResource{m["resourceType"].(string), m["id"].(string), b})
				}
			}
			return rs
		}})
	}
	// The ingest workloads' patients: their readings go to them, so that
	// runs of them leave the other workloads' data set as it was.
	for first := 1; ingestPatients && first <= patients; first += seedChunk {
		last := min(first+seedChunk-1, patients)
		pats = append(pats, seedChunkOf{"Patient", ingestPatID(first), ingestPatID(last), func() []benchResource {
			var rs []benchResource
			for p := first; p <= last; p++ {
				b, _ := json.Marshal(map[string]any{"resourceType": "Patient", "id": ingestPatID(p), "gender": "unknown",
					"name": []any{map[string]any{"family": "Benchingest", "given": []any{strconv.Itoa(p)}}}})
				rs = append(rs, benchResource{"Patient", ingestPatID(p), b})
			}
			return rs
		}})
	}
	var obs []seedChunkOf
	for first := 0; first < observations; first += seedChunk {
		last := min(first+seedChunk, observations) - 1
		obs = append(obs, seedChunkOf{"Observation", obsID(first), obsID(last), func() []benchResource {
			var rs []benchResource
			for i := first; i <= last; i++ {
				// Patient i%patients+1's (i/patients)th reading, 5 minutes
				// after the one before, made by the patient's device.
				at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i/patients) * 5 * time.Minute)
				rs = append(rs, benchResource{"Observation", obsID(i), observationJSON(obsID(i), i%patients+1, at, (i/patients)%len(vitals))})
			}
			return rs
		}})
	}
	if err := s.run(ctx, pats); err != nil {
		return err
	}
	if s.wrote {
		// Statistics for the planner before the Observations.
		if err := maintain(ctx, dsn, "ANALYZE"); err != nil {
			return err
		}
	}
	if err := s.run(ctx, obs); err != nil {
		return err
	}
	if !s.wrote {
		fmt.Fprintf(out, "data set present: %d patients, %d Observations\n", patients, observations)
		return nil
	}
	fmt.Fprintf(out, "seeded in %s; vacuuming\n", time.Since(s.start).Round(time.Second))
	return maintain(ctx, dsn, "VACUUM ANALYZE")
}

// seedChunk is the number of resources seed writes in one
// transaction.
const seedChunk = 1002

const benchTenant = "bench"

func dusID(p int) string { return "bench-dus-" + strconv.Itoa(p) }

type benchResource struct {
	typ, id string
	body    []byte
}

// seedChunkOf is the resources of one transaction; first and last are the
// ids of its first and last resources of type typ.
type seedChunkOf struct {
	typ, first, last string
	make             func() []benchResource
}

// seeder writes chunks with two workers.
type seeder struct {
	st    *postgres.Store
	reg   *search.Registry
	out   io.Writer
	start time.Time
	wrote bool
	n     int // chunks written
}

// run writes the chunks that are not stored yet.
func (s *seeder) run(ctx context.Context, chunks []seedChunkOf) error {
	jobs := make(chan seedChunkOf)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for c := range jobs {
				if err := s.write(ctx, c.make()); err != nil {
					select {
					case errc <- fmt.Errorf("seeding: %w", err):
					default:
					}
					return
				}
			}
		})
	}
	var err error
	for _, c := range chunks {
		// A chunk is one transaction: both ends stored means all of it is.
		rs, rerr := s.st.ReadMany(ctx, benchTenant, c.typ, []string{c.first, c.last})
		if rerr != nil {
			err = rerr
			break
		}
		if len(rs) == 2 {
			continue
		}
		if !s.wrote {
			s.wrote = true
			fmt.Fprintln(s.out, "seeding the data set (once; later runs reuse it)")
		}
		select {
		case jobs <- c:
		case err = <-errc:
		}
		if err != nil {
			break
		}
		if s.n++; s.n%100 == 0 {
			fmt.Fprintf(s.out, "  %d resources (%.0f/s)\n", s.n*seedChunk, float64(s.n*seedChunk)/time.Since(s.start).Seconds())
		}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// write creates rs in one transaction.
func (s *seeder) write(ctx context.Context, rs []benchResource) error {
	return s.st.Tx(ctx, benchTenant, func(tx fhir.Tx) error {
		for _, r := range rs {
			idx, err := s.reg.Extract(r.typ, r.body)
			if err != nil {
				return fmt.Errorf("indexing %s/%s: %w", r.typ, r.id, err)
			}
			if _, _, err := tx.Put(ctx, &fhir.Write{Type: r.typ, ID: r.id, Body: r.body, Index: idx, Fresh: true}); err != nil {
				return err
			}
		}
		return nil
	})
}

// backendsCPU sums the CPU time of the PostgreSQL backends connected to
// database db (their process title names it). Backends that exit take
// their time with them; the server keeps its pool's connections open.
func backendsCPU(db string) time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var sum time.Duration
	for _, p := range paths {
		title, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(title, []byte("postgres: ")) || !bytes.Contains(title, []byte(" "+db+" ")) {
			continue
		}
		if d, name := procCPU(strings.TrimSuffix(p, "cmdline") + "stat"); name == "postgres" {
			sum += d
		}
	}
	return sum
}
