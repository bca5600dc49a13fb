package smart

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGrantable(t *testing.T) {
	s := &Server{filter: exactScopes}
	allowed := []string{"patient/Observation.rs", "user/Patient.r", "system/Observation.rs"}
	cases := []struct {
		name      string
		requested string
		backend   bool
		want      []string
	}{
		{"request order kept, context scopes pass", "openid patient/Observation.rs launch/patient fhirUser", false,
			[]string{"openid", "patient/Observation.rs", "launch/patient", "fhirUser"}},
		{"unregistered resource scope dropped", "patient/Observation.rs patient/Condition.rs", false, []string{"patient/Observation.rs"}},
		{"unknown non-resource scope dropped", "patient/Observation.rs admin", false, []string{"patient/Observation.rs"}},
		{"no wildcard matching by default", "patient/*.rs", false, nil},
		{"backend: system scopes only", "system/Observation.rs user/Patient.r openid offline_access", true, []string{"system/Observation.rs"}},
		{"repeats collapse", "user/Patient.r user/Patient.r", false, []string{"user/Patient.r"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := cmp.Diff(c.want, s.grantable(allowed, splitScopes(c.requested), c.backend)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// A ScopeFilter may narrow to scopes not requested verbatim; they come last.
	narrowing := &Server{filter: func(_, req []string) []string { return []string{"patient/Observation.rs"} }}
	if d := cmp.Diff([]string{"openid", "patient/Observation.rs"}, narrowing.grantable(nil, []string{"patient/*.cruds", "openid"}, false)); d != "" {
		t.Errorf("narrowing filter (-want +got):\n%s", d)
	}
}

func TestDescribeScope(t *testing.T) {
	cases := map[string]string{
		"patient/Observation.rs": "Read and search Observation records of the patient in context",
		"user/*.cruds":           "Create, read, change, delete and search all records you may access",
		"system/Patient.read":    "Read and search Patient records of every patient (system access)",
		"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs": "Read and search Observation records of the patient in context (only those matching category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs)",
		"user/Observation.write": "Create, change and delete Observation records you may access",
		"offline_access":         "Keep access after you sign out (until you revoke it)",
		"patient/Observation.x":  "Access: patient/Observation.x",
		"something":              "Other access: something",
	}
	for sc, want := range cases {
		if got := describeScope(sc); got != want {
			t.Errorf("describeScope(%q) = %q, want %q", sc, got, want)
		}
	}
}

func TestPKCEFormats(t *testing.T) {
	for v, want := range map[string]bool{
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk": true, // RFC 7636 appendix B
		"short": false,
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX!": false,
	} {
		if got := validVerifier(v); got != want {
			t.Errorf("validVerifier(%q) = %v", v, got)
		}
	}
	for ch, want := range map[string]bool{
		"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM":  true, // RFC 7636 appendix B
		"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=": false,
		"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM":  false,
	} {
		if got := validChallenge(ch); got != want {
			t.Errorf("validChallenge(%q) = %v", ch, got)
		}
	}
}
