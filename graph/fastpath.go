package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	nodev1 "github.com/wundergraph/cosmo/router/gen/proto/wg/cosmo/node/v1"

	"github.com/pulsewire/pulsewire/server/smart"
)

// The fast path. Most gateway operations touch our own subgraph only: the
// embedded supergraph has no other, and where remote subgraphs are
// configured most operations still ask for our fields alone. Parsing,
// normalizing and planning such an operation, sending it to the subgraph as
// an in-process HTTP request (where it is parsed again) and rebuilding the
// response from the subgraph's JSON cost as much again as resolving it
// (BenchmarkServeGatewayCPU: twice the CPU per request of issue 6's query),
// so the gateway executes it on the subgraph's gqlgen executor directly.
//
// An operation goes the fast way only when the result cannot differ from
// the federation engine's: it is a query that validates against the
// supergraph's API schema, every field it selects (fragments included) is
// one the composed configuration routes to our in-process subgraph, and it
// does not introspect (the gateway answers introspection with the
// supergraph's schema, our subgraph would with its own). Everything else —
// a field of a remote subgraph, a mutation, an operation that does not
// validate — takes the engine, and so does an operation the subgraph then
// refuses before executing it (its variables, complexity) or whose Policy
// cannot be made, so that those errors read as they always have.

// routeCacheSize bounds the remembered routing decisions; routeCacheMaxQuery
// is the longest query text remembered (longer ones are decided each time,
// so that the cache cannot hold more than about 64 MiB of keys).
const (
	routeCacheSize     = 1000
	routeCacheMaxQuery = 64 << 10
)

// localFields are the fields the composed configuration routes to our
// in-process subgraph, by type then field name.
type localFields map[string]map[string]bool

// newLocalFields reads the fields of the datasource ds (ours) from its root
// and child nodes.
func newLocalFields(ds *nodev1.DataSourceConfiguration) localFields {
	lf := localFields{}
	add := func(nodes []*nodev1.TypeField) {
		for _, n := range nodes {
			m := lf[n.TypeName]
			if m == nil {
				m = map[string]bool{}
				lf[n.TypeName] = m
			}
			for _, f := range n.FieldNames {
				m[f] = true
			}
		}
	}
	add(ds.RootNodes)
	add(ds.ChildNodes)
	return lf
}

// route is how the gateway serves one operation text.
type route struct {
	parsed bool  // the text parses: sh holds its shape
	sh     shape // for the gateway's limits
	local  bool  // the fast path serves it
}

// router decides routes and remembers them by operation name and text.
type router struct {
	schema *ast.Schema // the supergraph's API schema; nil: no fast path
	ours   localFields // nil: no fast path
	cache  *lru.LRU[route]
}

// newRouter returns the router of a supergraph whose API schema is sdl and
// whose fields ours are served in process (ours nil: our subgraph is not
// served in process, and every operation takes the engine).
func newRouter(sdl string, ours localFields) (*router, error) {
	rt := &router{ours: ours, cache: lru.New[route](routeCacheSize)}
	if ours == nil {
		return rt, nil
	}
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "supergraph", Input: sdl})
	if err != nil {
		return nil, err
	}
	rt.schema = s
	return rt, nil
}

// decide returns the route of an operation.
func (rt *router) decide(ctx context.Context, query, operationName string) route {
	key := ""
	if len(query) <= routeCacheMaxQuery {
		key = operationName + "\x00" + query
		if r, ok := rt.cache.Get(ctx, key); ok {
			return r
		}
	}
	var r route
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err == nil {
		r.parsed, r.sh = true, measure(doc)
		r.local = rt.schema != nil && !r.sh.introspection && !r.sh.service && rt.served(doc, operationName)
	} // else the engine reports why
	if key != "" {
		rt.cache.Add(ctx, key, r)
	}
	return r
}

// served reports whether the operation of doc named operationName is a
// query that validates against the supergraph and selects only our fields.
func (rt *router) served(doc *ast.QueryDocument, operationName string) bool {
	if errs := validator.ValidateWithRules(rt.schema, doc, nil); len(errs) > 0 {
		return false
	}
	op := doc.Operations.ForName(operationName)
	if op == nil || op.Operation != ast.Query {
		return false
	}
	return rt.ours.all(op.SelectionSet, doc.Fragments, map[string]bool{})
}

// all reports whether every field of set (validated: each field knows its
// parent type) is ours.
func (lf localFields) all(set ast.SelectionSet, frags ast.FragmentDefinitionList, visiting map[string]bool) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == "__typename" {
				continue
			}
			if sel.ObjectDefinition == nil || !lf[sel.ObjectDefinition.Name][sel.Name] {
				return false
			}
			if !lf.all(sel.SelectionSet, frags, visiting) {
				return false
			}
		case *ast.InlineFragment:
			if !lf.all(sel.SelectionSet, frags, visiting) {
				return false
			}
		case *ast.FragmentSpread:
			f := frags.ForName(sel.Name)
			if f == nil || visiting[sel.Name] {
				return false
			}
			visiting[sel.Name] = true
			ok := lf.all(f.SelectionSet, frags, visiting)
			delete(visiting, sel.Name)
			if !ok {
				return false
			}
		}
	}
	return true
}

// serveLocal executes req on the subgraph's executor for an authenticated
// caller and writes the response as the gateway would. false, with nothing
// written, when the executor refuses the operation before running it or the
// request's Policy cannot be made: the caller then hands it to the engine.
func (h *Handler) serveLocal(ctx context.Context, w http.ResponseWriter, req *gqlRequest, tenant string, g *smart.Grant) bool {
	params := &graphql.RawParams{Query: req.Query, OperationName: req.OperationName}
	if len(req.Variables) > 0 && !bytes.Equal(req.Variables, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(req.Variables))
		dec.UseNumber() // as gqlgen's transports decode them
		if err := dec.Decode(&params.Variables); err != nil {
			return false
		}
	}
	if len(req.Extensions) > 0 && !bytes.Equal(req.Extensions, []byte("null")) {
		if err := json.Unmarshal(req.Extensions, &params.Extensions); err != nil {
			return false
		}
	}
	pol, err := h.authz.Policy(ctx, tenant, g)
	if err != nil {
		// The engine reports it (the subgraph fails the same way), as it
		// always has.
		return false
	}
	rq := h.newRequest(ctx, tenant, pol)
	ctx = graphql.StartOperationTrace(withRequest(ctx, rq))
	opCtx, errs := h.local.CreateOperationContext(ctx, params)
	if errs != nil {
		return false
	}
	responses, ctx := h.local.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	out := gatewayJSON(resp)
	if len(out) > h.limits.MaxResponseBytes {
		refuse(CodeResultTooLarge, "the response is larger than %d bytes; select less", h.limits.MaxResponseBytes).write(w)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return true
}

// gatewayJSON writes a subgraph response as the engine writes the response
// of an operation it sent to our subgraph: errors first, without locations
// (they would point into the subgraph's operation), then data.
func gatewayJSON(resp *graphql.Response) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if resp != nil && len(resp.Errors) > 0 {
		errs := make(gqlerror.List, len(resp.Errors))
		for i, e := range resp.Errors {
			c := *e
			c.Locations = nil
			errs[i] = &c
		}
		enc, err := json.Marshal(errs)
		if err == nil {
			b.WriteString(`"errors":`)
			b.Write(enc)
			b.WriteByte(',')
		}
	}
	b.WriteString(`"data":`)
	if resp == nil || len(resp.Data) == 0 {
		b.WriteString("null")
	} else {
		b.Write(resp.Data)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// newLocalExecutor is the executor the fast path runs operations on: the
// subgraph's schema, resolvers, limits and error presenter.
func newLocalExecutor(l *Limits, log *slog.Logger) *executor.Executor {
	x := executor.New(newExecutableSchema(l))
	configureSubgraph(x, l, log)
	return x
}
