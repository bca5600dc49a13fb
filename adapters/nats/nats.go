// Package nats receives device readings from a NATS JetStream stream
// (https://docs.nats.io/nats-concepts/jetstream) through a durable pull
// consumer and hands each one to a Handler, which must commit it durably
// before the reading is acknowledged. It is the NATS part of issue 3
// ("Device ingestion"); only server/cmd wires it, and it imports nothing of
// Pulsewire but server/fhir.
//
// # Subjects
//
// Devices (or a device cloud bridge) publish to a subject such as
//
//	pulsewire.{tenant}.devices.{deviceId}.readings
//
// Config.Subject names the pattern with exactly two single-token wildcards:
// the first is the tenant, the second the device id. Who may publish where is
// the NATS server's business (per-account or per-user publish permissions,
// e.g. "publish": ["pulsewire.acme.devices.*.readings"] for a gateway of
// tenant acme); the consumer cannot see the publisher.
//
// # Acknowledgement and redelivery
//
// The consumer uses explicit acks. After the Handler returns nil the message
// is acknowledged (Ack); a *fhir.Error of KindInvalid or KindUnprocessable
// means the handler dead-lettered it, and the message is terminated (Term:
// never redelivered). A subject that does not parse or a payload over
// MaxPayload is terminated without calling the handler, and counted. Any
// other error is transient: NakWithDelay with Backoff[NumDelivered-1], so
// the server redelivers it after the delay (to any member of the durable).
// While a handler runs longer than half of AckWait the message is kept alive
// with InProgress. On shutdown, messages already pulled but not started are
// Nak'ed without delay, so another replica gets them at once.
//
// Observed with nats-server 2.9.10 (see the tests): acked messages are
// never redelivered, also after the consumer restarts; a Nak'ed message comes
// back after its delay with NumDelivered+1; a termed one never comes back;
// two subscribers on the same durable share the messages without duplicates.
// With MaxDeliver set, a message that fails MaxDeliver times is no longer
// delivered (the server emits a MAX_DELIVERIES advisory) but stays in the
// stream; the default, -1, keeps retrying.
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Reading is one device message as received from the stream.
type Reading struct {
	Tenant   string
	DeviceID string
	Payload  []byte
	Received time.Time // when the stream stored the message (the same on every redelivery)
	Source   string    // always "nats"
	ID       string    // "{stream}:{stream sequence}", for logs
}

// Handler commits a reading. It returns nil only once the reading is durably
// stored; a *fhir.Error of KindInvalid or KindUnprocessable once it has been
// durably dead-lettered (it can never succeed); any other error when it
// should be tried again. Handlers run concurrently and may see a reading
// more than once (a lost Ack, an AckWait expiry), so they must be idempotent.
type Handler func(ctx context.Context, r Reading) error

// Config configures a Subscriber. Zero values take the defaults named.
type Config struct {
	URL string // e.g. "nats://127.0.0.1:4222"; several comma-separated
	// Credentials, all optional: at most one of Token, User/Password,
	// CredsFile (a .creds file: JWT and NKey seed) or NKeySeedFile.
	Token        string
	User         string
	Password     string
	CredsFile    string
	NKeySeedFile string
	TLS          *tls.Config

	Stream  string // required
	Subject string // default "pulsewire.*.devices.*.readings": first '*' the tenant, second the device id
	// CreateStream makes Run call EnsureStream first.
	CreateStream bool
	Replicas     int           // stream replicas for EnsureStream; default 1
	MaxAge       time.Duration // stream retention for EnsureStream; 0 keeps messages until other limits

	Durable       string        // consumer name; default "pulsewire-ingest"
	AckWait       time.Duration // default 30s
	MaxDeliver    int           // default -1 (no limit)
	MaxAckPending int           // default 1000
	FetchBatch    int           // messages pulled ahead; default 100
	Concurrency   int           // handler goroutines; default 8
	// Backoff is the Nak delay after the n-th failed delivery (the last
	// entry repeats). Default 1s doubling up to 1m.
	Backoff    []time.Duration
	MaxPayload int // bytes; larger messages are terminated and counted; default 64 KiB
	// ShutdownGrace bounds how long in-flight handlers may run after the
	// Run context is cancelled. Default 5s.
	ShutdownGrace time.Duration
	Logger        *slog.Logger // default slog.Default()
}

// Stats are cumulative counters since New.
type Stats struct {
	Received    int64 // messages pulled (including redeliveries)
	Redelivered int64 // of those, with NumDelivered > 1
	Handled     int64 // handler returned nil; acked
	Rejected    int64 // handler returned a permanent error; termed
	Transient   int64 // handler returned a transient error; nak'ed with delay
	BadSubject  int64 // subject did not parse or failed validation; termed
	Oversized   int64 // payload over MaxPayload; termed
	Returned    int64 // pulled but not started before shutdown; nak'ed without delay
	AckErrors   int64 // Ack/Nak/Term could not be sent (the server redelivers after AckWait)
}

// Subscriber consumes readings from a durable pull consumer.
type Subscriber struct {
	cfg       Config
	handler   Handler
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	prefix    []string // Subject tokens
	tenantIdx int
	deviceIdx int

	stopping atomic.Bool

	received, redelivered, handled, rejected, transient atomic.Int64
	badSubject, oversized, returned, ackErrors          atomic.Int64
}

// New validates cfg and connects to the NATS server.
func New(cfg Config, h Handler) (*Subscriber, error) {
	if h == nil {
		return nil, errors.New("nats: nil handler")
	}
	if cfg.URL == "" {
		return nil, errors.New("nats: no server URL configured")
	}
	if cfg.Stream == "" {
		return nil, errors.New("nats: stream name is required")
	}
	if cfg.Subject == "" {
		cfg.Subject = "pulsewire.*.devices.*.readings"
	}
	if cfg.Durable == "" {
		cfg.Durable = "pulsewire-ingest"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = -1
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 1000
	}
	if cfg.FetchBatch <= 0 {
		cfg.FetchBatch = 100
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if len(cfg.Backoff) == 0 {
		for d := time.Second; d < time.Minute; d *= 2 {
			cfg.Backoff = append(cfg.Backoff, d)
		}
		cfg.Backoff = append(cfg.Backoff, time.Minute)
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 64 << 10
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Subscriber{cfg: cfg, handler: h, tenantIdx: -1, deviceIdx: -1,
		log: cfg.Logger.With("adapter", "nats", "stream", cfg.Stream, "durable", cfg.Durable)}
	s.prefix = strings.Split(cfg.Subject, ".")
	for i, tok := range s.prefix {
		switch {
		case tok == "*" && s.tenantIdx < 0:
			s.tenantIdx = i
		case tok == "*" && s.deviceIdx < 0:
			s.deviceIdx = i
		case tok == "*" || tok == ">" || tok == "":
			return nil, errors.New("nats: subject must have exactly two '*' tokens (tenant, then device id), no '>' and no empty token")
		}
	}
	if s.deviceIdx < 0 {
		return nil, errors.New("nats: subject must have exactly two '*' tokens (tenant, then device id)")
	}

	opts := []nats.Option{nats.Name("pulsewire-ingest"), nats.MaxReconnects(-1)}
	switch {
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats: reading nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connecting: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream context: %w", err)
	}
	s.nc, s.js = nc, js
	return s, nil
}

// Close flushes pending acks and closes the connection.
func (s *Subscriber) Close() {
	_ = s.nc.FlushTimeout(2 * time.Second)
	s.nc.Close()
}

// Stats returns the counters.
func (s *Subscriber) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Redelivered: s.redelivered.Load(),
		Handled: s.handled.Load(), Rejected: s.rejected.Load(), Transient: s.transient.Load(),
		BadSubject: s.badSubject.Load(), Oversized: s.oversized.Load(),
		Returned: s.returned.Load(), AckErrors: s.ackErrors.Load(),
	}
}

// EnsureStream creates the stream, or updates it to this configuration:
// file storage, limits retention, Config.Subject, MaxPayload as the largest
// message the server accepts (larger publishes are refused at the source).
func (s *Subscriber) EnsureStream(ctx context.Context) error {
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       s.cfg.Stream,
		Subjects:   []string{s.cfg.Subject},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Replicas:   s.cfg.Replicas,
		MaxAge:     s.cfg.MaxAge,
		MaxMsgSize: int32(min(s.cfg.MaxPayload, 1<<30)),
	})
	if err != nil {
		return fmt.Errorf("nats: creating or updating stream %s: %w", s.cfg.Stream, err)
	}
	return nil
}

// Run creates or updates the durable consumer and handles readings until
// ctx is cancelled. It then stops pulling, Naks what was pulled but not
// started, lets in-flight handlers finish (up to ShutdownGrace) and flushes
// the acks. It does not close the connection (Close does). Call it once.
func (s *Subscriber) Run(ctx context.Context) error {
	if s.cfg.CreateStream {
		if err := s.EnsureStream(ctx); err != nil {
			return err
		}
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		FilterSubject: s.cfg.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		MaxAckPending: s.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("nats: creating or updating consumer %s: %w", s.cfg.Durable, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.FetchBatch))
	if err != nil {
		return fmt.Errorf("nats: starting to pull: %w", err)
	}

	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	jobs := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Go(func() {
			for m := range jobs {
				s.process(hctx, m)
			}
		})
	}
	stop := context.AfterFunc(ctx, func() {
		s.stopping.Store(true)
		time.AfterFunc(s.cfg.ShutdownGrace, hcancel)
		it.Drain() // Next returns what is buffered, then ErrMsgIteratorClosed
	})
	defer stop()

	var runErr error
	for {
		m, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				runErr = fmt.Errorf("nats: pulling: %w", err)
				it.Stop()
			}
			break
		}
		jobs <- m
	}
	close(jobs)
	workers.Wait()
	if err := s.nc.FlushTimeout(5 * time.Second); err != nil && runErr == nil {
		runErr = fmt.Errorf("nats: flushing acks: %w", err)
	}
	return runErr
}

func (s *Subscriber) process(ctx context.Context, m jetstream.Msg) {
	s.received.Add(1)
	md, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to acknowledge.
		s.log.Error("nats message without JetStream metadata", "err", err)
		return
	}
	id := md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
	if md.NumDelivered > 1 {
		s.redelivered.Add(1)
	}
	tenant, device, ok := s.parseSubject(m.Subject())
	switch {
	case !ok:
		s.badSubject.Add(1)
		s.log.Warn("nats reading dropped: subject does not match "+s.cfg.Subject+" with a valid tenant and device id", "id", id)
		s.settle(id, m.Term())
		return
	case len(m.Data()) > s.cfg.MaxPayload:
		s.oversized.Add(1)
		s.log.Warn("nats reading dropped: payload too large", "id", id, "tenant", tenant, "device", device, "bytes", len(m.Data()), "max", s.cfg.MaxPayload)
		s.settle(id, m.Term())
		return
	case s.stopping.Load():
		s.returned.Add(1)
		s.settle(id, m.Nak())
		return
	}

	// Keep the message alive while the handler runs past half of AckWait.
	var done atomic.Bool
	var progress atomic.Pointer[time.Timer]
	progress.Store(time.AfterFunc(s.cfg.AckWait/2, func() {
		if done.Load() {
			return
		}
		if err := m.InProgress(); err != nil {
			s.log.Warn("nats in-progress failed", "id", id, "err", err)
		}
		if t := progress.Load(); t != nil {
			t.Reset(s.cfg.AckWait / 2)
		}
	}))
	err = s.handler(ctx, Reading{Tenant: tenant, DeviceID: device, Payload: m.Data(), Received: md.Timestamp, Source: "nats", ID: id})
	done.Store(true)
	progress.Load().Stop()

	switch {
	case err == nil:
		s.handled.Add(1)
		s.settle(id, m.Ack())
	case fhir.IsKind(err, fhir.KindInvalid) || fhir.IsKind(err, fhir.KindUnprocessable):
		s.rejected.Add(1)
		s.log.Info("nats reading rejected by handler", "id", id, "tenant", tenant, "device", device, "err", err)
		s.settle(id, m.Term())
	default:
		s.transient.Add(1)
		d := s.backoff(md.NumDelivered)
		if s.stopping.Load() {
			d = 0 // let another replica have it now
		}
		s.log.Warn("nats reading failed, will be redelivered", "id", id, "tenant", tenant, "device", device, "delivery", md.NumDelivered, "delay", d, "err", err)
		s.settle(id, m.NakWithDelay(d))
	}
}

func (s *Subscriber) settle(id string, err error) {
	if err != nil {
		s.ackErrors.Add(1)
		s.log.Warn("nats acknowledgement not sent; the server redelivers after AckWait", "id", id, "err", err)
	}
}

// backoff returns the Nak delay after delivery n (1-based).
func (s *Subscriber) backoff(n uint64) time.Duration {
	i := int(min(n, uint64(len(s.cfg.Backoff)))) - 1
	return s.cfg.Backoff[max(i, 0)]
}

// parseSubject takes tenant and device id from the wildcard tokens of subj.
func (s *Subscriber) parseSubject(subj string) (tenant, device string, ok bool) {
	toks := strings.Split(subj, ".")
	if len(toks) != len(s.prefix) {
		return "", "", false
	}
	for i, t := range s.prefix {
		if t != "*" && toks[i] != t {
			return "", "", false
		}
	}
	tenant, device = toks[s.tenantIdx], toks[s.deviceIdx]
	if !fhir.ValidTenant(tenant) || !ValidDeviceID(device) {
		return "", "", false
	}
	return tenant, device, true
}

// ValidDeviceID reports whether s is an acceptable device id in a subject:
// 1 to 64 of [A-Za-z0-9._:-] (FHIR id characters plus ':' and '_' for
// EUI-64 and serial numbers). ('.' can never occur inside a NATS token.)
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
