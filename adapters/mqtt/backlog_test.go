package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
)

// rawSession is a bare paho client on its own TCP connection: it counts the
// PUBLISH packets it receives and acknowledges none, so what it counts is
// exactly what the broker sent without waiting for a PUBACK.
type rawSession struct {
	conn     net.Conn
	client   *paho.Client
	received atomic.Int64
	dups     atomic.Int64
}

func dialRaw(t *testing.T, addr, clientID string, cleanStart bool, receiveMax uint16) *rawSession {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawSession{conn: conn}
	rs.client = paho.NewClient(paho.ClientConfig{
		ClientID:                   clientID,
		Conn:                       conn,
		EnableManualAcknowledgment: true, // and never Ack
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			rs.received.Add(1)
			if pr.Packet.Duplicate() {
				rs.dups.Add(1)
			}
			return true, nil
		}},
	})
	expiry := uint32(60)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := rs.client.Connect(ctx, &paho.Connect{
		ClientID: clientID, CleanStart: cleanStart, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, ReceiveMaximum: &receiveMax},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if !cleanStart && !ca.SessionPresent {
		t.Fatal("session not present on resume")
	}
	return rs
}

// drop closes the network connection without DISCONNECT, as a SIGKILL does.
func (rs *rawSession) drop() { _ = rs.conn.Close() }

// TestBrokerHonoursReceiveMaximum checks the broker behaviour the Subscriber
// relies on to never block paho's read loop (its queue holds InFlight
// readings): with Receive Maximum r, the broker has at most r unacknowledged
// QoS 1 readings out, on the first connection and when the session resumes
// with a backlog (the in-flight ones resent with DUP, nothing more).
func TestBrokerHonoursReceiveMaximum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		private bool
		backlog int
		rm      uint16
	}{
		{"shared broker", false, 100, 4},
		{"private broker, deep backlog", true, 3000, 4},
		{"private broker, deep backlog, window 32", true, 5000, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.private {
				e = privateEnv(t)
			}
			testReceiveMaximum(t, e, tc.backlog, tc.rm)
		})
	}
}

func testReceiveMaximum(t *testing.T, e *env, backlog int, rm uint16) {
	id := "raw-" + uniq(t)
	rs := dialRaw(t, e.addr, id, true, rm)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	filter := "$share/" + e.group + "/" + e.prefix + "/+/devices/+/readings"
	if _, err := rs.client.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	pub := e.publisher()
	for i := range backlog / 2 {
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	time.Sleep(300 * time.Millisecond)
	type counts struct{ Received, Dups int64 }
	if diff := cmp.Diff(counts{int64(rm), 0}, counts{rs.received.Load(), rs.dups.Load()}); diff != "" {
		t.Errorf("first connection (-want +got):\n%s", diff)
	}
	rs.drop()
	for i := backlog / 2; i < backlog; i++ { // more backlog while offline
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}

	rs2 := dialRaw(t, e.addr, id, false, rm)
	for i := backlog; i < backlog+50; i++ { // and while resuming
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	time.Sleep(300 * time.Millisecond)
	if diff := cmp.Diff(counts{int64(rm), int64(rm)}, counts{rs2.received.Load(), rs2.dups.Load()}); diff != "" {
		t.Errorf("resumed connection (-want +got):\n%s", diff)
	}
	// Remove the session from the broker.
	zero := uint32(0)
	_ = rs2.client.Disconnect(&paho.Disconnect{ReasonCode: 0, Properties: &paho.DisconnectProperties{SessionExpiryInterval: &zero}})
}

// TestResumeWithBacklogBeyondInFlight is the crash scenario on one session:
// the subscriber goes away with readings in flight and many more queued for
// its session (far more than InFlight), then a new Run with the same client
// id must subscribe promptly (the SUBACK arrives behind the backlog) and
// handle every reading exactly once, with a handler slower than the broker.
func TestResumeWithBacklogBeyondInFlight(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		private              bool
		n, inFlight, workers int
		handlerDelay         time.Duration
	}{
		// 600 stays below the shared broker's stock max_queued_messages.
		{"shared broker", false, 600, 4, 2, 2 * time.Millisecond},
		{"private broker, deep backlog", true, 3000, 32, 8, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.private {
				e = privateEnv(t)
			}
			testResumeWithBacklog(t, e, tc.n, tc.inFlight, tc.workers, tc.handlerDelay)
		})
	}
}

func testResumeWithBacklog(t *testing.T, e *env, n, inFlight, workers int, delay time.Duration) {
	cfg := e.config("sub-" + uniq(t))
	cfg.InFlight, cfg.Concurrency = inFlight, workers
	pub := e.publisher()

	// First run: every handler call fails after the shutdown grace, so
	// nothing is acknowledged; the session keeps what was in flight.
	rec1 := newRecorder()
	s1, stop1 := e.start(cfg, rec1.handle(func(Reading, int) error {
		time.Sleep(time.Second)
		return errors.New("interrupted")
	}))
	var all [][]byte
	for i := range n {
		all = append(all, payload(i))
		publish(t, pub, e.topic("acme", "dev-1"), payload(i))
	}
	waitFor(t, "first run receiving", 5*time.Second, func() bool { return s1.Stats().Received > 0 })
	stop1()

	// Second run: slow handler, so the backlog outlasts the subscribe.
	rec2 := newRecorder()
	began := time.Now()
	s2, stop2 := e.start(cfg, rec2.handle(func(Reading, int) error {
		time.Sleep(delay)
		return nil
	}))
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("subscription acknowledged after %v with a backlog of %d", d, n)
	}
	// While the backlog is being worked off, a SUBSCRIBE round trip must
	// still be quick: paho reads SUBACK (and PINGRESP) on the goroutine that
	// hands readings to the subscriber, so it must never wait for handlers.
	// (Mosquitto 2.0.11 sends a resumed session's backlog well past the
	// Receive Maximum once PUBACKs flow; before the subscriber queued without
	// bound, this round trip waited for the backlog to drain.)
	waitFor(t, "backlog flowing", 30*time.Second, func() bool { return s2.Stats().Received > int64(3*inFlight) })
	s2.mu.Lock()
	cm := s2.cm
	s2.mu.Unlock()
	rt := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s2.filter, QoS: 1}}})
	scancel()
	t.Logf("SUBSCRIBE round trip during the backlog: %v; stats then %+v", time.Since(rt), s2.Stats())
	// (Measured: 46 ms; 3.8 s with the queue bounded at InFlight as it was.)
	if d := time.Since(rt); err != nil || d > time.Second {
		t.Errorf("SUBSCRIBE round trip during the backlog: %v after %v (handled %d of %d)", err, d, s2.Stats().Handled, n)
	}
	waitFor(t, "backlog handled", 60*time.Second, func() bool { return s2.Stats().Handled >= int64(n) })
	time.Sleep(200 * time.Millisecond) // let PUBACKs go out
	stop2()
	_, ok2 := rec2.snapshot()
	if diff := cmp.Diff(wantOnce(all...), ok2); diff != "" {
		t.Errorf("second run handled (-want +got):\n%s", diff)
	}
	st := s2.Stats()
	if st.Transient != 0 || st.ForcedDrops != 0 || st.Connects != 1 {
		t.Errorf("second run stats %+v: want no transient errors, no forced drops, one connection", st)
	}
	t.Logf("first run %+v; second run %+v", s1.Stats(), st)
}

// privateEnv is an env on a Mosquitto of the test's own, configured as
// package mqtt tells deployments to (max_queued_messages 0), so a test can
// queue more than the stock limit of 1000 readings for one session.
func privateEnv(t *testing.T) *env {
	t.Helper()
	requireBroker(t) // the shared one: its presence says Mosquitto is installed
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skipf("mosquitto binary not found: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n", addr.Port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var logb strings.Builder
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if logb.Len() > 0 {
			t.Logf("mosquitto log:\n%s", logb.String())
		}
	})
	waitFor(t, "mosquitto listening", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	u := uniq(t)
	return &env{t: t, addr: addr.String(), prefix: "pwt-" + u, group: "g" + u}
}
