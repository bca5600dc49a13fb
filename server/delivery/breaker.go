package delivery

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Breaker states, as the BreakerState gauge reports them.
const (
	breakerClosed   = 0
	breakerOpen     = 1
	breakerHalfOpen = 2
)

// breaker is a destination's circuit breaker (see BreakerPolicy). Lanes
// report to it concurrently.
type breaker struct {
	failures int
	coolDown time.Duration

	mu          sync.Mutex
	state       int
	consecutive int
	openedAt    time.Time
	probing     bool // half-open: a lane holds the one probe
}

func newBreaker(p BreakerPolicy) *breaker {
	return &breaker{failures: p.Failures, coolDown: time.Duration(p.CoolDown)}
}

// next says what a lane may do at now: wait (the breaker is open, or
// half-open with another lane's probe out; wait that long), or claim, with
// probe set when it may send only one entry (half-open: this lane holds the
// probe until success, failure or unprobe).
func (b *breaker) next(now time.Time) (wait time.Duration, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case breakerOpen:
		if left := b.openedAt.Add(b.coolDown).Sub(now); left > 0 {
			return left, false
		}
		b.state = breakerHalfOpen
	case breakerClosed:
		return 0, false
	}
	if b.probing {
		return min(b.coolDown, 50*time.Millisecond), false
	}
	b.probing = true
	return 0, true
}

// unprobe gives the probe back when its lane did not send it.
func (b *breaker) unprobe() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breakerHalfOpen {
		b.probing = false
	}
}

// open reports whether sending must stop (the breaker opened).
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == breakerOpen
}

// success records an attempt the peer answered; it closes the breaker and
// reports whether it was not closed.
func (b *breaker) success() (closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consecutive = 0
	closed = b.state != breakerClosed
	b.state, b.probing = breakerClosed, false
	return closed
}

// failure records a failed attempt; it reports whether the breaker opened
// because of it.
func (b *breaker) failure(now time.Time) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consecutive++
	if b.state == breakerHalfOpen || (b.state == breakerClosed && b.consecutive >= b.failures) {
		b.state, b.openedAt, b.probing = breakerOpen, now, false
		return true
	}
	return false
}

func (b *breaker) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// backoff is the delay before attempt n+1 after n failed attempts (n >= 1):
// uniformly random in [0, min(max, initial * 2^(n-1))] ("full jitter", so
// that many entries failing together do not come back together).
func backoff(p RetryPolicy, n int, rnd func(int64) int64) time.Duration {
	ceil := time.Duration(p.Max)
	if d := time.Duration(p.Initial); n-1 < 62 {
		if step := d << (n - 1); step > 0 && step>>(n-1) == d && step < ceil {
			ceil = step
		}
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceil) + 1))
}

// jitter is backoff's source of randomness.
func jitter(n int64) int64 { return rand.Int64N(n) }
