package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/pulsewire/pulsewire/graph/internal/exec"
	"github.com/pulsewire/pulsewire/graph/internal/model"
)

// Limits protect the server from expensive requests. Each limit, when hit,
// fails the request (or the field) with a clear message and a stable code.
// The zero value of a field means its default.
type Limits struct {
	// MaxDepth bounds the nesting of selections (fragments expanded);
	// default 12. Checked by the gateway and the subgraph.
	MaxDepth int
	// MaxComplexity bounds the subgraph's complexity: every field counts 1,
	// and a list field counts its children times its size (first, max, or
	// a fixed estimate for lists without one); default 20000.
	MaxComplexity int
	// MaxFields bounds the fields of a gateway operation, fragments
	// expanded (the gateway's complexity measure); default 2000.
	MaxFields int
	// MaxResources bounds the resources one subgraph request returns;
	// default 10000.
	MaxResources int
	// MaxResponseBytes bounds a response body; default 16 MiB.
	MaxResponseBytes int
	// MaxBodyBytes bounds a request body; default 1 MiB.
	MaxBodyBytes int64
	// DefaultPageSize is a connection's page size without first (default
	// 20); MaxPageSize bounds first (default 100); MaxLastN bounds
	// lastN's max (default 100).
	DefaultPageSize, MaxPageSize, MaxLastN int
	// Introspection answers __schema, __type and the subgraph's _service
	// (the SDL). Off, they are refused (INTROSPECTION_DISABLED): turn it on
	// in development, and where outside routers introspect the subgraph.
	Introspection bool
	// Timeout bounds a whole gateway request; default 15 s. Remote
	// subgraphs have their own (Remote.Timeout).
	Timeout time.Duration
	// BatchWait is how long a batched read waits for more keys after the
	// first (default 500 µs); BatchSize the most keys in one batch (default
	// 200).
	BatchWait time.Duration
	BatchSize int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxDepth, 12)
	def(&l.MaxComplexity, 20000)
	def(&l.MaxFields, 2000)
	def(&l.MaxResources, 10000)
	def(&l.MaxResponseBytes, 16<<20)
	def(&l.DefaultPageSize, 20)
	def(&l.MaxPageSize, 100)
	def(&l.MaxLastN, 100)
	def(&l.BatchSize, 200)
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.Timeout <= 0 {
		l.Timeout = 15 * time.Second
	}
	if l.BatchWait <= 0 {
		l.BatchWait = 500 * time.Microsecond
	}
	if l.DefaultPageSize > l.MaxPageSize {
		l.DefaultPageSize = l.MaxPageSize
	}
	return l
}

// shape is what the limits look at in an operation.
type shape struct {
	depth, fields int
	introspection bool // __schema or __type
	service       bool // _service
}

// measure walks the operations of doc (fragments expanded).
func measure(doc *ast.QueryDocument) shape {
	var s shape
	for _, op := range doc.Operations {
		d := s.walk(op.SelectionSet, doc.Fragments, map[string]bool{}, 0)
		s.depth = max(s.depth, d)
	}
	return s
}

func (s *shape) walk(set ast.SelectionSet, frags ast.FragmentDefinitionList, visiting map[string]bool, level int) int {
	deepest := 0
	for _, sel := range set {
		d := 0
		switch sel := sel.(type) {
		case *ast.Field:
			s.fields++
			switch sel.Name {
			case "__schema", "__type":
				s.introspection = true
			case "_service":
				if level == 0 {
					s.service = true
				}
			}
			d = 1 + s.walk(sel.SelectionSet, frags, visiting, level+1)
		case *ast.InlineFragment:
			d = s.walk(sel.SelectionSet, frags, visiting, level)
		case *ast.FragmentSpread:
			f := frags.ForName(sel.Name)
			if f == nil || visiting[sel.Name] {
				continue // validation reports it
			}
			visiting[sel.Name] = true
			d = s.walk(f.SelectionSet, frags, visiting, level)
			delete(visiting, sel.Name)
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// check returns the error of the first limit the shape exceeds; subgraph
// says whether _service counts as introspection.
func (l *Limits) check(s shape, subgraph bool) *gqlerror.Error {
	coded := func(code, format string, args ...any) *gqlerror.Error {
		e := gqlerror.Errorf(format, args...)
		e.Extensions = map[string]any{"code": code}
		return e
	}
	switch {
	case !l.Introspection && (s.introspection || subgraph && s.service):
		return coded(CodeIntrospection, "introspection is disabled on this server")
	case s.depth > l.MaxDepth:
		return coded(CodeQueryTooDeep, "the operation is nested %d levels deep, more than the limit of %d", s.depth, l.MaxDepth)
	case !subgraph && s.fields > l.MaxFields:
		return coded(CodeTooComplex, "the operation selects %d fields, more than the limit of %d", s.fields, l.MaxFields)
	}
	return nil
}

// limitsExtension applies Limits to the subgraph's operations (depth,
// introspection) after parsing and validation.
type limitsExtension struct{ l *Limits }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = limitsExtension{}

func (limitsExtension) ExtensionName() string                   { return "PulsewireLimits" }
func (limitsExtension) Validate(graphql.ExecutableSchema) error { return nil }

func (e limitsExtension) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	oc.DisableIntrospection = !e.l.Introspection
	return e.l.check(measure(oc.Doc), true)
}

// listSize is the complexity weight of a list without a size argument.
const listSize = 10

// complexity weighs the subgraph's list fields by their size.
func complexity(l *Limits) exec.ComplexityRoot {
	size := func(first *int, def int) int {
		if first != nil && *first > 0 {
			return *first
		}
		return def
	}
	var c exec.ComplexityRoot
	c.Query.Patients = func(child int, _ *model.PatientFilter, _ *string, first *int, _ *string) int {
		return 1 + child*size(first, l.DefaultPageSize)
	}
	c.Patient.Observations = func(child int, _, _, _ []string, _ *model.DateRange, _ *model.ObservationSort, first *int, _ *string) int {
		return 1 + child*size(first, l.DefaultPageSize)
	}
	c.Patient.Encounters = func(child int, _ []string, _ *model.DateRange, first *int, _ *string) int {
		return 1 + child*size(first, l.DefaultPageSize)
	}
	c.Patient.LastN = func(child int, max *int, code, _ []string) int {
		groups := listSize
		if len(code) > 0 {
			groups = len(code)
		}
		return 1 + child*size(max, 1)*groups
	}
	c.Patient.Devices = func(child int) int { return 1 + child*listSize }
	c.Patient.Consents = func(child int, _ []string) int { return 1 + child*listSize }
	c.Device.Readings = func(child int, _, _ []string, _ *model.DateRange, first *int) int {
		return 1 + child*size(first, 10)
	}
	c.Device.Metrics = func(child int) int { return 1 + child*listSize }
	return c
}
