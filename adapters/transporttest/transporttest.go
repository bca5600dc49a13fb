// Package transporttest holds what the ingest transports' tests
// (adapters/mqtt, adapters/nats) share: a recorder of handler calls per
// payload, a wait helper and payload makers. Test code only; it imports
// nothing of ours.
package transporttest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Recorder counts handler calls and successful handlings per payload, and
// keeps the last successfully handled reading of each.
type Recorder[R any] struct {
	payload func(R) []byte
	mu      sync.Mutex
	calls   map[string]int
	ok      map[string]int
	reading map[string]R
}

// NewRecorder records readings keyed by their payload.
func NewRecorder[R any](payload func(R) []byte) *Recorder[R] {
	return &Recorder[R]{payload: payload, calls: map[string]int{}, ok: map[string]int{}, reading: map[string]R{}}
}

// Record counts a call of rd, runs fn with the call's number for that
// payload (1 for the first), and counts a success when fn returns nil.
func (r *Recorder[R]) Record(ctx context.Context, rd R, fn func(ctx context.Context, rd R, call int) error) error {
	k := string(r.payload(rd))
	r.mu.Lock()
	r.calls[k]++
	n := r.calls[k]
	r.mu.Unlock()
	err := fn(ctx, rd, n)
	if err == nil {
		r.mu.Lock()
		r.ok[k]++
		r.reading[k] = rd
		r.mu.Unlock()
	}
	return err
}

// Snapshot copies the counts: calls and successes per payload.
func (r *Recorder[R]) Snapshot() (calls, ok map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls, ok = map[string]int{}, map[string]int{}
	for k, v := range r.calls {
		calls[k] = v
	}
	for k, v := range r.ok {
		ok[k] = v
	}
	return calls, ok
}

// Reading is the last successfully handled reading with this payload.
func (r *Recorder[R]) Reading(payload []byte) R {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reading[string(payload)]
}

// WaitFor polls cond until it holds, failing the test after d.
func WaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Payload is the i-th test payload.
func Payload(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) }

// WantOnce is the count map of payloads each handled exactly once.
func WantOnce(keys ...[]byte) map[string]int {
	m := map[string]int{}
	for _, k := range keys {
		m[string(k)] = 1
	}
	return m
}
