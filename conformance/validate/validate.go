// Package validate parses and validates FHIR R4 JSON resources
// (https://hl7.org/fhir/R4/json.html) with google/fhir/go v0.7.4 and returns
// the canonical JSON a resource validates to: what Pulsewire stores and serves.
//
// Validation is what google/fhir checks while parsing into its R4 protos:
// the JSON structure and element names, primitive formats
// (https://hl7.org/fhir/R4/datatypes.html), required elements (cardinality
// 1..), reference target types and `contained` resources. It does not run
// FHIRPath invariants, terminology bindings or profiles.
//
// Errors are *fhir.Error whose messages and element paths never hold
// resource values: google/fhir's own messages (whose diagnostics quote
// values) are reduced to their value-free part.
//
// The server's wiring passes a *Validator to server/rest, which sees it only
// through its own Validator interface (server/rest must not import
// conformance). It imports only server/fhir of ours.
package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// maxNestingDepth bounds how deep (in path segments) a resource may nest, so
// hostile input cannot make the parser recurse without limit. The deepest
// official R4 example of our types is far below it.
const maxNestingDepth = 64

// maxReported is how many problems one error message spells out; the
// Expression list still names every path.
const maxReported = 10

// Validator validates FHIR R4 JSON. It is safe for concurrent use: the
// google/fhir Unmarshaller and (non-analytics) Marshaller it holds are only
// read after construction.
type Validator struct {
	um    *jsonformat.Unmarshaller
	m     *jsonformat.Marshaller
	types map[string]protoreflect.MessageDescriptor // the R4 resources by type name
}

// New returns a Validator for FHIR R4 (4.0.1).
func New() (*Validator, error) {
	// Time zone for dates without one: google/fhir keeps the original
	// precision and offset, so this only matters for partial dates, which
	// it writes back as they came.
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("creating R4 unmarshaller: %w", err)
	}
	um.MaxNestingDepth = maxNestingDepth
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("creating R4 marshaller: %w", err)
	}
	types := map[string]protoreflect.MessageDescriptor{}
	fields := (&rpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource").Fields()
	for i := 0; i < fields.Len(); i++ {
		if md := fields.Get(i).Message(); md != nil {
			types[string(md.Name())] = md
		}
	}
	return &Validator{um: um, m: m, types: types}, nil
}

// Validate parses body as FHIR R4 JSON, validates it, and returns the
// resource type, its id ("" when absent) and the canonical JSON it validated
// to (members in sorted order, no insignificant whitespace, decimals as
// written).
//
// Errors are *fhir.Error:
//   - KindInvalid (issue structure) when body is not a JSON object or has no
//     string resourceType;
//   - KindNotSupported when resourceType names no R4 resource;
//   - KindUnprocessable when the content breaks an R4 rule, with the element
//     paths in Expression (e.g. "Observation.status").
func (v *Validator) Validate(body []byte) (typ, id string, canonical []byte, err error) {
	defer func() {
		// google/fhir is not hardened against every hostile input; a panic
		// on one request body must become that request's error. The panic
		// value may quote the body, so only its type is kept.
		if r := recover(); r != nil {
			typ, id, canonical = "", "", nil
			err = fhir.Errorf(fhir.KindUnprocessable, "resource could not be parsed as FHIR R4").
				Wrap(fmt.Errorf("google/fhir panicked (%T)", r))
		}
	}()

	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", "", nil, fhir.Errorf(fhir.KindInvalid, "body is not a JSON object").WithCode(fhir.IssueStructure)
	}
	// fhir.Members both checks the syntax (encoding/json's json.Valid;
	// google/fhir's jsoniter is laxer) and finds the type, so that an
	// unknown type is told apart from invalid content without reading
	// google/fhir's paths, which start with the client's resourceType
	// string.
	var head struct {
		ResourceType json.RawMessage
	}
	members, err := fhir.Members(body)
	if err != nil {
		return "", "", nil, fhir.Errorf(fhir.KindInvalid, "body is not valid JSON").WithCode(fhir.IssueStructure)
	}
	for _, m := range members {
		if m.Key == "resourceType" {
			head.ResourceType = m.Value // the last one, as encoding/json takes
		}
	}
	if head.ResourceType == nil {
		return "", "", nil, fhir.Errorf(fhir.KindInvalid, "body has no resourceType").WithCode(fhir.IssueStructure).At("resourceType")
	}
	var rt string
	if err := json.Unmarshal(head.ResourceType, &rt); err != nil || string(head.ResourceType) == "null" {
		return "", "", nil, fhir.Errorf(fhir.KindInvalid, "resourceType is not a string").WithCode(fhir.IssueStructure).At("resourceType")
	}
	if rt == "" {
		return "", "", nil, fhir.Errorf(fhir.KindInvalid, "resourceType is empty").WithCode(fhir.IssueStructure).At("resourceType")
	}
	root, ok := v.types[rt]
	if !ok {
		return "", "", nil, fhir.Errorf(fhir.KindNotSupported, "resourceType is not an R4 resource type").At("resourceType")
	}

	if ps := lint(body, rt); len(ps) > 0 {
		return "", "", nil, unprocessable(ps)
	}

	rep := reporter{root: root}
	msg, perr := v.um.UnmarshalWithErrorReporter(body, &rep)
	if perr != nil {
		return "", "", nil, parseError(perr)
	}
	res, ok := resourceOf(msg)
	if !ok {
		return "", "", nil, fhir.Errorf(fhir.KindInternal, "validating resource").
			Wrap(fmt.Errorf("google/fhir returned %T without a resource", msg))
	}
	if err := validateContained(res, rt, &rep); err != nil {
		return "", "", nil, err
	}
	if len(rep.problems) > 0 {
		return "", "", nil, unprocessable(rep.problems)
	}
	canonical, merr := v.m.Marshal(msg)
	if merr != nil {
		// e.g. an extension the marshaller cannot write back; its message
		// may quote values, so only the type is kept.
		return "", "", nil, fhir.Errorf(fhir.KindUnprocessable, "resource cannot be written back as FHIR R4 JSON").
			Wrap(fmt.Errorf("google/fhir marshal failed (%T)", merr))
	}
	return string(res.Descriptor().Name()), resourceID(res), canonical, nil
}

// problem is one value-free finding of google/fhir.
type problem struct {
	path    string // element path, "" when unknown
	details string // the rule broken, without values
}

// reporter collects google/fhir's validation findings (required elements,
// reference types, primitive formats).
type reporter struct {
	root     protoreflect.MessageDescriptor // the resource validated
	problems []problem
}

func (r *reporter) ReportValidationError(path string, err error) error {
	r.problems = append(r.problems, problemsAt(fhirPath(r.root, path), err)...)
	return nil
}

// ReportValidationWarning ignores warnings: google/fhir v0.7.4 emits none
// through this path, and they would not fail the request anyway.
func (r *reporter) ReportValidationWarning(string, error) error { return nil }

// parseError maps an error returned by google/fhir's Unmarshal.
func parseError(err error) *fhir.Error {
	ps := problemsOf(err)
	if len(ps) == 0 {
		// Not one of google/fhir's typed errors: its text may quote values.
		return fhir.Errorf(fhir.KindUnprocessable, "resource could not be parsed as FHIR R4").
			Wrap(fmt.Errorf("google/fhir error (%T)", err))
	}
	// Top-level problems: the path is empty, or names the missing member.
	if len(ps) == 1 && (ps[0].path == "" || ps[0].path == "resourceType") {
		switch {
		case ps[0].details == "invalid JSON":
			// jsoniter rejects something encoding/json accepted.
			return fhir.Errorf(fhir.KindInvalid, "body is not valid JSON").WithCode(fhir.IssueStructure)
		case strings.HasPrefix(ps[0].details, "missing required field"), ps[0].details == "invalid resource type":
			// encoding/json matched a member such as "resourcetype"
			// (it ignores case), google/fhir does not.
			return fhir.Errorf(fhir.KindInvalid, "body has no resourceType").WithCode(fhir.IssueStructure).At("resourceType")
		}
	}
	return unprocessable(ps)
}

// unprocessable builds the KindUnprocessable error for validation problems.
func unprocessable(ps []problem) *fhir.Error {
	// google/fhir walks JSON objects in map order: sort for stable output.
	ps = append([]problem(nil), ps...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].path < ps[j].path })
	var (
		paths []string
		seen  = map[string]bool{}
		lines []string
		codes = map[fhir.IssueType]bool{}
	)
	for i, p := range ps {
		codes[issueOf(p.details)] = true
		if p.path != "" && !seen[p.path] {
			seen[p.path] = true
			paths = append(paths, p.path)
		}
		if i < maxReported {
			if p.path != "" {
				lines = append(lines, p.path+": "+p.details)
			} else {
				lines = append(lines, p.details)
			}
		}
	}
	msg := "invalid resource: " + strings.Join(lines, "; ")
	if len(ps) > maxReported {
		msg += fmt.Sprintf("; and %d more", len(ps)-maxReported)
	}
	e := fhir.Errorf(fhir.KindUnprocessable, "%s", msg).At(paths...)
	if len(codes) == 1 {
		for c := range codes {
			e = e.WithCode(c)
		}
	} else {
		e = e.WithCode(fhir.IssueInvalid)
	}
	return e
}

// issueOf classifies a google/fhir detail message.
func issueOf(details string) fhir.IssueType {
	switch {
	case strings.HasPrefix(details, "missing required field"):
		return fhir.IssueRequired
	case details == lintNull, details == lintEmptyObject, details == lintEmptyArray,
		details == lintMemberName, details == lintDuplicate:
		return fhir.IssueStructure
	case details == "unknown field", details == "invalid field", details == "expected array",
		details == "invalid extension field", details == "invalid JSON",
		strings.HasPrefix(details, "cannot accept multiple values"),
		strings.HasPrefix(details, "array length mismatch"),
		strings.HasPrefix(details, "field exceeded the maximum nesting depth"),
		details == "unknown resource type":
		return fhir.IssueStructure
	default:
		return fhir.IssueValue
	}
}

// The google/fhir error types live in an internal package
// (jsonformat/internal/jsonpbhelper), so they are read by reflection:
// UnmarshalError{Path, Details, Diagnostics string, ...} and
// UnmarshalErrorList []*UnmarshalError. Details is documented there as free
// of patient data; Diagnostics is not, and is read only for the two cases
// where it holds a JSON member name. TestProblemsOfReadsGoogleErrors pins
// this against the pinned version.
const jsonpbhelperPath = "github.com/google/fhir/go/jsonformat/internal/jsonpbhelper"

// problemsOf extracts value-free problems from a google/fhir error, or nil
// when err is not one of its typed errors.
func problemsOf(err error) []problem { return problemsAt("", err) }

// problemsAt is problemsOf for an error google/fhir reported at path (""
// when the error carries its own path).
func problemsAt(path string, err error) []problem {
	if err == nil {
		return nil
	}
	v := reflect.ValueOf(err)
	t := v.Type()
	switch {
	case t.Kind() == reflect.Slice && t.PkgPath() == jsonpbhelperPath && t.Name() == "UnmarshalErrorList":
		var ps []problem
		for i := 0; i < v.Len(); i++ {
			if p, ok := problemOf(path, v.Index(i)); ok {
				ps = append(ps, p)
			}
		}
		return ps
	case t.Kind() == reflect.Pointer:
		if p, ok := problemOf(path, v); ok {
			return []problem{p}
		}
	}
	return nil
}

func problemOf(path string, v reflect.Value) (problem, bool) {
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return problem{}, false
	}
	s := v.Elem()
	if s.Kind() != reflect.Struct || s.Type().PkgPath() != jsonpbhelperPath || s.Type().Name() != "UnmarshalError" {
		return problem{}, false
	}
	str := func(name string) string {
		f := s.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.String {
			return ""
		}
		return f.String()
	}
	p := problem{path: str("Path"), details: str("Details")}
	if path != "" {
		p.path = path
	}
	switch p.details {
	case "unknown field", "cannot accept multiple values for value field":
		// Diagnostics is the quoted member name; name it in the path when
		// it looks like an element name.
		if k, err := strconv.Unquote(str("Diagnostics")); err == nil && elementName.MatchString(k) {
			p.path = joinPath(p.path, k)
		}
	case "unknown resource type":
		// Validate checked the top-level type, so this is a contained
		// resource; the path ends in the client's resourceType string.
		// Point at the contained entry instead.
		p.path = containedEntry.FindString(p.path)
	}
	if strings.HasPrefix(p.details, "missing required field ") {
		// google/fhir reports the parent; point at the missing element.
		if f, err := strconv.Unquote(strings.TrimPrefix(p.details, "missing required field ")); err == nil && elementName.MatchString(f) {
			p.path = joinPath(p.path, f)
		}
	}
	p.path = safePath(p.path)
	if p.details == "" {
		p.details = "invalid content"
	}
	return p, true
}

// elementName is what a FHIR JSON member name looks like.
var elementName = regexp.MustCompile(`^_?[A-Za-z][A-Za-z0-9]{0,63}$`)

// pathSegment is one segment of an element path: a name with optional
// indexes.
var pathSegment = regexp.MustCompile(`^_?[A-Za-z][A-Za-z0-9]{0,63}(\[[0-9]{1,9}\])*$`)

// safePath returns the longest prefix of path made of element-name
// segments, so nothing but structure reaches the client.
func safePath(path string) string {
	if path == "" {
		return ""
	}
	segs := strings.Split(path, ".")
	n := 0
	for n < len(segs) && n < maxNestingDepth+2 && pathSegment.MatchString(segs[n]) {
		n++
	}
	return strings.Join(segs[:n], ".")
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// validateContained runs google/fhir's validation (required elements,
// reference types, primitive formats) on the contained resources of res:
// it keeps them as google.protobuf.Any, which fhirvalidate does not enter.
// Their problems are added to rep with paths such as
// "Observation.contained[0].status".
func validateContained(res protoreflect.Message, typ string, rep *reporter) *fhir.Error {
	f := res.Descriptor().Fields().ByName("contained")
	if f == nil || !f.IsList() || !res.Has(f) {
		return nil
	}
	list := res.Get(f).List()
	for i := 0; i < list.Len(); i++ {
		a, ok := list.Get(i).Message().Interface().(*anypb.Any)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "validating contained resources").
				Wrap(fmt.Errorf("google/fhir contained entry is %T, not Any", list.Get(i).Message().Interface()))
		}
		var cr rpb.ContainedResource
		if err := a.UnmarshalTo(&cr); err != nil {
			return fhir.Errorf(fhir.KindInternal, "validating contained resources").
				Wrap(fmt.Errorf("unpacking contained resource %d: %w", i, err))
		}
		prefix := fmt.Sprintf("%s.contained[%d]", typ, i)
		inner, ok := resourceOf(&cr)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "validating contained resources").
				Wrap(fmt.Errorf("contained resource %d is empty", i))
		}
		sub := &prefixReporter{prefix: prefix, root: inner.Descriptor(), rep: rep}
		if err := fhirvalidate.ValidateWithErrorReporter(&cr, sub); err != nil {
			// Not a finding but a failure of the walk; its text may quote
			// values.
			return fhir.Errorf(fhir.KindUnprocessable, "contained resource could not be validated").
				At(prefix).Wrap(fmt.Errorf("google/fhir validation failed (%T)", err))
		}
	}
	return nil
}

// prefixReporter rebases the paths fhirvalidate reports for a contained
// resource ("Observation.status") onto its place in the container
// ("Observation.contained[0].status").
type prefixReporter struct {
	prefix string
	root   protoreflect.MessageDescriptor // the contained resource
	rep    *reporter
}

func (p *prefixReporter) ReportValidationError(path string, err error) error {
	path = fhirPath(p.root, path)
	rebased := p.prefix
	if i := strings.IndexByte(path, '.'); i >= 0 {
		rebased += path[i:]
	}
	p.rep.problems = append(p.rep.problems, problemsAt(rebased, err)...)
	return nil
}

func (p *prefixReporter) ReportValidationWarning(string, error) error { return nil }

// fhirPath turns a path google/fhir's validation walk reports, made of its
// proto field names, into the FHIR element path: a choice element appears
// there as "value.string" and is "valueString" in FHIR JSON and FHIRPath.
// root describes the resource at the start of the path.
func fhirPath(root protoreflect.MessageDescriptor, path string) string {
	segs := strings.Split(path, ".")
	if len(segs) < 2 || root == nil {
		return path
	}
	out := make([]string, 1, len(segs))
	out[0] = segs[0]
	md := root
	for i := 1; i < len(segs); i++ {
		name, idx := splitIndex(segs[i])
		var f protoreflect.FieldDescriptor
		if md != nil {
			f = md.Fields().ByJSONName(name)
		}
		if f == nil || f.Message() == nil {
			out = append(out, segs[i])
			md = nil
			continue
		}
		md = f.Message()
		if md.Oneofs().ByName("choice") != nil && idx == "" && i+1 < len(segs) && segs[i+1] != "" && segs[i+1][0] != '[' {
			typ, tidx := splitIndex(segs[i+1])
			out = append(out, name+strings.ToUpper(typ[:1])+typ[1:]+tidx)
			i++
			if cf := md.Fields().ByJSONName(typ); cf != nil {
				md = cf.Message()
			} else {
				md = nil
			}
			continue
		}
		out = append(out, segs[i])
	}
	return strings.Join(out, ".")
}

// splitIndex splits "component[0]" into "component" and "[0]".
func splitIndex(seg string) (name, index string) {
	if j := strings.IndexByte(seg, '['); j >= 0 {
		return seg[:j], seg[j:]
	}
	return seg, ""
}

// containedEntry matches the first contained entry of a path, e.g.
// "Observation.contained[0]".
var containedEntry = regexp.MustCompile(`^[A-Za-z]+\.contained\[[0-9]+\]`)

// resourceOf returns the resource inside google/fhir's ContainedResource.
func resourceOf(msg proto.Message) (protoreflect.Message, bool) {
	if msg == nil {
		return nil, false
	}
	cr := msg.ProtoReflect()
	od := cr.Descriptor().Oneofs().ByName("oneof_resource")
	if od == nil {
		return nil, false
	}
	f := cr.WhichOneof(od)
	if f == nil || f.Message() == nil {
		return nil, false
	}
	return cr.Get(f).Message(), true
}

// resourceID reads Resource.id.value, "" when absent.
func resourceID(res protoreflect.Message) string {
	f := res.Descriptor().Fields().ByName("id")
	if f == nil || f.Message() == nil || !res.Has(f) {
		return ""
	}
	idm := res.Get(f).Message()
	vf := idm.Descriptor().Fields().ByName("value")
	if vf == nil || vf.Kind() != protoreflect.StringKind {
		return ""
	}
	return idm.Get(vf).String()
}
