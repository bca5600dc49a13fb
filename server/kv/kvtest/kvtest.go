// Package kvtest is the shared test suite of the server/kv contract: every
// implementation (server/kv/memkv, adapters/redis) runs Run from its own
// tests, so they behave alike. Only tests import it.
package kvtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/kv"
)

// NewStore returns a store with no keys visible (a fresh one, or one under
// a key prefix of its own) for one test, cleaned up when the test ends.
type NewStore func(t *testing.T) kv.Store

// Run runs the suite; each subtest gets its own store from newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s kv.Store)
	}{
		{"GetSetDel", testGetSetDel},
		{"TTL", testTTL},
		{"SetNX", testSetNX},
		{"Take", testTake},
		{"TakeIsAtomic", testTakeAtomic},
		{"Incr", testIncr},
		{"PubSub", testPubSub},
		{"PubSubClose", testPubSubClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustGet(t *testing.T, s kv.Store, key string) []byte {
	t.Helper()
	v, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func wantNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("%s: err = %v, want kv.ErrNotFound", what, err)
	}
}

func testGetSetDel(t *testing.T, s kv.Store) {
	c := ctx(t)
	_, err := s.Get(c, "a")
	wantNotFound(t, err, "Get of a missing key")

	// Values are bytes, binary-safe.
	val := []byte{0, 1, 2, 0xff, '\n'}
	if err := s.Set(c, "a", val, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(c, "b", []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(val, mustGet(t, s, "a")); diff != "" {
		t.Errorf("Get(a) (-want +got):\n%s", diff)
	}
	if err := s.Set(c, "a", []byte("replaced"), 0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]byte("replaced"), mustGet(t, s, "a")); diff != "" {
		t.Errorf("Get(a) after a second Set (-want +got):\n%s", diff)
	}
	if err := s.Del(c, "a", "b", "never-set"); err != nil {
		t.Fatalf("Del: %v", err)
	}
	for _, k := range []string{"a", "b"} {
		_, err := s.Get(c, k)
		wantNotFound(t, err, "Get after Del of "+k)
	}
}

// eventually polls cond every 10 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testTTL(t *testing.T, s kv.Store) {
	c := ctx(t)
	if err := s.Set(c, "short", []byte("x"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(c, "long", []byte("y"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "short"); string(got) != "x" {
		t.Fatalf("Get(short) right after Set = %q", got)
	}
	eventually(t, 3*time.Second, "short-lived key expired", func() bool {
		_, err := s.Get(c, "short")
		return errors.Is(err, kv.ErrNotFound)
	})
	if got := mustGet(t, s, "long"); string(got) != "y" {
		t.Fatalf("Get(long) = %q, want y", got)
	}
	// A Set without ttl clears an earlier expiry.
	if err := s.Set(c, "cleared", []byte("1"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(c, "cleared", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if got := mustGet(t, s, "cleared"); string(got) != "2" {
		t.Fatalf("Get(cleared) = %q, want 2 (Set with ttl 0 must not expire)", got)
	}
	// Incr keeps the expiry.
	if err := s.Set(c, "counter", []byte("5"), 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Incr(c, "counter"); err != nil || n != 6 {
		t.Fatalf("Incr(counter) = %d, %v; want 6", n, err)
	}
	eventually(t, 3*time.Second, "incremented key kept its expiry", func() bool {
		_, err := s.Get(c, "counter")
		return errors.Is(err, kv.ErrNotFound)
	})
}

func testSetNX(t *testing.T, s kv.Store) {
	c := ctx(t)
	ok, err := s.SetNX(c, "k", []byte("first"), 0)
	if err != nil || !ok {
		t.Fatalf("SetNX on a missing key = %v, %v; want true", ok, err)
	}
	ok, err = s.SetNX(c, "k", []byte("second"), 0)
	if err != nil || ok {
		t.Fatalf("SetNX on an existing key = %v, %v; want false", ok, err)
	}
	if got := mustGet(t, s, "k"); string(got) != "first" {
		t.Fatalf("Get after a refused SetNX = %q, want first", got)
	}
	// An expired key counts as missing.
	if _, err := s.SetNX(c, "e", []byte("old"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "SetNX succeeds once the key expired", func() bool {
		ok, err := s.SetNX(c, "e", []byte("new"), 0)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if got := mustGet(t, s, "e"); string(got) != "new" {
		t.Fatalf("Get(e) = %q, want new", got)
	}
}

func testTake(t *testing.T, s kv.Store) {
	c := ctx(t)
	_, err := s.Take(c, "code")
	wantNotFound(t, err, "Take of a missing key")
	if err := s.Set(c, "code", []byte("grant"), time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.Take(c, "code")
	if err != nil || string(got) != "grant" {
		t.Fatalf("Take = %q, %v; want grant", got, err)
	}
	_, err = s.Take(c, "code")
	wantNotFound(t, err, "second Take")
	_, err = s.Get(c, "code")
	wantNotFound(t, err, "Get after Take")
}

func testTakeAtomic(t *testing.T, s kv.Store) {
	c := ctx(t)
	const rounds, takers = 20, 8
	for r := range rounds {
		key := fmt.Sprintf("once-%d", r)
		if err := s.Set(c, key, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Take(c, key)
				switch {
				case err == nil:
					mu.Lock()
					winners++
					mu.Unlock()
				case !errors.Is(err, kv.ErrNotFound):
					t.Errorf("Take: %v", err)
				}
			}()
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("round %d: %d concurrent Takes got the value, want exactly 1", r, winners)
		}
	}
}

func testIncr(t *testing.T, s kv.Store) {
	c := ctx(t)
	var got []int64
	for range 3 {
		n, err := s.Incr(c, "n")
		if err != nil {
			t.Fatalf("Incr: %v", err)
		}
		got = append(got, n)
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, got); diff != "" {
		t.Errorf("Incr from missing (-want +got):\n%s", diff)
	}
	if got := mustGet(t, s, "n"); string(got) != "3" {
		t.Errorf("Get after Incr = %q, want the decimal 3", got)
	}
	if err := s.Set(c, "big", []byte("1700000000000000000"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Incr(c, "big"); err != nil || n != 1700000000000000001 {
		t.Errorf("Incr(big) = %d, %v", n, err)
	}
	if err := s.Set(c, "text", []byte("not a number"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(c, "text"); err == nil {
		t.Error("Incr of a non-integer value succeeded")
	}

	// Concurrent increments are not lost.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := s.Incr(c, "par"); err != nil {
					t.Errorf("Incr: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := mustGet(t, s, "par"); string(got) != "200" {
		t.Errorf("after 200 concurrent Incr: %q", got)
	}
}

// recorder collects what a subscription delivers.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) fn(m kv.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Resync {
		r.got = append(r.got, "<resync>")
		return
	}
	r.got = append(r.got, string(m.Payload))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// waitFor waits until the recorder holds n messages and returns them.
func (r *recorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d messages delivered", n), func() bool {
		return len(r.snapshot()) >= n
	})
	return r.snapshot()
}

func subscribe(t *testing.T, s kv.Store, channel string, r *recorder) kv.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctx(t), channel, r.fn)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func testPubSub(t *testing.T, s kv.Store) {
	c := ctx(t)
	var a, b, other recorder
	subscribe(t, s, "inval", &a)
	subscribe(t, s, "inval", &b)
	subscribe(t, s, "elsewhere", &other)

	var want []string
	for i := range 50 {
		msg := fmt.Sprintf("m%d", i)
		want = append(want, msg)
		if err := s.Publish(c, "inval", []byte(msg)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if diff := cmp.Diff(want, a.waitFor(t, len(want))); diff != "" {
		t.Errorf("subscriber a, in publish order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, b.waitFor(t, len(want))); diff != "" {
		t.Errorf("subscriber b, in publish order (-want +got):\n%s", diff)
	}
	// A message on the other channel arrives there, and proves (by
	// arriving after the burst) that none of the burst went there.
	if err := s.Publish(c, "elsewhere", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"x"}, other.waitFor(t, 1)); diff != "" {
		t.Errorf("subscriber of another channel (-want +got):\n%s", diff)
	}
	// Publishing with no subscriber is fine.
	if err := s.Publish(c, "nobody", []byte("x")); err != nil {
		t.Errorf("Publish with no subscriber: %v", err)
	}
}

func testPubSubClose(t *testing.T, s kv.Store) {
	c := ctx(t)
	var closed, open recorder
	sub := subscribe(t, s, "ch", &closed)
	subscribe(t, s, "ch", &open)
	if err := s.Publish(c, "ch", []byte("before")); err != nil {
		t.Fatal(err)
	}
	closed.waitFor(t, 1)
	open.waitFor(t, 1)
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Publish(c, "ch", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// Once the open subscriber has "after", the closed one had its chance.
	if diff := cmp.Diff([]string{"before", "after"}, open.waitFor(t, 2)); diff != "" {
		t.Errorf("open subscriber (-want +got):\n%s", diff)
	}
	time.Sleep(50 * time.Millisecond)
	if diff := cmp.Diff([]string{"before"}, closed.snapshot()); diff != "" {
		t.Errorf("closed subscriber got messages after Close (-want +got):\n%s", diff)
	}
}
