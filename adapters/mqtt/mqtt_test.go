package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/adapters/transporttest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

const brokerAddr = "127.0.0.1:1883"

func TestParseTopic(t *testing.T) {
	s, err := New(Config{Brokers: []string{"mqtt://x"}, ClientID: "c", TopicPrefix: "pw/site1"}, func(context.Context, Reading) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Tenant, Device string
		OK             bool
	}
	for _, tc := range []struct {
		topic string
		want  result
	}{
		{"pw/site1/acme/devices/dev-1/readings", result{"acme", "dev-1", true}},
		{"pw/site1/acme/devices/00:1B:C5:09:40:00:00:01/readings", result{"acme", "00:1B:C5:09:40:00:00:01", true}},
		{"pw/site1/acme/devices/" + strings.Repeat("d", 64) + "/readings", result{"acme", strings.Repeat("d", 64), true}},
		{"pw/site1/acme/devices/" + strings.Repeat("d", 65) + "/readings", result{}},
		{"pw/site1/Acme/devices/dev-1/readings", result{}},   // tenant must be lowercase
		{"pw/site1/acme/devices/dev 1/readings", result{}},   // space in device id
		{"pw/site1/acme/devices//readings", result{}},        // empty device id
		{"pw/site1/acme/sensors/dev-1/readings", result{}},   // wrong literal
		{"pw/site1/acme/devices/dev-1/readings/x", result{}}, // too deep
		{"pw/site2/acme/devices/dev-1/readings", result{}},   // other prefix
		{"pw/site1/acme/devices/dev-1/reading", result{}},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			tenant, device, ok := s.parseTopic(tc.topic)
			if diff := cmp.Diff(tc.want, result{tenant, device, ok}); diff != "" {
				t.Errorf("parseTopic (-want +got):\n%s", diff)
			}
		})
	}
}

// requireBroker skips the test when Mosquitto is not reachable, unless CI is
// set: then the missing broker is a failure.
func requireBroker(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", brokerAddr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Mosquitto not reachable at %s (CI is set): %v", brokerAddr, err)
		}
		t.Skipf("Mosquitto not reachable at %s; start it with `mosquitto -d -c /etc/mosquitto/mosquitto.conf`: %v", brokerAddr, err)
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

// env is one test's namespace on the shared broker.
type env struct {
	t      *testing.T
	addr   string // broker host:port
	prefix string
	group  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireBroker(t)
	u := uniq(t)
	return &env{t: t, addr: brokerAddr, prefix: "pwt-" + u, group: "g" + u}
}

func (e *env) config(clientID string) Config {
	return Config{
		Brokers:       []string{"mqtt://" + e.addr},
		ClientID:      clientID,
		Group:         e.group,
		TopicPrefix:   e.prefix,
		Concurrency:   4,
		SessionExpiry: time.Minute, // test sessions must not linger on the shared broker
		RetryDelay:    100 * time.Millisecond,
		ShutdownGrace: 200 * time.Millisecond,
		Logger:        testLogger(),
	}
}

func (e *env) topic(tenant, device string) string {
	return e.prefix + "/" + tenant + "/devices/" + device + "/readings"
}

// start runs a Subscriber until the returned stop function is called (or
// the test ends) and waits for its subscription.
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
		})
	}
	e.t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-done:
		e.t.Fatalf("Run returned before subscribing: %v", err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("subscriber not ready after 10s")
	}
	return s, stop
}

// publisher is a plain MQTT v5 client publishing at QoS 1.
func (e *env) publisher() *autopaho.ConnectionManager {
	e.t.Helper()
	u, _ := url.Parse("mqtt://" + e.addr)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ClientConfig:                  paho.ClientConfig{ClientID: "pub-" + uniq(e.t)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		dctx, dc := context.WithTimeout(context.Background(), 5*time.Second)
		defer dc()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		e.t.Fatalf("publisher connect: %v", err)
	}
	return cm
}

func publish(t *testing.T, cm *autopaho.ConnectionManager, topic string, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// recorder counts handler calls and successful handlings per payload.
type recorder struct {
	*transporttest.Recorder[Reading]
}

func newRecorder() *recorder {
	return &recorder{transporttest.NewRecorder(func(r Reading) []byte { return r.Payload })}
}

func (r *recorder) handle(fn func(r Reading, call int) error) Handler {
	return func(ctx context.Context, rd Reading) error {
		return r.Record(ctx, rd, func(ctx context.Context, rd Reading, n int) error { return fn(rd, n) })
	}
}

func (r *recorder) snapshot() (calls, ok map[string]int) { return r.Snapshot() }

var (
	waitFor  = transporttest.WaitFor
	payload  = transporttest.Payload
	wantOnce = transporttest.WantOnce
)

func TestDeliversEachReadingOnce(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	cfg := e.config("sub-" + uniq(t))
	h := rec.handle(func(Reading, int) error { return nil })
	s, stop := e.start(cfg, h)
	pub := e.publisher()

	const n = 500
	var want [][]byte
	for i := range n {
		p := payload(i)
		want = append(want, p)
		publish(t, pub, e.topic(fmt.Sprintf("t%d", i%5), fmt.Sprintf("dev-%d", i%7)), p)
	}
	// One reading from an MQTT 3.1.1 device, when the Mosquitto client is installed.
	if path, err := exec.LookPath("mosquitto_pub"); err == nil {
		p := []byte(`{"v311":true}`)
		want = append(want, p)
		out, err := exec.Command(path, "-h", "127.0.0.1", "-p", "1883", "-V", "mqttv311", "-q", "1",
			"-t", e.topic("t311", "dev-311"), "-m", string(p)).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, out)
		}
	}
	waitFor(t, "all readings handled", 15*time.Second, func() bool { return s.Stats().Handled >= int64(len(want)) })
	stop()

	_, ok := rec.snapshot()
	if diff := cmp.Diff(wantOnce(want...), ok); diff != "" {
		t.Errorf("successful handlings per reading (-want +got):\n%s", diff)
	}
	got := rec.Reading(payload(12))
	if got.Tenant != "t2" || got.DeviceID != "dev-5" || got.Source != "mqtt" || got.ID == "" || got.Received.IsZero() {
		t.Errorf("reading 12 = %+v, want tenant t2, device dev-5, source mqtt, an id and a receive time", got)
	}

	// The same session, resumed: every reading was acknowledged, so the
	// broker must not redeliver any.
	s2, stop2 := e.start(cfg, h)
	time.Sleep(500 * time.Millisecond)
	stop2()
	if st := s2.Stats(); st.Received != 0 {
		t.Errorf("resumed session received %d readings after all were acknowledged, want 0 (stats %+v)", st.Received, st)
	}
}

func TestTransientErrorRedelivers(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	failing := string(payload(7))
	h := rec.handle(func(r Reading, call int) error {
		if string(r.Payload) == failing && call == 1 {
			return errors.New("database unavailable")
		}
		return nil
	})
	s, _ := e.start(e.config("sub-"+uniq(t)), h)
	pub := e.publisher()
	const n = 50
	var want [][]byte
	for i := range n {
		want = append(want, payload(i))
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	waitFor(t, "every reading handled successfully", 15*time.Second, func() bool {
		_, ok := rec.snapshot()
		return len(ok) == n
	})
	calls, ok := rec.snapshot()
	if calls[failing] != 2 {
		t.Errorf("failing reading handled %d times, want 2 (fail, then redelivered)", calls[failing])
	}
	for _, w := range want {
		if ok[string(w)] < 1 {
			t.Errorf("reading %s never succeeded", w)
		}
	}
	st := s.Stats()
	if st.Transient != 1 || st.ForcedDrops != 1 || st.Connects < 2 || st.Duplicates < 1 {
		t.Errorf("stats %+v: want 1 transient error, 1 forced drop, a reconnect and at least 1 DUP redelivery", st)
	}
	// Readings received after the failed one on the dropped connection may
	// be handled twice (their PUBACKs queue behind it); log how many were.
	var twice int
	for _, v := range ok {
		if v > 1 {
			twice++
		}
	}
	t.Logf("observed: %d readings handled twice after the forced reconnect; stats %+v", twice, st)
}

func TestPermanentErrorsBadTopicsAndOversizeAreAcknowledged(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	rejected := string(payload(3))
	h := rec.handle(func(r Reading, _ int) error {
		if string(r.Payload) == rejected {
			return fhir.Errorf(fhir.KindUnprocessable, "payload matches no template")
		}
		return nil
	})
	cfg := e.config("sub-" + uniq(t))
	cfg.MaxPayload = 1024
	s, _ := e.start(cfg, h)
	pub := e.publisher()
	for i := range 10 {
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	publish(t, pub, e.topic("Acme", "dev-1"), payload(100))                 // invalid tenant
	publish(t, pub, e.topic("acme", strings.Repeat("x", 65)), payload(101)) // device id too long
	publish(t, pub, e.topic("acme", "dev-1"), make([]byte, 2048))           // oversized
	want := Stats{Received: 13, Handled: 9, Rejected: 1, BadTopic: 2, Oversized: 1, Connects: 1}
	waitFor(t, "all 13 readings dealt with", 10*time.Second, func() bool { return counters(s.Stats()) == want })

	// Drop the connection and wait until the session is resumed: nothing
	// may come back, since everything was acknowledged. (Wait for paho's
	// 50 ms PUBACK tick first: Ack only queues the PUBACK.)
	time.Sleep(150 * time.Millisecond)
	s.mu.Lock()
	s.cm.TerminateConnectionForTest()
	s.mu.Unlock()
	waitFor(t, "reconnect", 10*time.Second, func() bool { return s.Stats().Connects == 2 })
	sentinel := payload(999)
	publish(t, pub, e.topic("acme", "dev-1"), sentinel)
	waitFor(t, "sentinel handled", 10*time.Second, func() bool { return s.Stats().Handled == 10 })
	want.Received, want.Handled, want.Connects = 14, 10, 2
	if diff := cmp.Diff(want, counters(s.Stats())); diff != "" {
		t.Errorf("stats after reconnect (-want +got):\n%s", diff)
	}
	calls, _ := rec.snapshot()
	if calls[rejected] != 1 {
		t.Errorf("rejected reading handled %d times, want 1", calls[rejected])
	}
}

// counters is st without the queue gauges, which depend on timing.
func counters(st Stats) Stats {
	st.MaxQueued, st.OverWindow = 0, 0
	return st
}

func TestRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("sub-" + uniq(t))
	pub := e.publisher()

	// First run: acknowledge phase 1, then hold phase 2 until shutdown.
	rec1 := newRecorder()
	var holding sync.Mutex
	hold := false
	s1, stop1 := e.start(cfg, rec1.handle(func(r Reading, _ int) error {
		holding.Lock()
		h := hold
		holding.Unlock()
		if h {
			time.Sleep(time.Second) // past ShutdownGrace: never committed
			return errors.New("interrupted")
		}
		return nil
	}))
	const n = 100
	var phase1, phase2 [][]byte
	for i := range n {
		phase1 = append(phase1, payload(i))
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	waitFor(t, "phase 1 handled", 10*time.Second, func() bool { return s1.Stats().Handled == n })
	time.Sleep(150 * time.Millisecond) // > paho's 50 ms PUBACK interval
	holding.Lock()
	hold = true
	holding.Unlock()
	for i := n; i < 2*n; i++ {
		phase2 = append(phase2, payload(i))
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	waitFor(t, "phase 2 reaching the handlers", 10*time.Second, func() bool { return s1.Stats().Received > n })
	stop1()

	// Second run, same client id: exactly the unacknowledged phase 2.
	rec2 := newRecorder()
	s2, stop2 := e.start(cfg, rec2.handle(func(Reading, int) error { return nil }))
	waitFor(t, "phase 2 handled", 10*time.Second, func() bool { return s2.Stats().Handled >= n })
	time.Sleep(200 * time.Millisecond)
	stop2()
	_, ok2 := rec2.snapshot()
	if diff := cmp.Diff(wantOnce(phase2...), ok2); diff != "" {
		t.Errorf("second run handled (-want +got):\n%s", diff)
	}
	_, ok1 := rec1.snapshot()
	if diff := cmp.Diff(wantOnce(phase1...), ok1); diff != "" {
		t.Errorf("first run committed (-want +got):\n%s", diff)
	}
	t.Logf("observed: first run %+v; second run %+v", s1.Stats(), s2.Stats())
}

func TestSharedSubscriptionSplitsLoad(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	h := rec.handle(func(Reading, int) error { return nil })
	a, _ := e.start(e.config("sub-a-"+uniq(t)), h)
	b, _ := e.start(e.config("sub-b-"+uniq(t)), h)
	pub := e.publisher()
	const n = 500
	var want [][]byte
	for i := range n {
		want = append(want, payload(i))
		publish(t, pub, e.topic("acme", fmt.Sprintf("dev-%d", i%10)), payload(i))
	}
	waitFor(t, "all readings handled", 15*time.Second, func() bool { return a.Stats().Handled+b.Stats().Handled >= n })
	time.Sleep(200 * time.Millisecond)
	calls, _ := rec.snapshot()
	if diff := cmp.Diff(wantOnce(want...), calls); diff != "" {
		t.Errorf("handler calls per reading (-want +got):\n%s", diff)
	}
	if a.Stats().Handled == 0 || b.Stats().Handled == 0 {
		t.Errorf("load not split: a handled %d, b handled %d", a.Stats().Handled, b.Stats().Handled)
	}
	t.Logf("observed split: a=%d b=%d", a.Stats().Handled, b.Stats().Handled)
}

func testLogger() *slog.Logger {
	if os.Getenv("PW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestSharedMemberOfflineKeepsItsShare documents what Mosquitto 2.0 does
// with a shared subscription whose member is offline with a live session:
// it keeps that member's unacknowledged readings, and goes on assigning it
// new ones round-robin, until the member reconnects under the same client id.
func TestSharedMemberOfflineKeepsItsShare(t *testing.T) {
	e := newEnv(t)
	pub := e.publisher()
	var mu sync.Mutex
	hold := true
	rec := newRecorder()
	cfgA := e.config("sub-a-" + uniq(t))
	_, stopA := e.start(cfgA, rec.handle(func(Reading, int) error {
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			return errors.New("held")
		}
		return nil
	}))
	b, _ := e.start(e.config("sub-b-"+uniq(t)), rec.handle(func(Reading, int) error { return nil }))
	var all [][]byte
	for i := range 40 {
		all = append(all, payload(i))
		publish(t, pub, e.topic("acme", "d"), payload(i))
	}
	waitFor(t, "B's share of the first 40", 10*time.Second, func() bool { return b.Stats().Handled == 20 })
	stopA()
	for i := 40; i < 80; i++ {
		all = append(all, payload(i))
		publish(t, pub, e.topic("acme", "d"), payload(i))
	}
	time.Sleep(300 * time.Millisecond)
	offlineB := b.Stats().Handled
	mu.Lock()
	hold = false
	mu.Unlock()
	a2, _ := e.start(cfgA, rec.handle(func(Reading, int) error { return nil }))
	waitFor(t, "every reading handled", 10*time.Second, func() bool {
		_, ok := rec.snapshot()
		return len(ok) == len(all)
	})
	t.Logf("observed: while A was offline B took %d of 40 new readings; A, back, got %d (%d flagged DUP)",
		offlineB-20, a2.Stats().Received, a2.Stats().Duplicates)
	if a2.Stats().Received == 0 {
		t.Error("A's session kept nothing while offline; the package comment says Mosquitto keeps its share")
	}
}
