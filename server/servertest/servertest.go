// Package servertest starts the whole Pulsewire server in-process on a free
// loopback port, wired exactly as the binary wires it (package server/app),
// for end-to-end tests. Like wtf's MustRunMain: tests talk HTTP to the real
// thing.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/app"
)

// Server is a running in-process server.
type Server struct {
	URL string // http://127.0.0.1:port
	App *app.App
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

// WithMaxBody sets the request body limit.
func WithMaxBody(n int64) Option { return func(c *app.Config) { c.MaxBodyBytes = n } }

// WithLogger sends the server's logs to w (default: discarded).
func WithLogger(w io.Writer) Option {
	return func(c *app.Config) { c.Logger = slog.New(slog.NewJSONHandler(w, nil)) }
}

// Tenants registered in every test server.
var Tenants = []string{"acme", "globex"}

// Start starts a server on an empty store in t.TempDir and stops it when the
// test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := app.Config{
		DataDir: t.TempDir(),
		Tenants: Tenants,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	return &Server{URL: "http://" + ln.Addr().String(), App: a}
}

// FHIRBase is the FHIR base URL of a tenant.
func (s *Server) FHIRBase(tenant string) string { return s.URL + "/t/" + tenant + "/fhir" }
