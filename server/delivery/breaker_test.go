package delivery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBreaker(t *testing.T) {
	b := newBreaker(BreakerPolicy{Failures: 3, CoolDown: Duration(10 * time.Second)})
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	type step struct {
		at      time.Duration // after t0
		op      string        // "fail", "ok", "next", "unprobe"
		opened  bool          // fail: the breaker opened now
		closed  bool          // ok: the breaker was not closed before
		wait    time.Duration // next
		probe   bool          // next
		isOpen  bool
		current int
	}
	steps := []step{
		{at: 0, op: "fail", current: breakerClosed},
		{at: 1, op: "fail", current: breakerClosed},
		{at: 2, op: "ok", current: breakerClosed}, // a success resets the count
		{at: 3, op: "fail", current: breakerClosed},
		{at: 4, op: "fail", current: breakerClosed},
		{at: 5 * time.Second, op: "fail", opened: true, isOpen: true, current: breakerOpen},
		{at: 6 * time.Second, op: "next", wait: 9 * time.Second, isOpen: true, current: breakerOpen},
		{at: 15 * time.Second, op: "next", probe: true, current: breakerHalfOpen},
		{at: 15 * time.Second, op: "next", wait: 50 * time.Millisecond, current: breakerHalfOpen}, // one probe at a time
		{at: 15 * time.Second, op: "unprobe", current: breakerHalfOpen},                           // it was not sent
		{at: 15 * time.Second, op: "next", probe: true, current: breakerHalfOpen},
		{at: 15 * time.Second, op: "fail", opened: true, isOpen: true, current: breakerOpen}, // the probe failed
		{at: 20 * time.Second, op: "next", wait: 5 * time.Second, isOpen: true, current: breakerOpen},
		{at: 25 * time.Second, op: "next", probe: true, current: breakerHalfOpen},
		{at: 25 * time.Second, op: "ok", closed: true, current: breakerClosed},
		{at: 26 * time.Second, op: "next", current: breakerClosed},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		var got step
		got.at, got.op = s.at, s.op
		switch s.op {
		case "fail":
			got.opened = b.failure(now)
		case "ok":
			got.closed = b.success()
		case "next":
			got.wait, got.probe = b.next(now)
		case "unprobe":
			b.unprobe()
		}
		got.isOpen, got.current = b.open(), b.current()
		if d := cmp.Diff(s, got, cmp.AllowUnexported(step{})); d != "" {
			t.Fatalf("step %d (-want +got):\n%s", i, d)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{Initial: Duration(time.Second), Max: Duration(time.Minute)}
	ceiling := func(n int64) int64 { return n - 1 } // the largest value rnd may return
	var got []time.Duration
	for _, n := range []int{1, 2, 3, 6, 7, 8, 63, 64, 1000} {
		got = append(got, backoff(p, n, ceiling))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 32 * time.Second,
		time.Minute, time.Minute, time.Minute, time.Minute, time.Minute}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("backoff ceilings (-want +got):\n%s", d)
	}
	if d := backoff(p, 3, func(int64) int64 { return 0 }); d != 0 {
		t.Errorf("full jitter's floor = %v, want 0", d)
	}
	for range 1000 {
		if d := backoff(p, 2, jitter); d < 0 || d > 2*time.Second {
			t.Fatalf("backoff after 2 attempts = %v, want within [0, 2s]", d)
		}
	}
}
