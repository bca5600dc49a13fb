package audit

import (
	"context"
	"errors"
	"time"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// queued is one Record call waiting for the dispatcher, or a Flush marker.
type queued struct {
	ev    Event
	at    time.Time
	done  chan error    // RecordDurable: receives the outcome of its commit
	flush chan struct{} // Flush marker: closed once everything before it is settled
}

// errClosed is what Record returns after Close.
var errClosed = fhir.Errorf(fhir.KindInternal, "the auditor is closed")

// Record queues ev to be appended to its tenant's audit chain and returns
// without waiting for the commit (see the package comment for what a
// crash can lose). It blocks while the queue is full, and returns a
// KindInternal error when ctx ends first or the Auditor is closed: the
// caller should then fail its request rather than disclose unaudited data.
// A malformed event (an invalid tenant, id or interaction) is a KindInternal
// error too, reported at once.
func (a *Auditor) Record(ctx context.Context, ev Event) error {
	_, err := a.enqueue(ctx, ev, false)
	return err
}

// RecordDurable is Record, returning only once the event is committed (or
// given up on, which it reports).
func (a *Auditor) RecordDurable(ctx context.Context, ev Event) error {
	q, err := a.enqueue(ctx, ev, true)
	if err != nil {
		return err
	}
	select {
	case err := <-q.done:
		return err
	case <-ctx.Done():
		return fhir.Errorf(fhir.KindInternal, "waiting for an audit record").Wrap(ctx.Err())
	}
}

func (a *Auditor) enqueue(ctx context.Context, ev Event, durable bool) (*queued, error) {
	if err := ev.check(); err != nil {
		return nil, err
	}
	if ev.Principal.isZero() {
		if p, ok := PrincipalFrom(ctx); ok {
			ev.Principal = p
		} else {
			ev.Principal = unknown
		}
	}
	q := &queued{ev: ev, at: a.now()}
	if durable {
		q.done = make(chan error, 1)
	}
	return q, a.send(ctx, q)
}

func (a *Auditor) send(ctx context.Context, q *queued) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return errClosed
	}
	select {
	case a.queue <- q:
		return nil
	default:
	}
	select {
	case a.queue <- q:
		return nil
	case <-ctx.Done():
		a.stats.dropped.Add(1)
		return fhir.Errorf(fhir.KindInternal, "the audit queue is full").Wrap(ctx.Err())
	}
}

// Flush waits until every event queued before it is committed or given up
// on (tests, and callers that must observe their own records).
func (a *Auditor) Flush(ctx context.Context) error {
	q := &queued{flush: make(chan struct{})}
	if err := a.send(ctx, q); err != nil {
		return err
	}
	select {
	case <-q.flush:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events and waits until the queued ones are
// committed. When ctx ends first it stops retrying failed batches, drops
// what is left (logging how many) and returns ctx's error.
func (a *Auditor) Close(ctx context.Context) error {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		close(a.queue)
	})
	select {
	case <-a.stopped:
		return nil
	case <-ctx.Done():
	}
	a.giveUp.Do(func() { close(a.abandon) })
	<-a.stopped
	return ctx.Err()
}

// dispatch takes the queue in batches: the first waiting record and every
// other one already waiting, up to batchSize (so an idle server commits
// each record at once and a busy one commits large groups), and commits
// up to workers batches at once.
func (a *Auditor) dispatch() {
	defer close(a.stopped)
	slots := make(chan struct{}, a.workers)
	var inflight []chan struct{} // done channels of batches not yet known finished
	batch := make([]*queued, 0, a.batchSize)
	for {
		first, ok := <-a.queue
		if !ok {
			break
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < a.batchSize {
			select {
			case q, ok := <-a.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		var events []*queued
		var flushes []chan struct{}
		for _, q := range batch {
			if q.flush != nil {
				flushes = append(flushes, q.flush)
			} else {
				events = append(events, q)
			}
		}
		// Forget finished batches.
		live := inflight[:0]
		for _, d := range inflight {
			select {
			case <-d:
			default:
				live = append(live, d)
			}
		}
		inflight = live
		if len(events) > 0 {
			slots <- struct{}{}
			done := make(chan struct{})
			inflight = append(inflight, done)
			go func() {
				a.commit(events)
				close(done)
				<-slots
			}()
		}
		if len(flushes) > 0 {
			wait := append([]chan struct{}(nil), inflight...)
			go func() {
				for _, d := range wait {
					<-d
				}
				for _, f := range flushes {
					close(f)
				}
			}()
		}
		clear(batch)
	}
	for _, d := range inflight {
		<-d
	}
}

// commit appends a batch, one transaction per tenant, retrying a failed
// transaction with backoff until it commits, its failure is permanent (an
// unknown tenant), or Close gives up.
func (a *Auditor) commit(batch []*queued) {
	byTenant := map[string][]*queued{}
	var tenants []string
	for _, q := range batch {
		if byTenant[q.ev.Tenant] == nil {
			tenants = append(tenants, q.ev.Tenant)
		}
		byTenant[q.ev.Tenant] = append(byTenant[q.ev.Tenant], q)
	}
	for _, t := range tenants {
		qs := byTenant[t]
		err := a.commitTenant(t, qs)
		if err == nil {
			a.stats.recorded.Add(uint64(len(qs)))
		} else {
			a.stats.dropped.Add(uint64(len(qs)))
			a.log.Error("audit: records dropped", "tenant", t, "events", len(qs), "err", err)
		}
		for _, q := range qs {
			if q.done != nil {
				q.done <- err
			}
		}
	}
}

func (a *Auditor) commitTenant(tenant string, qs []*queued) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.appendBatch(tenant, qs)
		if err == nil {
			a.stats.batches.Add(1)
			return nil
		}
		if permanent(err) {
			return err
		}
		a.stats.retries.Add(1)
		a.log.Warn("audit: committing records failed, retrying", "tenant", tenant, "events", len(qs), "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-a.abandon:
			return errors.Join(errors.New("shutting down"), err)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// permanent reports errors that no retry cures: an unknown tenant, a
// store without audit chains, an event that cannot be built.
func permanent(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	switch fhir.ErrorKind(err) {
	case fhir.KindNotFound, fhir.KindInvalid:
		return true
	}
	return false
}

// appendBatch builds the events (new ids each attempt: a commit whose
// outcome was lost may have stored the previous ones, and a duplicate
// record is better than a failed one) and appends them in one transaction.
func (a *Auditor) appendBatch(tenant string, qs []*queued) error {
	evs := make([]*chain.Event, len(qs))
	for i, q := range qs {
		if r := q.ev.Resource; r != nil {
			if q.ev.Patient == "" {
				q.ev.Patient = a.patientOf(r.Type, r.ID, r.Body, nil)
			}
			q.ev.Resource = nil // done with the body
		}
		ce, err := a.build(&q.ev, q.at)
		if err != nil {
			return permanentError{fhir.Errorf(fhir.KindInternal, "building an audit event").Wrap(err)}
		}
		evs[i] = ce
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		app, ok := tx.(chain.Appender)
		if !ok {
			return permanentError{errNoChain}
		}
		return app.AppendAudit(ctx, evs)
	})
}

// permanentError marks a failure no retry cures.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// errNoChain: the store's transactions cannot append audit events.
var errNoChain = fhir.Errorf(fhir.KindInternal, "the store keeps no audit chain; the access cannot be audited")
