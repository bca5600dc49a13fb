package memkv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/kv/kvtest"
)

func TestContract(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store { return New() })
}

// A subscriber that falls more than subBuffer messages behind loses
// messages and is told to resync.
func TestSlowSubscriberResyncs(t *testing.T) {
	s := New()
	ctx := context.Background()
	release := make(chan struct{})
	var mu sync.Mutex
	var msgs, resyncs int
	sub, err := s.Subscribe(ctx, "c", func(m kv.Message) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		if m.Resync {
			resyncs++
		} else {
			msgs++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	total := subBuffer + 100
	for i := range total {
		if err := s.Publish(ctx, "c", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		m, r := msgs, resyncs
		mu.Unlock()
		if r > 0 {
			if m >= total {
				t.Fatalf("got all %d messages and a resync; want some dropped", m)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no resync after dropping messages (got %d of %d)", m, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
