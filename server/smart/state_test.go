package smart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/smart/smarttest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// failingFeed is a State whose change feed fails while fail is set, and
// counts the feed's reads.
type failingFeed struct {
	registry.State
	fail  atomic.Bool
	reads atomic.Int32
}

func (f *failingFeed) Revocations(ctx context.Context, tenant string, after int64, limit int) ([]registry.Revocation, error) {
	f.reads.Add(1)
	if f.fail.Load() {
		return nil, errors.New("database unreachable")
	}
	return f.State.Revocations(ctx, tenant, after, limit)
}

func memState(t *testing.T) *smarttest.Memory {
	t.Helper()
	m := smarttest.NewMemory()
	if err := m.EnsureTenant(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	return m
}

func isRevoked(t *testing.T, r *revocationSet, id string) bool {
	t.Helper()
	ok, err := r.revoked(context.Background(), "acme", id)
	if err != nil {
		t.Fatalf("revoked(%s): %v", id, err)
	}
	return ok
}

// Two replicas' sets on one store: a revocation counts at once on the
// replica that made it, and on the other one after its next refresh, with
// no store read per check in between.
func TestRevocationSetFollowsTheFeed(t *testing.T) {
	ctx := context.Background()
	st := &failingFeed{State: memState(t)}
	here := newRevocationSet(st, time.Minute, quiet)
	there := newRevocationSet(st, time.Minute, quiet)
	if isRevoked(t, here, "t1") || isRevoked(t, there, "t1") {
		t.Fatal("t1 revoked before anyone revoked it")
	}
	if err := st.Revoke(ctx, "acme", "t1", time.Hour); err != nil {
		t.Fatal(err)
	}
	here.add("acme", "t1", time.Now().Add(time.Hour))
	reads := st.reads.Load()
	if !isRevoked(t, here, "t1") {
		t.Error("the replica that revoked t1 does not see it")
	}
	if isRevoked(t, there, "t1") {
		t.Error("the other replica saw t1 before refreshing: did the check read the store?")
	}
	if n := st.reads.Load() - reads; n != 0 {
		t.Errorf("checks of fresh sets read the feed %d times, want 0", n)
	}
	there.refreshAll(ctx)
	if !isRevoked(t, there, "t1") {
		t.Error("the other replica does not see t1 after a refresh")
	}
	// An expired revocation no longer counts (its token has expired too).
	here.add("acme", "old", time.Now().Add(-time.Second))
	if isRevoked(t, here, "old") {
		t.Error("an expired revocation counts")
	}
}

// A set that could not be refreshed for longer than maxStale is reloaded
// by the check itself, and the check fails (never "not revoked") while the
// store fails.
func TestRevocationSetFailsClosed(t *testing.T) {
	ctx := context.Background()
	const maxStale = 100 * time.Millisecond
	st := &failingFeed{State: memState(t)}
	r := newRevocationSet(st, maxStale, quiet)

	st.fail.Store(true)
	if _, err := r.revoked(ctx, "acme", "t1"); err == nil {
		t.Fatal("first check with the store down answered without an error")
	}
	st.fail.Store(false)
	if isRevoked(t, r, "t1") {
		t.Fatal("t1 revoked")
	}
	st.fail.Store(true)
	r.refreshAll(ctx) // fails, logged
	if _, err := r.revoked(ctx, "acme", "t1"); err != nil {
		t.Errorf("check within maxStale of the last refresh failed: %v", err)
	}
	// Meanwhile another replica revokes t1.
	if err := st.State.Revoke(ctx, "acme", "t1", time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(maxStale + 20*time.Millisecond)
	if _, err := r.revoked(ctx, "acme", "t1"); err == nil {
		t.Fatal("check of a stale set with the store down answered without an error")
	}
	st.fail.Store(false)
	if !isRevoked(t, r, "t1") {
		t.Error("after the store came back, the revocation made meanwhile does not count")
	}
}

// A tenant's first check loads every live revocation, in pages.
func TestRevocationSetLoadsPages(t *testing.T) {
	ctx := context.Background()
	st := &failingFeed{State: memState(t)}
	const n = 2*revocationPage + 7
	for i := range n {
		if err := st.Revoke(ctx, "acme", fmt.Sprintf("t%d", i), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	r := newRevocationSet(st, time.Minute, quiet)
	for _, i := range []int{0, revocationPage, n - 1} {
		if !isRevoked(t, r, fmt.Sprintf("t%d", i)) {
			t.Errorf("t%d not revoked after the first load", i)
		}
	}
	if got := st.reads.Load(); got != 3 {
		t.Errorf("the first load read %d pages, want 3", got)
	}
}

// purge deletes the expired state of the tenants the server has written.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	m := memState(t)
	s, err := New(Config{Registry: m, State: m, Tenants: m, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.putState(ctx, "acme", "code", fmt.Sprint(i), []byte{1}, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.putState(ctx, "acme", "code", "live", []byte{1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	s.purge(ctx)
	if n, err := m.PurgeState(ctx, "acme", 100); err != nil || n != 0 {
		t.Errorf("after purge, PurgeState still found %d expired rows (%v)", n, err)
	}
	if _, ok, err := s.getState(ctx, "acme", "code", "live"); !ok || err != nil {
		t.Errorf("purge deleted a live entry: %v, %v", ok, err)
	}
}

// An id from a request that could not be a state key (NUL, not UTF-8)
// names no entry: absent, not a store error (a 500).
func TestStateIDFromRequest(t *testing.T) {
	ctx := context.Background()
	m := memState(t)
	s, err := New(Config{Registry: m, State: m, Tenants: m, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a\x00b", "\xff\xfe"} {
		if _, ok, err := s.takeState(ctx, "acme", "authz", id); ok || err != nil {
			t.Errorf("takeState(%q) = %v, %v; want absent", id, ok, err)
		}
		if _, ok, err := s.getState(ctx, "acme", "authz", id); ok || err != nil {
			t.Errorf("getState(%q) = %v, %v; want absent", id, ok, err)
		}
		if err := s.delState(ctx, "acme", "authz", id); err != nil {
			t.Errorf("delState(%q) = %v", id, err)
		}
	}
}
