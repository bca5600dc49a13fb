package fhir

import (
	"regexp"
	"testing"
	"time"
)

// TestNewID: ids are valid FHIR ids in the UUID v7 layout, distinct, and
// ordered as the times they were made at (to the 1/4096 ms), whatever
// their random part.
func TestNewID(t *testing.T) {
	layout := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !layout.MatchString(id) || !ValidID(id) {
			t.Fatalf("NewID() = %q: not a UUID v7 / FHIR id", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
	// The time part: 48 bits of Unix milliseconds, then 7 and the 12-bit
	// fraction of the millisecond.
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) // 0x01a217ba1200 ms
	if id := newIDAt(base.Add(500 * time.Microsecond)); id[:18] != "01a217ba-1200-7800" {
		t.Errorf("id at %s + 0.5 ms = %s, want time part 01a217ba-1200-7800", base, id)
	}
	prev := ""
	for _, d := range []time.Duration{0, 250 * time.Nanosecond, time.Microsecond, 999 * time.Microsecond, time.Millisecond,
		time.Second, 24 * time.Hour, 400 * 24 * time.Hour} {
		for range 20 {
			id := newIDAt(base.Add(d))
			if prev != "" && id <= prev {
				t.Fatalf("id at +%s (%s) does not sort after the one made earlier (%s)", d, id, prev)
			}
			if id[:18] != newIDAt(base.Add(d))[:18] {
				t.Fatalf("two ids at +%s differ in their time part", d)
			}
		}
		prev = newIDAt(base.Add(d))[:18] + "-ffff-ffffffffffff" // the greatest id of that instant
	}
}
