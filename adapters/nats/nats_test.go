package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsewire/pulsewire/adapters/transporttest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

const serverAddr = "127.0.0.1:4222"

func TestParseSubject(t *testing.T) {
	s := &Subscriber{prefix: strings.Split("pw.*.devices.*.readings", "."), tenantIdx: 1, deviceIdx: 3}
	type result struct {
		Tenant, Device string
		OK             bool
	}
	for _, tc := range []struct {
		subject string
		want    result
	}{
		{"pw.acme.devices.dev-1.readings", result{"acme", "dev-1", true}},
		{"pw.acme.devices.00:1B:C5:09:40:00:00:01.readings", result{"acme", "00:1B:C5:09:40:00:00:01", true}},
		{"pw.acme.devices." + strings.Repeat("d", 65) + ".readings", result{}},
		{"pw.Acme.devices.dev-1.readings", result{}},
		{"pw.acme.devices.dev/1.readings", result{}},
		{"pw.acme.sensors.dev-1.readings", result{}},
		{"pw.acme.devices.dev-1.readings.x", result{}},
		{"px.acme.devices.dev-1.readings", result{}},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			tenant, device, ok := s.parseSubject(tc.subject)
			if diff := cmp.Diff(tc.want, result{tenant, device, ok}); diff != "" {
				t.Errorf("parseSubject (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsBadSubjects(t *testing.T) {
	h := func(context.Context, Reading) error { return nil }
	for _, subj := range []string{"pw.*.devices.readings", "pw.*.*.*.readings", "pw.>", "pw..*.*"} {
		t.Run(subj, func(t *testing.T) {
			if _, err := New(Config{URL: "nats://" + serverAddr, Stream: "S", Subject: subj}, h); err == nil {
				t.Errorf("New accepted subject %q", subj)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	s := &Subscriber{cfg: Config{Backoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}}
	var got []time.Duration
	for n := uint64(0); n <= 5; n++ {
		got = append(got, s.backoff(n))
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff(0..5) (-want +got):\n%s", diff)
	}
}

func requireServer(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", serverAddr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS not reachable at %s (CI is set): %v", serverAddr, err)
		}
		t.Skipf("NATS with JetStream not reachable at %s; see NOTES.md for the start command: %v", serverAddr, err)
	}
	c.Close()
}

func uniq(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env is one test's stream on the shared server.
type env struct {
	t      *testing.T
	root   string // first subject token
	stream string
	nc     *nats.Conn
	js     jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireServer(t)
	u := uniq(t)
	nc, err := nats.Connect("nats://" + serverAddr)
	if err != nil {
		t.Fatalf("connecting publisher: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: "pwt" + u, stream: "PWT_" + u, nc: nc, js: js}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, e.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", e.stream, err)
		}
		nc.Close()
	})
	return e
}

func (e *env) config() Config {
	return Config{
		URL:           "nats://" + serverAddr,
		Stream:        e.stream,
		Subject:       e.root + ".*.devices.*.readings",
		CreateStream:  true,
		MaxAge:        time.Hour,
		Durable:       "ingest",
		AckWait:       5 * time.Second,
		Concurrency:   4,
		FetchBatch:    50,
		Backoff:       []time.Duration{100 * time.Millisecond},
		ShutdownGrace: 200 * time.Millisecond,
		Logger:        testLogger(),
	}
}

func (e *env) subject(tenant, device string) string {
	return e.root + "." + tenant + ".devices." + device + ".readings"
}

// start runs a Subscriber until the returned stop function is called (or
// the test ends) and waits until its consumer exists.
func (e *env) start(cfg Config, h Handler) (*Subscriber, func()) {
	e.t.Helper()
	s, err := New(cfg, h)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
			s.Close()
		})
	}
	e.t.Cleanup(stop)
	waitFor(e.t, "consumer created", 10*time.Second, func() bool {
		ctx, c := context.WithTimeout(context.Background(), time.Second)
		defer c()
		_, err := e.js.Consumer(ctx, cfg.Stream, cfg.Durable)
		return err == nil
	})
	return s, stop
}

func (e *env) publish(subject string, data []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, subject, data); err != nil {
		e.t.Fatalf("publish: %v", err)
	}
}

// publishAll publishes asynchronously and waits for every PubAck.
func (e *env) publishAll(n int, subject func(i int) string) [][]byte {
	e.t.Helper()
	var all [][]byte
	var acks []jetstream.PubAckFuture
	for i := range n {
		p := payload(i)
		all = append(all, p)
		f, err := e.js.PublishAsync(subject(i), p)
		if err != nil {
			e.t.Fatalf("publish: %v", err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			e.t.Fatalf("publish: %v", err)
		case <-time.After(5 * time.Second):
			e.t.Fatal("no PubAck after 5s")
		}
	}
	return all
}

func (e *env) consumerInfo(durable string) *jetstream.ConsumerInfo {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.js.Consumer(ctx, e.stream, durable)
	if err != nil {
		e.t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return ci
}

// recorder counts handler calls and successful handlings per payload.
type recorder struct {
	*transporttest.Recorder[Reading]
}

func newRecorder() *recorder {
	return &recorder{transporttest.NewRecorder(func(r Reading) []byte { return r.Payload })}
}

func (r *recorder) handle(fn func(ctx context.Context, r Reading, call int) error) Handler {
	return func(ctx context.Context, rd Reading) error {
		return r.Record(ctx, rd, func(ctx context.Context, rd Reading, n int) error { return fn(ctx, rd, n) })
	}
}

func (r *recorder) snapshot() (calls, ok map[string]int) { return r.Snapshot() }

var (
	waitFor  = transporttest.WaitFor
	payload  = transporttest.Payload
	wantOnce = transporttest.WantOnce
)

func ok(context.Context, Reading, int) error { return nil }

func TestDeliversEachReadingOnce(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	s, stop := e.start(e.config(), rec.handle(ok))
	const n = 500
	want := e.publishAll(n, func(i int) string { return e.subject(fmt.Sprintf("t%d", i%5), fmt.Sprintf("dev-%d", i%7)) })
	waitFor(t, "all readings handled", 15*time.Second, func() bool { return s.Stats().Handled >= n })
	stop()

	_, got := rec.snapshot()
	if diff := cmp.Diff(wantOnce(want...), got); diff != "" {
		t.Errorf("successful handlings per reading (-want +got):\n%s", diff)
	}
	r := rec.Reading(payload(12))
	if r.Tenant != "t2" || r.DeviceID != "dev-5" || r.Source != "nats" || !strings.HasPrefix(r.ID, e.stream+":") || r.Received.IsZero() {
		t.Errorf("reading 12 = %+v, want tenant t2, device dev-5, source nats, id %s:seq and a receive time", r, e.stream)
	}
	ci := e.consumerInfo("ingest")
	if ci.NumAckPending != 0 || ci.NumRedelivered != 0 || ci.NumPending != 0 || ci.AckFloor.Stream != n {
		t.Errorf("consumer after run: ack pending %d, redelivered %d, pending %d, ack floor %d; want 0, 0, 0, %d",
			ci.NumAckPending, ci.NumRedelivered, ci.NumPending, ci.AckFloor.Stream, n)
	}
	if st := s.Stats(); st.Received != n || st.Redelivered != 0 {
		t.Errorf("stats %+v: want %d received, none redelivered", st, n)
	}
}

func TestTransientErrorNaksAndRedelivers(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	failing := string(payload(7))
	var deliveries []time.Time
	var mu sync.Mutex
	s, _ := e.start(e.config(), rec.handle(func(_ context.Context, r Reading, call int) error {
		if string(r.Payload) == failing {
			mu.Lock()
			deliveries = append(deliveries, time.Now())
			mu.Unlock()
			if call == 1 {
				return errors.New("database unavailable")
			}
		}
		return nil
	}))
	want := e.publishAll(50, func(int) string { return e.subject("acme", "dev-1") })
	waitFor(t, "all handled", 10*time.Second, func() bool { return s.Stats().Handled == 50 })
	_, got := rec.snapshot()
	if diff := cmp.Diff(wantOnce(want...), got); diff != "" {
		t.Errorf("successful handlings (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Transient != 1 || st.Redelivered != 1 || st.Received != 51 {
		t.Errorf("stats %+v: want 1 transient error, 1 redelivery, 51 received", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 2 {
		t.Fatalf("failing reading delivered %d times, want 2", len(deliveries))
	}
	if d := deliveries[1].Sub(deliveries[0]); d < 90*time.Millisecond {
		t.Errorf("redelivered after %v, want at least the 100ms Nak delay", d)
	}
}

func TestPermanentErrorsBadSubjectsAndOversizeAreTerminated(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	rejected := string(payload(3))
	cfg := e.config()
	cfg.AckWait = time.Second // a message that was not settled would come back within the test
	// The stream accepts 4 KiB; the consumer only 1 KiB (a stream created
	// by someone else may allow more than the consumer does).
	ensure := cfg
	ensure.MaxPayload = 4096
	es, err := New(ensure, func(context.Context, Reading) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := es.EnsureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	es.Close()
	cfg.CreateStream = false
	cfg.MaxPayload = 1024
	s, _ := e.start(cfg, rec.handle(func(_ context.Context, r Reading, _ int) error {
		if string(r.Payload) == rejected {
			return fhir.Errorf(fhir.KindUnprocessable, "payload matches no template")
		}
		return nil
	}))
	e.publishAll(10, func(int) string { return e.subject("acme", "dev-1") })
	e.publish(e.subject("Acme", "dev-1"), payload(100))                 // invalid tenant
	e.publish(e.subject("acme", strings.Repeat("x", 65)), payload(101)) // device id too long
	e.publish(e.subject("acme", "dev-1"), make([]byte, 2048))           // over the consumer's limit
	// Over the stream's limit: the server refuses it at the publisher.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, e.subject("acme", "dev-1"), make([]byte, 8192)); err == nil {
		t.Error("publishing 8 KiB to a stream with MaxMsgSize 4 KiB succeeded, want an error")
	}
	want := Stats{Received: 13, Handled: 9, Rejected: 1, BadSubject: 2, Oversized: 1}
	waitFor(t, "all 13 messages settled", 10*time.Second, func() bool { return s.Stats() == want })
	time.Sleep(1500 * time.Millisecond) // > AckWait: anything unsettled would be redelivered now
	if diff := cmp.Diff(want, s.Stats()); diff != "" {
		t.Errorf("stats after AckWait (-want +got):\n%s", diff)
	}
	calls, _ := rec.snapshot()
	if calls[rejected] != 1 {
		t.Errorf("rejected reading handled %d times, want 1", calls[rejected])
	}
	if ci := e.consumerInfo("ingest"); ci.NumAckPending != 0 || ci.NumRedelivered != 0 {
		t.Errorf("consumer: ack pending %d, redelivered %d; want 0, 0", ci.NumAckPending, ci.NumRedelivered)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	rec1 := newRecorder()
	var mu sync.Mutex
	hold := false
	s1, stop1 := e.start(cfg, rec1.handle(func(ctx context.Context, _ Reading, _ int) error {
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			<-ctx.Done() // cancelled ShutdownGrace after Run's context: never committed
			return ctx.Err()
		}
		return nil
	}))
	const n = 100
	phase1 := e.publishAll(n, func(int) string { return e.subject("acme", "dev-1") })
	waitFor(t, "phase 1 handled", 10*time.Second, func() bool { return s1.Stats().Handled == n })
	mu.Lock()
	hold = true
	mu.Unlock()
	var phase2 [][]byte
	for i := n; i < 2*n; i++ {
		phase2 = append(phase2, payload(i))
		e.publish(e.subject("acme", "dev-1"), payload(i))
	}
	waitFor(t, "phase 2 reaching the handlers", 10*time.Second, func() bool { return s1.Stats().Received > n })
	stop1()

	rec2 := newRecorder()
	s2, stop2 := e.start(cfg, rec2.handle(ok))
	waitFor(t, "phase 2 handled", 10*time.Second, func() bool { return s2.Stats().Handled >= n })
	stop2()
	_, ok1 := rec1.snapshot()
	if diff := cmp.Diff(wantOnce(phase1...), ok1); diff != "" {
		t.Errorf("first run committed (-want +got):\n%s", diff)
	}
	_, ok2 := rec2.snapshot()
	if diff := cmp.Diff(wantOnce(phase2...), ok2); diff != "" {
		t.Errorf("second run handled (-want +got):\n%s", diff)
	}
	t.Logf("observed: first run %+v; second run %+v", s1.Stats(), s2.Stats())
}

func TestSameDurableSplitsLoad(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	cfg := e.config()
	a, _ := e.start(cfg, rec.handle(ok))
	cfg.CreateStream = false
	b, _ := e.start(cfg, rec.handle(ok))
	const n = 500
	want := e.publishAll(n, func(i int) string { return e.subject("acme", fmt.Sprintf("dev-%d", i%10)) })
	waitFor(t, "all handled", 15*time.Second, func() bool { return a.Stats().Handled+b.Stats().Handled >= n })
	time.Sleep(100 * time.Millisecond)
	calls, _ := rec.snapshot()
	if diff := cmp.Diff(wantOnce(want...), calls); diff != "" {
		t.Errorf("handler calls per reading (-want +got):\n%s", diff)
	}
	if a.Stats().Handled == 0 || b.Stats().Handled == 0 {
		t.Errorf("load not split: a handled %d, b handled %d", a.Stats().Handled, b.Stats().Handled)
	}
	t.Logf("observed split: a=%d b=%d", a.Stats().Handled, b.Stats().Handled)
}

func TestInProgressKeepsLongHandlingAlive(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	cfg := e.config()
	cfg.AckWait = 400 * time.Millisecond
	s, _ := e.start(cfg, rec.handle(func(context.Context, Reading, int) error {
		time.Sleep(1200 * time.Millisecond) // three AckWaits
		return nil
	}))
	e.publish(e.subject("acme", "dev-1"), payload(1))
	waitFor(t, "handled", 10*time.Second, func() bool { return s.Stats().Handled == 1 })
	time.Sleep(200 * time.Millisecond)
	if st := s.Stats(); st.Received != 1 {
		t.Errorf("stats %+v: want the slow reading received once (kept alive with InProgress)", st)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("PW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
