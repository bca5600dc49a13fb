package authz

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkDecideL1Hit is a decision served from the in-process cache: a
// patient-scope search with a consent narrowing it (the target: at
// most 1 µs).
func BenchmarkDecideL1Hit(b *testing.B) {
	a := newAuthz(b, newMemConsents(consent("c1", "p1", denyHIV)), Policy{}, nil)
	req := p1Search
	req.Scopes = []string{"openid", "fhirUser", "launch/patient", "patient/Observation.rs", "patient/Patient.rs", "offline_access"}
	ctx := context.Background()
	if _, err := a.Decide(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Decide(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if s := a.Stats(); s.Misses != 1 {
		b.Fatalf("stats %+v: the loop was not all L1 hits", s)
	}
}

// BenchmarkDecideL1HitParallel is the same from every core at once.
func BenchmarkDecideL1HitParallel(b *testing.B) {
	a := newAuthz(b, newMemConsents(), Policy{}, nil)
	ctx := context.Background()
	reqs := make([]Request, 64)
	for i := range reqs {
		reqs[i] = p1Search
		reqs[i].Scopes = []string{"user/Observation.rs"}
		reqs[i].FHIRUser = "Practitioner/x"
		reqs[i].TargetPatient = fmt.Sprintf("p%d", i)
		if _, err := a.Decide(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := a.Decide(ctx, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
