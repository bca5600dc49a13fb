package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Reading is one device message as received from the broker.
type Reading struct {
	Tenant   string
	DeviceID string
	Payload  []byte
	Received time.Time
	Source   string // always "mqtt"
	ID       string // the MQTT packet identifier, for logs only (reused by the broker)
}

// Handler commits a reading. It returns nil only once the reading is durably
// stored; a *fhir.Error of KindInvalid or KindUnprocessable once it has been
// durably dead-lettered (it can never succeed); any other error when it
// should be tried again. Handlers run concurrently and may see a reading
// twice (see the package comment), so they must be idempotent.
type Handler func(ctx context.Context, r Reading) error

// Config configures a Subscriber. Zero values take the defaults named.
type Config struct {
	Brokers  []string    // broker URLs, e.g. "mqtt://127.0.0.1:1883", "tls://broker:8883"; tried in turn
	ClientID string      // required and unique per replica: the broker keeps the session under it
	Username string      // optional
	Password []byte      // optional
	TLS      *tls.Config // for tls:// URLs

	Group       string // shared-subscription group; default "pulsewire"
	TopicPrefix string // first topic level(s); default "pulsewire"
	MaxPayload  int    // bytes; larger payloads are acknowledged and counted, never handled; default 64 KiB
	Concurrency int    // handler goroutines; default 8
	// InFlight is the Receive Maximum sent to the broker: how many
	// unacknowledged readings it may send at once. Default 4*Concurrency.
	// Not every broker keeps to it (see the package comment), so it does
	// not bound the subscriber's queue.
	InFlight int
	// SessionExpiry is how long the broker keeps the session (and its queued,
	// unacknowledged readings) while the subscriber is disconnected. Default 24h.
	SessionExpiry time.Duration
	KeepAlive     time.Duration // default 30s
	// RetryDelay is the pause after a transient handler error before the
	// connection is dropped to have the broker redeliver. Default 1s.
	RetryDelay time.Duration
	// ShutdownGrace bounds how long in-flight handlers may run after the
	// Run context is cancelled. Default 5s.
	ShutdownGrace time.Duration
	Logger        *slog.Logger // default slog.Default()
}

// Stats are cumulative counters since New.
type Stats struct {
	Received   int64 // PUBLISH packets received (including redeliveries)
	Duplicates int64 // of those, flagged DUP by the broker (redeliveries)
	// Handled and Rejected readings, bad topics and oversized payloads are
	// acknowledged: paho sends their PUBACK at its next SendAcksInterval
	// tick (50 ms) once every reading received before them is acknowledged too.
	Handled     int64 // handler returned nil
	Rejected    int64 // handler returned a permanent error (KindInvalid, KindUnprocessable)
	Transient   int64 // handler returned a transient error (reading left unacknowledged)
	BadTopic    int64 // topic did not parse or failed validation; acknowledged
	Oversized   int64 // payload over MaxPayload; acknowledged
	Skipped     int64 // received on a connection about to be dropped; left for redelivery
	Connects    int64 // connections established (the first one included)
	ForcedDrops int64 // connections dropped to trigger redelivery after a transient error
	// MaxQueued is the most readings ever waiting for a handler goroutine;
	// OverWindow counts readings received while more than InFlight were
	// waiting (the broker exceeding the Receive Maximum; see receive).
	MaxQueued  int64
	OverWindow int64
}

// Subscriber receives readings from a shared subscription and passes them to
// a Handler. Create with New, start with Run.
type Subscriber struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	urls    []*url.URL
	filter  string

	jobs    *fifo
	ready   chan struct{}
	readyMu sync.Once

	// stopMu orders pushes on jobs against its close: receive pushes under
	// RLock after checking stopping; Run sets stopping and closes jobs under Lock.
	stopMu   sync.RWMutex
	stopping atomic.Bool
	// poisoned is the connection on which a transient error occurred; readings
	// still arriving on it are not started, since it is about to be dropped.
	poisoned atomic.Pointer[paho.Client]

	mu sync.Mutex
	cm *autopaho.ConnectionManager // set while Run runs

	received, duplicates, handled, rejected, transient  atomic.Int64
	badTopic, oversized, skipped, connects, forcedDrops atomic.Int64
	maxQueued, overWindow                               atomic.Int64
}

type job struct {
	client *paho.Client
	pub    *paho.Publish
	r      Reading
}

// New validates cfg and returns a Subscriber.
func New(cfg Config, h Handler) (*Subscriber, error) {
	if h == nil {
		return nil, errors.New("mqtt: nil handler")
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("mqtt: no broker URL configured")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt: client id is required (the broker keeps the session under it)")
	}
	if cfg.Group == "" {
		cfg.Group = "pulsewire"
	}
	if strings.ContainsAny(cfg.Group, "/+#") {
		return nil, errors.New("mqtt: group must not contain '/', '+' or '#'")
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "pulsewire"
	}
	if strings.ContainsAny(cfg.TopicPrefix, "+#") || strings.HasPrefix(cfg.TopicPrefix, "/") || strings.HasSuffix(cfg.TopicPrefix, "/") {
		return nil, errors.New("mqtt: topic prefix must not contain wildcards or start or end with '/'")
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 64 << 10
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4 * cfg.Concurrency
	}
	if cfg.InFlight > 65535 {
		cfg.InFlight = 65535
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = 24 * time.Hour
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Subscriber{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger.With("adapter", "mqtt", "client_id", cfg.ClientID),
		filter:  "$share/" + cfg.Group + "/" + cfg.TopicPrefix + "/+/devices/+/readings",
		jobs:    newFIFO(),
		ready:   make(chan struct{}),
	}
	for _, b := range cfg.Brokers {
		u, err := url.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("mqtt: parsing broker URL %d: %w", len(s.urls), err)
		}
		s.urls = append(s.urls, u)
	}
	return s, nil
}

// Stats returns the counters.
func (s *Subscriber) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Duplicates: s.duplicates.Load(),
		Handled: s.handled.Load(), Rejected: s.rejected.Load(), Transient: s.transient.Load(),
		BadTopic: s.badTopic.Load(), Oversized: s.oversized.Load(), Skipped: s.skipped.Load(),
		Connects: s.connects.Load(), ForcedDrops: s.forcedDrops.Load(),
		MaxQueued: s.maxQueued.Load(), OverWindow: s.overWindow.Load(),
	}
}

// Ready is closed once the first subscription has been acknowledged by the
// broker: from then on the broker keeps readings for this session.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Run connects, subscribes and handles readings until ctx is cancelled.
// It then stops starting new readings, lets in-flight handlers finish (up to
// ShutdownGrace), sends the PUBACKs that are due and disconnects; readings
// not acknowledged stay in the broker's session for the next Run with the
// same ClientID. Run returns nil after a clean shutdown. Call it once.
func (s *Subscriber) Run(ctx context.Context) error {
	// Handlers outlive ctx by at most ShutdownGrace so that a reading being
	// committed when shutdown starts can still be acknowledged.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Go(func() { s.work(hctx) })
	}

	expiry := uint32(s.cfg.SessionExpiry / time.Second)
	inflight := uint16(s.cfg.InFlight)
	// The connection manager gets its own context: cancelling it would send
	// DISCONNECT at once, before in-flight PUBACKs are flushed.
	cmctx, cmcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cmcancel()
	cm, err := autopaho.NewConnection(cmctx, autopaho.ClientConfig{
		ServerUrls:                    s.urls,
		TlsCfg:                        s.cfg.TLS,
		KeepAlive:                     uint16(s.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         expiry,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(250*time.Millisecond, 30*time.Second, time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               s.cfg.Username,
		ConnectPassword:               s.cfg.Password,
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &inflight
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			conn := s.connects.Add(1)
			s.log.Info("mqtt connected", "session_present", ca.SessionPresent)
			// Subscribe on every connection: cheap, and it restores the
			// subscription if the broker lost or expired the session.
			go s.subscribe(cmctx, cm, conn)
		},
		OnConnectError: func(err error) { s.log.Warn("mqtt connect failed", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   s.cfg.ClientID,
			EnableManualAcknowledgment: true,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){s.receive},
			OnClientError:              func(err error) { s.log.Warn("mqtt connection lost", "err", err) },
			OnServerDisconnect: func(d *paho.Disconnect) {
				s.log.Warn("mqtt server disconnected", "reason_code", d.ReasonCode)
			},
		},
	})
	if err != nil {
		s.jobs.close()
		workers.Wait()
		return fmt.Errorf("mqtt: starting connection: %w", err)
	}
	s.mu.Lock()
	s.cm = cm
	s.mu.Unlock()

	<-ctx.Done()
	grace := time.AfterFunc(s.cfg.ShutdownGrace, hcancel)
	defer grace.Stop()
	s.stopMu.Lock()
	s.stopping.Store(true)
	s.jobs.close()
	s.stopMu.Unlock()
	workers.Wait()
	// paho sends due PUBACKs every SendAcksInterval (50 ms by default).
	time.Sleep(120 * time.Millisecond)
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	if err := cm.Disconnect(dctx); err != nil {
		return fmt.Errorf("mqtt: disconnecting: %w", err)
	}
	return nil
}

// subscribe subscribes on connection number conn, retrying with a growing
// pause until the broker grants the subscription, the connection is
// replaced (the next one subscribes for itself) or ctx ends. A SUBSCRIBE
// whose SUBACK does not come in time fails with context.DeadlineExceeded:
// when its connection dropped (paho does not end it on connection loss) or
// when paho's read side was stalled (see fifo). With one attempt and no
// retry, Ready would stay open for good.
func (s *Subscriber) subscribe(ctx context.Context, cm *autopaho.ConnectionManager, conn int64) {
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil || s.connects.Load() != conn {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sa, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.filter, QoS: 1}}})
		cancel()
		switch {
		case ctx.Err() != nil || s.connects.Load() != conn:
			return
		case err != nil:
			s.log.Error("mqtt subscribe failed; retrying", "filter", s.filter, "attempt", attempt, "err", err)
		case len(sa.Reasons) != 1 || sa.Reasons[0] > 1:
			s.log.Error("mqtt subscription refused; retrying", "filter", s.filter, "attempt", attempt, "reasons", sa.Reasons)
		default:
			s.readyMu.Do(func() { close(s.ready) })
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt)*time.Second, 10*time.Second)):
		}
	}
}

// receive runs on paho's single routing goroutine for each PUBLISH, in
// receive order. It must not block for long.
func (s *Subscriber) receive(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	s.received.Add(1)
	if p.Duplicate() {
		s.duplicates.Add(1)
	}
	id := strconv.Itoa(int(p.PacketID))
	tenant, device, ok := s.parseTopic(p.Topic)
	switch {
	case !ok:
		s.badTopic.Add(1)
		// The topic itself is not logged: it is outside input of any shape.
		s.log.Warn("mqtt reading dropped: topic is not "+s.cfg.TopicPrefix+"/{tenant}/devices/{deviceId}/readings with a valid tenant and device id", "packet_id", id)
		s.ack(pr.Client, p)
		return true, nil
	case len(p.Payload) > s.cfg.MaxPayload:
		s.oversized.Add(1)
		s.log.Warn("mqtt reading dropped: payload too large", "packet_id", id, "tenant", tenant, "device", device, "bytes", len(p.Payload), "max", s.cfg.MaxPayload)
		s.ack(pr.Client, p)
		return true, nil
	}
	s.stopMu.RLock()
	defer s.stopMu.RUnlock()
	if s.stopping.Load() || s.poisoned.Load() == pr.Client {
		// Not acknowledged: the broker resends it on the next connection.
		s.skipped.Add(1)
		return true, nil
	}
	r := Reading{Tenant: tenant, DeviceID: device, Payload: p.Payload, Received: time.Now(), Source: "mqtt", ID: id}
	n := int64(s.jobs.push(job{client: pr.Client, pub: p, r: r}))
	for {
		m := s.maxQueued.Load()
		if n <= m || s.maxQueued.CompareAndSwap(m, n) {
			break
		}
	}
	if n > int64(s.cfg.InFlight) {
		// More readings waiting than the Receive Maximum we announced: the
		// broker did not honour it. The queue absorbs them (so paho's read
		// loop, and with it SUBACK and PINGRESP, never waits on handlers).
		if s.overWindow.Add(1) == 1 {
			s.log.Warn("mqtt broker sent more unacknowledged readings than Receive Maximum; queueing them", "queued", n, "receive_maximum", s.cfg.InFlight)
		}
	}
	return true, nil
}

func (s *Subscriber) work(ctx context.Context) {
	for {
		j, ok := s.jobs.pop()
		if !ok {
			return
		}
		if s.stopping.Load() || s.poisoned.Load() == j.client {
			// Shutting down, or its connection is being dropped so its
			// PUBACK could not be sent: leave it to the broker's redelivery
			// rather than handle it twice.
			s.skipped.Add(1)
			continue
		}
		err := s.handler(ctx, j.r)
		switch {
		case err == nil:
			s.handled.Add(1)
			s.ack(j.client, j.pub)
		case fhir.IsKind(err, fhir.KindInvalid) || fhir.IsKind(err, fhir.KindUnprocessable):
			s.rejected.Add(1)
			s.log.Info("mqtt reading rejected by handler", "packet_id", j.r.ID, "tenant", j.r.Tenant, "device", j.r.DeviceID, "err", err)
			s.ack(j.client, j.pub)
		default:
			s.transient.Add(1)
			s.log.Warn("mqtt reading failed, will be redelivered", "packet_id", j.r.ID, "tenant", j.r.Tenant, "device", j.r.DeviceID, "err", err)
			s.poison(j.client)
		}
	}
}

func (s *Subscriber) ack(c *paho.Client, p *paho.Publish) {
	// Ack only marks the packet; paho sends PUBACKs in receive order. After a
	// reconnect the old client's tracker is empty and Ack reports
	// ErrPacketNotFound: the broker has already resent the reading.
	if err := c.Ack(p); err != nil && !errors.Is(err, paho.ErrPacketNotFound) {
		s.log.Warn("mqtt ack failed", "packet_id", p.PacketID, "err", err)
	}
}

// poison arranges for the connection c to be dropped after RetryDelay, so
// that the broker resends what was not acknowledged on it. Only the first
// transient error on a connection does so.
func (s *Subscriber) poison(c *paho.Client) {
	old := s.poisoned.Load()
	if old == c || !s.poisoned.CompareAndSwap(old, c) {
		return
	}
	time.AfterFunc(s.cfg.RetryDelay, func() {
		if s.stopping.Load() {
			return // Run disconnects; the session keeps the readings
		}
		s.forcedDrops.Add(1)
		s.log.Info("mqtt dropping connection to have unacknowledged readings redelivered")
		// TerminateConnectionForTest is a plain net.Conn.Close: the read
		// loop fails and autopaho reconnects with the same session, exactly
		// as after a network fault. paho has no other way to close one
		// connection without stopping the connection manager.
		c.TerminateConnectionForTest()
	})
}

// parseTopic splits {prefix}/{tenant}/devices/{deviceId}/readings.
func (s *Subscriber) parseTopic(topic string) (tenant, device string, ok bool) {
	rest, ok := strings.CutPrefix(topic, s.cfg.TopicPrefix+"/")
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "devices" || parts[3] != "readings" {
		return "", "", false
	}
	if !fhir.ValidTenant(parts[0]) || !ValidDeviceID(parts[2]) {
		return "", "", false
	}
	return parts[0], parts[2], true
}

// ValidDeviceID reports whether s is an acceptable device id in a topic:
// 1 to 64 of [A-Za-z0-9._:-] (FHIR id characters plus ':' and '_' for
// EUI-64 and serial numbers).
func ValidDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// fifo is the unbounded queue between paho's routing goroutine and the
// handler goroutines. It must not be bounded: paho reads every packet of the
// connection (PUBLISH, SUBACK, PINGRESP) on one goroutine and hands PUBLISH
// packets to receive through a channel of Receive Maximum slots, so a
// receive that blocks stops the connection's whole read side. The broker's
// Receive Maximum is what bounds the queue in practice.
type fifo struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []job
	head   int
	closed bool
}

func newFIFO() *fifo {
	q := &fifo{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push appends j and returns how many jobs are waiting, j included.
func (q *fifo) push(j job) int {
	q.mu.Lock()
	q.items = append(q.items, j)
	n := len(q.items) - q.head
	q.mu.Unlock()
	q.cond.Signal()
	return n
}

// pop returns the oldest job, waiting for one; false once the queue is
// closed and empty.
func (q *fifo) pop() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		return job{}, false
	}
	j := q.items[q.head]
	q.items[q.head] = job{}
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && 2*q.head >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return j, true
}

// close wakes every waiting pop; the jobs still queued are returned first.
func (q *fifo) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
