package smarttest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// StateStore is a registry.State that can also register tenants.
type StateStore interface {
	registry.State
	EnsureTenant(ctx context.Context, tenant string) error
}

// RunState runs the contract of registry.State on the stores newStore
// returns (empty, one per subtest). It sleeps a little to let entries
// expire (TTLs of 50 ms).
func RunState(t *testing.T, newStore func(t *testing.T) StateStore) {
	setup := func(t *testing.T) StateStore {
		t.Helper()
		s := newStore(t)
		for _, tn := range []string{tenantA, tenantB} {
			if err := s.EnsureTenant(context.Background(), tn); err != nil {
				t.Fatalf("EnsureTenant(%s): %v", tn, err)
			}
		}
		return s
	}
	t.Run("PutGetTakeDelete", func(t *testing.T) { testPutGetTakeDelete(t, setup(t)) })
	t.Run("Expiry", func(t *testing.T) { testStateExpiry(t, setup(t)) })
	t.Run("ConcurrentTake", func(t *testing.T) { testConcurrentTake(t, setup(t)) })
	t.Run("ConcurrentPut", func(t *testing.T) { testConcurrentPut(t, setup(t)) })
	t.Run("StateIsolation", func(t *testing.T) { testStateIsolation(t, setup(t)) })
	t.Run("StateUnknownTenant", func(t *testing.T) { testStateUnknownTenant(t, setup(t)) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, setup(t)) })
	t.Run("RevocationFeedMissesNothing", func(t *testing.T) { testRevocationFeedOrder(t, setup(t)) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, setup(t)) })
}

const shortTTL = 50 * time.Millisecond

// expire waits until entries of shortTTL have expired.
func expire() { time.Sleep(3 * shortTTL) }

func mustPut(t *testing.T, s registry.State, tenant, key, val string, ttl time.Duration, want bool) {
	t.Helper()
	ok, err := s.PutState(context.Background(), tenant, key, []byte(val), ttl)
	if err != nil || ok != want {
		t.Fatalf("PutState(%s, %s, %v) = %v, %v; want %v", tenant, key, ttl, ok, err, want)
	}
}

// lookup is what GetState or TakeState answered, for cmp.
type lookup struct {
	Value string
	OK    bool
}

func get(t *testing.T, s registry.State, tenant, key string) lookup {
	t.Helper()
	v, ok, err := s.GetState(context.Background(), tenant, key)
	if err != nil {
		t.Fatalf("GetState(%s, %s): %v", tenant, key, err)
	}
	return lookup{string(v), ok}
}

func take(t *testing.T, s registry.State, tenant, key string) lookup {
	t.Helper()
	v, ok, err := s.TakeState(context.Background(), tenant, key)
	if err != nil {
		t.Fatalf("TakeState(%s, %s): %v", tenant, key, err)
	}
	return lookup{string(v), ok}
}

func testPutGetTakeDelete(t *testing.T, s StateStore) {
	ctx := context.Background()
	mustPut(t, s, tenantA, "code:a", "one", time.Minute, true)
	mustPut(t, s, tenantA, "code:a", "two", time.Minute, false) // a live entry is never overwritten
	got := []lookup{get(t, s, tenantA, "code:a"), take(t, s, tenantA, "code:a"), take(t, s, tenantA, "code:a"), get(t, s, tenantA, "code:a")}
	want := []lookup{{"one", true}, {"one", true}, {}, {}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Get, Take, Take, Get (-want +got):\n%s", d)
	}
	mustPut(t, s, tenantA, "code:a", "three", time.Minute, true)
	if err := s.DeleteState(ctx, tenantA, "code:a"); err != nil {
		t.Fatalf("DeleteState: %v", err)
	}
	if err := s.DeleteState(ctx, tenantA, "code:a"); err != nil {
		t.Fatalf("DeleteState of an absent key: %v", err)
	}
	if l := get(t, s, tenantA, "code:a"); l.OK {
		t.Errorf("GetState after DeleteState = %+v, want absent", l)
	}
	// Values are bytes, kept as given.
	bin := []byte{0, 1, 2, 255}
	if ok, err := s.PutState(ctx, tenantA, "bin", bin, time.Minute); !ok || err != nil {
		t.Fatalf("PutState(bin) = %v, %v", ok, err)
	}
	if v, ok, err := s.GetState(ctx, tenantA, "bin"); !ok || err != nil || !slices.Equal(v, bin) {
		t.Errorf("GetState(bin) = %v, %v, %v; want %v", v, ok, err, bin)
	}
}

func testStateExpiry(t *testing.T, s StateStore) {
	mustPut(t, s, tenantA, "zero", "x", 0, false) // nothing lives for no time
	mustPut(t, s, tenantA, "negative", "x", -time.Second, false)
	mustPut(t, s, tenantA, "short", "1", shortTTL, true)
	mustPut(t, s, tenantA, "short-take", "2", shortTTL, true)
	mustPut(t, s, tenantA, "long", "3", time.Minute, true)
	expire()
	got := []lookup{get(t, s, tenantA, "zero"), get(t, s, tenantA, "short"), take(t, s, tenantA, "short-take"), get(t, s, tenantA, "long")}
	want := []lookup{{}, {}, {}, {"3", true}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after the short TTL: zero, short, take short, long (-want +got):\n%s", d)
	}
	// An expired entry is replaced, whether or not it was purged.
	mustPut(t, s, tenantA, "short", "new", time.Minute, true)
	if l := get(t, s, tenantA, "short"); l != (lookup{"new", true}) {
		t.Errorf("GetState after replacing an expired entry = %+v, want new", l)
	}
}

func testConcurrentTake(t *testing.T, s StateStore) {
	for round := range 3 {
		key := fmt.Sprintf("code:once-%d", round)
		mustPut(t, s, tenantA, key, "code", time.Minute, true)
		var won atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				_, ok, err := s.TakeState(context.Background(), tenantA, key)
				if err != nil {
					errs <- err
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("TakeState: %v", err)
		}
		if n := won.Load(); n != 1 {
			t.Errorf("round %d: %d of 16 concurrent Takes got the value, want 1", round, n)
		}
	}
}

func testConcurrentPut(t *testing.T, s StateStore) {
	// The jti replay set: of concurrent first uses of one jti, one wins;
	// also when the key held an expired entry.
	mustPut(t, s, tenantA, "jti:expired", "old", shortTTL, true)
	expire()
	for _, key := range []string{"jti:fresh", "jti:expired"} {
		var won atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				ok, err := s.PutState(context.Background(), tenantA, key, []byte{byte(i)}, time.Minute)
				if err != nil {
					errs <- err
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("PutState: %v", err)
		}
		if n := won.Load(); n != 1 {
			t.Errorf("%s: %d of 16 concurrent Puts stored, want 1", key, n)
		}
	}
}

func testStateIsolation(t *testing.T, s StateStore) {
	ctx := context.Background()
	mustPut(t, s, tenantA, "refresh:r", "a's", time.Minute, true)
	if l := get(t, s, tenantB, "refresh:r"); l.OK {
		t.Errorf("GetState in %s found %s's entry: %+v", tenantB, tenantA, l)
	}
	if l := take(t, s, tenantB, "refresh:r"); l.OK {
		t.Errorf("TakeState in %s took %s's entry: %+v", tenantB, tenantA, l)
	}
	if err := s.DeleteState(ctx, tenantB, "refresh:r"); err != nil {
		t.Fatal(err)
	}
	// The same key in another tenant is another entry.
	mustPut(t, s, tenantB, "refresh:r", "b's", time.Minute, true)
	got := []lookup{get(t, s, tenantA, "refresh:r"), get(t, s, tenantB, "refresh:r")}
	if d := cmp.Diff([]lookup{{"a's", true}, {"b's", true}}, got); d != "" {
		t.Errorf("one key in two tenants (-want +got):\n%s", d)
	}
	if err := s.Revoke(ctx, tenantA, "jti-a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Revocations(ctx, tenantB, 0, 100); err != nil || len(rs) != 0 {
		t.Errorf("Revocations(%s) = %v, %v; want none of %s's", tenantB, rs, err, tenantA)
	}
}

func testStateUnknownTenant(t *testing.T, s StateStore) {
	ctx := context.Background()
	_, err := s.PutState(ctx, "nosuch", "k", []byte("v"), time.Minute)
	wantKind(t, "PutState", err, fhir.KindNotFound)
	wantKind(t, "Revoke", s.Revoke(ctx, "nosuch", "id", time.Minute), fhir.KindNotFound)
	if _, ok, err := s.GetState(ctx, "nosuch", "k"); ok || (err != nil && !fhir.IsKind(err, fhir.KindNotFound)) {
		t.Errorf("GetState of an unknown tenant = %v, %v; want absent or KindNotFound", ok, err)
	}
}

// ids returns the ids of rs.
func ids(rs []registry.Revocation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func revocations(t *testing.T, s registry.State, tenant string, after int64, limit int) []registry.Revocation {
	t.Helper()
	rs, err := s.Revocations(context.Background(), tenant, after, limit)
	if err != nil {
		t.Fatalf("Revocations(%s, %d, %d): %v", tenant, after, limit, err)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq <= rs[i-1].Seq {
			t.Fatalf("Revocations not in sequence order: %+v", rs)
		}
	}
	for _, r := range rs {
		if r.Seq <= after {
			t.Fatalf("Revocations(after %d) returned seq %d", after, r.Seq)
		}
	}
	return rs
}

func testRevocations(t *testing.T, s StateStore) {
	ctx := context.Background()
	if rs := revocations(t, s, tenantA, 0, 100); len(rs) != 0 {
		t.Fatalf("a new tenant has revocations: %+v", rs)
	}
	before := time.Now()
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		if err := s.Revoke(ctx, tenantA, id, time.Hour); err != nil {
			t.Fatalf("Revoke(%s): %v", id, err)
		}
	}
	if err := s.Revoke(ctx, tenantA, "never", 0); err != nil {
		t.Fatalf("Revoke with no time to live: %v", err)
	}
	if err := s.Revoke(ctx, tenantA, "short", shortTTL); err != nil {
		t.Fatal(err)
	}
	expire()
	all := revocations(t, s, tenantA, 0, 100)
	if d := cmp.Diff([]string{"r1", "r2", "r3", "r4", "r5"}, ids(all)); d != "" {
		t.Fatalf("Revocations: live ones in order (-want +got):\n%s", d)
	}
	for _, r := range all {
		if r.Expires.Before(before.Add(time.Hour-time.Minute)) || r.Expires.After(time.Now().Add(time.Hour+time.Minute)) {
			t.Errorf("%s expires %v, want about an hour from %v", r.ID, r.Expires, before)
		}
	}
	// The feed in pages.
	var paged []string
	for after := int64(0); ; {
		page := revocations(t, s, tenantA, after, 2)
		if len(page) > 2 {
			t.Fatalf("limit 2 returned %d", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		after = page[len(page)-1].Seq
	}
	if d := cmp.Diff(ids(all), paged); d != "" {
		t.Errorf("Revocations paged by 2 (-want +got):\n%s", d)
	}
	last := all[len(all)-1].Seq
	if rs := revocations(t, s, tenantA, last, 100); len(rs) != 0 {
		t.Errorf("after the last seq: %+v, want none", rs)
	}
	// Revoked again: a new number, the later expiry kept.
	if err := s.Revoke(ctx, tenantA, "r2", time.Minute); err != nil {
		t.Fatal(err)
	}
	again := revocations(t, s, tenantA, last, 100)
	if len(again) != 1 || again[0].ID != "r2" || again[0].Seq <= last || !again[0].Expires.Equal(all[1].Expires) {
		t.Errorf("r2 revoked again: %+v; want r2 with a seq above %d and expiry %v", again, last, all[1].Expires)
	}
}

// testRevocationFeedOrder revokes from several goroutines while a reader
// follows the feed by its last sequence number: the reader must see every
// revocation (numbers become visible in order, so none is skipped).
func testRevocationFeedOrder(t *testing.T, s StateStore) {
	ctx := context.Background()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Revoke(ctx, tenantA, fmt.Sprintf("w%d-%d", w, i), time.Minute); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	follow := func() {
		for _, r := range revocations(t, s, tenantA, after, 7) {
			seen[r.ID] = true
			after = r.Seq
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	for range 40 { // the tail, in pages of 7
		follow()
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Revoke: %v", err)
	}
	var missed []string
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("w%d-%d", w, i); !seen[id] {
				missed = append(missed, id)
			}
		}
	}
	if len(missed) > 0 {
		t.Errorf("the feed skipped %d of %d revocations: %v", len(missed), writers*each, missed)
	}
}

func testPurge(t *testing.T, s StateStore) {
	ctx := context.Background()
	mustPut(t, s, tenantA, "kept", "x", time.Minute, true)
	if err := s.Revoke(ctx, tenantA, "kept", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeState(ctx, tenantA, 100); err != nil || n != 0 {
		t.Fatalf("PurgeState of live rows only = %d, %v; want 0", n, err)
	}
	for i := range 5 {
		mustPut(t, s, tenantA, fmt.Sprintf("gone-%d", i), "x", shortTTL, true)
	}
	for i := range 3 {
		if err := s.Revoke(ctx, tenantA, fmt.Sprintf("gone-%d", i), shortTTL); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, tenantB, "gone-b", "x", shortTTL, true)
	expire()
	var rounds []int
	for {
		n, err := s.PurgeState(ctx, tenantA, 2)
		if err != nil {
			t.Fatalf("PurgeState: %v", err)
		}
		if n == 0 {
			break
		}
		rounds = append(rounds, n)
		if len(rounds) > 10 {
			t.Fatalf("PurgeState does not finish: %v", rounds)
		}
	}
	// At most 2 entries and 2 revocations a call: 5 entries and 3
	// revocations take 2+2, 2+1, 1.
	if d := cmp.Diff([]int{4, 3, 1}, rounds); d != "" {
		t.Errorf("rows deleted per PurgeState(limit 2) (-want +got):\n%s", d)
	}
	if l := get(t, s, tenantA, "kept"); !l.OK {
		t.Error("PurgeState deleted a live entry")
	}
	if d := cmp.Diff([]string{"kept"}, ids(revocations(t, s, tenantA, 0, 100))); d != "" {
		t.Errorf("revocations after PurgeState (-want +got):\n%s", d)
	}
	// The other tenant's expired entry is its own to purge.
	if n, err := s.PurgeState(ctx, tenantB, 100); err != nil || n != 1 {
		t.Errorf("PurgeState(%s) = %d, %v; want 1", tenantB, n, err)
	}
}
