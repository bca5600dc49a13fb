// Package app wires Pulsewire's modules into one server: it opens the store
// named by the Config (embedded SQLite by default, PostgreSQL when a DSN is
// given), builds the FHIR REST API, health and metrics endpoints, and serves
// them until its context ends.
//
// Only server/cmd/pulsewire and tests (server/servertest) import it; it is the
// one package besides main that knows every adapter.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pulsewire/pulsewire/adapters/postgres"
	"github.com/pulsewire/pulsewire/adapters/sqlite"
	"github.com/pulsewire/pulsewire/conformance"
	"github.com/pulsewire/pulsewire/conformance/validate"
	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/ingest"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/search"
)

// Version is the software version reported in the CapabilityStatement.
var Version = "0.1.0-dev"

// Config is everything the server needs, filled from flags and environment
// by main (12-factor: no config files required).
type Config struct {
	Addr          string   // listen address, e.g. "127.0.0.1:8080"; ":0" picks a free port
	DataDir       string   // embedded store directory (used when PostgresDSN is empty)
	PostgresDSN   string   // when set, PostgreSQL is the store
	PostgresRole  string   // role to SET ROLE to so row-level security applies
	PostgresConns int      // pool size
	Tenants       []string // tenants registered at start (idempotent)
	MaxBodyBytes  int64
	PublicBaseURL string // external base URL, when behind a proxy
	AccessLog     bool   // one log line per request (route pattern and status only)
	Logger        *slog.Logger

	// Device ingestion over MQTT and NATS (off unless configured), and the
	// interval of the held-reading sweep (0 means 30s; negative: no sweep).
	MQTT          MQTTConfig
	NATS          NATSConfig
	SweepInterval time.Duration

	// TemplatesDir holds device mapping templates laid over the built-in
	// ones; it is re-read every TemplatesReload when a file changed.
	TemplatesDir    string
	TemplatesReload time.Duration

	// ADT is inbound ADT over MLLP (off unless listeners are configured).
	ADT ADTConfig

	// Auth is SMART authorization and the policy decision (required
	// unless Auth.Mode is AuthOff).
	Auth AuthConfig

	// Delivery is outbound ORU^R01 delivery (off unless destinations are
	// configured).
	Delivery DeliveryConfig

	// Audit is the audit trail: writes and denials always, reads when
	// Audit.Reads is set.
	Audit AuditConfig

	// GraphQL is the GraphQL API (graph/): the federation gateway and our
	// subgraph, always on, with the same authorization as REST.
	GraphQL GraphQLConfig
}

// App is a wired, running-capable server.
type App struct {
	cfg     Config
	store   fhir.Store
	echo    *echo.Echo
	log     *slog.Logger
	handler http.Handler
	ingest  *ingest.Ingestor // nil when the store keeps no ingestion tables
	// batcher commits MQTT and NATS readings in shared transactions;
	// ackLatency times them from arrival to commit.
	batcher    *ingest.Batcher
	ackLatency *prometheus.HistogramVec

	runners   []runner        // transports and sweep, run by Serve
	mqttReady <-chan struct{} // nil when MQTT is off
	// statSources are the transports' counters, exported on /metrics.
	statSources []statSource
	adt         *adtWiring // nil when ADT is off
	audit       *audit.Auditor
}

// OpenStore opens the store the config names and applies migrations.
func OpenStore(ctx context.Context, cfg Config) (fhir.Store, error) {
	if cfg.PostgresDSN != "" {
		s, err := postgres.Open(ctx, postgres.Config{DSN: cfg.PostgresDSN, Role: cfg.PostgresRole, MaxConns: int32(cfg.PostgresConns)})
		if err != nil {
			return nil, fmt.Errorf("opening postgres store: %w", err)
		}
		if err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("migrating postgres store: %w", err)
		}
		return s, nil
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, "pulsewire.db"))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store: %w", err)
	}
	return s, nil
}

// New opens the store and builds the HTTP server.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, t := range cfg.Tenants {
		if err := AddTenant(ctx, store, t); err != nil {
			store.Close()
			return nil, err
		}
	}
	validator, err := validate.New()
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("loading FHIR validator: %w", err)
	}
	reg := search.NewRegistry()
	auth, err := setupAuth(ctx, cfg, store, reg)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("setting up authorization: %w", err)
	}
	built := false
	defer func() {
		if !built {
			auth.close() // once built, a runner closes it
		}
	}()
	aud, err := setupAudit(cfg, store, reg)
	if err != nil {
		store.Close()
		return nil, err
	}
	defer func() {
		if !built {
			_ = closeAudit(aud) // once built, Serve or Close closes it
		}
	}()

	a := &App{cfg: cfg, store: store, log: cfg.Logger, audit: aud}
	if auth != nil {
		a.runners = append(a.runners, auth.runner())
	}
	e := echo.New()
	e.Logger = cfg.Logger
	metrics := newHTTPMetrics()
	e.Use(a.observe(metrics))

	restCfg := rest.Config{
		Store:         store,
		Registry:      reg,
		Validator:     validator,
		Capability:    capability(reg, cfg.Auth.Mode != AuthOff),
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Logger:        cfg.Logger,
		PublicBaseURL: cfg.PublicBaseURL,
	}
	auth.restConfig(&restCfg)
	restAudit(&restCfg, aud, cfg.Audit)
	api := rest.New(restCfg)
	api.Register(e)
	auth.register(e)
	if err := a.setupGraphQL(e, store, reg, auth, aud); err != nil {
		a.closeRunners()
		store.Close()
		return nil, err
	}

	// Device ingestion (server/ingest), on the built-in templates. Its
	// routes share the FHIR API's error handler (OperationOutcome).
	if ts, ok := store.(tables.Store); ok {
		builtin, err := device.Builtin()
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("loading built-in device templates: %w", err)
		}
		set := device.NewSet(builtin)
		if err := a.setupTemplates(set, cfg.TemplatesDir, cfg.TemplatesReload); err != nil {
			store.Close()
			return nil, err
		}
		ic := ingest.Config{Store: ts, Registry: reg, Templates: set}
		if aud != nil {
			ic.Audit = aud
		}
		a.ingest = ingest.New(ic)
		a.ingest.Register(e, ingest.HTTPConfig{MaxBodyBytes: cfg.MaxBodyBytes, Operator: auth.operator()})
		if err := a.setupTransports(ctx, metrics.registry); err != nil {
			a.closeRunners()
			store.Close()
			return nil, fmt.Errorf("setting up ingestion: %w", err)
		}
	} else if cfg.MQTT.Broker != "" || cfg.NATS.URL != "" {
		store.Close()
		return nil, errors.New("MQTT or NATS ingestion configured, but the store keeps no ingestion tables")
	}
	if err := a.setupADT(ctx, reg); err != nil {
		a.closeRunners()
		store.Close()
		return nil, fmt.Errorf("setting up ADT listeners: %w", err)
	}
	if err := a.setupDelivery(ctx, metrics.registry); err != nil {
		a.closeRunners()
		store.Close()
		return nil, fmt.Errorf("setting up delivery: %w", err)
	}

	e.GET("/healthz", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c *echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			a.log.Warn("readiness check failed", "err", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
		}
		if !a.IngestReady() {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "ingestion transports not subscribed yet"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	for _, src := range a.statSources {
		if err := metrics.registry.Register(newStatsCollector(src)); err != nil {
			store.Close()
			return nil, fmt.Errorf("registering %s metrics: %w", src.name, err)
		}
	}
	if err := metrics.registry.Register(newAuditCollector(aud)); err != nil {
		store.Close()
		return nil, fmt.Errorf("registering audit metrics: %w", err)
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(metrics.registry, promhttp.HandlerOpts{})))

	a.echo = e
	a.handler = e
	built = true
	return a, nil
}

// capability builds the CapabilityStatement from what the registry actually
// serves, so /metadata cannot claim a parameter the server does not index.
func capability(reg *search.Registry, smart bool) func(string) ([]byte, error) {
	var specs []conformance.ResourceSpec
	for _, t := range reg.Types() {
		spec := conformance.ResourceSpec{Type: t}
		for _, p := range reg.Params(t) {
			spec.SearchParams = append(spec.SearchParams, conformance.SearchParam{
				Name:          p.Code,
				Type:          string(p.Type),
				Documentation: p.Description,
			})
			if p.Type == fhir.ParamReference && !strings.HasPrefix(p.Code, "_") {
				spec.Includes = append(spec.Includes, t+":"+p.Code)
			}
		}
		specs = append(specs, spec)
	}
	// A type's revincludes are the includes of other types that can point at it.
	for i := range specs {
		for _, other := range specs {
			for _, p := range reg.Params(other.Type) {
				if p.Type != fhir.ParamReference {
					continue
				}
				for _, target := range p.Targets {
					if target == specs[i].Type {
						specs[i].RevIncludes = append(specs[i].RevIncludes, other.Type+":"+p.Code)
						break
					}
				}
			}
		}
	}
	started := time.Now().UTC()
	return func(base string) ([]byte, error) {
		o := conformance.Options{
			BaseURL:   base,
			Software:  "Pulsewire",
			Version:   Version,
			Resources: specs,
			Date:      started,
		}
		if smart {
			// server/smart serves each tenant's OAuth endpoints beside its
			// FHIR base: /t/{tenant}/auth/... for /t/{tenant}/fhir.
			auth := strings.TrimSuffix(base, "/fhir") + "/auth/"
			o.OAuth = &conformance.OAuthURIs{Authorize: auth + "authorize", Token: auth + "token",
				Revoke: auth + "revoke", Introspect: auth + "introspect"}
		}
		return conformance.CapabilityStatement(o)
	}
}

// Handler is the HTTP handler of the whole server (for tests and embedding).
func (a *App) Handler() http.Handler { return a.handler }

// Ingestor is the ingestion pipeline (nil when the store keeps no
// ingestion tables), for CLI commands and tests.
func (a *App) Ingestor() *ingest.Ingestor { return a.ingest }

// Store is the opened store (for CLI commands that work on it directly).
func (a *App) Store() fhir.Store { return a.store }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting connections, lets requests in flight finish (up to 15 s), stops
// the ingestion transports (their in-flight readings finish and are
// acknowledged; the rest stay with the broker) and the sweep, commits the
// queued audit records, and closes the store. A transport that stops on its
// own (e.g. its consumer cannot be created) shuts the server down with its
// error, so that the process is restarted rather than silently not
// ingesting.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	bgctx, bgcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgcancel()
	var bg sync.WaitGroup
	bgerr := make(chan error, len(a.runners))
	for _, r := range a.runners {
		bg.Go(func() {
			err := r.run(bgctx)
			if r.close != nil {
				r.close()
			}
			if err != nil && bgctx.Err() == nil {
				bgerr <- runnerErr(r.name, err)
			}
		})
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	served := false
	select {
	case err = <-errc:
		served = true
	case err = <-bgerr:
		a.log.Error("ingestion transport stopped", "err", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	if !served {
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	bgcancel()
	bg.Wait()
	if cerr := closeAudit(a.audit); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := a.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Close releases the store without serving (for commands that never Serve).
func (a *App) Close() error {
	a.closeRunners()
	aerr := closeAudit(a.audit)
	return errors.Join(aerr, a.store.Close())
}

type httpMetrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics() *httpMetrics {
	m := &httpMetrics{registry: prometheus.NewRegistry()}
	// Labels are the route pattern, never the path: a path holds resource ids.
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pulsewire_http_requests_total",
		Help: "HTTP requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pulsewire_http_request_duration_seconds",
		Help:    "HTTP request latency by method and route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route"})
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records metrics and one access-log line per request. It logs the
// route pattern and status, never the query string or body: both can hold
// patient identifiers.
func (a *App) observe(m *httpMetrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Render the error now so the status we record is the one sent.
				c.Echo().HTTPErrorHandler(c, err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := 0
			if r, uerr := echo.UnwrapResponse(c.Response()); uerr == nil {
				status = r.Status
			}
			d := time.Since(start)
			method := c.Request().Method
			m.requests.WithLabelValues(method, route, fmt.Sprint(status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(d.Seconds())
			if a.cfg.AccessLog && route != "/healthz" && route != "/readyz" && route != "/metrics" {
				a.log.Info("request", "method", method, "route", route, "tenant", c.Param("tenant"),
					"status", status, "ms", float64(d.Microseconds())/1000,
					"request_id", c.Response().Header().Get("X-Request-Id"))
			}
			return nil
		}
	}
}

// AddTenant validates a tenant name and registers it.
func AddTenant(ctx context.Context, s fhir.Store, tenant string) error {
	if !fhir.ValidTenant(tenant) {
		return fmt.Errorf("invalid tenant name %q: use lowercase letters, digits and '-' (at most 63)", tenant)
	}
	if err := s.EnsureTenant(ctx, tenant); err != nil {
		return fmt.Errorf("registering tenant %s: %w", tenant, err)
	}
	return nil
}
