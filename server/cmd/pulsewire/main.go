// Command pulsewire is the Pulsewire integration server and its operator CLI.
//
//	pulsewire serve         run the server (the default command)
//	pulsewire migrate       apply database migrations and exit
//	pulsewire tenant add T  register a tenant
//	pulsewire load-sample   load synthetic sample data into a running server
//	pulsewire mapping test  show the FHIR resources a device payload maps to
//	pulsewire device-key add, dead-letters list|show|replay, ingest release
//
// main only parses flags and environment into an app.Config and wires; see
// package server/app. Every flag has an environment variable (12-factor).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pulsewire/pulsewire/fixtures/sample"
	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/mappingcli"
	"github.com/pulsewire/pulsewire/server/app"
	"github.com/pulsewire/pulsewire/server/authz"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pulsewire:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: pulsewire <command> [flags]

commands:
  serve        run the server (default)
  migrate      apply database migrations and exit
  tenant add   register tenants: pulsewire tenant add NAME...
  load-sample  load synthetic sample data into a running server
  mapping test show what a device payload maps to, or why it does not match
  device-key add      create a device or gateway key: --tenant T [--device ID]...
  dead-letters list|show ID|replay ID   inspect and replay unmappable readings (--tenant T)
  ingest release      release held readings whose device now has a patient (--tenant T)
  hl7 send|listen|validate   test an HL7 feed by hand: send over MLLP, receive, check files
  clients|users|keys ...     manage SMART clients, login users and signing keys (--tenant T)
  outbox list|show|replay|pause|resume|stats   outbound HL7 results: dead letters, destinations (--tenant T)
  audit verify        check a tenant's hash-chained audit trail (--tenant T)
  version      print the version

Run 'pulsewire <command> -h' for the flags of a command.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "tenant":
		if len(args) == 0 || args[0] != "add" {
			return fmt.Errorf("usage: pulsewire tenant add NAME [NAME ...]")
		}
		return tenantAdd(ctx, args[1:], getenv, stdout, stderr)
	case "load-sample":
		return loadSample(ctx, args, getenv, stdout, stderr)
	case "mapping":
		if len(args) == 0 || args[0] != "test" {
			return fmt.Errorf("usage: pulsewire mapping test [--template FILE] --payload FILE")
		}
		return mappingTest(args[1:], stdout, stderr)
	case "hl7":
		return hl7Command(ctx, args, stdout, stderr)
	case "device-key", "dead-letters", "ingest":
		return ingestCommand(ctx, cmd, args, getenv, stdout, stderr)
	case "clients", "users", "keys":
		return smartCommand(ctx, cmd, args, getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, args, getenv, stdout, stderr)
	case "outbox":
		return outboxCommand(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "pulsewire", app.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// env returns the environment value of key, or def when it is unset.
func env(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// storeFlags are the flags of every command that opens the store.
func storeFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) {
	fs.StringVar(&cfg.DataDir, "data-dir", env(getenv, "PULSEWIRE_DATA_DIR", "data"),
		"directory of the embedded SQLite store (env PULSEWIRE_DATA_DIR)")
	fs.StringVar(&cfg.PostgresDSN, "postgres", getenv("PULSEWIRE_POSTGRES_DSN"),
		"PostgreSQL DSN; when set, PostgreSQL is the store instead of SQLite (env PULSEWIRE_POSTGRES_DSN)")
	fs.StringVar(&cfg.PostgresRole, "postgres-role", env(getenv, "PULSEWIRE_POSTGRES_ROLE", "pulsewire_app"),
		"role the server's queries run as, so row-level security applies (env PULSEWIRE_POSTGRES_ROLE)")
	conns, _ := strconv.Atoi(env(getenv, "PULSEWIRE_POSTGRES_CONNS", "32"))
	fs.IntVar(&cfg.PostgresConns, "postgres-conns", conns, "PostgreSQL pool size (env PULSEWIRE_POSTGRES_CONNS)")
}

func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	fs.StringVar(&cfg.Addr, "addr", env(getenv, "PULSEWIRE_ADDR", "127.0.0.1:8080"), "listen address (env PULSEWIRE_ADDR)")
	tenants := fs.String("tenants", env(getenv, "PULSEWIRE_TENANTS", "acme,globex"),
		"comma-separated tenants to register at start (env PULSEWIRE_TENANTS)")
	maxBody := fs.Int64("max-body", 4<<20, "largest accepted request body in bytes (env PULSEWIRE_MAX_BODY)")
	if v := getenv("PULSEWIRE_MAX_BODY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("PULSEWIRE_MAX_BODY: %w", err)
		}
		*maxBody = n
	}
	fs.StringVar(&cfg.PublicBaseURL, "public-url", getenv("PULSEWIRE_PUBLIC_URL"),
		"external base URL when behind a proxy, e.g. https://fhir.example.org (env PULSEWIRE_PUBLIC_URL)")
	accessLog := fs.Bool("access-log", env(getenv, "PULSEWIRE_ACCESS_LOG", "true") == "true",
		"log one line per request: route pattern and status, never query or body (env PULSEWIRE_ACCESS_LOG)")
	level := fs.String("log-level", env(getenv, "PULSEWIRE_LOG_LEVEL", "info"), "debug, info, warn or error (env PULSEWIRE_LOG_LEVEL)")
	debugAddr := fs.String("debug-addr", getenv("PULSEWIRE_DEBUG_ADDR"),
		"serve Go's profiler (/debug/pprof) on this address, e.g. 127.0.0.1:6060; off when empty (env PULSEWIRE_DEBUG_ADDR)")
	if err := ingestFlags(fs, &cfg, getenv); err != nil {
		return err
	}
	if err := adtFlags(fs, &cfg, getenv); err != nil {
		return err
	}
	if err := deliveryFlags(fs, &cfg, getenv); err != nil {
		return err
	}
	if err := authFlags(fs, &cfg, getenv); err != nil {
		return err
	}
	applyGraphQL, err := graphqlFlags(fs, &cfg, getenv)
	if err != nil {
		return err
	}
	auditReads, err := strconv.ParseBool(env(getenv, "PULSEWIRE_AUDIT_READS", "true"))
	if err != nil {
		return fmt.Errorf("PULSEWIRE_AUDIT_READS: %w", err)
	}
	fs.BoolVar(&cfg.Audit.Reads, "audit-reads", auditReads,
		"record an AuditEvent for every read, search, history and $lastn; false leaves only writes, denials and 401s audited (env PULSEWIRE_AUDIT_READS)")
	fs.StringVar(&cfg.TemplatesDir, "templates", getenv("PULSEWIRE_TEMPLATES"),
		"directory of device mapping templates (JSON) laid over the built-in ones (env PULSEWIRE_TEMPLATES)")
	reload, err := durationEnv(getenv, "PULSEWIRE_TEMPLATES_RELOAD", 5*time.Second)
	if err != nil {
		return err
	}
	fs.DurationVar(&cfg.TemplatesReload, "templates-reload", reload,
		"how often the templates directory is checked for changes; 0: never (env PULSEWIRE_TEMPLATES_RELOAD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyGraphQL(); err != nil {
		return err
	}
	cfg.MaxBodyBytes = *maxBody
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = -1 // the flag's "off"; app.Config's zero means the default
	}
	cfg.AccessLog = *accessLog
	cfg.Logger = logger(stderr, *level)
	for _, t := range strings.Split(*tenants, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Tenants = append(cfg.Tenants, t)
		}
	}

	tuneGC(getenv)
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := serveDebug(ctx, *debugAddr, cfg.Logger); err != nil {
			a.Close()
			return fmt.Errorf("debug listener: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.Close()
		return fmt.Errorf("listening: %w", err)
	}
	storeName := "sqlite (" + cfg.DataDir + ")"
	if cfg.PostgresDSN != "" {
		storeName = "postgres"
	}
	base := "http://" + ln.Addr().String()
	cfg.Logger.Info("pulsewire started", "addr", ln.Addr().String(), "store", storeName, "tenants", cfg.Tenants,
		"mqtt", cfg.MQTT.Broker != "", "nats", cfg.NATS.URL != "")
	for _, t := range cfg.Tenants {
		fmt.Fprintf(stdout, "FHIR base URL for tenant %s: %s/t/%s/fhir\n", t, base, t)
	}
	return a.Serve(ctx, ln)
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := app.OpenStore(ctx, cfg) // opening applies the migrations
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return s.Close()
}

func tenantAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("tenant add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeFlags(fs, &cfg, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: pulsewire tenant add NAME [NAME ...]")
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, t := range fs.Args() {
		if err := app.AddTenant(ctx, s, t); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "tenant", t, "registered")
	}
	return nil
}

func loadSample(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load-sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", env(getenv, "PULSEWIRE_URL", "http://127.0.0.1:8080"), "server URL (env PULSEWIRE_URL)")
	tenants := fs.String("tenants", "acme,globex", "comma-separated tenants to load (each must be registered)")
	patients := fs.Int("patients", 10, "patients per tenant")
	hours := fs.Int("hours", 24, "hours of vital signs per patient")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, t := range strings.Split(*tenants, ",") {
		t = strings.TrimSpace(t)
		n, err := sample.Load(ctx, *url+"/t/"+t+"/fhir", sample.Options{Tenant: t, Patients: *patients, Hours: *hours})
		if err != nil {
			return fmt.Errorf("loading sample data into tenant %s: %w", t, err)
		}
		fmt.Fprintf(stdout, "tenant %s: %d resources loaded\n", t, n)
	}
	return nil
}

// mappingTest prints the FHIR resources a device payload maps to with the
// built-in templates (or one template file), or exactly why it does not match.
func mappingTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mapping test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tplPath := fs.String("template", "", "a template file (JSON); default: the built-in templates")
	payloadPath := fs.String("payload", "", "the device payload file (JSON); - reads standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *payloadPath == "" {
		return fmt.Errorf("usage: pulsewire mapping test [--template FILE] --payload FILE")
	}
	var payload []byte
	var err error
	if *payloadPath == "-" {
		payload, err = io.ReadAll(os.Stdin)
	} else {
		payload, err = os.ReadFile(*payloadPath)
	}
	if err != nil {
		return fmt.Errorf("reading payload: %w", err)
	}
	set, err := device.Builtin()
	if err != nil {
		return fmt.Errorf("loading built-in templates: %w", err)
	}
	if *tplPath != "" {
		b, err := os.ReadFile(*tplPath)
		if err != nil {
			return fmt.Errorf("reading template: %w", err)
		}
		t, err := device.ParseTemplate(*tplPath, b)
		if err != nil {
			return err
		}
		if set, err = device.NewTemplates(t); err != nil {
			return err
		}
	}
	resources, report, err := mappingcli.Explain(set, payload)
	for _, r := range resources {
		fmt.Fprintf(stdout, "%s\n", r)
	}
	fmt.Fprint(stdout, report)
	return err
}

// authFlags are the flags of SMART authorization and the policy decision.
// The admin token and external issuers come from the environment only.
func authFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) error {
	a := &cfg.Auth
	fs.Func("auth", `smart: the FHIR API requires SMART access tokens (default); off: no authorization, development only (env PULSEWIRE_AUTH)`,
		func(v string) error { a.Mode = app.AuthMode(v); return nil })
	a.Mode = app.AuthMode(env(getenv, "PULSEWIRE_AUTH", string(app.AuthSMART)))
	a.AdminToken = getenv("PULSEWIRE_ADMIN_TOKEN")
	var err error
	if a.ExternalIssuers, err = app.ParseExternalIssuers(getenv("PULSEWIRE_EXTERNAL_ISSUERS")); err != nil {
		return fmt.Errorf("PULSEWIRE_EXTERNAL_ISSUERS: %w", err)
	}
	fs.StringVar(&a.RedisURL, "redis-url", getenv("PULSEWIRE_REDIS_URL"),
		"Redis URL (redis://host:6379/0): decision cache and authorization state shared by replicas; empty: in process (env PULSEWIRE_REDIS_URL; prefer it when the URL holds a password)")
	fs.StringVar(&a.RedisPrefix, "redis-prefix", env(getenv, "PULSEWIRE_REDIS_PREFIX", "pulsewire:"),
		"prefix of every Redis key and channel (env PULSEWIRE_REDIS_PREFIX)")
	fs.Func("consent-model", "opt-out (share unless a Consent denies; default) or opt-in (share only where a Consent permits) (env PULSEWIRE_CONSENT_MODEL)",
		func(v string) error { a.ConsentModel = authz.ConsentModel(v); return nil })
	a.ConsentModel = authz.ConsentModel(env(getenv, "PULSEWIRE_CONSENT_MODEL", string(authz.OptOut)))
	fs.BoolVar(&a.SystemBypassesConsent, "system-bypasses-consent", env(getenv, "PULSEWIRE_SYSTEM_BYPASSES_CONSENT", "false") == "true",
		"system/ scopes (backend services) see data regardless of patients' Consents (env PULSEWIRE_SYSTEM_BYPASSES_CONSENT)")
	return nil
}
