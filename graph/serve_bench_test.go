package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// BenchmarkServeGatewayCPU is the server's own CPU per request of issue 6's
// query (benchQuery), without a database: the store is a fixed data set in
// memory (a patient, ten vital signs, a device in use), so the figure is
// the GraphQL layer's alone — HTTP handling, routing, parsing, resolvers,
// JSON. It runs the query through the fast path and through the federation
// engine (b.Run "fast" and "engine") and reports the process's CPU time per
// request (cpu-µs/op), which is what bounds throughput.
func BenchmarkServeGatewayCPU(b *testing.B) {
	h, err := graph.New(graph.Config{Store: newMemStore(), Registry: search.NewRegistry(),
		Auth: graph.Open{}, Authorizer: graph.Open{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	// As many patients as requests in flight: the engine shares one
	// subgraph fetch between identical concurrent requests, which a
	// benchmark of one patient would measure instead.
	const patients = 64
	bodies := make([][]byte, patients)
	for i := range bodies {
		bodies[i], _ = json.Marshal(map[string]any{"query": benchQuery, "variables": map[string]any{"id": fmt.Sprintf("bp%d", i)}})
	}
	for _, path := range []struct {
		name  string
		serve func(http.ResponseWriter, *http.Request, string)
	}{{"fast", h.ServeGateway}, {"engine", h.ServeEngine}} {
		b.Run(path.name, func(b *testing.B) {
			serve := func(i int) *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/t/"+tenant+"/graphql", bytes.NewReader(bodies[i%patients]))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				path.serve(w, req, tenant)
				return w
			}
			w := serve(0)
			var r struct {
				Data struct {
					Patient struct {
						Observations struct{ Nodes []json.RawMessage }
						Devices      []json.RawMessage
					}
				}
				Errors []json.RawMessage
			}
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || len(r.Errors) > 0 ||
				len(r.Data.Patient.Observations.Nodes) != 10 || len(r.Data.Patient.Devices) != 1 {
				b.Fatalf("unexpected response %d: %s", w.Code, w.Body)
			}
			// Requests wait for their batches (Limits.BatchWait): many at
			// once keep the CPU busy, as under load.
			b.SetParallelism(16)
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(int(next.Add(1)))
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time (user and system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStore is a graph.Store over a fixed data set: patients bp0…bp63,
// each with ten vital signs and a device (bd0…) in use now. It answers the
// store calls of benchQuery and nothing else.
type memStore struct {
	res map[string]*fhir.Resource   // by type/id
	obs map[string][]*fhir.Resource // by patient reference
	dus map[string]*fhir.Resource   // by patient reference
}

func newMemStore() *memStore {
	s := &memStore{res: map[string]*fhir.Resource{}, obs: map[string][]*fhir.Resource{}, dus: map[string]*fhir.Resource{}}
	add := func(body string) *fhir.Resource {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(body), &head); err != nil {
			panic(err)
		}
		r := &fhir.Resource{Type: head.ResourceType, ID: head.ID, VersionID: 1, LastUpdated: time.Now(), Body: []byte(body)}
		s.res[r.Type+"/"+r.ID] = r
		return r
	}
	for p := range 64 {
		pid, did := fmt.Sprintf("bp%d", p), fmt.Sprintf("bd%d", p)
		add(patientJSON(pid, "Bench", "P", "female", "1970-01-01"))
		add(deviceJSON(did, ""))
		s.dus["Patient/"+pid] = add(dusJSON(fmt.Sprintf("bu%d", p), did, pid, "2024-01-01T00:00:00Z", ""))
		for i := range 10 {
			s.obs["Patient/"+pid] = append(s.obs["Patient/"+pid], add(obsJSON(fmt.Sprintf("bo%d-%d", p, i), pid, vitalCat, heartCd,
				fmt.Sprintf("2024-03-01T10:%02d:00Z", 59-i), did, float64(60+i))))
		}
	}
	return s
}

func (s *memStore) Read(_ context.Context, _, typ, id string) (*fhir.Resource, error) {
	if r := s.res[typ+"/"+id]; r != nil {
		return r, nil
	}
	return nil, fhir.Errorf(fhir.KindNotFound, "not found")
}

func (s *memStore) ReadMany(_ context.Context, _, typ string, ids []string) ([]*fhir.Resource, error) {
	var out []*fhir.Resource
	for _, id := range ids {
		if r := s.res[typ+"/"+id]; r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// subject is the patient reference a benchQuery search names.
func subject(q *fhir.Query) string {
	for _, p := range q.Params {
		if (p.Name == "subject" || p.Name == "patient") && len(p.Values) == 1 {
			return p.Values[0].RefType + "/" + p.Values[0].RefID
		}
	}
	return ""
}

func (s *memStore) Search(_ context.Context, _ string, q *fhir.Query) (*fhir.SearchResult, error) {
	switch q.Type {
	case "Observation":
		obs := s.obs[subject(q)]
		return &fhir.SearchResult{Resources: obs[:min(q.Count, len(obs))], HasMore: q.Count < len(obs), Total: -1}, nil
	case "DeviceUseStatement":
		if r := s.dus[subject(q)]; r != nil {
			return &fhir.SearchResult{Resources: []*fhir.Resource{r}, Total: -1}, nil
		}
	}
	return &fhir.SearchResult{Total: -1}, nil
}

func (s *memStore) SearchMany(ctx context.Context, tenant string, qs []*fhir.Query) ([]*fhir.SearchResult, error) {
	out := make([]*fhir.SearchResult, len(qs))
	for i, q := range qs {
		out[i], _ = s.Search(ctx, tenant, q)
	}
	return out, nil
}

func (s *memStore) VRead(context.Context, string, string, string, int64) (*fhir.Resource, error) {
	return nil, fhir.Errorf(fhir.KindNotSupported, "not in the benchmark")
}

func (s *memStore) LastN(context.Context, string, *fhir.Query, int) ([]*fhir.Resource, error) {
	return nil, fhir.Errorf(fhir.KindNotSupported, "not in the benchmark")
}

func (s *memStore) TenantExists(context.Context, string) (bool, error) { return true, nil }
