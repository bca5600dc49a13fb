package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pulsewire/pulsewire/adapters/mllp"
	"github.com/pulsewire/pulsewire/server/adtin"
	"github.com/pulsewire/pulsewire/server/search"
)

// ADTConfig turns on inbound ADT over MLLP (server/adtin) when Listeners is
// not empty. Each listener serves one tenant: the port tells whose messages
// arrive, so an interface engine needs no tenant field in its messages.
type ADTConfig struct {
	Listeners []ADTListener
	// Tenants holds per-tenant settings (identifier systems, time zone,
	// bed-following); SettingsFile, when set, is read with
	// adtin.ParseSettings and its entries added. A tenant without settings
	// gets the zero Settings (bed-following off).
	Tenants      map[string]adtin.Settings
	SettingsFile string
	// TLS: a certificate and key turn TLS on for every ADT listener; a
	// client CA file makes it mutual (the engine must present a
	// certificate that CA signed).
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	MaxFrame                                 int // largest accepted message; 0: mllp.DefaultMaxFrame
}

// ADTListener is one MLLP port and the tenant it receives for.
type ADTListener struct {
	Tenant string
	Addr   string // e.g. ":2575"; ":0" picks a free port (see App.ADTAddr)
}

// adtWiring is what App keeps of the ADT listeners.
type adtWiring struct {
	svc   *adtin.Service
	addrs map[string][]string // tenant -> bound addresses
}

// setupADT opens the configured ADT listeners (so that a bad address or
// an unregistered tenant fails New) and adds one runner per listener.
func (a *App) setupADT(ctx context.Context, reg *search.Registry) error {
	cfg := a.cfg.ADT
	if len(cfg.Listeners) == 0 {
		return nil
	}
	for _, l := range cfg.Listeners {
		ok, err := a.store.TenantExists(ctx, l.Tenant)
		if err != nil {
			return fmt.Errorf("ADT listener for tenant %s: %w", l.Tenant, err)
		}
		if !ok {
			return fmt.Errorf("ADT listener for tenant %q: the tenant is not registered", l.Tenant)
		}
	}
	settings := map[string]adtin.Settings{}
	for t, s := range cfg.Tenants {
		settings[t] = s
	}
	if cfg.SettingsFile != "" {
		b, err := os.ReadFile(cfg.SettingsFile)
		if err != nil {
			return fmt.Errorf("reading ADT settings file: %w", err)
		}
		fromFile, err := adtin.ParseSettings(b)
		if err != nil {
			return err
		}
		for t, s := range fromFile {
			settings[t] = s
		}
	}
	tlsConfig, err := adtTLS(cfg)
	if err != nil {
		return err
	}
	svc := adtin.New(adtin.Config{
		Store:      a.store,
		Registry:   reg,
		Settings:   func(tenant string) adtin.Settings { return settings[tenant] },
		Associated: a.releaseHeld,
		Logger:     a.log,
	})
	a.adt = &adtWiring{svc: svc, addrs: map[string][]string{}}
	a.statSources = append(a.statSources, statSource{"adt", func() any { return svc.Stats() }})
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return fmt.Errorf("ADT listener for tenant %s: %w", l.Tenant, err)
		}
		a.adt.addrs[l.Tenant] = append(a.adt.addrs[l.Tenant], ln.Addr().String())
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		tenant := l.Tenant
		srv := &mllp.Server{
			Handler: func(ctx context.Context, msg []byte) []byte {
				return svc.HandleFrame(ctx, tenant, msg)
			},
			MaxFrame: cfg.MaxFrame,
			Reject:   func(error) []byte { return svc.TooLarge() },
			Logger:   a.log.With("tenant", tenant, "listener", "adt"),
		}
		a.runners = append(a.runners, runner{
			name:  "adt " + tenant,
			run:   func(ctx context.Context) error { return serveMLLP(ctx, srv, ln) },
			close: func() { _ = ln.Close() },
		})
	}
	return nil
}

// serveMLLP serves ln until ctx ends, then lets the messages in flight be
// applied and acknowledged (up to 15 s) before returning, so the store is
// still open for them.
func serveMLLP(ctx context.Context, srv *mllp.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving MLLP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, mllp.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// releaseHeld releases the held readings of devices a bed-following
// association now covers. A failure only delays them: the sweep releases
// them too.
func (a *App) releaseHeld(ctx context.Context, tenant string, devices []string) {
	if a.ingest == nil {
		return
	}
	for _, d := range devices {
		if n, err := a.ingest.Release(ctx, tenant, d); err != nil {
			a.log.Warn("releasing held readings after an ADT message", "tenant", tenant, "device", d, "err", err)
		} else if n > 0 {
			a.log.Info("held readings released", "tenant", tenant, "device", d, "released", n)
		}
	}
}

func adtTLS(cfg ADTConfig) (*tls.Config, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		if cfg.TLSClientCAFile != "" {
			return nil, errors.New("ADT TLS: a client CA needs a certificate and key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ADT TLS: loading certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("ADT TLS: reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ADT TLS: the client CA file holds no PEM certificate")
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// ADTAddr returns the address the first ADT listener of tenant is bound
// to ("" when it has none): the real port of a ":0" listener.
func (a *App) ADTAddr(tenant string) string {
	if a.adt == nil || len(a.adt.addrs[tenant]) == 0 {
		return ""
	}
	return a.adt.addrs[tenant][0]
}

// ADTStats returns the inbound ADT counts (zero when ADT is off).
func (a *App) ADTStats() adtin.Stats {
	if a.adt == nil {
		return adtin.Stats{}
	}
	return a.adt.svc.Stats()
}
