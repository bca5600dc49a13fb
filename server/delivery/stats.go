package delivery

import (
	"sync/atomic"
	"time"
)

// Stats are one destination's counters and gauges. server/app exports them
// as Prometheus metrics by reflection: every int64 or float64 field is a
// metric named pulsewire_delivery_<field in snake_case>, labelled with the
// tenant and destination (configuration names, never patient data); fields
// tagged `metric:"gauge"` are gauges, the others counters; AckLatency is a
// histogram.
type Stats struct {
	Tenant      string
	Destination string

	Sent            int64 // messages handed to the transport (every attempt)
	Accepted        int64 // AA and CA
	Errored         int64 // AE and CE
	Rejected        int64 // AR and CR
	Timeouts        int64 // no ACK in time
	TransportErrors int64 // no connection, connection lost, an unusable ACK
	Retried         int64 // attempts rescheduled
	DeadLettered    int64 // entries given up on (AR, build failures, maxAttempts)
	BuildFailures   int64 // entries whose ORU could not be built (dead-lettered)
	StoreErrors     int64 // store calls that failed (claims, reads, settles)
	BreakerOpened   int64 // times the circuit breaker opened

	// Gauges. The queue gauges are refreshed from the store every
	// Config.StatsEvery.
	QueueDepth       int64   `metric:"gauge"` // pending entries
	InFlight         int64   `metric:"gauge"` // pending entries claimed (leased) by any replica
	DeadLetters      int64   `metric:"gauge"` // dead letters waiting for an operator
	OldestAgeSeconds float64 `metric:"gauge"` // age of the oldest pending entry
	Paused           int64   `metric:"gauge"` // 1 when an operator paused the destination
	BreakerState     int64   `metric:"gauge"` // 0 closed, 1 open, 2 half-open

	// AckLatency is the time from sending a message to reading its ACK.
	AckLatency Histogram
}

// Histogram is a latency distribution in seconds: Counts[i] observations
// were at most Bounds[i] (and more than Bounds[i-1]); Count and Sum cover
// every observation, those above the last bound included.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Cumulative returns the count of observations at most each bound, as
// Prometheus histograms are written.
func (h Histogram) Cumulative() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		n += h.Counts[i]
		m[b] = n
	}
	return m
}

// ackBounds are AckLatency's buckets: loopback to a slow engine.
var ackBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// counters are a destination's live Stats.
type counters struct {
	sent, accepted, errored, rejected, timeouts, transport atomic.Int64
	retried, dead, build, store, breakerOpened             atomic.Int64

	depth, inflight, deadLetters, oldestMicros, paused atomic.Int64

	latency      [16]atomic.Uint64 // len(ackBounds) + 1 (above the last bound)
	latencyCount atomic.Uint64
	latencySumNS atomic.Int64
}

func (c *counters) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(ackBounds) && s > ackBounds[i] {
		i++
	}
	c.latency[i].Add(1)
	c.latencyCount.Add(1)
	c.latencySumNS.Add(int64(d))
}

func (c *counters) snapshot(tenant, dest string, breakerState int) Stats {
	s := Stats{
		Tenant: tenant, Destination: dest,
		Sent: c.sent.Load(), Accepted: c.accepted.Load(), Errored: c.errored.Load(), Rejected: c.rejected.Load(),
		Timeouts: c.timeouts.Load(), TransportErrors: c.transport.Load(), Retried: c.retried.Load(),
		DeadLettered: c.dead.Load(), BuildFailures: c.build.Load(), StoreErrors: c.store.Load(),
		BreakerOpened: c.breakerOpened.Load(),
		QueueDepth:    c.depth.Load(), InFlight: c.inflight.Load(), DeadLetters: c.deadLetters.Load(),
		Paused: c.paused.Load(), BreakerState: int64(breakerState),
	}
	if us := c.oldestMicros.Load(); us > 0 {
		s.OldestAgeSeconds = time.Since(time.UnixMicro(us)).Seconds()
	}
	h := Histogram{Bounds: ackBounds, Counts: make([]uint64, len(ackBounds))}
	for i := range ackBounds {
		h.Counts[i] = c.latency[i].Load()
	}
	h.Count = c.latencyCount.Load()
	h.Sum = time.Duration(c.latencySumNS.Load()).Seconds()
	s.AckLatency = h
	return s
}
