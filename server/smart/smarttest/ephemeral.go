package smarttest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Ephemeral is the method set of server/smart.Ephemeral, repeated here so
// that this package need not import server/smart.
type Ephemeral interface {
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Take(ctx context.Context, key string) ([]byte, bool, error)
	Del(ctx context.Context, key string) error
}

// RunEphemeral runs the contract of server/smart.Ephemeral on the store
// newEph returns (empty, or at least without the keys "k-*"). The Redis
// implementation is meant to pass it too.
func RunEphemeral(t *testing.T, newEph func(t *testing.T) Ephemeral) {
	ctx := context.Background()
	t.Run("SetNXGetTakeDel", func(t *testing.T) {
		e := newEph(t)
		mustSet := func(key, val string, want bool) {
			t.Helper()
			ok, err := e.SetNX(ctx, key, []byte(val), time.Minute)
			if err != nil || ok != want {
				t.Fatalf("SetNX(%s) = %v, %v; want %v", key, ok, err, want)
			}
		}
		mustSet("k-a", "one", true)
		mustSet("k-a", "two", false) // never overwrites
		v, ok, err := e.Get(ctx, "k-a")
		if err != nil || !ok || string(v) != "one" {
			t.Fatalf("Get = %q, %v, %v; want one", v, ok, err)
		}
		v, ok, err = e.Take(ctx, "k-a")
		if err != nil || !ok || string(v) != "one" {
			t.Fatalf("Take = %q, %v, %v; want one", v, ok, err)
		}
		if _, ok, err := e.Take(ctx, "k-a"); ok || err != nil {
			t.Fatalf("second Take = %v, %v; want absent", ok, err)
		}
		if _, ok, err := e.Get(ctx, "k-a"); ok || err != nil {
			t.Fatalf("Get after Take = %v, %v; want absent", ok, err)
		}
		mustSet("k-a", "three", true)
		if err := e.Del(ctx, "k-a"); err != nil {
			t.Fatal(err)
		}
		if err := e.Del(ctx, "k-a"); err != nil {
			t.Fatalf("Del of an absent key: %v", err)
		}
		if _, ok, _ := e.Get(ctx, "k-a"); ok {
			t.Fatal("Get after Del found the key")
		}
	})
	t.Run("TTL", func(t *testing.T) {
		e := newEph(t)
		if ok, err := e.SetNX(ctx, "k-ttl", []byte("x"), 50*time.Millisecond); !ok || err != nil {
			t.Fatalf("SetNX = %v, %v", ok, err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, ok, err := e.Get(ctx, "k-ttl"); ok || err != nil {
			t.Fatalf("Get after the TTL = %v, %v; want absent", ok, err)
		}
		if ok, err := e.SetNX(ctx, "k-ttl", []byte("y"), time.Minute); !ok || err != nil {
			t.Fatalf("SetNX after expiry = %v, %v; want stored", ok, err)
		}
	})
	t.Run("ConcurrentTake", func(t *testing.T) {
		e := newEph(t)
		if _, err := e.SetNX(ctx, "k-once", []byte("code"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var won atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, ok, err := e.Take(ctx, "k-once"); ok && err == nil {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if d := cmp.Diff(int32(1), won.Load()); d != "" {
			t.Errorf("Takes that got the value (-want +got):\n%s", d)
		}
	})
}
