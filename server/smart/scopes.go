package smart

import (
	"slices"
	"strings"
)

// Scope strings are handled here only as strings: which are asked for,
// which a client may have, which survive a refresh. What a scope permits
// is server/authz's to decide.

// contextScopes are the non-resource scopes of the user-facing flows
// (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).
var contextScopes = map[string]bool{
	"openid": true, "fhirUser": true, "profile": true,
	"launch": true, "launch/patient": true, "launch/encounter": true,
	"offline_access": true, "online_access": true,
}

// splitScopes splits a space-delimited scope parameter, dropping empty
// and repeated entries.
func splitScopes(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func joinScopes(ss []string) string { return strings.Join(ss, " ") }

// isResourceScope reports whether s is a SMART resource scope (v1 or v2):
// patient/..., user/... or system/....
func isResourceScope(s string) bool {
	return strings.HasPrefix(s, "patient/") || strings.HasPrefix(s, "user/") || strings.HasPrefix(s, "system/")
}

// exactScopes is the default ScopeFilter: the requested scopes the client
// registered, verbatim.
func exactScopes(allowed, requested []string) []string {
	var out []string
	for _, r := range requested {
		if slices.Contains(allowed, r) {
			out = append(out, r)
		}
	}
	return out
}

// grantable returns what a client may be granted of requested, in the
// order requested: the resource scopes the ScopeFilter lets through and,
// for user-facing flows (not backend), the context scopes (openid,
// launch, offline_access...). Backend services get system/ scopes only. A
// scope the filter returns that was not requested verbatim (a narrowed
// form) comes last.
func (s *Server) grantable(allowed, requested []string, backend bool) []string {
	var resource []string
	for _, r := range requested {
		if backend && strings.HasPrefix(r, "system/") || !backend && isResourceScope(r) {
			resource = append(resource, r)
		}
	}
	passed := s.filter(allowed, resource)
	var out []string
	for _, r := range requested {
		if slices.Contains(passed, r) || !backend && contextScopes[r] {
			out = append(out, r)
		}
	}
	for _, p := range passed {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// subsetOf reports whether every scope of sub is in of.
func subsetOf(sub, of []string) bool {
	for _, s := range sub {
		if !slices.Contains(of, s) {
			return false
		}
	}
	return true
}
