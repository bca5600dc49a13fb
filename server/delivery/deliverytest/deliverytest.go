// Package deliverytest is the integration suite of guaranteed delivery: the
// real write hook and worker (server/delivery) over a real store (each
// adapter runs it from its tests) sending to a real MLLP peer on loopback
// that answers AA, AE, AR, nothing, or slowly, goes down and comes back. It
// checks per-patient order under concurrency, retries, dead letters and
// replay, timeouts, an outage, the circuit breaker, pause and resume, a
// worker killed mid-queue, and the hook's rules; Bench measures delivery
// with ACKs.
//
// server/* packages may not import adapters, so the MLLP listener and
// client come in through Transport, which the adapters' tests build from
// adapters/mllp. Only tests import this package.
package deliverytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/delivery"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Transport is the MLLP wiring the caller supplies.
type Transport struct {
	// Serve runs an MLLP listener on ln that answers each frame with
	// handle's result (nil: no answer) and returns a function that shuts
	// it down gracefully: messages being handled get their answer, idle
	// connections are closed, the listener is closed.
	Serve func(ln net.Listener, handle func(ctx context.Context, msg []byte) []byte) (shutdown func())
	// Dial returns a Sender holding one connection to addr, reporting
	// ACK timeouts as delivery.ErrAckTimeout.
	Dial func(addr string, dialTimeout, ackTimeout time.Duration) delivery.Sender
}

// Open returns an empty, migrated store with no tenants (closed by the
// caller's cleanup). Its WriteHooks must not have been added yet.
type Open func(t testing.TB) outbox.Store

// Tenant is where the suite's Observations are written.
const Tenant = "acme"

// Run runs the suite, each case on a fresh store and peer.
func Run(t *testing.T, open Open, tr Transport) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open, tr Transport)
	}{
		{"HookRules", testHookRules},
		{"OrderedOnceUnderConcurrency", testOrderedOnce},
		{"ErrorThenAccept", testErrorThenAccept},
		{"RejectDeadLettersAndReplay", testReject},
		{"RetryOnReject", testRetryOnReject},
		{"TimeoutRetries", testTimeout},
		{"BuildFailureDeadLetters", testBuildFailure},
		{"PauseResume", testPause},
		{"BreakerOpensAndCloses", testBreaker},
		{"Outage", testOutage},
		{"RestartMidQueue", testRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own store and peer
			tc.fn(t, open, tr)
		})
	}
}

// --- the peer ---------------------------------------------------------

// received is one message the peer read (logged when it arrived; Code is
// set once answered).
type received struct {
	ControlID   string
	Observation string        // OBR-3.1
	Patient     string        // PID-3.1
	N           int           // the n-th time this MSH-10 arrived
	Code        hl7v2.AckCode // what it answered; "" for no answer
	At          time.Time
}

// answer is what the peer does with a message.
type answer struct {
	Code   hl7v2.AckCode // "" answers AA
	Delay  time.Duration
	Silent bool
}

// peer is an HL7 interface engine on loopback: it parses every ORU and
// answers as its rule says, recording what it got.
type peer struct {
	t    testing.TB
	tr   Transport
	addr string

	mu       sync.Mutex
	rule     func(r received) answer
	log      []received
	seen     map[string]int
	shutdown func()
}

func startPeer(t testing.TB, tr Transport) *peer {
	t.Helper()
	p := &peer{t: t, tr: tr, seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	p.addr = ln.Addr().String()
	p.shutdown = tr.Serve(ln, p.handle)
	t.Cleanup(p.down)
	return p
}

func (p *peer) setRule(rule func(r received) answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

// down stops the peer (an engine outage): connections close, nothing
// listens. Idempotent.
func (p *peer) down() {
	p.mu.Lock()
	stop := p.shutdown
	p.shutdown = nil
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// up listens again on the same address.
func (p *peer) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	stop := p.tr.Serve(ln, p.handle)
	p.mu.Lock()
	p.shutdown = stop
	p.mu.Unlock()
}

func (p *peer) handle(ctx context.Context, msg []byte) []byte {
	m, _, err := hl7v2.Parse(msg)
	if err != nil {
		return nil
	}
	r := received{ControlID: m.ControlID(), Observation: m.Value("OBR", 3, 1, 1, 1), Patient: m.Value("PID", 3, 1, 1, 1), At: time.Now()}
	p.mu.Lock()
	p.seen[r.ControlID]++
	r.N = p.seen[r.ControlID]
	rule := p.rule
	idx := len(p.log)
	p.log = append(p.log, r)
	p.mu.Unlock()
	a := answer{}
	if rule != nil {
		a = rule(r)
	}
	if a.Code == "" {
		a.Code = hl7v2.AckAccept
	}
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-ctx.Done():
			return nil
		}
	}
	if a.Silent {
		a.Code = ""
	}
	p.mu.Lock()
	p.log[idx].Code = a.Code
	p.mu.Unlock()
	if a.Silent {
		return nil
	}
	ack, err := hl7v2.NewACK(m, hl7v2.AckOptions{Code: a.Code, ControlID: func() string { return "ACK" + r.ControlID }})
	if err != nil {
		p.t.Errorf("building ACK: %v", err)
		return nil
	}
	b, err := hl7v2.Encode(ack)
	if err != nil {
		p.t.Errorf("encoding ACK: %v", err)
		return nil
	}
	return b
}

func (p *peer) received() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]received(nil), p.log...)
}

// acceptedCount is the number of messages answered AA.
func (p *peer) acceptedCount() int {
	n := 0
	for _, r := range p.received() {
		if r.Code == hl7v2.AckAccept {
			n++
		}
	}
	return n
}

// --- the environment --------------------------------------------------

// env is one store with the hook installed, a peer, and a destination
// pointing at it.
type env struct {
	t     testing.TB
	store outbox.Store
	peer  *peer
	tr    Transport
	dest  *delivery.Destination
}

// fast are the settings of the suite's destination: short backoffs and
// cool-down so that failures are retried within the test, and an ACK
// timeout long enough that a loaded machine does not time out AAs (the
// cases about timeouts and restarts shorten it).
func fast(addr string) delivery.DestinationConfig {
	return delivery.DestinationConfig{
		Tenant: Tenant, Name: "engine", Transport: delivery.TransportMLLP, Address: addr,
		Profile: &oru.Settings{
			Kind:                 "pcd01",
			SendingApplication:   oru.HD{Namespace: "PULSEWIRE"},
			ReceivingApplication: oru.HD{Namespace: "ENGINE"},
			Authorities:          map[string]oru.HD{patientSystem: {Namespace: "HOSP"}},
		},
		DialTimeout: delivery.Duration(500 * time.Millisecond),
		AckTimeout:  delivery.Duration(2 * time.Second),
		Retry:       delivery.RetryPolicy{Initial: delivery.Duration(20 * time.Millisecond), Max: delivery.Duration(200 * time.Millisecond)},
		Breaker:     delivery.BreakerPolicy{Failures: 3, CoolDown: delivery.Duration(300 * time.Millisecond)},
		Lanes:       4, Batch: 32, PerPatient: 4,
		Lease: delivery.Duration(5 * time.Second),
	}
}

// shortTimeouts is a 300ms ACK timeout and a 1s lease.
func shortTimeouts(c *delivery.DestinationConfig) {
	c.DialTimeout, c.AckTimeout = delivery.Duration(200*time.Millisecond), delivery.Duration(300*time.Millisecond)
	c.Lease = delivery.Duration(time.Second)
}

func newEnv(t testing.TB, open Open, tr Transport, edit func(c *delivery.DestinationConfig)) *env {
	t.Helper()
	s := open(t)
	for _, tn := range []string{Tenant, "globex"} {
		if err := s.EnsureTenant(context.Background(), tn); err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
	}
	p := startPeer(t, tr)
	c := fast(p.addr)
	if edit != nil {
		edit(&c)
	}
	d, err := delivery.NewDestination(c, oru.DefaultRegistry())
	if err != nil {
		t.Fatalf("NewDestination: %v", err)
	}
	h, ok := s.(fhir.Hooked)
	if !ok {
		t.Fatalf("%T does not run write hooks", s)
	}
	h.AddWriteHook(delivery.Hook(delivery.HookConfig{Destinations: []*delivery.Destination{d}}))
	return &env{t: t, store: s, peer: p, tr: tr, dest: d}
}

const patientSystem = "urn:oid:1.2.3.4.5"

func patientBody(id string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","identifier":[{"system":%q,"value":%q}],"name":[{"family":"Synthetic","given":["Test"]}],"gender":"female","birthDate":"1970-01-01"}`,
		patientSystem, strings.ToUpper(id))
}

const deviceBody = `{"resourceType":"Device","identifier":[{"system":"urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680","value":"00-1C-05-FF-FE-00-00-2A"}],"status":"active"}`

// obsID names the i-th Observation of a patient; obsIndex reads i back.
func obsID(patient string, i int) string { return fmt.Sprintf("o-%s-%05d", patient, i) }

func obsIndex(id string) int {
	n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	return n
}

// obsBody is a heart-rate Observation (MDC and LOINC coded, as PCD-01
// needs) of patient, or with the given status and MDC code.
func obsBody(patient, status string, i int, mdc bool) []byte {
	codes := `{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}`
	if mdc {
		codes += `,{"system":"urn:iso:std:iso:11073:10101","code":"147842","display":"MDC_ECG_HEART_RATE"}`
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339)
	return fmt.Appendf(nil, `{"resourceType":"Observation","status":%q,"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[%s]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"device":{"reference":"Device/dev-%s"},"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		status, codes, patient, at, patient, 60+i%40)
}

func (e *env) put(tenant string, ws ...*fhir.Write) {
	e.t.Helper()
	err := e.store.Tx(context.Background(), tenant, func(tx fhir.Tx) error {
		for _, w := range ws {
			if _, _, err := tx.Put(context.Background(), w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("writing %d resources: %v", len(ws), err)
	}
}

// patients writes Patient and Device resources for ids.
func (e *env) patients(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		e.put(Tenant, &fhir.Write{Type: "Patient", ID: id, Body: patientBody(id)},
			&fhir.Write{Type: "Device", ID: "dev-" + id, Body: []byte(deviceBody)})
	}
}

// observe writes Observations from..to-1 of patient, one transaction each.
func (e *env) observe(patient string, from, to int) {
	e.t.Helper()
	for i := from; i < to; i++ {
		e.put(Tenant, &fhir.Write{Type: "Observation", ID: obsID(patient, i), Body: obsBody(patient, "final", i, true), Fresh: true})
	}
}

// start runs a worker on st (the env's store when nil) until the test
// ends or stop is called.
func (e *env) start(st outbox.Store, dial func(*delivery.Destination) (delivery.Sender, error)) (w *delivery.Worker, stop func()) {
	e.t.Helper()
	if st == nil {
		st = e.store
	}
	if dial == nil {
		dial = e.dial
	}
	w, err := delivery.NewWorker(delivery.Config{Store: st, Destinations: []*delivery.Destination{e.dest}, Dial: dial,
		Poll: 10 * time.Millisecond, StatsEvery: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatalf("NewWorker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = w.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return w, stop
}

func (e *env) dial(d *delivery.Destination) (delivery.Sender, error) {
	return e.tr.Dial(d.Address, time.Duration(d.DialTimeout), time.Duration(d.AckTimeout)), nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// queue returns the destination's queue stats.
func (e *env) queue() outbox.DestinationStats {
	e.t.Helper()
	st, err := e.store.Stats(context.Background(), Tenant, time.Now())
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	for _, s := range st {
		if s.Destination == e.dest.Name {
			return s
		}
	}
	return outbox.DestinationStats{Destination: e.dest.Name}
}

// settled waits until no entry is pending.
func (e *env) settled(timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, "the queue to drain", func() bool { return e.queue().Pending == 0 })
}

func (e *env) entries(state outbox.State) []*outbox.Entry {
	e.t.Helper()
	es, err := e.store.Entries(context.Background(), Tenant, outbox.Filter{State: state, Limit: 1 << 20})
	if err != nil {
		e.t.Fatalf("Entries: %v", err)
	}
	return es
}

// entryOf returns the entry of an Observation's first version.
func (e *env) entryOf(obs string) *outbox.Entry {
	e.t.Helper()
	for _, st := range []outbox.State{outbox.Pending, outbox.Done, outbox.Dead} {
		for _, en := range e.entries(st) {
			if en.ResourceID == obs {
				return en
			}
		}
	}
	e.t.Fatalf("no entry for %s", obs)
	return nil
}

// checkDelivery checks the peer's log: every Observation in want was
// accepted exactly once (or at least once when dups is set), the first
// acceptance of each patient's Observations is in index order, and no
// accepted message was received again unless dups allows it. It returns
// the Observations received more than once.
func checkDelivery(t testing.TB, log []received, want []string, dups bool) (twice []string) {
	t.Helper()
	accepted := map[string]int{}
	times := map[string]int{}
	last := map[string]int{}
	for _, r := range log {
		times[r.Observation]++
		if r.Code != hl7v2.AckAccept {
			continue
		}
		accepted[r.Observation]++
		if accepted[r.Observation] > 1 {
			continue
		}
		i := obsIndex(r.Observation)
		if prev, ok := last[r.Patient]; ok && i <= prev {
			t.Errorf("patient %s: %s accepted after index %d (out of order)", r.Patient, r.Observation, prev)
		}
		last[r.Patient] = i
	}
	for _, o := range want {
		switch n := accepted[o]; {
		case n == 0:
			t.Errorf("%s never accepted", o)
		case n > 1 && !dups:
			t.Errorf("%s accepted %d times", o, n)
		}
		if times[o] > 1 {
			twice = append(twice, o)
		}
	}
	if len(accepted) != len(want) {
		t.Errorf("peer accepted %d distinct Observations, want %d", len(accepted), len(want))
	}
	sort.Strings(twice)
	return twice
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// --- the cases ---------------------------------------------------------

// testHookRules: which writes enqueue what, for which tenant, atomically.
func testHookRules(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	ctx := context.Background()
	obs := func(id, status, subject string) *fhir.Write {
		b := strings.Replace(string(obsBody("p1", status, 1, true)), `"Patient/p1"`, `"`+subject+`"`, 1)
		return &fhir.Write{Type: "Observation", ID: id, Body: []byte(b)}
	}
	e.put(Tenant, obs("o1", "final", "Patient/p1"))                  // new v1
	e.put(Tenant, obs("o2", "registered", "Patient/p1"))             // not a result
	e.put(Tenant, obs("o1", "final", "Patient/p1"))                  // v2: final again, not sent
	e.put(Tenant, obs("o1", "amended", "Patient/p1"))                // v3: correction
	e.put(Tenant, obs("o3", "preliminary", "Patient/p2"))            // new v1
	e.put(Tenant, obs("o3", "final", "Patient/p2"))                  // v2: preliminary -> final
	e.put(Tenant, obs("o3", "final", "Patient/p2"))                  // v3: not sent
	e.put(Tenant, obs("o3", "entered-in-error", "Patient/p2"))       // v4: withdrawn
	e.put(Tenant, obs("o4", "final", "Group/g1"))                    // no patient
	e.put(Tenant, obs("o5", "final", "https://other.org/Patient/x")) // not a local patient
	e.put(Tenant, &fhir.Write{Type: "Patient", ID: "p1", Body: patientBody("p1")})
	e.put("globex", obs("o6", "final", "Patient/p1")) // a tenant without destinations
	err := e.store.Tx(ctx, Tenant, func(tx fhir.Tx) error {
		if _, err := tx.Delete(ctx, "Observation", "o1", 0); err != nil { // deletes send nothing
			return err
		}
		if _, _, err := tx.Put(ctx, obs("o7", "final", "Patient/p1")); err != nil {
			return err
		}
		return errors.New("rolled back")
	})
	if err == nil {
		t.Fatal("the failing transaction committed")
	}
	e.put(Tenant, obs("o8", "corrected", "Patient/p1"))
	type row struct {
		Obs     string
		Version int64
		Event   outbox.Event
		Patient string
	}
	var got []row
	for _, en := range e.entries(outbox.Pending) {
		if en.Destination != e.dest.Name || en.Type != "Observation" || en.Tenant != Tenant {
			t.Errorf("entry %+v: wrong destination, type or tenant", en)
		}
		got = append(got, row{en.ResourceID, en.Version, en.Event, en.Patient})
	}
	want := []row{
		{"o1", 1, outbox.EventNew, "Patient/p1"},
		{"o1", 3, outbox.EventCorrection, "Patient/p1"},
		{"o3", 1, outbox.EventNew, "Patient/p2"},
		{"o3", 2, outbox.EventCorrection, "Patient/p2"},
		{"o3", 4, outbox.EventCorrection, "Patient/p2"},
		{"o8", 1, outbox.EventNew, "Patient/p1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("enqueued (-want +got):\n%s", d)
	}
	if es, err := e.store.Entries(ctx, "globex", outbox.Filter{State: outbox.Pending, Limit: 10}); err != nil || len(es) != 0 {
		t.Errorf("globex entries = %v, %v; want none", es, err)
	}
}

// testOrderedOnce: patients written concurrently while the worker runs on
// four lanes; every Observation is accepted once, each patient's in order.
func testOrderedOnce(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	ps := names("p", 8)
	e.patients(ps...)
	w, _ := e.start(nil, nil)
	const per = 15
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { e.observe(p, 0, per) })
	}
	wg.Wait()
	e.settled(20 * time.Second)
	var want []string
	for _, p := range ps {
		for i := range per {
			want = append(want, obsID(p, i))
		}
	}
	log := e.peer.received()
	checkDelivery(t, log, want, false)
	for _, r := range log {
		if want := strings.ToUpper(strings.Split(r.Observation, "-")[1]); r.Patient != want {
			t.Errorf("%s carried PID-3 %q, want %q", r.Observation, r.Patient, want)
		}
	}
	if n := len(e.entries(outbox.Done)); n != len(want) {
		t.Errorf("%d entries done, want %d", n, len(want))
	}
	st := w.Stats()[0]
	if st.Sent != int64(len(want)) || st.Accepted != int64(len(want)) || st.AckLatency.Count != uint64(len(want)) {
		t.Errorf("stats sent %d accepted %d latency count %d, want %d each", st.Sent, st.Accepted, st.AckLatency.Count, len(want))
	}
}

// testErrorThenAccept: AE twice, then AA; the patient's later results wait.
func testErrorThenAccept(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	e.patients("p1", "p2")
	target := obsID("p1", 0)
	e.peer.setRule(func(r received) answer {
		if r.Observation == target && r.N <= 2 {
			return answer{Code: hl7v2.AckError}
		}
		return answer{}
	})
	e.observe("p1", 0, 3)
	e.observe("p2", 0, 2)
	w, _ := e.start(nil, nil)
	e.settled(10 * time.Second)
	log := e.peer.received()
	checkDelivery(t, log, []string{obsID("p1", 0), obsID("p1", 1), obsID("p1", 2), obsID("p2", 0), obsID("p2", 1)}, false)
	var codes []hl7v2.AckCode
	for _, r := range log {
		if r.Patient == "P1" {
			codes = append(codes, r.Code)
		}
	}
	if d := cmp.Diff([]hl7v2.AckCode{"AE", "AE", "AA", "AA", "AA"}, codes); d != "" {
		t.Errorf("patient p1's answers in arrival order (-want +got):\n%s", d)
	}
	en := e.entryOf(target)
	if en.State != outbox.Done || en.Attempts != 3 || !strings.HasPrefix(en.LastError, "AE") {
		t.Errorf("entry = %+v, want done after 3 attempts, last error AE", en)
	}
	if st := w.Stats()[0]; st.Errored != 2 || st.Retried != 2 || st.Accepted != 5 {
		t.Errorf("stats errored %d retried %d accepted %d, want 2, 2, 5", st.Errored, st.Retried, st.Accepted)
	}
}

// testReject: AR dead-letters at once, the patient's next results go on,
// and a replay (after the engine is fixed) delivers it with a new MSH-10.
func testReject(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	e.patients("p1")
	target := obsID("p1", 0)
	var reject atomic.Bool
	reject.Store(true)
	e.peer.setRule(func(r received) answer {
		if r.Observation == target && reject.Load() {
			return answer{Code: hl7v2.AckReject}
		}
		return answer{}
	})
	e.observe("p1", 0, 3)
	w, _ := e.start(nil, nil)
	e.settled(10 * time.Second)
	dead := e.entries(outbox.Dead)
	if len(dead) != 1 || dead[0].ResourceID != target || dead[0].Attempts != 1 || !strings.HasPrefix(dead[0].LastError, "AR") {
		t.Fatalf("dead letters = %+v, want %s after one AR", dead, target)
	}
	if st := w.Stats()[0]; st.Rejected != 1 || st.DeadLettered != 1 || st.BreakerOpened != 0 {
		t.Errorf("stats rejected %d dead %d breaker %d, want 1, 1, 0", st.Rejected, st.DeadLettered, st.BreakerOpened)
	}
	waitFor(t, 5*time.Second, "the dead-letter gauge", func() bool { return w.Stats()[0].DeadLetters == 1 })

	reject.Store(false)
	if err := e.store.Replay(context.Background(), Tenant, dead[0].ID, time.Now()); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	e.settled(10 * time.Second)
	log := e.peer.received()
	var ids []string
	for _, r := range log {
		if r.Observation == target {
			ids = append(ids, string(r.Code)+" "+r.ControlID)
		}
	}
	first := "PW" + strings.ToUpper(strconv.FormatInt(dead[0].ID, 36))
	if d := cmp.Diff([]string{"AR " + first, "AA " + first + ".1"}, ids); d != "" {
		t.Errorf("%s's arrivals (-want +got):\n%s", target, d)
	}
	if en := e.entryOf(target); en.State != outbox.Done || en.Replays != 1 {
		t.Errorf("replayed entry = %+v, want done with 1 replay", en)
	}
	// The others went on while it was dead: accepted before the replay.
	var order []string
	for _, r := range log {
		if r.Code == hl7v2.AckAccept {
			order = append(order, r.Observation)
		}
	}
	if d := cmp.Diff([]string{obsID("p1", 1), obsID("p1", 2), target}, order); d != "" {
		t.Errorf("accepted in order (-want +got):\n%s", d)
	}
}

// testRetryOnReject: with retryOnReject, AR is retried like AE.
func testRetryOnReject(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, func(c *delivery.DestinationConfig) { c.RetryOnReject = true })
	e.patients("p1")
	e.peer.setRule(func(r received) answer {
		if r.N <= 2 {
			return answer{Code: hl7v2.AckReject}
		}
		return answer{}
	})
	e.observe("p1", 0, 2)
	e.start(nil, nil)
	e.settled(10 * time.Second)
	checkDelivery(t, e.peer.received(), []string{obsID("p1", 0), obsID("p1", 1)}, false)
	if dead := e.entries(outbox.Dead); len(dead) != 0 {
		t.Errorf("dead letters = %+v, want none", dead)
	}
}

// testTimeout: no answer (then a too slow one) is retried with the same
// MSH-10 until an AA arrives in time.
func testTimeout(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, shortTimeouts)
	e.patients("p1")
	target := obsID("p1", 0)
	e.peer.setRule(func(r received) answer {
		switch {
		case r.Observation != target:
		case r.N == 1:
			return answer{Silent: true}
		case r.N == 2:
			return answer{Code: hl7v2.AckError, Delay: time.Second} // too late: the worker waits 300ms
		}
		return answer{}
	})
	e.observe("p1", 0, 2)
	w, _ := e.start(nil, nil)
	e.settled(10 * time.Second)
	log := e.peer.received()
	checkDelivery(t, log, []string{target, obsID("p1", 1)}, false)
	cids := map[string]bool{}
	n := 0
	for _, r := range log {
		if r.Observation == target {
			cids[r.ControlID] = true
			n++
		}
	}
	if n < 3 || len(cids) != 1 {
		t.Errorf("%s arrived %d times with %d control ids, want at least 3 with one", target, n, len(cids))
	}
	if st := w.Stats()[0]; st.Timeouts < 2 || st.Accepted != 2 {
		t.Errorf("stats timeouts %d accepted %d, want at least 2 and 2", st.Timeouts, st.Accepted)
	}
}

// testBuildFailure: an Observation the profile cannot code (no MDC code
// for PCD-01) is dead-lettered with a reason and does not block.
func testBuildFailure(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	e.patients("p1")
	e.put(Tenant, &fhir.Write{Type: "Observation", ID: obsID("p1", 0), Body: obsBody("p1", "final", 0, false)})
	e.observe("p1", 1, 2)
	w, _ := e.start(nil, nil)
	e.settled(10 * time.Second)
	dead := e.entries(outbox.Dead)
	if len(dead) != 1 || dead[0].ResourceID != obsID("p1", 0) || !strings.Contains(dead[0].LastError, "MDC") {
		t.Fatalf("dead letters = %+v, want %s for its missing MDC code", dead, obsID("p1", 0))
	}
	if strings.Contains(dead[0].LastError, "P1") {
		t.Errorf("reason %q holds patient data", dead[0].LastError)
	}
	log := e.peer.received()
	if len(log) != 1 || log[0].Observation != obsID("p1", 1) {
		t.Errorf("peer got %+v, want only %s", log, obsID("p1", 1))
	}
	if st := w.Stats()[0]; st.BuildFailures != 1 || st.Sent != 1 {
		t.Errorf("stats build failures %d sent %d, want 1, 1", st.BuildFailures, st.Sent)
	}
}

// testPause: a paused destination sends nothing and its queue grows; on
// resume everything goes, in order.
func testPause(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	ctx := context.Background()
	e.patients("p1", "p2")
	if err := e.store.SetPaused(ctx, Tenant, e.dest.Name, true, time.Now()); err != nil {
		t.Fatalf("pausing: %v", err)
	}
	w, _ := e.start(nil, nil)
	e.observe("p1", 0, 3)
	e.observe("p2", 0, 2)
	waitFor(t, 5*time.Second, "the queue gauges", func() bool {
		st := w.Stats()[0]
		return st.Paused == 1 && st.QueueDepth == 5 && st.OldestAgeSeconds > 0
	})
	time.Sleep(200 * time.Millisecond) // twenty polls
	if log := e.peer.received(); len(log) != 0 {
		t.Fatalf("peer got %d messages while paused", len(log))
	}
	if err := e.store.SetPaused(ctx, Tenant, e.dest.Name, false, time.Now()); err != nil {
		t.Fatalf("resuming: %v", err)
	}
	e.settled(10 * time.Second)
	checkDelivery(t, e.peer.received(), []string{obsID("p1", 0), obsID("p1", 1), obsID("p1", 2), obsID("p2", 0), obsID("p2", 1)}, false)
	waitFor(t, 5*time.Second, "the gauges after resume", func() bool {
		st := w.Stats()[0]
		return st.Paused == 0 && st.QueueDepth == 0 && st.OldestAgeSeconds == 0
	})
}

// testBreaker: an engine answering AE to everything gets Failures attempts,
// then one probe per cool-down, not a retry storm; the breaker closes on
// the first AA.
func testBreaker(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, func(c *delivery.DestinationConfig) {
		c.Breaker = delivery.BreakerPolicy{Failures: 3, CoolDown: delivery.Duration(400 * time.Millisecond)}
	})
	ps := names("p", 10)
	e.patients(ps...)
	var broken atomic.Bool
	broken.Store(true)
	e.peer.setRule(func(r received) answer {
		if broken.Load() {
			return answer{Code: hl7v2.AckError}
		}
		return answer{}
	})
	for _, p := range ps {
		e.observe(p, 0, 1)
	}
	w, _ := e.start(nil, nil)
	const phase = 1600 * time.Millisecond
	time.Sleep(phase)
	log := e.peer.received()
	// Without a breaker, ten entries retried every <=200ms would make
	// about a hundred attempts. With it: the lane that claimed them sends
	// Failures of them, stops when the breaker opens (the others go back
	// to the queue), then one lane at a time sends one probe per cool-down.
	if limit := 3 + int(phase/(400*time.Millisecond)) + 1; len(log) > limit {
		t.Errorf("%d attempts while the engine failed, want at most %d", len(log), limit)
	}
	if len(log) < 5 {
		t.Fatalf("%d attempts in %v, want the 3 that open the breaker and probes", len(log), phase)
	}
	st := w.Stats()[0]
	if st.BreakerOpened < 2 || st.BreakerState == 0 {
		t.Errorf("breaker opened %d times, state %d; want opened again after failed probes, not closed", st.BreakerOpened, st.BreakerState)
	}
	// From the attempt that opened it, attempts are a cool-down apart.
	for i := 3; i < len(log); i++ {
		if gap := log[i].At.Sub(log[i-1].At); gap < 350*time.Millisecond {
			t.Errorf("attempts %d and %d only %v apart while the breaker was open", i, i+1, gap)
		}
	}
	broken.Store(false)
	e.settled(10 * time.Second)
	var want []string
	for _, p := range ps {
		want = append(want, obsID(p, 0))
	}
	checkDelivery(t, e.peer.received(), want, false)
	if st := w.Stats()[0]; st.BreakerState != 0 {
		t.Errorf("breaker state %d after recovery, want closed", st.BreakerState)
	}
}

// outage is how long testOutage keeps the engine down: PULSEWIRE_OUTAGE
// (e.g. 30s, as issue 4 asks), 3s by default to keep the suite short.
func outage(t testing.TB) time.Duration {
	if v := os.Getenv("PULSEWIRE_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PULSEWIRE_OUTAGE: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

// testOutage: the engine goes down while results keep coming, then comes
// back: everything is delivered once, in order per patient.
func testOutage(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, nil)
	ps := names("p", 6)
	e.patients(ps...)
	w, _ := e.start(nil, nil)
	next := map[string]int{}
	write := func(rounds int, pause time.Duration) {
		for range rounds {
			for _, p := range ps {
				e.observe(p, next[p], next[p]+1)
				next[p]++
			}
			time.Sleep(pause)
		}
	}
	write(3, 0)
	waitFor(t, 5*time.Second, "delivery before the outage", func() bool { return e.queue().Pending == 0 })
	down := outage(t)
	t.Logf("engine down for %v", down)
	e.peer.down()
	start := time.Now()
	for time.Since(start) < down {
		write(1, 50*time.Millisecond)
	}
	q := e.queue()
	if q.Pending == 0 || time.Since(q.Oldest) < down/2 {
		t.Errorf("queue at the end of the outage: %+v, want a backlog as old as the outage", q)
	}
	e.peer.up()
	write(2, 0)
	e.settled(down + 20*time.Second)
	var want []string
	for _, p := range ps {
		for i := range next[p] {
			want = append(want, obsID(p, i))
		}
	}
	if twice := checkDelivery(t, e.peer.received(), want, false); len(twice) > 0 {
		t.Errorf("received more than once: %v", twice)
	}
	st := w.Stats()[0]
	if st.BreakerOpened == 0 || st.TransportErrors == 0 || st.BreakerState != 0 {
		t.Errorf("stats breaker opened %d, transport errors %d, state %d: want it to have opened and closed again", st.BreakerOpened, st.TransportErrors, st.BreakerState)
	}
	t.Logf("%d results delivered; %d transport errors, breaker opened %d times", len(want), st.TransportErrors, st.BreakerOpened)
}

// killable is a store and transport that "crash": once killed, claims,
// settles and new sends fail, as if the process had died (a message
// already on the wire still reaches the engine, and its AA is lost).
type killable struct {
	outbox.Store
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (k *killable) Claim(ctx context.Context, tenant, destination string, now time.Time, opts outbox.ClaimOptions) ([]*outbox.Entry, error) {
	if k.dead.Load() {
		return nil, errKilled
	}
	return k.Store.Claim(ctx, tenant, destination, now, opts)
}

func (k *killable) Settle(ctx context.Context, tenant string, now time.Time, outcomes []outbox.Outcome) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Settle(ctx, tenant, now, outcomes)
}

type killableSender struct {
	delivery.Sender
	k *killable
}

func (s killableSender) Send(ctx context.Context, msg []byte) ([]byte, error) {
	if s.k.dead.Load() {
		return nil, errKilled
	}
	return s.Sender.Send(ctx, msg)
}

// testRestart kills a worker mid-queue and starts another on the same
// database: nothing is lost, nothing recorded as accepted is sent again,
// and per-patient order holds. Messages whose AA came back but was not
// recorded before the crash are sent again (at least once); they carry the
// same MSH-10, so the engine can discard them.
func testRestart(t *testing.T, open Open, tr Transport) {
	e := newEnv(t, open, tr, shortTimeouts) // the killed worker's leases end soon
	ps := names("p", 6)
	e.patients(ps...)
	const per = 20
	for _, p := range ps {
		e.observe(p, 0, per)
	}
	e.peer.setRule(func(r received) answer { return answer{Delay: 3 * time.Millisecond} })
	k := &killable{Store: e.store}
	_, stop1 := e.start(k, func(d *delivery.Destination) (delivery.Sender, error) {
		s, err := e.dial(d)
		return killableSender{s, k}, err
	})
	total := len(ps) * per
	waitFor(t, 10*time.Second, "a third of the queue", func() bool { return e.peer.acceptedCount() >= total/3 })
	k.dead.Store(true)
	stop1()
	recorded := map[string]bool{}
	for _, en := range e.entries(outbox.Done) {
		recorded[en.ResourceID] = true
	}
	atKill := len(e.peer.received())
	t.Logf("killed after %d messages; %d recorded as delivered", atKill, len(recorded))
	if len(recorded) == 0 || len(recorded) == total {
		t.Fatalf("%d of %d recorded at the kill: the test did not kill mid-queue", len(recorded), total)
	}

	e.start(nil, nil) // the restarted server
	e.settled(15 * time.Second)
	var want []string
	for _, p := range ps {
		for i := range per {
			want = append(want, obsID(p, i))
		}
	}
	log := e.peer.received()
	twice := checkDelivery(t, log, want, true)
	for _, o := range twice {
		if recorded[o] {
			t.Errorf("%s was recorded as delivered before the crash and sent again", o)
		}
	}
	// Only what was in flight (claimed, not recorded) can go twice.
	if max := e.dest.Batch; len(twice) > max {
		t.Errorf("%d results sent twice, more than the in-flight window (%d)", len(twice), max)
	}
	t.Logf("re-sent after the restart (AA not recorded before the crash): %v", twice)
	if n := len(e.entries(outbox.Done)); n != total {
		t.Errorf("%d entries done, want %d", n, total)
	}
}

// --- benchmark ---------------------------------------------------------

// Bench measures delivery with ACKs to one loopback MLLP destination: b.N
// results of 64 patients are enqueued (not timed), then a worker delivers
// them all; it reports msgs/s and checks per-patient order.
func Bench(b *testing.B, open Open, tr Transport) {
	e := newEnv(b, open, tr, func(c *delivery.DestinationConfig) {
		c.Lanes, c.Batch, c.PerPatient = 8, 64, 16
		c.AckTimeout, c.Lease = delivery.Duration(5*time.Second), delivery.Duration(time.Minute)
	})
	ps := names("p", 64)
	e.patients(ps...)
	b.ResetTimer()
	b.StopTimer()
	// Enqueue b.N results in transactions of 256 Observations.
	var ws []*fhir.Write
	count := map[string]int{}
	for i := range b.N {
		p := ps[i%len(ps)]
		ws = append(ws, &fhir.Write{Type: "Observation", ID: obsID(p, count[p]), Body: obsBody(p, "final", count[p], true), Fresh: true})
		count[p]++
		if len(ws) == 256 || i == b.N-1 {
			e.put(Tenant, ws...)
			ws = ws[:0]
		}
	}
	b.StartTimer()
	start := time.Now()
	_, stop := e.start(nil, nil)
	waitFor(b, 5*time.Minute, "delivery", func() bool { return e.peer.acceptedCount() >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	last := map[string]int{}
	for _, r := range e.peer.received() {
		i := obsIndex(r.Observation)
		if prev, ok := last[r.Patient]; ok && i <= prev {
			b.Fatalf("patient %s: %s after index %d", r.Patient, r.Observation, prev)
		}
		last[r.Patient] = i
	}
}
