package hl7v2

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
		str  string
	}{
		{"PID-3", Path{Segment: "PID", Field: 3}, "PID-3"},
		{"PID-3(2).1.2", Path{Segment: "PID", Field: 3, Rep: 2, Comp: 1, Sub: 2}, "PID-3(2).1.2"},
		{"OBX(2)-5.1", Path{Segment: "OBX", Occurrence: 2, Field: 5, Comp: 1}, "OBX(2)-5.1"},
		{"OBX[3]-18[2].2", Path{Segment: "OBX", Occurrence: 3, Field: 18, Rep: 2, Comp: 2}, "OBX(3)-18(2).2"},
		{"MSH-9.2", Path{Segment: "MSH", Field: 9, Comp: 2}, "MSH-9.2"},
		{"ZP1-1", Path{Segment: "ZP1", Field: 1}, "ZP1-1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
		})
	}
	for _, bad := range []string{"", "PI", "pid-3", "PID", "PID-", "PID-0", "PID-3(0)", "PID-3(2", "PID-3.", "PID-3.1.", "PID-3x", "PID(2-3", "PID-123456", "PID-3.1.1.1"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParsePath(bad); err == nil {
				t.Errorf("ParsePath(%q) succeeded, want an error", bad)
			}
		})
	}
}
