// Package outboxtest is the suite every outbox store (outbox.Store, with
// transactions that implement outbox.Enqueuer) passes: adapters/sqlite and
// adapters/postgres run it from their tests. It checks that entries commit
// with their transaction, the claim rule that keeps each patient's entries
// in order (also with concurrent claimers), leases, settling, dead letters
// and replay, pausing, statistics, purging and tenant isolation.
//
// Only tests import it.
package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Open returns an empty, migrated store with no tenants, closed by the
// caller's cleanup.
type Open func(t *testing.T) outbox.Store

// Tenants the suite registers.
const (
	Tenant = "acme"
	Other  = "globex"
)

// T0 is the suite's base time (with microseconds, which stores must keep).
var T0 = time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC)

const dest = "epic"

// Run runs the suite, each case on a fresh store.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s outbox.Store)
	}{
		{"EnqueueCommitsWithTransaction", testEnqueueCommits},
		{"ClaimPrefixPerPatient", testClaimPrefix},
		{"ClaimLimitKeepsPrefixes", testClaimLimit},
		{"RetryWaitsAndBlocksPatient", testRetry},
		{"LeaseExpires", testLeaseExpires},
		{"DeadLetterAndReplay", testDeadLetterReplay},
		{"PauseResume", testPause},
		{"Stats", testStats},
		{"Purge", testPurge},
		{"TenantIsolation", testTenantIsolation},
		{"ConcurrentClaimersKeepOrder", testConcurrentClaimers},
		{"Load", testLoad},
		{"Errors", testErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			for _, tn := range []string{Tenant, Other} {
				if err := s.EnsureTenant(context.Background(), tn); err != nil {
					t.Fatalf("EnsureTenant %s: %v", tn, err)
				}
			}
			tc.fn(t, s)
		})
	}
}

func item(patient, obs string, version int64) outbox.Item {
	return outbox.Item{Destination: dest, Patient: "Patient/" + patient, Type: "Observation", ResourceID: obs, Version: version, Event: outbox.EventNew}
}

// enqueue adds items in one transaction per call of fn's tenant.
func enqueue(t *testing.T, s outbox.Store, tenant string, at time.Time, items ...outbox.Item) {
	t.Helper()
	err := s.Tx(context.Background(), tenant, func(tx fhir.Tx) error {
		enq, ok := tx.(outbox.Enqueuer)
		if !ok {
			return fmt.Errorf("%T does not implement outbox.Enqueuer", tx)
		}
		return enq.Enqueue(context.Background(), at, items...)
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

func claim(t *testing.T, s outbox.Store, tenant string, now time.Time, limit, per int) []*outbox.Entry {
	t.Helper()
	es, err := s.Claim(context.Background(), tenant, dest, now, outbox.ClaimOptions{Limit: limit, PerPatient: per, Lease: time.Minute})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return es
}

func settle(t *testing.T, s outbox.Store, tenant string, now time.Time, os ...outbox.Outcome) {
	t.Helper()
	if err := s.Settle(context.Background(), tenant, now, os); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// names returns "<obs>" for each entry, in order.
func names(es []*outbox.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ResourceID
	}
	return out
}

func entries(t *testing.T, s outbox.Store, tenant string, state outbox.State) []*outbox.Entry {
	t.Helper()
	es, err := s.Entries(context.Background(), tenant, outbox.Filter{State: state, Limit: 1000})
	if err != nil {
		t.Fatalf("Entries(%s): %v", state, err)
	}
	return es
}

func entry(t *testing.T, s outbox.Store, tenant string, id int64) *outbox.Entry {
	t.Helper()
	e, err := s.Entry(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("Entry %d: %v", id, err)
	}
	return e
}

func wantKind(t *testing.T, err error, k fhir.Kind, what string) {
	t.Helper()
	if !fhir.IsKind(err, k) {
		t.Errorf("%s: err = %v, want kind %d", what, err, k)
	}
}

func testEnqueueCommits(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	// A failing transaction leaves nothing behind.
	boom := errors.New("boom")
	err := s.Tx(ctx, Tenant, func(tx fhir.Tx) error {
		if err := tx.(outbox.Enqueuer).Enqueue(ctx, T0, item("p1", "o0", 1)); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx, &fhir.Write{Type: "Observation", ID: "o0", Body: []byte(`{"resourceType":"Observation"}`)}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	if got := entries(t, s, Tenant, outbox.Pending); len(got) != 0 {
		t.Fatalf("after rollback: %d entries, want 0", len(got))
	}

	// A committed one keeps every field, microseconds included.
	corr := item("p1", "o1", 2)
	corr.Event = outbox.EventCorrection
	enqueue(t, s, Tenant, T0, item("p1", "o1", 1), corr)
	got := entries(t, s, Tenant, outbox.Pending)
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2", len(got))
	}
	if got[0].ID == got[1].ID || got[1].Seq <= got[0].Seq {
		t.Errorf("ids %d, %d and seqs %d, %d: want distinct ids and increasing seqs", got[0].ID, got[1].ID, got[0].Seq, got[1].Seq)
	}
	want := &outbox.Entry{ID: got[1].ID, Seq: got[1].Seq, Tenant: Tenant, Item: corr, State: outbox.Pending,
		NextAttempt: T0, Created: T0, Updated: T0}
	if d := cmp.Diff(want, got[1]); d != "" {
		t.Errorf("entry (-want +got):\n%s", d)
	}
	if d := cmp.Diff(got[1], entry(t, s, Tenant, got[1].ID)); d != "" {
		t.Errorf("Entry differs from Entries (-list +entry):\n%s", d)
	}
}

func testClaimPrefix(t *testing.T, s outbox.Store) {
	// p1: a b c, p2: d e, p3: f (interleaved in one queue).
	enqueue(t, s, Tenant, T0, item("p1", "a", 1), item("p2", "d", 1))
	enqueue(t, s, Tenant, T0, item("p1", "b", 1), item("p3", "f", 1))
	enqueue(t, s, Tenant, T0, item("p2", "e", 1), item("p1", "c", 1))
	now := T0.Add(time.Second)

	got := claim(t, s, Tenant, now, 10, 2)
	if d := cmp.Diff([]string{"a", "d", "b", "f", "e"}, names(got)); d != "" { // in seq order
		t.Fatalf("first claim (-want +got):\n%s", d)
	}
	for _, e := range got {
		if !e.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("%s leased until %v, want %v", e.ResourceID, e.LeaseUntil, now.Add(time.Minute))
		}
	}
	// c waits behind a and b, which are leased.
	if again := claim(t, s, Tenant, now, 10, 2); len(again) != 0 {
		t.Fatalf("second claim = %v, want nothing (c is behind leased entries)", names(again))
	}
	id := map[string]int64{}
	for _, e := range got {
		id[e.ResourceID] = e.ID
	}
	// a delivered, b released unsent: b and c are next for p1.
	settle(t, s, Tenant, now, outbox.Outcome{ID: id["a"], Result: outbox.Delivered}, outbox.Outcome{ID: id["b"], Result: outbox.Release})
	got = claim(t, s, Tenant, now, 10, 2)
	if d := cmp.Diff([]string{"b", "c"}, names(got)); d != "" {
		t.Fatalf("claim after settling a (-want +got):\n%s", d)
	}
	if e := entry(t, s, Tenant, id["a"]); e.State != outbox.Done || e.Attempts != 1 || !e.LeaseUntil.IsZero() || !e.Updated.Equal(now) {
		t.Errorf("a = %+v, want done, 1 attempt, no lease, updated at now", e)
	}
	if e := entry(t, s, Tenant, id["b"]); e.Attempts != 0 {
		t.Errorf("released b has %d attempts, want 0", e.Attempts)
	}
	// Settling a again changes nothing.
	settle(t, s, Tenant, now.Add(time.Second), outbox.Outcome{ID: id["a"], Result: outbox.Delivered})
	if e := entry(t, s, Tenant, id["a"]); e.Attempts != 1 || !e.Updated.Equal(now) {
		t.Errorf("a settled twice = %+v, want unchanged", e)
	}
}

func testClaimLimit(t *testing.T, s outbox.Store) {
	for i := range 4 {
		enqueue(t, s, Tenant, T0, item("p1", fmt.Sprintf("a%d", i), 1), item("p2", fmt.Sprintf("b%d", i), 1), item("p3", fmt.Sprintf("c%d", i), 1))
	}
	now := T0.Add(time.Second)
	// Whole prefixes, oldest patient first: p1's three, then one of p2's.
	got := claim(t, s, Tenant, now, 4, 3)
	if d := cmp.Diff([]string{"a0", "b0", "a1", "a2"}, names(got)); d != "" {
		t.Fatalf("claim with limit 4 (-want +got):\n%s", d)
	}
	// a3 waits behind p1's leased entries, b1 behind b0; p3 is free.
	got = claim(t, s, Tenant, now, 10, 10)
	if d := cmp.Diff([]string{"c0", "c1", "c2", "c3"}, names(got)); d != "" {
		t.Fatalf("second claim (-want +got):\n%s", d)
	}
	// PerPatient 1 is the strict rule: one entry per patient.
	got = claim(t, s, Tenant, now.Add(2*time.Minute), 10, 1)
	if d := cmp.Diff([]string{"a0", "b0", "c0"}, names(got)); d != "" {
		t.Fatalf("claim after the leases ended, one per patient (-want +got):\n%s", d)
	}
}

func testRetry(t *testing.T, s outbox.Store) {
	enqueue(t, s, Tenant, T0, item("p1", "a", 1), item("p1", "b", 1), item("p2", "c", 1))
	now := T0.Add(time.Second)
	got := claim(t, s, Tenant, now, 10, 1)
	if d := cmp.Diff([]string{"a", "c"}, names(got)); d != "" {
		t.Fatalf("claim (-want +got):\n%s", d)
	}
	later := now.Add(30 * time.Second)
	settle(t, s, Tenant, now, outbox.Outcome{ID: got[0].ID, Result: outbox.Retry, NextAttempt: later, Error: "AE (ERR-3 207)"},
		outbox.Outcome{ID: got[1].ID, Result: outbox.Delivered})
	// a is not due, and b must not overtake it.
	if got := claim(t, s, Tenant, now.Add(time.Second), 10, 5); len(got) != 0 {
		t.Fatalf("claim before a is due = %v, want nothing", names(got))
	}
	got = claim(t, s, Tenant, later, 10, 5)
	if d := cmp.Diff([]string{"a", "b"}, names(got)); d != "" {
		t.Fatalf("claim when due (-want +got):\n%s", d)
	}
	if got[0].Attempts != 1 || got[0].LastError != "AE (ERR-3 207)" || !got[0].NextAttempt.Equal(later) || !got[0].Updated.Equal(now) {
		t.Errorf("retried entry = %+v, want 1 attempt, the error, next attempt %v, updated %v", got[0], later, now)
	}

	// A prefix stops before an entry that is not due even when the oldest
	// is: a released, b retried later, c (p1 again) must wait behind b.
	enqueue(t, s, Tenant, later, item("p1", "c", 1))
	settle(t, s, Tenant, later, outbox.Outcome{ID: got[0].ID, Result: outbox.Release},
		outbox.Outcome{ID: got[1].ID, Result: outbox.Retry, NextAttempt: later.Add(time.Hour)})
	got = claim(t, s, Tenant, later, 10, 5)
	if d := cmp.Diff([]string{"a"}, names(got)); d != "" {
		t.Fatalf("claim with b not due (-want +got):\n%s", d)
	}
}

func testLeaseExpires(t *testing.T, s outbox.Store) {
	enqueue(t, s, Tenant, T0, item("p1", "a", 1))
	now := T0.Add(time.Second)
	first := claim(t, s, Tenant, now, 10, 1)
	if len(first) != 1 {
		t.Fatalf("claim = %v", names(first))
	}
	if got := claim(t, s, Tenant, now.Add(time.Minute-time.Microsecond), 10, 1); len(got) != 0 {
		t.Fatalf("claim within the lease = %v, want nothing", names(got))
	}
	// A crashed claimer's entries come back when the lease ends.
	got := claim(t, s, Tenant, now.Add(time.Minute), 10, 1)
	if len(got) != 1 || got[0].ID != first[0].ID || got[0].Attempts != 0 {
		t.Fatalf("claim after the lease = %+v, want the same entry, no attempt counted", got)
	}
}

func testDeadLetterReplay(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	enqueue(t, s, Tenant, T0, item("p1", "a", 1), item("p1", "b", 1), item("p2", "c", 1))
	now := T0.Add(time.Second)
	got := claim(t, s, Tenant, now, 10, 1)
	a := got[0]
	settle(t, s, Tenant, now, outbox.Outcome{ID: a.ID, Result: outbox.DeadLetter, Error: "AR (ERR-3 103)"})
	// b is no longer blocked.
	got = claim(t, s, Tenant, now, 10, 1)
	if d := cmp.Diff([]string{"b"}, names(got)); d != "" {
		t.Fatalf("claim after dead-lettering a (-want +got):\n%s", d)
	}
	settle(t, s, Tenant, now, outbox.Outcome{ID: got[0].ID, Result: outbox.Delivered})
	dead := entries(t, s, Tenant, outbox.Dead)
	if len(dead) != 1 || dead[0].ID != a.ID || dead[0].LastError != "AR (ERR-3 103)" || dead[0].Attempts != 1 || !dead[0].LeaseUntil.IsZero() {
		t.Fatalf("dead letters = %+v, want a with its error", dead)
	}
	if es, err := s.Entries(ctx, Tenant, outbox.Filter{Destination: "other", State: outbox.Dead, Limit: 10}); err != nil || len(es) != 0 {
		t.Errorf("dead letters of another destination = %v, %v; want none", es, err)
	}

	enqueue(t, s, Tenant, now, item("p1", "d", 1))
	replayAt := now.Add(time.Hour)
	if err := s.Replay(ctx, Tenant, a.ID, replayAt); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	e := entry(t, s, Tenant, a.ID)
	if e.State != outbox.Pending || e.Attempts != 0 || e.Replays != 1 || !e.NextAttempt.Equal(replayAt) || !e.Updated.Equal(replayAt) {
		t.Errorf("replayed = %+v, want pending, 0 attempts, 1 replay, due at the replay", e)
	}
	// At the back of the queue: after d, which was enqueued before the replay.
	got = claim(t, s, Tenant, replayAt, 10, 5)
	if d := cmp.Diff([]string{"c", "d", "a"}, names(got)); d != "" {
		t.Errorf("claim after replay (-want +got):\n%s", d)
	}
	wantKind(t, s.Replay(ctx, Tenant, a.ID, replayAt), fhir.KindConflict, "replaying a pending entry")
	wantKind(t, s.Replay(ctx, Tenant, a.ID+1000, replayAt), fhir.KindNotFound, "replaying a missing entry")
}

func testPause(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	enqueue(t, s, Tenant, T0, item("p1", "a", 1))
	if err := s.SetPaused(ctx, Tenant, dest, true, T0); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	if got := claim(t, s, Tenant, T0, 10, 1); len(got) != 0 {
		t.Fatalf("claim while paused = %v, want nothing", names(got))
	}
	st, err := s.Stats(ctx, Tenant, T0)
	if err != nil || len(st) != 1 || !st[0].Paused {
		t.Fatalf("Stats while paused = %+v, %v", st, err)
	}
	// Pausing a destination of another tenant, or another destination, does not matter.
	if err := s.SetPaused(ctx, Tenant, dest, false, T0); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	if err := s.SetPaused(ctx, Other, dest, true, T0); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	if err := s.SetPaused(ctx, Tenant, "cerner", true, T0); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	if got := claim(t, s, Tenant, T0, 10, 1); len(got) != 1 {
		t.Fatalf("claim after resume = %v, want a", names(got))
	}
}

func testStats(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	enqueue(t, s, Tenant, T0, item("p1", "a", 1), item("p2", "b", 1))
	other := item("p1", "x", 1)
	other.Destination = "cerner"
	enqueue(t, s, Tenant, T0.Add(time.Second), item("p3", "c", 1), other)
	now := T0.Add(2 * time.Second)
	got := claim(t, s, Tenant, now, 2, 1) // a and b in flight
	settle(t, s, Tenant, now, outbox.Outcome{ID: got[1].ID, Result: outbox.DeadLetter, Error: "AR"})
	if err := s.SetPaused(ctx, Tenant, "idle", true, now); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx, Tenant, now)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := []outbox.DestinationStats{
		{Destination: "cerner", Pending: 1, Oldest: T0.Add(time.Second)},
		{Destination: dest, Pending: 2, InFlight: 1, Dead: 1, Oldest: T0},
		{Destination: "idle", Paused: true},
	}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
	if st, err := s.Stats(ctx, Other, now); err != nil || len(st) != 0 {
		t.Errorf("Stats of another tenant = %+v, %v; want none", st, err)
	}
}

func testPurge(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	enqueue(t, s, Tenant, T0, item("p1", "a", 1), item("p2", "b", 1), item("p3", "c", 1), item("p4", "d", 1))
	got := claim(t, s, Tenant, T0, 10, 1)
	settle(t, s, Tenant, T0.Add(time.Second), outbox.Outcome{ID: got[0].ID, Result: outbox.Delivered}, outbox.Outcome{ID: got[1].ID, Result: outbox.Delivered})
	settle(t, s, Tenant, T0.Add(time.Hour), outbox.Outcome{ID: got[2].ID, Result: outbox.Delivered})
	n, err := s.Purge(ctx, Tenant, T0.Add(time.Minute), 1)
	if err != nil || n != 1 {
		t.Fatalf("Purge limit 1 = %d, %v; want 1", n, err)
	}
	if n, err = s.Purge(ctx, Tenant, T0.Add(time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want the other old one", n, err)
	}
	if d := cmp.Diff([]string{"c"}, names(entries(t, s, Tenant, outbox.Done))); d != "" {
		t.Errorf("done after purge (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"d"}, names(entries(t, s, Tenant, outbox.Pending))); d != "" {
		t.Errorf("pending after purge (-want +got):\n%s", d)
	}
	// Ids are never reused, even after the newest entries are purged.
	settle(t, s, Tenant, T0.Add(time.Hour), outbox.Outcome{ID: got[3].ID, Result: outbox.Delivered})
	if _, err := s.Purge(ctx, Tenant, T0.Add(2*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, Tenant, T0, item("p1", "e", 1))
	if e := entries(t, s, Tenant, outbox.Pending); len(e) != 1 || e[0].ID <= got[3].ID {
		t.Errorf("new entry after purging the newest: %+v, want an id above %d", e, got[3].ID)
	}
}

func testTenantIsolation(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	enqueue(t, s, Tenant, T0, item("p1", "a", 1))
	mine := entries(t, s, Tenant, outbox.Pending)
	if got := claim(t, s, Other, T0, 10, 1); len(got) != 0 {
		t.Errorf("other tenant claimed %v", names(got))
	}
	if got := entries(t, s, Other, outbox.Pending); len(got) != 0 {
		t.Errorf("other tenant lists %v", names(got))
	}
	_, err := s.Entry(ctx, Other, mine[0].ID)
	wantKind(t, err, fhir.KindNotFound, "Entry of another tenant's id")
	settle(t, s, Other, T0, outbox.Outcome{ID: mine[0].ID, Result: outbox.Delivered})
	if e := entry(t, s, Tenant, mine[0].ID); e.State != outbox.Pending {
		t.Errorf("another tenant settled our entry: %+v", e)
	}
	_, err = s.Claim(ctx, "nobody", dest, T0, outbox.ClaimOptions{Limit: 1, PerPatient: 1, Lease: time.Second})
	wantKind(t, err, fhir.KindNotFound, "Claim for an unknown tenant")
	wantKind(t, s.SetPaused(ctx, "nobody", dest, true, T0), fhir.KindNotFound, "SetPaused for an unknown tenant")
}

// testConcurrentClaimers runs several claimers against one destination, as
// replicas would: each entry is delivered exactly once, and each patient's
// deliveries follow the enqueue order.
func testConcurrentClaimers(t *testing.T, s outbox.Store) {
	const patients, perPatient, claimers = 6, 15, 4
	var items []outbox.Item
	for i := range perPatient {
		for p := range patients {
			items = append(items, item(fmt.Sprintf("p%d", p), fmt.Sprintf("o%d-%02d", p, i), 1))
		}
	}
	enqueue(t, s, Tenant, T0, items...)
	var mu sync.Mutex
	var log []*outbox.Entry
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, claimers)
	for range claimers {
		wg.Go(func() {
			for ctx.Err() == nil {
				es, err := s.Claim(ctx, Tenant, dest, T0, outbox.ClaimOptions{Limit: 5, PerPatient: 3, Lease: time.Hour})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				log = append(log, es...)
				n := len(log)
				mu.Unlock()
				os := make([]outbox.Outcome, len(es))
				for i, e := range es {
					os[i] = outbox.Outcome{ID: e.ID, Result: outbox.Delivered}
				}
				if err := s.Settle(ctx, Tenant, T0, os); err != nil {
					errc <- err
					return
				}
				if n >= len(items) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("claimer: %v", err)
	}
	seen := map[int64]bool{}
	last := map[string]int64{}
	for _, e := range log {
		if seen[e.ID] {
			t.Errorf("entry %s claimed twice", e.ResourceID)
		}
		seen[e.ID] = true
		if e.Seq <= last[e.Patient] {
			t.Errorf("%s: entry %s (seq %d) delivered after seq %d", e.Patient, e.ResourceID, e.Seq, last[e.Patient])
		}
		last[e.Patient] = e.Seq
	}
	if len(seen) != len(items) {
		t.Errorf("delivered %d entries, want %d", len(seen), len(items))
	}
	if done := entries(t, s, Tenant, outbox.Done); len(done) != len(items) {
		t.Errorf("%d entries done, want %d", len(done), len(items))
	}
}

func testLoad(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	put := func(tenant, typ, id, body string) {
		t.Helper()
		err := s.Tx(ctx, tenant, func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, &fhir.Write{Type: typ, ID: id, Body: []byte(body)})
			return err
		})
		if err != nil {
			t.Fatalf("Put %s/%s: %v", typ, id, err)
		}
	}
	put(Tenant, "Observation", "o1", `{"resourceType":"Observation","status":"preliminary"}`)
	put(Tenant, "Observation", "o1", `{"resourceType":"Observation","status":"final"}`)
	put(Tenant, "Patient", "p1", `{"resourceType":"Patient"}`)
	put(Tenant, "Device", "d1", `{"resourceType":"Device"}`)
	put(Other, "Device", "d2", `{"resourceType":"Device"}`)
	if err := s.Tx(ctx, Tenant, func(tx fhir.Tx) error {
		_, err := tx.Delete(ctx, "Device", "d1", 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	k := func(typ, id string, v int64) outbox.ResourceKey {
		return outbox.ResourceKey{Type: typ, ID: id, Version: v}
	}
	got, err := s.Load(ctx, Tenant, []outbox.ResourceKey{
		k("Observation", "o1", 1), k("Observation", "o1", 0), k("Observation", "o1", 7),
		k("Patient", "p1", 0), k("Device", "d1", 0), k("Device", "d1", 1), k("Device", "d1", 2), k("Device", "d2", 0),
		// The current versions, by number.
		k("Observation", "o1", 2), k("Patient", "p1", 1),
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	summary := map[outbox.ResourceKey]string{}
	for key, r := range got {
		summary[key] = fmt.Sprintf("%s/%s v%d", r.Type, r.ID, r.VersionID)
		if key.Version == 0 {
			if cur, err := s.Read(ctx, Tenant, r.Type, r.ID); err != nil || string(cur.Body) != string(r.Body) {
				t.Errorf("current %s differs from Read: %v", summary[key], err)
			}
		}
	}
	want := map[outbox.ResourceKey]string{
		k("Observation", "o1", 1): "Observation/o1 v1",
		k("Observation", "o1", 0): "Observation/o1 v2",
		k("Patient", "p1", 0):     "Patient/p1 v1",
		k("Device", "d1", 1):      "Device/d1 v1",
		k("Observation", "o1", 2): "Observation/o1 v2",
		k("Patient", "p1", 1):     "Patient/p1 v1",
	}
	if d := cmp.Diff(want, summary); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	if r := got[k("Observation", "o1", 1)]; r == nil || !strings.Contains(string(r.Body), "preliminary") {
		t.Errorf("version 1 = %v, want the preliminary body", r)
	}
	_, err = s.Load(ctx, "nobody", []outbox.ResourceKey{k("Patient", "p1", 0)})
	wantKind(t, err, fhir.KindNotFound, "Load for an unknown tenant")
}

func testErrors(t *testing.T, s outbox.Store) {
	ctx := context.Background()
	for _, o := range []outbox.ClaimOptions{{Limit: 0, PerPatient: 1, Lease: time.Second}, {Limit: 1, PerPatient: 0, Lease: time.Second}, {Limit: 1, PerPatient: 1}} {
		_, err := s.Claim(ctx, Tenant, dest, T0, o)
		wantKind(t, err, fhir.KindInvalid, fmt.Sprintf("Claim(%+v)", o))
	}
	_, err := s.Entry(ctx, Tenant, 424242)
	wantKind(t, err, fhir.KindNotFound, "Entry of a missing id")
	_, err = s.Entries(ctx, Tenant, outbox.Filter{State: "lost", Limit: 1})
	wantKind(t, err, fhir.KindInvalid, "Entries in an unknown state")
	wantKind(t, s.Settle(ctx, Tenant, T0, []outbox.Outcome{{ID: 1, Result: 99}}), fhir.KindInvalid, "Settle with an unknown result")
}
