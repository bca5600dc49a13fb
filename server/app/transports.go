package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsewire/pulsewire/adapters/mqtt"
	"github.com/pulsewire/pulsewire/adapters/nats"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest"
)

// MQTTConfig turns on MQTT ingestion (adapters/mqtt) when Broker is set.
type MQTTConfig struct {
	Broker        string // broker URLs, comma-separated, e.g. "tcp://127.0.0.1:1883"; empty: MQTT off
	Group         string // shared-subscription group; default "pulsewire"
	ClientID      string // stable per replica (the broker keeps the session under it); required with Broker
	Username      string
	Password      string
	TopicPrefix   string        // default "pulsewire"
	SessionExpiry time.Duration // default 24h
}

// NATSConfig turns on NATS JetStream ingestion (adapters/nats) when URL is set.
type NATSConfig struct {
	URL          string // e.g. "nats://127.0.0.1:4222"; empty: NATS off
	Stream       string // required with URL
	Subject      string // default "pulsewire.*.devices.*.readings"
	Durable      string // default "pulsewire-ingest"
	CreateStream bool   // create or update the stream at start
	// AckWait is how long JetStream waits for an ack before redelivering
	// (0: the adapter's default); MaxAckPending caps unacknowledged
	// readings in flight to this consumer group (0: default).
	AckWait       time.Duration
	MaxAckPending int
}

// runner is a background task Serve runs and stops before the store closes.
type runner struct {
	name  string
	run   func(ctx context.Context) error
	close func() // after run returned; may be nil
}

// transientError is an ingestion failure the sender should retry. It
// deliberately does not unwrap: the transports treat a *fhir.Error of
// KindInvalid or KindUnprocessable as "dead-lettered, acknowledge", and an
// error from Ingest means nothing was committed, whatever its kind.
type transientError struct{ msg string }

func (e *transientError) Error() string { return e.msg }

// handleReading ingests one MQTT or NATS reading. The broker authenticated
// the device and confined it to its topic (adapters/mqtt package comment),
// so the topic's tenant is trusted and the topic's device id is the only
// device the payload may carry readings for: a payload naming another device
// is dead-lettered. It returns nil once the reading is committed (stored,
// duplicate or held), a permanent *fhir.Error once it is dead-lettered (or
// its tenant does not exist, when there is nowhere to dead-letter it), and a
// transientError otherwise, so the transport has it redelivered.
func (a *App) handleReading(ctx context.Context, kind, tenant, deviceID string, payload []byte, arrived time.Time) error {
	r, err := a.batcher.Ingest(ctx, tenant, ingest.Source{Kind: kind, Devices: []string{deviceID}}, payload)
	if err != nil {
		if fhir.IsKind(err, fhir.KindNotFound) {
			if ok, terr := a.store.TenantExists(ctx, tenant); terr == nil && !ok {
				return fhir.Errorf(fhir.KindUnprocessable, "unknown tenant; reading dropped")
			}
		}
		return &transientError{msg: "ingesting " + kind + " reading: " + err.Error()}
	}
	if !arrived.IsZero() {
		a.ackLatency.WithLabelValues(kind).Observe(time.Since(arrived).Seconds())
	}
	if r.Status == ingest.StatusRejected {
		return fhir.Errorf(fhir.KindUnprocessable, "reading dead-lettered as %s: %s", r.DeadLetter, r.Reason)
	}
	return nil
}

// Handler goroutines per message transport: readings that arrive together
// share a transaction (ingest.Batcher), so batches can only be as large as
// the number of readings in flight. NATS, measured on 2 cores (pwbench
// ingest-nats, paired runs): 512 in flight carried 10-40 % more readings/s
// than 256, with p99 arrival-to-commit ~290 ms at 80 % of that rate; 1,000
// no more readings/s than 512 and p99 1-1.5 s.
const (
	natsHandlers = 512
	mqttHandlers = 64
)

// setupTransports builds the configured MQTT and NATS subscribers and the
// held-reading sweep as runners of a.
func (a *App) setupTransports(ctx context.Context, reg *prometheus.Registry) error {
	cfg := a.cfg
	a.batcher = ingest.NewBatcher(a.ingest, ingest.BatcherConfig{})
	a.statSources = append(a.statSources, statSource{"batch", func() any { return a.batcher.Stats() }})
	a.ackLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pulsewire_ingest_ack_latency_seconds",
		Help: "device ingestion over MQTT and NATS: time from a reading's arrival (for NATS, its storing in the stream) to its commit",
		// 1 ms to ~16 s.
		Buckets: prometheus.ExponentialBuckets(0.001, 1.5, 25),
	}, []string{"source"})
	if err := reg.Register(a.ackLatency); err != nil {
		return err
	}
	if cfg.MQTT.Broker != "" {
		if cfg.MQTT.ClientID == "" {
			return errors.New("MQTT ingestion needs a client id that is stable per replica")
		}
		var brokers []string
		for _, b := range strings.Split(cfg.MQTT.Broker, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		var pw []byte
		if cfg.MQTT.Password != "" {
			pw = []byte(cfg.MQTT.Password)
		}
		sub, err := mqtt.New(mqtt.Config{
			Brokers: brokers, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: pw,
			Group: cfg.MQTT.Group, TopicPrefix: cfg.MQTT.TopicPrefix, SessionExpiry: cfg.MQTT.SessionExpiry,
			Concurrency: mqttHandlers, Logger: a.log,
		}, func(ctx context.Context, r mqtt.Reading) error {
			return a.handleReading(ctx, "mqtt", r.Tenant, r.DeviceID, r.Payload, r.Received)
		})
		if err != nil {
			return err
		}
		a.mqttReady = sub.Ready()
		a.statSources = append(a.statSources, statSource{"mqtt", func() any { return sub.Stats() }})
		a.runners = append(a.runners, runner{name: "mqtt", run: sub.Run})
	}
	if cfg.NATS.URL != "" {
		sub, err := nats.New(nats.Config{
			URL: cfg.NATS.URL, Stream: cfg.NATS.Stream, Subject: cfg.NATS.Subject, Durable: cfg.NATS.Durable,
			AckWait: cfg.NATS.AckWait, MaxAckPending: cfg.NATS.MaxAckPending,
			Concurrency: natsHandlers, FetchBatch: natsHandlers, Logger: a.log,
		}, func(ctx context.Context, r nats.Reading) error {
			return a.handleReading(ctx, "nats", r.Tenant, r.DeviceID, r.Payload, r.Received)
		})
		if err != nil {
			return err
		}
		a.statSources = append(a.statSources, statSource{"nats", func() any { return sub.Stats() }})
		a.runners = append(a.runners, runner{name: "nats", run: sub.Run, close: sub.Close})
		if cfg.NATS.CreateStream {
			// Synchronously, so that once New returns publishes are kept.
			if err := sub.EnsureStream(ctx); err != nil {
				return err
			}
		}
	}
	if cfg.SweepInterval >= 0 {
		every := cfg.SweepInterval
		if every == 0 {
			every = 30 * time.Second
		}
		a.runners = append(a.runners, runner{name: "sweep", run: func(ctx context.Context) error {
			a.sweepLoop(ctx, every)
			return nil
		}})
	}
	return nil
}

// sweepLoop releases, every interval, the held readings of every tenant the
// config registered whose devices got an association through the plain
// FHIR API (ingest.Ingestor.Sweep).
func (a *App) sweepLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The configured tenants, and those this process held readings
		// for: the store does not list tenants (row-level security hides
		// other tenants' rows, the tenant registry included). Readings
		// held for an unconfigured tenant before a restart are released by
		// its next association through the ingest API, or by
		// `pulsewire ingest release`.
		tenants := slices.Clone(a.cfg.Tenants)
		for _, t := range a.ingest.HeldTenants() {
			if !slices.Contains(tenants, t) {
				tenants = append(tenants, t)
			}
		}
		for _, tenant := range tenants {
			n, err := a.ingest.Sweep(ctx, tenant)
			switch {
			case err != nil && ctx.Err() == nil:
				a.log.Warn("held-reading sweep failed", "tenant", tenant, "err", err)
			case n > 0:
				a.log.Info("held readings released", "tenant", tenant, "released", n)
			}
		}
	}
}

// IngestReady reports whether the configured ingestion transports take
// readings: the MQTT subscription has been acknowledged by the broker (NATS
// is ready once New returned: the stream keeps what is published).
func (a *App) IngestReady() bool {
	if a.mqttReady == nil {
		return true
	}
	select {
	case <-a.mqttReady:
		return true
	default:
		return false
	}
}

// closeRunners releases what the runners hold when Serve never ran them.
func (a *App) closeRunners() {
	for _, r := range a.runners {
		if r.close != nil {
			r.close()
		}
	}
}

func runnerErr(name string, err error) error {
	return fmt.Errorf("%s ingestion stopped: %w", name, err)
}
