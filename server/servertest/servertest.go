// Package servertest starts the whole Pulsewire server in-process on a free
// loopback port, wired exactly as the binary wires it (package server/app),
// for end-to-end tests. Like wtf's MustRunMain: tests talk HTTP to the real
// thing.
package servertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/app"
)

// Server is a running in-process server.
type Server struct {
	URL string // http://127.0.0.1:port
	App *app.App
	// AdminToken is the admin API's token (WithAuth), else "".
	AdminToken string

	publicURL string
	usersMu   sync.Mutex
	users     map[string][2]string // tenant and fhirUser -> username, password
}

// Option changes the Config before the server starts.
type Option func(*app.Config)

// WithPostgres runs the server on PostgreSQL at dsn instead of SQLite.
func WithPostgres(dsn string) Option { return func(c *app.Config) { c.PostgresDSN = dsn } }

// Postgres runs the server on a fresh schema of the local test PostgreSQL
// (see adapters/postgres/pgtest: skipped when unreachable, failed under CI).
func Postgres(t testing.TB) Option {
	t.Helper()
	dsn, _ := pgtest.Schema(t)
	return WithPostgres(dsn)
}

// Backends are the store options every end-to-end test that takes a
// backend runs with: the embedded default and PostgreSQL.
var Backends = []struct {
	Name   string
	Option func(testing.TB) Option
}{
	{"sqlite", func(testing.TB) Option { return func(*app.Config) {} }},
	{"postgres", Postgres},
}

// WithTemplates lays the device templates in dir over the built-in ones and
// re-reads dir every reload.
func WithTemplates(dir string, reload time.Duration) Option {
	return func(c *app.Config) { c.TemplatesDir, c.TemplatesReload = dir, reload }
}

// WithMaxBody sets the request body limit.
func WithMaxBody(n int64) Option { return func(c *app.Config) { c.MaxBodyBytes = n } }

// WithLogger sends the server's logs to w (default: discarded).
func WithLogger(w io.Writer) Option {
	return func(c *app.Config) { c.Logger = slog.New(slog.NewJSONHandler(w, nil)) }
}

// WithMQTT turns on MQTT ingestion (see app.MQTTConfig).
func WithMQTT(m app.MQTTConfig) Option { return func(c *app.Config) { c.MQTT = m } }

// WithNATS turns on NATS JetStream ingestion (see app.NATSConfig).
func WithNATS(n app.NATSConfig) Option { return func(c *app.Config) { c.NATS = n } }

// WithAuditReads sets whether reads, searches, history and operations are
// audited (app.AuditConfig.Reads; on by default, as pulsewire serve runs).
func WithAuditReads(on bool) Option { return func(c *app.Config) { c.Audit.Reads = on } }

// FlushAudit waits until the audit records of every request answered so
// far are committed (reads are recorded shortly after their response).
func (s *Server) FlushAudit(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.App.Auditor().Flush(ctx); err != nil {
		t.Fatalf("flushing the audit trail: %v", err)
	}
}

// WithSweep sets the held-reading sweep interval (negative: off).
func WithSweep(d time.Duration) Option { return func(c *app.Config) { c.SweepInterval = d } }

// MQTTBroker and NATSURL are the local brokers of the development and CI
// machines (see /work/shared/NOTES.md).
const (
	MQTTBroker = "tcp://127.0.0.1:1883"
	NATSURL    = "nats://127.0.0.1:4222"
)

// RequireTCP skips the test when nothing listens at addr (host:port),
// unless CI is set: then it fails. what names the service in the message.
func RequireTCP(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not reachable at %s (CI is set): %v", what, addr, err)
		}
		t.Skipf("%s not reachable at %s: %v", what, addr, err)
	}
	c.Close()
}

// WaitIngestReady waits until the server's MQTT subscription is in place
// (readings published before it would find no subscriber).
func (s *Server) WaitIngestReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !s.App.IngestReady() {
		if time.Now().After(deadline) {
			t.Fatalf("ingestion transports not ready after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tenants registered in every test server.
var Tenants = []string{"acme", "globex"}

// Start starts a server on an empty store in t.TempDir and stops it when the
// test ends. Authorization is off unless WithAuth is given; reads are
// audited unless WithAuditReads(false) is given.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := app.Config{
		DataDir: t.TempDir(),
		Tenants: Tenants,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:    app.AuthConfig{Mode: app.AuthOff},
		Audit:   app.AuditConfig{Reads: true},
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		a.Close()
		t.Fatalf("listening: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return &Server{URL: "http://" + ln.Addr().String(), App: a, AdminToken: cfg.Auth.AdminToken, publicURL: cfg.PublicBaseURL}
}

// FHIRBase is the FHIR base URL of a tenant.
func (s *Server) FHIRBase(tenant string) string { return s.URL + "/t/" + tenant + "/fhir" }

// MQTTPublisher connects a QoS 1 publisher (clean session) to the local
// broker and disconnects it when the test ends. Its Publish returns once
// the broker sent PUBACK: the broker has accepted the reading.
func MQTTPublisher(t testing.TB, clientID string) *autopaho.ConnectionManager {
	t.Helper()
	RequireTCP(t, "Mosquitto", "127.0.0.1:1883")
	return MQTTPublisherTo(t, MQTTBroker, clientID)
}

// MQTTPublisherTo is MQTTPublisher for the broker at the URL broker.
func MQTTPublisherTo(t testing.TB, broker, clientID string) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatalf("mqtt broker URL: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                5 * time.Second,
		ClientConfig:                  paho.ClientConfig{ClientID: clientID},
	})
	if err != nil {
		cancel()
		t.Fatalf("mqtt publisher: %v", err)
	}
	t.Cleanup(func() {
		dctx, dc := context.WithTimeout(context.Background(), 5*time.Second)
		defer dc()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatalf("mqtt publisher connect: %v", err)
	}
	return cm
}

// JetStream connects to the local NATS server, and deletes the named
// streams and closes the connection when the test ends.
func JetStream(t testing.TB, deleteStreams ...string) jetstream.JetStream {
	t.Helper()
	RequireTCP(t, "NATS", "127.0.0.1:4222")
	nc, err := nats.Connect(NATSURL)
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("jetstream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range deleteStreams {
			if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("deleting stream %s: %v", s, err)
			}
		}
		nc.Close()
	})
	return js
}
