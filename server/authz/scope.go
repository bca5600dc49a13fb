package authz

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Context is the first part of a SMART resource scope: whose data it grants.
type Context string

// Scope contexts (SMART App Launch 2.2, scopes-and-launch-context.html).
const (
	ContextPatient Context = "patient" // data of the patient in context (the launch patient)
	ContextUser    Context = "user"    // data the signed-in user (fhirUser) may see
	ContextSystem  Context = "system"  // a backend service: data of the whole tenant
)

// Perms is a set of SMART v2 permissions.
type Perms uint8

// The v2 permissions, in the order a scope spells them (.cruds).
const (
	PermCreate Perms = 1 << iota // c: create
	PermRead                     // r: read, vread, instance history
	PermUpdate                   // u: update
	PermDelete                   // d: delete
	PermSearch                   // s: search, type and system history, search-like operations
)

const permLetters = "cruds"

// String spells the set as a v2 scope does ("rs", "cruds").
func (p Perms) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Scope is one parsed scope string.
type Scope struct {
	Raw string
	// Context is "" for a scope that grants no resource access (openid,
	// fhirUser, profile, launch, launch/patient, offline_access ...).
	Context Context
	Type    string // resource type, or "*" for all
	Perms   Perms
	// Query is the granular restriction after "?" (v2 only), e.g.
	// category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs;
	// nil when there is none.
	Query url.Values
	V1    bool // written as v1 (.read, .write, .*)
}

var typePattern = regexp.MustCompile(`^(\*|[A-Z][A-Za-z]{0,63})$`)

// ParseScope parses one scope string: SMART v1 (patient/Observation.read,
// user/*.*, system/Patient.write), v2 (patient/Observation.rs,
// system/*.cruds) with an optional granular query
// (patient/Observation.rs?category=…|vital-signs), or a scope that grants
// no resource access (openid, fhirUser, launch/patient …; Context ""). A
// string with a '/' that is not a launch/ scope must be a well-formed
// resource scope; the error says what is wrong with it.
func ParseScope(s string) (Scope, error) {
	sc := Scope{Raw: s}
	ctx, rest, found := strings.Cut(s, "/")
	if !found || ctx == "launch" {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return sc, fmt.Errorf("scope %q: empty or contains white space", s)
		}
		return sc, nil
	}
	switch Context(ctx) {
	case ContextPatient, ContextUser, ContextSystem:
		sc.Context = Context(ctx)
	default:
		return sc, fmt.Errorf("scope %q: unknown context %q (want patient, user or system)", s, ctx)
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, found := strings.Cut(rest, ".")
	if !found {
		return sc, fmt.Errorf("scope %q: missing '.' before the permissions", s)
	}
	if !typePattern.MatchString(typ) {
		return sc, fmt.Errorf("scope %q: %q is not a resource type or *", s, typ)
	}
	sc.Type = typ
	switch perms {
	case "read":
		sc.Perms, sc.V1 = PermRead|PermSearch, true
	case "write":
		sc.Perms, sc.V1 = PermCreate|PermUpdate|PermDelete, true
	case "*":
		sc.Perms, sc.V1 = PermCreate|PermRead|PermUpdate|PermDelete|PermSearch, true
	default:
		p, err := parsePerms(perms)
		if err != nil {
			return sc, fmt.Errorf("scope %q: %w", s, err)
		}
		sc.Perms = p
	}
	if hasQuery {
		if sc.V1 {
			return sc, fmt.Errorf("scope %q: a granular ?query needs v2 permissions (cruds), not .%s", s, perms)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return sc, fmt.Errorf("scope %q: the granular query is malformed: %w", s, err)
		}
		if len(q) == 0 {
			return sc, fmt.Errorf("scope %q: empty granular query after '?'", s)
		}
		for k, vs := range q {
			if k == "" {
				return sc, fmt.Errorf("scope %q: granular query has a parameter without a name", s)
			}
			for _, v := range vs {
				if v == "" {
					return sc, fmt.Errorf("scope %q: granular parameter %q has no value", s, k)
				}
			}
		}
		sc.Query = q
	}
	return sc, nil
}

// parsePerms reads v2 permissions: a non-empty subsequence of "cruds", in
// that order, each letter at most once.
func parsePerms(s string) (Perms, error) {
	if s == "" {
		return 0, errors.New("no permissions after '.'")
	}
	var p Perms
	next := 0 // letters before next are used up
	for i := range len(s) {
		j := strings.IndexByte(permLetters, s[i])
		if j < 0 {
			return 0, fmt.Errorf("%q is not a permission (want a subset of cruds, or read, write, *)", s[i])
		}
		if j < next {
			return 0, fmt.Errorf("permissions %q are not in the order c, r, u, d, s or repeat a letter", s)
		}
		p |= 1 << j
		next = j + 1
	}
	return p, nil
}

// ParseScopes parses each scope of a granted list (as server/smart hands
// them over, already split on spaces). It returns the scopes that parse and
// an error joining one error per scope that does not; a caller deciding
// access may use the valid ones (an invalid scope grants nothing).
func ParseScopes(list []string) ([]Scope, error) {
	out := make([]Scope, 0, len(list))
	var errs []error
	for _, s := range list {
		sc, err := ParseScope(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// GrantableScopes returns the resource scopes of requested that the
// scopes a client registered (allowed) cover, in the order requested: a
// registered scope covers a requested one of the same context when its type
// is "*" or the same, its permissions include the requested ones, and it
// has no granular query or the same one (so registered patient/*.rs covers
// requested patient/Observation.r, and patient/Observation.rs?category=x
// is covered by patient/Observation.rs). Scopes that do not parse, and
// scopes that grant no resource access, are not returned. It is
// server/smart's ScopeFilter.
func GrantableScopes(allowed, requested []string) []string {
	var grants []Scope
	for _, a := range allowed {
		if s, err := ParseScope(a); err == nil && s.Context != "" {
			grants = append(grants, s)
		}
	}
	var out []string
	for _, r := range requested {
		want, err := ParseScope(r)
		if err != nil || want.Context == "" {
			continue
		}
		for _, g := range grants {
			if g.Context == want.Context && (g.Type == "*" || g.Type == want.Type) && want.Perms&^g.Perms == 0 &&
				(g.Query == nil || want.Query != nil && g.Query.Encode() == want.Query.Encode()) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
