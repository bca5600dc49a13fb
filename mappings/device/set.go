package device

import (
	"embed"
	"io/fs"
	"os"
	"sort"
	"sync/atomic"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Templates is an immutable, named collection of templates, evaluated in
// name order.
type Templates struct {
	list []*Template
}

// NewTemplates collects templates. Two with one name are an error.
func NewTemplates(ts ...*Template) (*Templates, error) {
	seen := map[string]bool{}
	list := make([]*Template, 0, len(ts))
	for _, t := range ts {
		if seen[t.Name] {
			return nil, fhir.Errorf(fhir.KindInvalid, "template %s is defined twice", t.Name)
		}
		seen[t.Name] = true
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return &Templates{list: list}, nil
}

// Len is the number of templates.
func (ts *Templates) Len() int { return len(ts.list) }

// Names returns the template names in evaluation order.
func (ts *Templates) Names() []string {
	out := make([]string, len(ts.list))
	for i, t := range ts.list {
		out[i] = t.Name
	}
	return out
}

// Template returns the template of that name.
func (ts *Templates) Template(name string) (*Template, bool) {
	for _, t := range ts.list {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// Merge returns ts with the templates of over added; a template of over
// replaces the one of ts with its name (a deployment's own heartrate
// template replaces the built-in one).
func (ts *Templates) Merge(over *Templates) *Templates {
	byName := map[string]*Template{}
	for _, t := range ts.list {
		byName[t.Name] = t
	}
	for _, t := range over.list {
		byName[t.Name] = t
	}
	list := make([]*Template, 0, len(byName))
	for _, t := range byName {
		list = append(list, t)
	}
	merged, _ := NewTemplates(list...) // names are unique by construction
	return merged
}

// Evaluate decodes payload and applies every template to it. The error is
// for a payload that is not JSON (KindInvalid); whether templates matched
// is in the Result (see Result.Err).
func (ts *Templates) Evaluate(payload []byte) (*Result, error) {
	doc, err := DecodePayload(payload)
	if err != nil {
		return nil, err
	}
	return ts.EvaluateDoc(doc), nil
}

// EvaluateDoc applies every template to a payload decoded by DecodePayload.
func (ts *Templates) EvaluateDoc(doc any) *Result {
	res := &Result{}
	for _, t := range ts.list {
		ms, matched, r := t.Evaluate(doc)
		switch {
		case r != nil && matched:
			res.Failed = append(res.Failed, *r)
		case r != nil:
			res.Unmatched = append(res.Unmatched, *r)
		default:
			res.Measurements = append(res.Measurements, ms...)
		}
	}
	return res
}

// Load reads every *.json file at the root of fsys as a template. Errors
// name the file and what is wrong with it; one bad file fails the load
// (so that a reload never half-applies).
func Load(fsys fs.FS) (*Templates, error) {
	files, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "listing templates").Wrap(err)
	}
	var ts []*Template
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fhir.Errorf(fhir.KindInternal, "reading template file %s", f).Wrap(err)
		}
		t, err := ParseTemplate(f, data)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return NewTemplates(ts...)
}

// LoadDir is Load of a directory.
func LoadDir(dir string) (*Templates, error) { return Load(os.DirFS(dir)) }

//go:embed templates/*.json
var builtinFS embed.FS

// BuiltinFS returns the built-in template files (templates/*.json at the
// root of the returned fs.FS).
func BuiltinFS() fs.FS {
	sub, _ := fs.Sub(builtinFS, "templates") // "templates" is a valid, embedded path
	return sub
}

// Builtin returns the built-in templates, one per vital of mappings/vocab.
// They are tested, so the error means a broken build.
func Builtin() (*Templates, error) { return Load(BuiltinFS()) }

// Set holds the current templates and swaps in reloaded ones atomically:
// readers call Templates and keep the *Templates they got for one payload.
type Set struct {
	base *Templates
	cur  atomic.Pointer[Templates]
}

// NewSet returns a Set whose templates are base (the built-ins, or an empty
// collection when base is nil) until the first Reload.
func NewSet(base *Templates) *Set {
	if base == nil {
		base = &Templates{}
	}
	s := &Set{base: base}
	s.cur.Store(base)
	return s
}

// Templates returns the current templates.
func (s *Set) Templates() *Templates { return s.cur.Load() }

// Reload loads the templates of fsys, merges them over the base and swaps
// them in. On error the current templates stay.
func (s *Set) Reload(fsys fs.FS) (*Templates, error) {
	ts, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	merged := s.base.Merge(ts)
	s.cur.Store(merged)
	return merged, nil
}
