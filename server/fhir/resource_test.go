package fhir

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStampMeta(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 20, 30, 123456000, time.UTC)
	tests := []struct {
		name, in, want string
	}{
		{"no meta", `{"resourceType":"Patient","active":true}`,
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-03-01T10:20:30.123456Z"},"active":true}`},
		{"meta kept, order kept", `{"active":true,"meta":{"profile":["x"],"versionId":"9"},"resourceType":"Patient","id":"old","_active":{"extension":[]}}`,
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-03-01T10:20:30.123456Z","profile":["x"]},"active":true,"_active":{"extension":[]}}`},
		{"decimals untouched", `{"resourceType":"Observation","valueQuantity":{"value":1.50}}`,
			`{"resourceType":"Observation","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-03-01T10:20:30.123456Z"},"valueQuantity":{"value":1.50}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StampMeta([]byte(tt.in), "p1", 3, at)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"a":`, `"x"`, `{"meta":[]}`} {
		if _, err := StampMeta([]byte(bad), "p1", 1, at); err == nil {
			t.Errorf("StampMeta(%s): no error", bad)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	base := Errorf(KindPreconditionFailed, "version mismatch")
	wrapped := fmt.Errorf("updating: %w", base.At("Patient.meta.versionId"))
	if got := ErrorKind(wrapped); got != KindPreconditionFailed {
		t.Errorf("ErrorKind = %v", got)
	}
	if !IsKind(wrapped, KindPreconditionFailed) || IsKind(wrapped, KindNotFound) {
		t.Error("IsKind wrong")
	}
	if got := ErrorKind(errors.New("boom")); got != KindInternal {
		t.Errorf("plain error kind = %v, want internal", got)
	}
	if got := base.Issue(); got != IssueConflict {
		t.Errorf("default issue = %q", got)
	}
	if got := base.WithCode(IssueBusinessRule).Issue(); got != IssueBusinessRule {
		t.Errorf("explicit issue = %q", got)
	}
	if len(base.Expression) != 0 {
		t.Error("At modified the receiver")
	}
}

func TestValidIDAndTenant(t *testing.T) {
	for s, want := range map[string]bool{"abc-1.2": true, "": false, "a/b": false, string(make([]byte, 65)): false} {
		if ValidID(s) != want {
			t.Errorf("ValidID(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"acme": true, "clinic-2": true, "Acme": false, "-x": false, "a_b": false} {
		if ValidTenant(s) != want {
			t.Errorf("ValidTenant(%q) != %v", s, want)
		}
	}
}

// TestValidIDAndTenantMatchTheirGrammar compares the hand-written checks with
// the grammars as regular expressions (the id's from the R4 datatypes page)
// over every string of up to two characters from an alphabet that has each
// class of character, and over the length limits.
func TestValidIDAndTenantMatchTheirGrammar(t *testing.T) {
	idRE := regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)
	tenantRE := regexp.MustCompile(`^[a-z0-9][a-z0-9\-]{0,62}$`)
	alphabet := []string{"a", "z", "A", "Z", "0", "9", "-", ".", "_", "/", " ", "é", "\x00", "`", "{", "@", "[", ":"}
	cases := []string{"", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("A", 64)}
	for _, x := range alphabet {
		cases = append(cases, x)
		for _, y := range alphabet {
			cases = append(cases, x+y, "a"+x+y)
		}
	}
	for _, s := range cases {
		if got, want := ValidID(s), idRE.MatchString(s); got != want {
			t.Errorf("ValidID(%q) = %v; the grammar says %v", s, got, want)
		}
		if got, want := ValidTenant(s), tenantRE.MatchString(s); got != want {
			t.Errorf("ValidTenant(%q) = %v; the grammar says %v", s, got, want)
		}
	}
}
