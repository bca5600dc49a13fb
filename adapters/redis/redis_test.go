package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/kv/kvtest"
)

// testURL is the Redis the tests use: PULSEWIRE_TEST_REDIS or the local
// development server.
func testURL() string {
	if u := os.Getenv("PULSEWIRE_TEST_REDIS"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// newTestStore returns a Store on the test Redis under a random key prefix,
// whose keys are deleted when the test ends. The test is skipped when Redis
// is unreachable, and fails then when CI is set.
func newTestStore(t *testing.T, query string) *Store {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "pwtest:" + hex.EncodeToString(rnd[:]) + ":"
	u := testURL()
	if query != "" {
		u += "?" + query
	}
	s, err := New(Options{URL: u, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis not reachable at %s (CI is set): %v", testURL(), err)
		}
		t.Skipf("Redis not reachable at %s (set PULSEWIRE_TEST_REDIS): %v", testURL(), err)
	}
	t.Cleanup(func() {
		if err := s.Clear(context.Background()); err != nil {
			t.Errorf("deleting test keys: %v", err)
		}
		_ = s.Close()
	})
	return s
}

func TestContract(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store { return newTestStore(t, "") })
}

// Two stores with different prefixes share one Redis without seeing each
// other's keys or channels.
func TestPrefixesIsolate(t *testing.T) {
	a, b := newTestStore(t, ""), newTestStore(t, "")
	ctx := context.Background()
	if err := a.Set(ctx, "k", []byte("a"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("b.Get(k) = %v, want ErrNotFound", err)
	}
	got := make(chan string, 2)
	sub, err := b.Subscribe(ctx, "c", func(m kv.Message) { got <- string(m.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := a.Publish(ctx, "c", []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "c", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "from b" {
			t.Fatalf("b's subscriber got %q, want only b's message", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

// When Redis drops the subscriber's connection, the subscription comes back
// by itself, tells the subscriber to resync, and delivers later messages.
func TestSubscriptionReconnects(t *testing.T) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "pwtest-sub-" + hex.EncodeToString(rnd[:])
	s := newTestStore(t, "client_name="+name)
	ctx := context.Background()
	var mu sync.Mutex
	var got []string
	// The context only bounds setting up: the subscription outlives it.
	setup, cancel := context.WithTimeout(ctx, 5*time.Second)
	sub, err := s.Subscribe(setup, "inval", func(m kv.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Resync {
			got = append(got, "<resync>")
		} else {
			got = append(got, string(m.Payload))
		}
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, m := range snapshot() {
				if m == want {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q after 10 s; got %q", want, snapshot())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := s.Publish(ctx, "inval", []byte("one")); err != nil {
		t.Fatal(err)
	}
	waitFor("one")

	// Kill our own pub/sub connection only (the Redis is shared).
	killed := killClient(t, s, name)
	if killed == 0 {
		t.Fatal("found no pub/sub connection of ours to kill")
	}
	waitFor("<resync>")
	// Publish until one arrives: the re-subscription may land just after
	// the resync notice is queued.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.Publish(ctx, "inval", []byte("two")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if m := snapshot(); m[len(m)-1] == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message after the reconnect; got %q", snapshot())
		}
	}
}

// killClient kills the pub/sub connections named name and returns how many.
func killClient(t *testing.T, s *Store, name string) int {
	t.Helper()
	ctx := context.Background()
	list, err := s.c.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		// A subscribed connection has sub=1 (or more).
		if fields["name"] != name || fields["sub"] == "" || fields["sub"] == "0" {
			continue
		}
		if err := s.c.Do(ctx, "CLIENT", "KILL", "ID", fields["id"]).Err(); err != nil {
			t.Fatalf("CLIENT KILL: %v", err)
		}
		n++
	}
	return n
}

// With Redis unreachable every call fails fast with an error that is not
// ErrNotFound, and Subscribe fails instead of hanging.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s, err := New(Options{URL: "redis://" + addr + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, kv.ErrNotFound) {
		t.Errorf("Get with Redis down = %v, want a connection error", err)
	}
	if _, err := s.Incr(ctx, "k"); err == nil {
		t.Error("Incr with Redis down succeeded")
	}
	if _, err := s.Subscribe(ctx, "c", func(kv.Message) {}); err == nil {
		t.Error("Subscribe with Redis down succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("calls with Redis down took %v; want a quick failure", d)
	}
}

// Clear deletes its own prefix's keys only, even when the prefix has glob
// characters.
func TestClear(t *testing.T) {
	a := newTestStore(t, "")
	// other's prefix is a's plus "*x:": unescaped, its pattern would match
	// a's keys "zx:…".
	other, err := New(Options{URL: testURL(), Prefix: a.prefix + "*x:"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	for _, k := range []string{"zx:k1", "zx:k2", "*x:mine"} {
		if err := a.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"zx:k1", "zx:k2"} {
		if _, err := a.Get(ctx, k); err != nil {
			t.Errorf("other.Clear deleted a's key %s: %v", k, err)
		}
	}
	if _, err := a.Get(ctx, "*x:mine"); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("other.Clear left its own key: %v", err)
	}
	if err := a.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"zx:k1", "zx:k2"} {
		if _, err := a.Get(ctx, k); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("%s after Clear: %v", k, err)
		}
	}
	if err := (&Store{}).Clear(ctx); err == nil {
		t.Error("Clear without a prefix ran")
	}
}

func TestBadURL(t *testing.T) {
	if _, err := New(Options{URL: "http://127.0.0.1:6379"}); err == nil {
		t.Fatal("New accepted an http URL")
	}
	_, err := New(Options{URL: "redis://user:s3cret@127.0.0.1:notaport/0"})
	if err == nil {
		t.Fatal("New accepted a bad port")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}
