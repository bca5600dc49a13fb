package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/servertest"
)

// The benchmark of issue 6: "patient with latest 10 vitals and devices"
// through the gateway, concurrent clients, reporting req/s and p99. Its data
// size is a parameter: the defaults keep `go test -bench` short; the
// issue's figure is 10k patients and 1M Observations on PostgreSQL:
//
//	go test ./graph -run '^$' -bench GatewayPatientVitals -benchtime 30s \
//	    -args -bench.patients 10000 -bench.obs 100 -bench.store postgres
var (
	benchPatients = flag.Int("bench.patients", 200, "patients in the benchmark data")
	benchObs      = flag.Int("bench.obs", 20, "vital-sign Observations per patient")
	benchClients  = flag.Int("bench.clients", 32, "concurrent clients")
	benchStore    = flag.String("bench.store", "sqlite", "store: sqlite or postgres")
	benchConns    = flag.Int("bench.conns", 32, "PostgreSQL connections of the store")
)

const benchQuery = `query($id: ID!) { patient(id: $id) {
	id name { family given } gender birthDate
	observations(category: ["vital-signs"], first: 10) { nodes { id code { coding { system code } } effective valueQuantity { value unit } } }
	devices { id serialNumber manufacturer }
} }`

func BenchmarkGatewayPatientVitalsAndDevices(b *testing.B) {
	e := newBenchEnv(b, *benchStore, *benchPatients, *benchObs)
	token := e.srv.BackendToken(b, tenant, "system/*.rs")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *benchClients, MaxConnsPerHost: *benchClients}}
	url := e.gql.URL + "/t/" + tenant + "/graphql"

	do := func(rng *rand.Rand) error {
		id := fmt.Sprintf("bp%d", rng.IntN(*benchPatients))
		body, _ := json.Marshal(map[string]any{"query": benchQuery, "variables": map[string]any{"id": id}})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
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
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if len(r.Errors) > 0 || len(r.Data.Patient.Observations.Nodes) != min(10, *benchObs) || len(r.Data.Patient.Devices) != 1 {
			return fmt.Errorf("unexpected response for %s: %d observations, %d devices, errors %s",
				id, len(r.Data.Patient.Observations.Nodes), len(r.Data.Patient.Devices), r.Errors)
		}
		return nil
	}
	// Warm up (token, decisions, plans) before timing.
	if err := do(rand.New(rand.NewPCG(1, 2))); err != nil {
		b.Fatal(err)
	}

	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	b.SetParallelism(max(1, *benchClients/max(1, runtimeProcs())))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		var local []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := do(rng); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lats = append(lats, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) == 0 {
		return
	}
	slices.Sort(lats)
	p99 := lats[min(len(lats)-1, len(lats)*99/100)]
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
}

// newBenchEnv is an env on store ("sqlite" or "postgres") loaded with
// loadBenchData.
func newBenchEnv(b *testing.B, store string, patients, obs int, more ...envOption) *env {
	b.Helper()
	var (
		opts   []envOption
		schema string
	)
	if store == "postgres" {
		var dsn string
		dsn, schema = pgtest.Schema(b)
		opts = append(opts, func(c *envConfig) {
			c.opts = append(c.opts, servertest.WithPostgres(dsn), func(c *app.Config) { c.PostgresConns = int(*benchConns) })
		})
	}
	e := newEnv(b, append(opts, more...)...)
	loadBenchData(b, e, patients, obs)
	if schema != "" {
		// As autovacuum would after a load: statistics for the planner and
		// the visibility map for index-only scans.
		admin := pgtest.AdminConn(b)
		if _, err := admin.Exec(context.Background(), "SET search_path = "+schema); err != nil {
			b.Fatal(err)
		}
		for _, table := range []string{"resources", "idx_token", "idx_string", "idx_date", "idx_ref", "idx_number"} {
			if _, err := admin.Exec(context.Background(), "VACUUM ANALYZE "+table); err != nil {
				b.Fatalf("vacuum: %v", err)
			}
		}
	}
	return e
}

// loadBenchData writes, straight into the store (indexed as the REST API
// indexes), patients bp0…, each with one device (bd…) associated now and
// obs vital signs by it, in transactions of a few hundred resources.
func loadBenchData(b *testing.B, e *env, patients, obs int) {
	b.Helper()
	ctx := context.Background()
	codes := []string{heartCd, tempCd, "9279-1", "59408-5", "8480-6"}
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	const perTx = 50 // patients
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		errc = make(chan error, 4)
	)
	for range 4 {
		wg.Go(func() {
			for lo := range next {
				if err := loadBenchChunk(ctx, e, lo, min(lo+perTx, patients), obs, codes, start); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for lo := 0; lo < patients; lo += perTx {
		select {
		case next <- lo:
		case err := <-errc:
			close(next)
			wg.Wait()
			b.Fatalf("loading benchmark data: %v", err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatalf("loading benchmark data: %v", err)
	default:
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// loadBenchChunk writes patients [lo, hi) in one transaction.
func loadBenchChunk(ctx context.Context, e *env, lo, hi, obs int, codes []string, start string) error {
	return e.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		put := func(body string) error {
			var head struct{ ResourceType, ID string }
			if err := json.Unmarshal([]byte(body), &head); err != nil {
				return err
			}
			idx, err := e.reg.Extract(head.ResourceType, []byte(body))
			if err != nil {
				return err
			}
			_, _, err = tx.Put(ctx, &fhir.Write{Type: head.ResourceType, ID: head.ID, Body: []byte(body), Index: idx})
			return err
		}
		for p := lo; p < hi; p++ {
			pid, did := fmt.Sprintf("bp%d", p), fmt.Sprintf("bd%d", p)
			for _, body := range []string{
				patientJSON(pid, "Bench", "P", "female", "1970-01-01"),
				deviceJSON(did, ""),
				dusJSON("bu"+fmt.Sprint(p), did, pid, start, ""),
			} {
				if err := put(body); err != nil {
					return err
				}
			}
			for i := range obs {
				at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
				if err := put(obsJSON(fmt.Sprintf("bo%d-%d", p, i), pid, vitalCat, codes[i%len(codes)], at, did, float64(60+i%40))); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
