package graph_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// wards is the second subgraph of the gateway tests (its schema is
// testdata/supergraph/wards.graphqls): it extends Patient with ward and
// bed, and answers wardCensus(ward) with the patients of a ward. It is a
// small hand-written GraphQL server, enough for the operations the gateway
// sends it (root fields and _entities), and it records the headers of
// every request.
type wards struct {
	beds  map[string]wardBed // patient id -> where
	delay time.Duration

	mu   sync.Mutex
	seen []seenRequest
}

// seenRequest is what the subgraph was sent, besides the body.
type seenRequest struct {
	path   string
	header http.Header
}

type wardBed struct {
	ward string
	bed  int
}

func (w *wards) requests() []seenRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seenRequest(nil), w.seen...)
}

func (w *wards) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	w.seen = append(w.seen, seenRequest{path: r.URL.Path, header: r.Header.Clone()})
	w.mu.Unlock()
	if w.delay > 0 {
		select {
		case <-time.After(w.delay):
		case <-r.Context().Done():
			return
		}
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: req.Query})
	if err != nil || len(doc.Operations) != 1 {
		http.Error(rw, "bad query", http.StatusBadRequest)
		return
	}
	data := map[string]any{}
	for _, sel := range doc.Operations[0].SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok {
			continue
		}
		key := f.Alias
		if key == "" {
			key = f.Name
		}
		switch f.Name {
		case "_entities":
			reps, _ := argValue(f, "representations", req.Variables).([]any)
			var out []any
			for _, rep := range reps {
				m, _ := rep.(map[string]any)
				id, _ := m["id"].(string)
				out = append(out, w.eval(f.SelectionSet, w.patient(id)))
			}
			data[key] = out
		case "wardCensus":
			ward, _ := argValue(f, "ward", req.Variables).(string)
			out := []any{}
			for _, id := range slices.Sorted(maps.Keys(w.beds)) {
				if w.beds[id].ward == ward {
					out = append(out, w.eval(f.SelectionSet, w.patient(id)))
				}
			}
			data[key] = out
		case "__typename":
			data[key] = "Query"
		}
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{"data": data})
}

func (w *wards) patient(id string) map[string]any {
	p := map[string]any{"__typename": "Patient", "id": id, "ward": nil, "bed": nil}
	if b, ok := w.beds[id]; ok {
		p["ward"], p["bed"] = b.ward, b.bed
	}
	return p
}

// eval selects from obj what set asks for.
func (w *wards) eval(set ast.SelectionSet, obj map[string]any) map[string]any {
	out := map[string]any{}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			key := s.Alias
			if key == "" {
				key = s.Name
			}
			out[key] = obj[s.Name]
		case *ast.InlineFragment:
			if s.TypeCondition == "" || s.TypeCondition == obj["__typename"] {
				for k, v := range w.eval(s.SelectionSet, obj) {
					out[k] = v
				}
			}
		}
	}
	return out
}

func argValue(f *ast.Field, name string, vars map[string]any) any {
	a := f.Arguments.ForName(name)
	if a == nil {
		return nil
	}
	if a.Value.Kind == ast.Variable {
		return vars[a.Value.Raw]
	}
	v, _ := a.Value.Value(vars)
	return v
}

// startWards serves w and returns its URL.
func startWards(t testing.TB, w *wards) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(w)
	t.Cleanup(s.Close)
	return s
}
