package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// gatedStore is a chain.Store whose transactions wait for gate and then
// fail with the next error of fail (while any is left) or append.
type gatedStore struct {
	fhir.Store // nil: only Tx is used
	gate       chan struct{}

	mu       sync.Mutex
	fail     []error
	appended []string // resource ids of the appended events, in order
}

func (s *gatedStore) Tx(ctx context.Context, tenant string, fn func(fhir.Tx) error) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	if len(s.fail) > 0 {
		err := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return fn(gatedTx{s: s})
}

func (s *gatedStore) AuditHeads(context.Context, string) (chain.Heads, error) {
	return chain.Heads{}, nil
}
func (s *gatedStore) AuditEntries(context.Context, string, int, int64, int) ([]chain.Entry, error) {
	return nil, nil
}

func (s *gatedStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.appended...)
}

// gatedTx is a transaction that only appends (the Auditor calls nothing
// else of it).
type gatedTx struct {
	fhir.Tx // nil
	s       *gatedStore
}

// AppendAudit records the patient each event is about (from its body).
func (t gatedTx) AppendAudit(_ context.Context, evs []*chain.Event) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	const what = `"what":{"reference":"Patient/`
	for _, e := range evs {
		body := string(e.Suffix)
		k := strings.Index(body, what) + len(what)
		t.s.appended = append(t.s.appended, body[k:k+strings.IndexByte(body[k:], '"')])
	}
	return nil
}

func readOf(id string) Event {
	return Event{Tenant: "acme", Interaction: Read, Type: "Patient", ID: id}
}

func newGated(t *testing.T, s *gatedStore, queue int) *Auditor {
	t.Helper()
	a, err := New(Config{Store: s, Registry: search.NewRegistry(), QueueSize: queue, BatchSize: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBackpressure: with the database stalled, Record queues up to the
// queue's size, then blocks and fails when its context ends; once the
// database answers, everything queued is appended, in order.
func TestBackpressure(t *testing.T) {
	s := &gatedStore{gate: make(chan struct{})}
	a := newGated(t, s, 2)
	ctx := context.Background()
	// p1 in flight, p2 taken by the dispatcher (waiting for a worker),
	// p3 and p4 queued.
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		if err := a.Record(ctx, readOf(id)); err != nil {
			t.Fatalf("Record %s: %v", id, err)
		}
		if id == "p1" || id == "p2" {
			waitFor(t, func() bool { return a.Stats().Queued == 0 })
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.Record(short, readOf("p5")); !fhir.IsKind(err, fhir.KindInternal) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record on a full queue = %v, want KindInternal wrapping the deadline", err)
	}
	if st := a.Stats(); st.Queued != 2 || st.Dropped != 1 {
		t.Errorf("Stats = %+v, want 2 queued, 1 dropped", st)
	}
	close(s.gate)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"p1", "p2", "p3", "p4"}, s.ids()); d != "" {
		t.Errorf("appended (-want +got):\n%s", d)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Record(ctx, readOf("p6")); err == nil {
		t.Error("Record after Close succeeded")
	}
}

// TestRetryThenDurable: a batch whose transaction fails is tried again
// until it commits; RecordDurable returns once it has.
func TestRetryThenDurable(t *testing.T) {
	gate := make(chan struct{})
	close(gate)
	transient := fhir.Errorf(fhir.KindInternal, "database error")
	s := &gatedStore{gate: gate, fail: []error{transient, transient}}
	a := newGated(t, s, 8)
	defer a.Close(context.Background())
	if err := a.RecordDurable(context.Background(), readOf("p1")); err != nil {
		t.Fatalf("RecordDurable: %v", err)
	}
	if st := a.Stats(); st.Retries != 2 || st.Recorded != 1 || st.Batches != 1 {
		t.Errorf("Stats = %+v, want 2 retries, 1 recorded in 1 batch", st)
	}
	// A permanent failure (an unknown tenant) is not retried.
	s.mu.Lock()
	s.fail = []error{fhir.Errorf(fhir.KindNotFound, "unknown tenant")}
	s.mu.Unlock()
	if err := a.RecordDurable(context.Background(), readOf("p2")); !fhir.IsKind(err, fhir.KindNotFound) {
		t.Errorf("RecordDurable for an unknown tenant = %v, want KindNotFound", err)
	}
	if st := a.Stats(); st.Retries != 2 || st.Dropped != 1 {
		t.Errorf("Stats = %+v, want still 2 retries, 1 dropped", st)
	}
}

// TestCloseGivesUp: Close drains what it can; when its context ends while
// the database keeps failing, it stops retrying, drops what is left and
// says so.
func TestCloseGivesUp(t *testing.T) {
	gate := make(chan struct{})
	close(gate)
	down := fhir.Errorf(fhir.KindInternal, "database error")
	s := &gatedStore{gate: gate, fail: []error{down, down, down, down, down, down, down, down, down, down}}
	a := newGated(t, s, 8)
	for _, id := range []string{"p1", "p2"} {
		if err := a.Record(context.Background(), readOf(id)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline", err)
	}
	if st := a.Stats(); st.Dropped != 2 || st.Recorded != 0 {
		t.Errorf("Stats = %+v, want both events dropped", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
