package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher commits readings that arrive one message at a time — MQTT and
// NATS deliver one reading per message — in shared transactions: a group
// commit. A reading waits for no timer: when its tenant has a free commit
// slot it is committed at once, alone; while the tenant's slots are busy,
// readings queue, and each slot that comes free takes up to MaxBatch of them
// into its next transaction. Under light load a reading costs one
// transaction as before; under heavy load transactions grow instead of
// queueing up behind one another, so the throughput of the message
// transports approaches that of HTTP batches.
//
// Ingest returns once the reading's transaction committed (or failed), so a
// transport still acknowledges a message only after its data is durable.
// When a shared transaction fails, each of its readings is retried alone,
// so a reading that cannot be committed fails only itself.
//
// The transports must run enough handlers at once for batches to form: a
// transport with 8 handler goroutines gives transactions of at most 8.
type Batcher struct {
	in       *Ingestor
	maxBatch int
	slots    int
	timeout  time.Duration

	mu    sync.Mutex
	lanes map[string]*lane

	batches, readings atomic.Int64
	retried           atomic.Int64
}

// BatcherConfig configures a Batcher.
type BatcherConfig struct {
	// MaxBatch bounds the readings of one transaction; default 200.
	MaxBatch int
	// Slots is how many transactions one tenant may have in flight at
	// once; default 2 (one committing while the next fills).
	Slots int
	// Timeout bounds one transaction; default 30 s.
	Timeout time.Duration
}

// BatcherStats are cumulative counters since NewBatcher.
type BatcherStats struct {
	Batches  int64 // transactions committed or failed
	Readings int64 // readings in them
	Retried  int64 // readings retried alone after their shared transaction failed
}

// lane is one tenant's queue.
type lane struct {
	queue   []*waiting
	running int // slots in use
}

// waiting is one reading waiting for its transaction.
type waiting struct {
	p    prepared
	done chan struct{}
	res  Result
	err  error
}

// NewBatcher returns a Batcher that commits through in.
func NewBatcher(in *Ingestor, cfg BatcherConfig) *Batcher {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 200
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Batcher{in: in, maxBatch: cfg.MaxBatch, slots: cfg.Slots, timeout: cfg.Timeout, lanes: map[string]*lane{}}
}

// Stats returns the counters.
func (b *Batcher) Stats() BatcherStats {
	return BatcherStats{Batches: b.batches.Load(), Readings: b.readings.Load(), Retried: b.retried.Load()}
}

// Ingest maps one payload (in the caller's goroutine) and commits its
// outcome in a transaction it may share with other readings of the tenant,
// with the contract of Ingestor.Ingest. When ctx ends first Ingest returns
// its error; the reading may still commit then (a redelivered copy is a
// duplicate).
func (b *Batcher) Ingest(ctx context.Context, tenant string, src Source, payload []byte) (Result, error) {
	w := &waiting{p: b.in.prepare(tenant, src, payload), done: make(chan struct{})}
	b.mu.Lock()
	l := b.lanes[tenant]
	if l == nil {
		l = &lane{}
		b.lanes[tenant] = l
	}
	l.queue = append(l.queue, w)
	start := l.running < b.slots
	if start {
		l.running++
	}
	b.mu.Unlock()
	if start {
		go b.drain(tenant, l)
	}
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// drain commits the lane's queue, a batch at a time, until it is empty.
func (b *Batcher) drain(tenant string, l *lane) {
	for {
		b.mu.Lock()
		if len(l.queue) == 0 {
			l.running--
			if l.running == 0 {
				delete(b.lanes, tenant)
			}
			b.mu.Unlock()
			return
		}
		n := min(len(l.queue), b.maxBatch)
		batch := make([]*waiting, n)
		copy(batch, l.queue)
		l.queue = append(l.queue[:0:0], l.queue[n:]...)
		b.mu.Unlock()
		b.commit(tenant, batch)
	}
}

// commit writes batch in one transaction; when that fails, each reading in
// a transaction of its own.
func (b *Batcher) commit(tenant string, batch []*waiting) {
	ps := make([]prepared, len(batch))
	for i, w := range batch {
		ps[i] = w.p
	}
	b.batches.Add(1)
	b.readings.Add(int64(len(batch)))
	rs, err := b.commitOnce(tenant, ps)
	if err != nil && len(batch) > 1 {
		b.retried.Add(int64(len(batch)))
		for _, w := range batch {
			if rs, err := b.commitOnce(tenant, []prepared{w.p}); err != nil {
				w.err = err
			} else {
				w.res = rs[0]
			}
			close(w.done)
		}
		return
	}
	for i, w := range batch {
		if err != nil {
			w.err = err
		} else {
			w.res = rs[i]
		}
		close(w.done)
	}
}

// commitOnce runs one transaction within the configured timeout. It does
// not use a waiting caller's context: the transaction is shared, and one
// caller giving up must not fail the others.
func (b *Batcher) commitOnce(tenant string, ps []prepared) ([]Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	return b.in.commit(ctx, tenant, ps)
}
