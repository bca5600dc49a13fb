// Command pwbench is Pulsewire's load benchmark (make bench). It builds the
// pulsewire binary, starts it on PostgreSQL, seeds a data set straight into
// the store as the API would index it (seed; idempotently: a second run
// reuses it), then drives workloads over HTTP (a lean HTTP/1.1 client,
// rawclient.go, so that the generator takes little of the server's CPU)
// and prints, per workload, requests/s, p50, p99, the CPU time per request
// of the server (from /proc/<pid>/stat), of the database and of the
// generator itself:
//
//   - post: POST Observation (~1 KB) at 32 clients
//   - get: GET Observation by id at 32 clients
//   - latest: Observation?subject&code&_sort=-date&_count=10 at 8 clients
//   - graphql: issue 6's query through the gateway at 32 clients, on a data
//     set of its own (graphql.go)
//   - ingest: device readings in HTTP batches of 200 at 4 clients, for
//     patients of their own (ingestPatID)
//   - get-auth: GET by id with a SMART token, with and without audited reads
//   - ingest-nats: readings published one per message to NATS JetStream (see
//     natsIngest)
//
// The writing workloads (post, both ingests, get-auth and graphql-audited,
// whose audited reads write) run on a copy of their data set made for the
// run and dropped after it, so every run starts from the data set as
// seeded. The figures are for comparing run to run on the same
// machine; the targets are printed beside them.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pwbench:", err)
		os.Exit(1)
	}
}

type config struct {
	adminDSN     string
	database     string
	patients     int
	observations int
	duration     time.Duration
	only         string
	profile      string

	graphqlDatabase string // the graphql workload's (graphql.go)
	graphqlPatients int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("pwbench", flag.ContinueOnError)
	fs.StringVar(&c.adminDSN, "admin-dsn", envOr("PULSEWIRE_BENCH_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "DSN used to create the bench database")
	fs.StringVar(&c.database, "database", "pulsewire_bench", "bench database (created when missing, reused when present)")
	fs.IntVar(&c.patients, "patients", 1000, "patients in the data set")
	fs.IntVar(&c.observations, "observations", 1_000_000, "Observations in the data set")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "length of each workload")
	fs.StringVar(&c.only, "only", "", "run only this workload: post, get, latest, graphql, ingest, get-auth or ingest-nats")
	fs.StringVar(&c.graphqlDatabase, "graphql-database", "pulsewire_bench_graphql", "the graphql workload's database (created and seeded when missing)")
	fs.IntVar(&c.graphqlPatients, "graphql-patients", 10_000, "patients in the graphql workload's data set (it has -observations Observations)")
	fs.StringVar(&c.profile, "profile", "", "write the server's CPU profile of each workload to DIR/<workload>.pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn, err := ensureDatabase(ctx, c.adminDSN, c.database)
	if err != nil {
		return err
	}
	bin := filepath.Join(".cache", "pulsewire-bench")
	fmt.Fprintln(out, "building", bin)
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./server/cmd/pulsewire").CombinedOutput(); err != nil {
		return fmt.Errorf("building pulsewire: %v\n%s", err, b)
	}
	if c.only == "graphql" {
		// On its own data set and server (graphql.go).
		return graphqlWorkload(ctx, out, bin, c)
	}
	// Migrations first, without the readiness deadline: on an existing data
	// set one may rewrite index tables for minutes.
	fmt.Fprintln(out, "migrating", c.database)
	if b, err := exec.CommandContext(ctx, bin, "migrate", "--postgres", dsn).CombinedOutput(); err != nil {
		return fmt.Errorf("migrating: %v\n%s", err, b)
	}
	// Autovacuum may be off (it is on the development machine): what the
	// last run's writes and a migration's deletes left behind would slow
	// this run's reads. Quick when there is nothing to do.
	fmt.Fprintln(out, "vacuuming", c.database)
	if err := maintain(ctx, dsn, "VACUUM ANALYZE"); err != nil {
		return err
	}
	if err := seed(ctx, out, dsn, c.patients, c.observations, true); err != nil {
		return err
	}
	if err := printSize(ctx, out, dsn); err != nil {
		return err
	}
	// The writing workloads run on a copy of the data set, dropped
	// afterwards, so that every run starts from the data set as seeded: an
	// ingest run adds hundreds of thousands of Observations, and runs on a
	// database that grows run after run are not comparable.
	scratch := c.database + "_scratch"
	writes := c.only == "" || slices.Contains([]string{"post", "ingest", "get-auth", "ingest-nats"}, c.only)
	writeDSN := dsn
	if writes {
		fmt.Fprintln(out, "copying", c.database, "to", scratch, "for the writing workloads")
		if writeDSN, err = copyDatabase(ctx, c.adminDSN, c.database, scratch); err != nil {
			return err
		}
		defer func() {
			if err := dropDatabase(context.WithoutCancel(ctx), c.adminDSN, scratch); err != nil {
				fmt.Fprintln(out, "dropping", scratch+":", err)
			}
		}()
	}
	srv, err := startServer(ctx, bin, dsn, c.profile != "", false, false)
	if err != nil {
		return err
	}
	defer srv.stop()
	base := srv.url + "/t/bench/fhir"
	wsrv := srv
	if writes {
		if wsrv, err = startServer(ctx, bin, writeDSN, c.profile != "", false, false); err != nil {
			return err
		}
		defer wsrv.stop()
	}
	wbase := wsrv.url + "/t/bench/fhir"

	key, err := deviceKey(ctx, bin, writeDSN)
	if err != nil {
		return err
	}
	var batchSeq atomic.Int64
	clock := newReadingClock(c.patients + 1)

	fmt.Fprintf(out, "\nworkload            clients   req/s      p50       p99   CPU/req  dbCPU/req  genCPU/req  errors   target\n")
	type workload struct {
		name    string
		clients int
		target  string
		req     func(rng *rand.Rand) (*http.Request, int)
		perReq  int  // readings per request, for the ingest workload
		write   bool // runs on the copy (see scratch)
	}
	workloads := []workload{
		{"post", 32, ">= 3,000 req/s", func(rng *rand.Rand) (*http.Request, int) {
			p := rng.IntN(c.patients) + 1
			body := observationJSON("", p, time.Now().Add(-time.Duration(rng.IntN(86400))*time.Second), rng.IntN(4))
			req, _ := http.NewRequest(http.MethodPost, wbase+"/Observation", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("Prefer", "return=minimal")
			return req, http.StatusCreated
		}, 1, true},
		{"get", 32, ">= 15,000 req/s", func(rng *rand.Rand) (*http.Request, int) {
			req, _ := http.NewRequest(http.MethodGet, base+"/Observation/"+obsID(rng.IntN(c.observations)), nil)
			return req, http.StatusOK
		}, 1, false},
		{"latest", 8, "p99 <= 10 ms", func(rng *rand.Rand) (*http.Request, int) {
			p := rng.IntN(c.patients) + 1
			code := vitals[rng.IntN(len(vitals))].loinc
			req, _ := http.NewRequest(http.MethodGet, base+"/Observation?subject=Patient/"+patID(p)+
				"&code=http://loinc.org|"+code+"&_sort=-date&_count=10", nil)
			return req, http.StatusOK
		}, 1, false},
		// Device ingest: HTTP batches of ingestBatch heart-rate readings,
		// each with its own time, now (see readingClock), acknowledged
		// after commit. req/s x batch = readings/s. A batch comes from one of
		// ingestGateways gateways, each with its own share of the devices
		// (one per patient), as a gateway on a ward sends for its beds.
		{"ingest", 4, ">= 30,000 readings/s", func(rng *rand.Rand) (*http.Request, int) {
			gw := int(batchSeq.Add(1) % ingestGateways)
			var b bytes.Buffer
			b.WriteString(`{"readings":[`)
			for i := range ingestBatch {
				if i > 0 {
					b.WriteByte(',')
				}
				p := gw + 1 + ingestGateways*rng.IntN(max(1, c.patients/ingestGateways))
				fmt.Fprintf(&b, `{"deviceId":"bench-gw-%d","time":%q,"patientId":%q,"heartRate":%d}`,
					p, clock.next(p).Format(time.RFC3339Nano), ingestPatID(p), 60+rng.IntN(40))
			}
			b.WriteString(`]}`)
			req, _ := http.NewRequest(http.MethodPost, wsrv.url+"/t/bench/ingest/readings", &b)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			return req, http.StatusOK
		}, ingestBatch, true},
	}
	for _, w := range workloads {
		if c.only != "" && c.only != w.name {
			continue
		}
		on := srv
		if w.write {
			on = wsrv
		}
		prof := make(chan error, 1)
		if c.profile != "" {
			go func() { prof <- on.profile(ctx, filepath.Join(c.profile, w.name+".pprof"), c.duration) }()
		}
		r, err := drive(ctx, on, w.clients, c.duration, w.req)
		if err != nil {
			return err
		}
		if c.profile != "" {
			if err := <-prof; err != nil {
				return fmt.Errorf("profiling %s: %w", w.name, err)
			}
		}
		printResult(out, w.name, w.clients, r, w.target)
		if w.perReq > 1 {
			fmt.Fprintf(out, "%-18s %8s %8.0f readings/s, %s CPU/reading (p50/p99 are per batch of %d)\n", "", "",
				r.rps*float64(w.perReq), fmtCPU(r.cpuPerReq/time.Duration(w.perReq)), w.perReq)
		}
		if w.name == "ingest" {
			if err := pacedIngest(ctx, out, c.duration, r.rps*float64(w.perReq), w.perReq, w.req); err != nil {
				return err
			}
		}
	}
	if c.only == "" {
		// On its own data set and server (graphql.go).
		srv.stop()
		wsrv.stop()
		if err := graphqlWorkload(ctx, out, bin, c); err != nil {
			return err
		}
	}
	if c.only == "" || c.only == "get-auth" {
		srv.stop()
		wsrv.stop()
		// Its audited reads write an AuditEvent each.
		if err := getAuth(ctx, out, bin, writeDSN, c); err != nil {
			return err
		}
	}
	if c.only == "" || c.only == "ingest-nats" {
		srv.stop()
		wsrv.stop()
		return natsIngest(ctx, out, bin, writeDSN, c)
	}
	return nil
}

// readingClock gives each device's readings their times: now, as a
// gateway sends what its monitors measure, but never a device's previous
// time or earlier (a second reading with the same time would be a
// duplicate), so at bench rates a device's clock runs a few milliseconds
// ahead. The readings of one run are later than the previous run's, as
// they are on a ward.
type readingClock struct{ last []atomic.Int64 } // per device, µs since the epoch

func newReadingClock(devices int) *readingClock {
	return &readingClock{last: make([]atomic.Int64, devices)}
}

func (c *readingClock) next(device int) time.Time {
	last := &c.last[device]
	for {
		old := last.Load()
		t := max(time.Now().UnixMicro(), old+1000)
		if last.CompareAndSwap(old, t) {
			return time.UnixMicro(t).UTC()
		}
	}
}

const (
	ingestBatch    = 200
	ingestGateways = 64
)

// deviceKey creates a gateway key for the bench tenant with the CLI.
func deviceKey(ctx context.Context, bin, dsn string) (string, error) {
	b, err := exec.CommandContext(ctx, bin, "device-key", "add", "--postgres", dsn, "--tenant", "bench").Output()
	if err != nil {
		return "", fmt.Errorf("creating a device key: %w", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(b)))
	if len(lines) == 0 {
		return "", errors.New("device-key add printed nothing")
	}
	return lines[len(lines)-1], nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// fmtCPU prints CPU time per request in microseconds: a GET costs tens of
// them, and milliseconds with two decimals would hide a 10 % change.
func fmtCPU(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Nanoseconds())/1000, 'f', 1, 64) + "µs"
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + "ms"
}

// copyDatabase replaces database to with a copy of from (which must have
// no connections: a template's files are copied) and returns its DSN.
func copyDatabase(ctx context.Context, adminDSN, from, to string) (string, error) {
	if err := dropDatabase(ctx, adminDSN, to); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// FILE_COPY: the files as they are, and a checkpoint; the default
	// strategy writes every page of gigabytes through the WAL.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{to}.Sanitize()+" TEMPLATE "+pgx.Identifier{from}.Sanitize()+" STRATEGY = FILE_COPY"); err != nil {
		return "", fmt.Errorf("copying %s: %w", from, err)
	}
	cfg := conn.Config()
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, to), nil
}

// dropDatabase drops database name if it exists, ending its connections.
func dropDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping %s: %w", name, err)
	}
	return nil
}

// ensureDatabase creates the bench database when missing and returns its DSN.
func ensureDatabase(ctx context.Context, adminDSN, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL (is it running? see .ci/services): %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("creating database: %w", err)
		}
	}
	cfg := conn.Config()
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), nil
}

type server struct {
	cmd     *exec.Cmd
	url     string
	debug   string // the profiler's base URL, when on
	stopped bool
}

// freeAddr returns a loopback address with a free port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServer starts pulsewire serve on the bench database. auth turns
// SMART authorization on; auditReads records an AuditEvent for every read
// (the product's default: writes are audited in any case).
func startServer(ctx context.Context, bin, dsn string, profile, auth, auditReads bool, extra ...string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Authorization and the audit of reads are off for the plain
	// workloads, which measure the FHIR server and the store (writes are
	// audited); get-auth runs a server with authorization on, with and
	// without the audit of reads.
	mode := "off"
	if auth {
		mode = "smart"
	}
	args := []string{"serve", "--postgres", dsn, "--addr", addr, "--tenants", "bench", "--auth", mode,
		"--audit-reads=" + strconv.FormatBool(auditReads),
		"--access-log=false", "--log-level", "warn", "--max-body", strconv.Itoa(64 << 20)}
	args = append(args, extra...)
	debug := ""
	if profile {
		daddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args = append(args, "--debug-addr", daddr)
		debug = "http://" + daddr
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, debug: debug}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.stop()
	return nil, errors.New("server did not become ready in 60 s")
}

// profile fetches a CPU profile of the server covering most of d (from its
// second second, so that connection set-up is left out) into path.
func (s *server) profile(ctx context.Context, path string, d time.Duration) error {
	secs := int(d/time.Second) - 2
	if secs < 1 {
		secs = 1
	}
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.debug+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiler answered %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stop ends the server (once; later calls do nothing).
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// cpu returns the server process's user+system CPU time.
func (s *server) cpu() time.Duration {
	d, _ := procCPU(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	return d
}

// procCPU reads a process's user+system CPU time and command name from its
// /proc/<pid>/stat.
func procCPU(path string) (time.Duration, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, ""
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 > len(b) {
		return 0, ""
	}
	// Fields after the command name (which may hold spaces) start after ')'.
	f := strings.Fields(string(b[end+2:]))
	if len(f) < 13 {
		return 0, ""
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, string(b[open+1 : end])
}

// postgresCPU sums the CPU time of the processes named postgres on this
// machine (the database's backends, WAL writer, checkpointer...). Backends
// that exit during a workload take their time with them, so the figure is
// a lower bound; the bench keeps its connections open, so it is close.
func postgresCPU() time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum time.Duration
	for _, p := range paths {
		if d, name := procCPU(p); name == "postgres" {
			sum += d
		}
	}
	return sum
}

// printResult prints one line of the results table.
func printResult(out io.Writer, name string, clients int, r result, target string) {
	fmt.Fprintf(out, "%-18s %8d %8.0f %8s %9s %9s %10s %11s %7d   %s\n", name, clients, r.rps,
		fmtDur(r.p50), fmtDur(r.p99), fmtCPU(r.cpuPerReq), fmtCPU(r.dbCPUPerReq), fmtCPU(r.genCPUPerReq), r.errors, target)
}

type result struct {
	rps                 float64
	p50, p99, cpuPerReq time.Duration
	dbCPUPerReq         time.Duration
	genCPUPerReq        time.Duration // the load generator's own (this process)
	errors              int64
}

func drive(ctx context.Context, srv *server, clients int, d time.Duration, mk func(*rand.Rand) (*http.Request, int)) (result, error) {
	var (
		mu      sync.Mutex
		lats    []time.Duration
		errs    atomic.Int64
		wg      sync.WaitGroup
		firstEr atomic.Value
	)
	cpu0, db0 := srv.cpu(), postgresCPU()
	gen0, _ := procCPU("/proc/self/stat")
	start := time.Now()
	end := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			local := make([]time.Duration, 0, 4096)
			conn := newRawConn(strings.TrimPrefix(srv.url, "http://"), end.Add(30*time.Second))
			defer conn.close()
			for time.Now().Before(end) && ctx.Err() == nil {
				req, want := mk(rng)
				t0 := time.Now()
				status, err := conn.do(req)
				if err == nil && status != want {
					err = fmt.Errorf("status %d, want %d", status, want)
				}
				if err != nil {
					errs.Add(1)
					firstEr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, dbCPU := srv.cpu()-cpu0, postgresCPU()-db0
	gen, _ := procCPU("/proc/self/stat")
	if e := firstEr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "pwbench: first error: %v\n", e)
	}
	if len(lats) == 0 {
		return result{errors: errs.Load()}, errors.New("no request succeeded")
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	n := len(lats)
	return result{
		rps:          float64(n) / elapsed.Seconds(),
		p50:          lats[n/2],
		p99:          lats[n*99/100],
		cpuPerReq:    cpu / time.Duration(n),
		dbCPUPerReq:  dbCPU / time.Duration(n),
		genCPUPerReq: (gen - gen0) / time.Duration(n),
		errors:       errs.Load(),
	}, nil
}

type vital struct {
	loinc, display, unit string
	mean                 float64
}

var vitals = []vital{
	{"8867-4", "Heart rate", "/min", 74},
	{"2708-6", "Oxygen saturation in Arterial blood", "%", 97},
	{"9279-1", "Respiratory rate", "/min", 15},
	{"8310-5", "Body temperature", "Cel", 36.8},
}

func patID(p int) string { return fmt.Sprintf("bench-pat-%04d", p) }

// ingestPatID is patient p of the ingest workloads (seeded with the data
// set; no Observations of their own until those run).
func ingestPatID(p int) string { return fmt.Sprintf("bench-ingest-pat-%04d", p) }

func obsID(i int) string { return fmt.Sprintf("bench-obs-%07d", i) }

// observationJSON is a ~1 KB vital-signs Observation.
func observationJSON(id string, patient int, at time.Time, kind int) []byte {
	v := vitals[kind]
	o := map[string]any{
		"resourceType": "Observation",
		"meta":         map[string]any{"profile": []any{"http://hl7.org/fhir/StructureDefinition/vitalsigns"}},
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}}}},
		"code": map[string]any{"coding": []any{
			map[string]any{"system": "http://loinc.org", "code": v.loinc, "display": v.display},
			map[string]any{"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"},
		}, "text": v.display},
		"subject":           map[string]any{"reference": "Patient/" + patID(patient)},
		"device":            map[string]any{"reference": "Device/bench-dev-" + strconv.Itoa(patient)},
		"effectiveDateTime": at.UTC().Format(time.RFC3339),
		"issued":            at.UTC().Format(time.RFC3339),
		"valueQuantity":     map[string]any{"value": v.mean, "unit": v.unit, "system": "http://unitsofmeasure.org", "code": v.unit},
		"interpretation": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}}}},
	}
	if id != "" {
		o["id"] = id
	}
	b, _ := json.Marshal(o)
	return b
}

// printSize prints the bench database's size and Observation count: reads
// slow as it outgrows the caches.
func printSize(ctx context.Context, out io.Writer, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var size string
	var obs int64
	if err := conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database())),
		(SELECT coalesce(sum(n_live_tup), 0)::bigint FROM pg_stat_user_tables WHERE relname = 'search_observation')`).Scan(&size, &obs); err != nil {
		return fmt.Errorf("reading the database's size: %w", err)
	}
	fmt.Fprintf(out, "database %s, ~%d Observations\n", size, obs)
	return nil
}

// maintain runs a maintenance command (ANALYZE, VACUUM ANALYZE) on the
// bench database as the DSN's (owner) role.
func maintain(ctx context.Context, dsn, command string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting for %s: %w", command, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, command); err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	return nil
}
