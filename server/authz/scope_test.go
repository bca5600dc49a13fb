package authz

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseScope(t *testing.T) {
	all := PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
	tests := []struct {
		in   string
		want Scope
	}{
		// v1
		{"patient/Observation.read", Scope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch, V1: true}},
		{"user/*.*", Scope{Context: ContextUser, Type: "*", Perms: all, V1: true}},
		{"system/Patient.write", Scope{Context: ContextSystem, Type: "Patient", Perms: PermCreate | PermUpdate | PermDelete, V1: true}},
		// v2
		{"patient/Observation.rs", Scope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch}},
		{"system/*.cruds", Scope{Context: ContextSystem, Type: "*", Perms: all}},
		{"user/Encounter.r", Scope{Context: ContextUser, Type: "Encounter", Perms: PermRead}},
		{"user/Device.cud", Scope{Context: ContextUser, Type: "Device", Perms: PermCreate | PermUpdate | PermDelete}},
		// granular
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
			Scope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch,
				Query: url.Values{"category": {"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}}}},
		{"user/Observation.s?code=http://loinc.org|8867-4&category=vital-signs",
			Scope{Context: ContextUser, Type: "Observation", Perms: PermSearch,
				Query: url.Values{"code": {"http://loinc.org|8867-4"}, "category": {"vital-signs"}}}},
		// no resource access
		{"openid", Scope{}},
		{"fhirUser", Scope{}},
		{"launch", Scope{}},
		{"launch/patient", Scope{}},
		{"offline_access", Scope{}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseScope(tc.in)
			if err != nil {
				t.Fatalf("ParseScope: %v", err)
			}
			tc.want.Raw = tc.in
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseScopeInvalid(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"patient/Observation", "missing '.'"},
		{"patient/Observation.", "no permissions"},
		{"patient/Observation.sr", "not in the order"},
		{"patient/Observation.rr", "not in the order"},
		{"patient/Observation.rx", `'x' is not a permission`},
		{"patient/Observation.readwrite", "is not a permission"},
		{"doctor/Observation.rs", `unknown context "doctor"`},
		{"patient/observation.rs", "is not a resource type"},
		{"patient/Obs-ervation.rs", "is not a resource type"},
		{"patient/Observation.read?category=vital-signs", "needs v2 permissions"},
		{"patient/Observation.rs?", "empty granular query"},
		{"patient/Observation.rs?category=", "has no value"},
		{"patient/Observation.rs?=x", "without a name"},
		{"patient/Observation.rs?category=%zz", "malformed"},
		{"", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseScope(tc.in)
			if err == nil {
				t.Fatalf("ParseScope(%q) succeeded, want an error with %q", tc.in, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseScopesKeepsValid(t *testing.T) {
	got, err := ParseScopes([]string{"openid", "patient/Observation.rs", "patient/Observation.xyz", "user/*.read"})
	if err == nil || !strings.Contains(err.Error(), "patient/Observation.xyz") {
		t.Errorf("error = %v, want one naming the invalid scope", err)
	}
	var raws []string
	for _, s := range got {
		raws = append(raws, s.Raw)
	}
	if diff := cmp.Diff([]string{"openid", "patient/Observation.rs", "user/*.read"}, raws); diff != "" {
		t.Errorf("valid scopes (-want +got):\n%s", diff)
	}
}

func TestPermsString(t *testing.T) {
	if got := (PermRead | PermSearch | PermCreate).String(); got != "crs" {
		t.Errorf("String = %q, want crs", got)
	}
}

// FuzzParseScope: scope strings come from clients (through server/smart).
// Parsing never panics, and what parses as a resource scope is well formed.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/Observation.rs", "user/*.*", "system/Patient.write", "openid", "launch/patient",
		"patient/Observation.rs?category=http://x|vital-signs", "patient/Observation.sr", "x/y.z?%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil || sc.Context == "" {
			return
		}
		if sc.Perms == 0 || sc.Perms&^(PermCreate|PermRead|PermUpdate|PermDelete|PermSearch) != 0 {
			t.Errorf("%q: permissions %b", s, sc.Perms)
		}
		if !typePattern.MatchString(sc.Type) {
			t.Errorf("%q: type %q", s, sc.Type)
		}
		if !strings.HasPrefix(s, string(sc.Context)+"/") {
			t.Errorf("%q: context %q", s, sc.Context)
		}
	})
}

func TestGrantableScopes(t *testing.T) {
	allowed := []string{"patient/*.rs", "user/Observation.read", "system/Patient.r",
		"patient/Condition.rs?category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item", "openid"}
	tests := []struct {
		requested, want []string
	}{
		{[]string{"patient/Observation.rs", "patient/Patient.r", "patient/*.rs"}, []string{"patient/Observation.rs", "patient/Patient.r", "patient/*.rs"}},
		{[]string{"patient/Observation.cruds", "patient/Observation.read"}, []string{"patient/Observation.read"}},
		{[]string{"user/Observation.rs", "user/Observation.s", "user/Patient.rs", "user/Observation.write"}, []string{"user/Observation.rs", "user/Observation.s"}},
		{[]string{"system/Patient.r", "system/Patient.rs", "system/*.r"}, []string{"system/Patient.r"}},
		{[]string{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"},
			[]string{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}},
		{[]string{"patient/Condition.rs", "patient/Condition.r?category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"},
			[]string{"patient/Condition.rs", "patient/Condition.r?category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item"}},
		{[]string{"openid", "launch/patient", "patient/Observation.sr", "bogus"}, nil},
	}
	for _, tt := range tests {
		got := GrantableScopes(allowed, tt.requested)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("GrantableScopes(%v) (-want +got):\n%s", tt.requested, diff)
		}
	}
	// A granular registration covers only its own query.
	narrow := []string{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}
	if got := GrantableScopes(narrow, []string{"patient/Observation.rs", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}); got != nil {
		t.Errorf("a granular registration granted %v", got)
	}
}
