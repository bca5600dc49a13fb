package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
)

// Config configures a Worker.
type Config struct {
	Store        outbox.Store
	Destinations []*Destination
	// Dial returns a new Sender (one connection, opened lazily or at once)
	// for d. The worker calls it once per lane, again after Close.
	Dial func(d *Destination) (Sender, error)
	// Logger gets ids, codes and counts, never message content.
	Logger *slog.Logger

	Poll       time.Duration // how often an idle destination looks for due entries; default 250ms
	StatsEvery time.Duration // how often the queue gauges are refreshed; default 5s
	// Retention is how long done entries are kept (then purged, every
	// hour); default 7 days, negative: never purged.
	Retention time.Duration
}

// Worker delivers the outbox: one loop per destination claims due entries,
// builds their ORU^R01 messages, sends them over its lanes and settles the
// results. Run it once per process; replicas may run it too (leases keep
// them apart).
type Worker struct {
	cfg   Config
	log   *slog.Logger
	dests []*destWorker
}

// NewWorker checks cfg and builds a Worker.
func NewWorker(cfg Config) (*Worker, error) {
	if cfg.Store == nil || cfg.Dial == nil {
		return nil, errors.New("delivery: a worker needs a store and a Dial function")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = 5 * time.Second
	}
	if cfg.Retention == 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	w := &Worker{cfg: cfg, log: cfg.Logger}
	seen := map[string]bool{}
	for _, d := range cfg.Destinations {
		if seen[d.Key()] {
			return nil, fmt.Errorf("delivery: destination %s is configured twice", d.Key())
		}
		seen[d.Key()] = true
		w.dests = append(w.dests, &destWorker{w: w, d: d, br: newBreaker(d.Breaker), log: cfg.Logger.With("tenant", d.Tenant, "destination", d.Name)})
	}
	return w, nil
}

// Stats returns every destination's counters, in configuration order.
func (w *Worker) Stats() []Stats {
	out := make([]Stats, len(w.dests))
	for i, d := range w.dests {
		out[i] = d.c.snapshot(d.d.Tenant, d.d.Name, d.br.current())
	}
	return out
}

// Run delivers until ctx ends, then stops gracefully: messages in flight
// get their ACK (or time out) and are settled; entries claimed but not sent
// are released. It returns nil. Store and transport failures are logged,
// counted and retried, never fatal.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range w.dests {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Go(func() { w.housekeeping(ctx) })
	wg.Wait()
	return nil
}

// housekeeping refreshes the queue gauges and purges old done entries.
func (w *Worker) housekeeping(ctx context.Context) {
	tenants := map[string][]*destWorker{}
	for _, d := range w.dests {
		tenants[d.d.Tenant] = append(tenants[d.d.Tenant], d)
	}
	var lastPurge time.Time
	for {
		now := time.Now()
		for tenant, ds := range tenants {
			w.refresh(ctx, tenant, ds, now)
		}
		if w.cfg.Retention > 0 && now.Sub(lastPurge) >= time.Hour {
			lastPurge = now
			for tenant := range tenants {
				w.purge(ctx, tenant, now.Add(-w.cfg.Retention))
			}
		}
		if !sleep(ctx, w.cfg.StatsEvery) {
			return
		}
	}
}

func (w *Worker) refresh(ctx context.Context, tenant string, ds []*destWorker, now time.Time) {
	st, err := w.cfg.Store.Stats(ctx, tenant, now)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("delivery: reading queue stats failed", "tenant", tenant, "err", err)
			for _, d := range ds {
				d.c.store.Add(1)
			}
		}
		return
	}
	for _, d := range ds {
		var s outbox.DestinationStats
		for _, x := range st {
			if x.Destination == d.d.Name {
				s = x
			}
		}
		d.c.depth.Store(s.Pending)
		d.c.inflight.Store(s.InFlight)
		d.c.deadLetters.Store(s.Dead)
		var oldest int64
		if !s.Oldest.IsZero() {
			oldest = s.Oldest.UnixMicro()
		}
		d.c.oldestMicros.Store(oldest)
		var paused int64
		if s.Paused {
			paused = 1
		}
		d.c.paused.Store(paused)
	}
}

func (w *Worker) purge(ctx context.Context, tenant string, before time.Time) {
	const chunk = 10000
	for ctx.Err() == nil {
		n, err := w.cfg.Store.Purge(ctx, tenant, before, chunk)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("delivery: purging done entries failed", "tenant", tenant, "err", err)
			}
			return
		}
		if n < chunk {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// destWorker is one destination: Lanes loops, each with one connection,
// that claim, send and settle on their own (see lane).
type destWorker struct {
	w   *Worker
	d   *Destination
	br  *breaker
	c   counters
	log *slog.Logger
}

func (dw *destWorker) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range dw.d.Lanes {
		wg.Go(func() { dw.lane(ctx) })
	}
	wg.Wait()
}

// lane is one connection's loop: claim due entries, load what their
// messages need, send them (each patient's in order), settle, again. Lanes
// run concurrently; the claim rule keeps a patient's entries on one lane
// at a time, so per-patient order holds, and the database work of one lane
// overlaps the sending of the others.
func (dw *destWorker) lane(ctx context.Context) {
	l := &laneState{}
	defer l.close()
	st := dw.w.cfg.Store
	for ctx.Err() == nil {
		now := time.Now()
		wait, probe := dw.br.next(now)
		if wait > 0 {
			sleep(ctx, wait)
			continue
		}
		opts := outbox.ClaimOptions{Limit: dw.d.Batch, PerPatient: dw.d.PerPatient, Lease: time.Duration(dw.d.Lease)}
		if probe {
			opts.Limit, opts.PerPatient = 1, 1
		}
		es, err := st.Claim(ctx, dw.d.Tenant, dw.d.Name, now, opts)
		if err != nil || len(es) == 0 {
			if probe {
				dw.br.unprobe()
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				dw.c.store.Add(1)
				dw.log.Warn("delivery: claiming entries failed", "err", err)
			}
			sleep(ctx, dw.w.cfg.Poll)
			continue
		}
		outcomes := dw.wave(ctx, l, es, now.Add(opts.Lease))
		if probe {
			dw.br.unprobe() // the probe was not sent (built badly, or the worker stops)
		}
		dw.settle(ctx, outcomes)
	}
}

// laneState is a lane's connection, dialled when first needed.
type laneState struct{ s Sender }

func (l *laneState) close() {
	if l.s != nil {
		_ = l.s.Close()
	}
}

// settle records a wave's outcomes. It runs even when ctx has ended (a
// graceful stop records what was sent); when the store fails, the entries
// stay leased until their lease ends and are then sent again (delivery is
// at least once).
func (dw *destWorker) settle(ctx context.Context, outcomes []outbox.Outcome) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	var err error
	for attempt := range 3 {
		if err = dw.w.cfg.Store.Settle(sctx, dw.d.Tenant, time.Now(), outcomes); err == nil {
			return
		}
		dw.c.store.Add(1)
		if attempt < 2 && !sleep(sctx, time.Duration(attempt+1)*200*time.Millisecond) {
			break
		}
	}
	dw.log.Error("delivery: recording results failed; the entries will be sent again when their lease ends",
		"entries", len(outcomes), "err", err)
}

// wave delivers one claim on the lane's connection: the resources the
// messages need are loaded first (a few round trips for the whole claim),
// then each patient's entries go in order, patients in the order of their
// oldest entry.
func (dw *destWorker) wave(ctx context.Context, l *laneState, es []*outbox.Entry, leaseUntil time.Time) []outbox.Outcome {
	var groups [][]*outbox.Entry
	index := map[string]int{}
	for _, e := range es { // es is in seq order
		i, ok := index[e.Patient]
		if !ok {
			i = len(groups)
			index[e.Patient] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	shared, err := preload(ctx, dw.w.cfg.Store, dw.d.Tenant, es)
	if err != nil && ctx.Err() == nil {
		dw.c.store.Add(1)
		dw.log.Warn("delivery: loading resources failed; reading them one by one", "err", err)
	}
	rs := &resources{st: dw.w.cfg.Store, tenant: dw.d.Tenant, shared: shared}
	out := make([]outbox.Outcome, 0, len(es))
	for _, g := range groups {
		out = append(out, dw.group(ctx, l, g, leaseUntil, rs)...)
	}
	return out
}

// group sends one patient's entries in order. After a failure that will be
// retried, the patient's later entries are released unsent (they must not
// overtake it); so are all remaining ones when the worker is stopping, the
// breaker opened or the lease is about to end.
func (dw *destWorker) group(ctx context.Context, l *laneState, g []*outbox.Entry, leaseUntil time.Time, rs *resources) []outbox.Outcome {
	out := make([]outbox.Outcome, 0, len(g))
	budget := time.Duration(dw.d.DialTimeout) + time.Duration(dw.d.AckTimeout)
	for i, e := range g {
		if ctx.Err() != nil || dw.br.open() || time.Now().Add(budget).After(leaseUntil) {
			for _, r := range g[i:] {
				out = append(out, outbox.Outcome{ID: r.ID, Result: outbox.Release})
			}
			break
		}
		o := dw.deliver(ctx, l, e, rs)
		out = append(out, o)
		if o.Result == outbox.Retry {
			for _, r := range g[i+1:] {
				out = append(out, outbox.Outcome{ID: r.ID, Result: outbox.Release})
			}
			break
		}
	}
	return out
}

// deliver builds and sends one entry and returns its outcome.
func (dw *destWorker) deliver(ctx context.Context, l *laneState, e *outbox.Entry, rs *resources) outbox.Outcome {
	cid := controlID(dw.d.ControlIDPrefix, e)
	log := dw.log.With("entry", e.ID, "observation", e.ResourceID, "version", e.Version, "control_id", cid)
	msg, err := build(ctx, rs, dw.d, e, cid)
	if err != nil {
		var be *buildError
		if errors.As(err, &be) && be.permanent {
			dw.c.build.Add(1)
			return dw.deadLetter(log, e, be.msg)
		}
		dw.c.store.Add(1)
		return dw.retry(log, e, err.Error(), false)
	}
	s, err := dw.sender(l)
	if err != nil {
		dw.c.transport.Add(1)
		dw.failed()
		return dw.retry(log, e, "connecting: "+errText(err), true)
	}
	// A message in flight finishes even when the worker is stopping: its
	// ACK decides whether it is sent again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(dw.d.DialTimeout)+time.Duration(dw.d.AckTimeout))
	defer cancel()
	start := time.Now()
	dw.c.sent.Add(1)
	ack, err := s.Send(sctx, msg)
	if err != nil {
		if isTimeout(err) {
			dw.c.timeouts.Add(1)
		} else {
			dw.c.transport.Add(1)
		}
		dw.failed()
		return dw.retry(log, e, errText(err), true)
	}
	dw.c.observe(time.Since(start))
	code, desc, err := readACK(ack, cid)
	if err != nil {
		dw.c.transport.Add(1)
		_ = s.Close() // out of step: start again on a new connection
		dw.failed()
		return dw.retry(log, e, err.Error(), true)
	}
	switch code {
	case hl7v2.AckAccept, hl7v2.AckCommitAccept:
		dw.c.accepted.Add(1)
		dw.succeeded()
		return outbox.Outcome{ID: e.ID, Result: outbox.Delivered}
	case hl7v2.AckError, hl7v2.AckCommitError:
		dw.c.errored.Add(1)
		dw.failed()
		return dw.retry(log, e, desc, true)
	}
	// AR, CR: the engine is up and refuses this message.
	dw.c.rejected.Add(1)
	dw.succeeded()
	if dw.d.RetryOnReject {
		return dw.retry(log, e, desc, true)
	}
	return dw.deadLetter(log, e, desc)
}

// sender returns the lane's Sender, dialling it when needed.
func (dw *destWorker) sender(l *laneState) (Sender, error) {
	if l.s == nil {
		s, err := dw.w.cfg.Dial(dw.d)
		if err != nil {
			return nil, err
		}
		l.s = s
	}
	return l.s, nil
}

func (dw *destWorker) failed() {
	if dw.br.failure(time.Now()) {
		dw.c.breakerOpened.Add(1)
		dw.log.Warn("delivery: circuit breaker opened", "cool_down", time.Duration(dw.d.Breaker.CoolDown).String())
	}
}

func (dw *destWorker) succeeded() {
	if dw.br.success() {
		dw.log.Info("delivery: circuit breaker closed")
	}
}

// retry schedules e again (or dead-letters it after MaxAttempts). counted
// says the attempt reached the transport (a store failure is not the
// destination's attempt, but is retried the same way).
func (dw *destWorker) retry(log *slog.Logger, e *outbox.Entry, why string, counted bool) outbox.Outcome {
	n := e.Attempts + 1
	if counted && dw.d.Retry.MaxAttempts > 0 && n >= dw.d.Retry.MaxAttempts {
		return dw.deadLetter(log, e, fmt.Sprintf("gave up after %d attempts: %s", n, why))
	}
	dw.c.retried.Add(1)
	next := time.Now().Add(backoff(dw.d.Retry, n, jitter))
	log.Debug("delivery: attempt failed; retrying", "attempt", n, "reason", why, "next", next)
	return outbox.Outcome{ID: e.ID, Result: outbox.Retry, NextAttempt: next, Error: why}
}

func (dw *destWorker) deadLetter(log *slog.Logger, e *outbox.Entry, why string) outbox.Outcome {
	dw.c.dead.Add(1)
	log.Warn("delivery: entry dead-lettered", "reason", why, "attempts", e.Attempts+1)
	return outbox.Outcome{ID: e.ID, Result: outbox.DeadLetter, Error: why}
}
