package smart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// TenantChecker reports whether a tenant is registered. fhir.Store
// implements it.
type TenantChecker interface {
	TenantExists(ctx context.Context, tenant string) (bool, error)
}

// PatientChoice is one entry of the standalone-launch patient picker.
// Display is shown to the signed-in user and never logged.
type PatientChoice struct {
	ID      string
	Display string
}

// PatientLister finds the tenant's patients for the standalone-launch
// patient picker. server/app implements it over the resource store. Errors
// are *fhir.Error values.
type PatientLister interface {
	// ListPatients returns at most limit patients whose name matches query
	// ("" matches all), in a stable order.
	ListPatients(ctx context.Context, tenant, query string, limit int) ([]PatientChoice, error)
	// PatientExists reports whether the tenant has a Patient with this id.
	PatientExists(ctx context.Context, tenant, id string) (bool, error)
}

// ScopeFilter returns the scopes of requested that a client registered
// with allowed may be granted, in the order requested. The default grants
// exactly the requested strings that the client registered; server/authz
// may supply one that understands wildcards (allowed patient/*.rs covering
// a requested patient/Observation.rs).
type ScopeFilter func(allowed, requested []string) []string

// Config configures a Server. Registry and Tenants are required, and a
// State.
type Config struct {
	Registry registry.Store
	// State keeps codes, refresh tokens, replay markers, launch contexts
	// and revocations; replicas that share it share them. It must be
	// durable: a store that forgets revocations brings revoked tokens
	// back. nil: Registry, which must then implement registry.State (the
	// SQL stores do).
	State    registry.State
	Tenants  TenantChecker
	Patients PatientLister // nil: standalone launch/patient works only for patient users

	// PublicBaseURL is scheme://host[:port][/prefix] as clients reach the
	// server; "" derives it from each request (scheme and Host), which is
	// only safe behind a proxy that sets Host. Issuers, aud values and
	// endpoint URLs are built from it.
	PublicBaseURL string

	// AdminToken protects the admin API (clients, users, launch contexts)
	// as "Authorization: Bearer <AdminToken>"; "" disables the admin API.
	AdminToken string

	// ExternalIssuers lists, per tenant, the outside issuers whose access
	// tokens the tenant accepts.
	ExternalIssuers map[string][]ExternalIssuer

	// ScopeFilter narrows requested scopes to a client's; nil: exact match.
	ScopeFilter ScopeFilter

	AccessTokenTTL  time.Duration // user-facing access tokens; 0: 1 h
	BackendTokenTTL time.Duration // client_credentials access tokens; 0: 5 min
	OfflineTTL      time.Duration // refresh tokens of offline_access; 0: 30 days
	OnlineTTL       time.Duration // refresh tokens of online_access; 0: 12 h
	CodeTTL         time.Duration // authorization codes; 0: 1 min
	LaunchTTL       time.Duration // EHR launch contexts; 0: 1 h
	KeyOverlap      time.Duration // how long a superseded signing key stays published; 0: 24 h
	KeyCacheTTL     time.Duration // how long a tenant's keys are cached; 0: 1 min
	JWKSCacheTTL    time.Duration // how long a fetched client/issuer JWKS is cached; 0: 5 min
	HTTPClient      *http.Client  // fetches JWKS URLs; nil: a client with a 5 s timeout

	// RevocationRefresh is how often Run reads the revocations other
	// replicas made; 0: 500 ms. RevocationMaxStale bounds how old the
	// in-process revocation set may be when a token is checked: an older
	// one is reloaded by the check itself, which fails (500) if the store
	// does; 0: 3 s.
	RevocationRefresh  time.Duration
	RevocationMaxStale time.Duration

	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Server is the SMART authorization server of every tenant. Create it with
// New and mount it with Register.
type Server struct {
	reg       registry.Store
	tenantsDB TenantChecker
	state     registry.State
	patients  PatientLister
	publicURL string
	adminTok  string
	external  map[string][]ExternalIssuer
	filter    ScopeFilter
	ttl       ttls
	log       *slog.Logger
	now       func() time.Time

	keys     *keyCache
	jwks     *jwksCache
	pages    *pages
	verified grantCache

	revoked           *revocationSet
	revocationRefresh time.Duration
	stateTenants      sync.Map // tenants with state this replica purges

	tenantsMu sync.Mutex
	tenants   map[string]time.Time // known tenant -> until
}

type ttls struct {
	access, backend, offline, online, code, launch, keyOverlap, keyCache time.Duration
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// New returns a Server over cfg.
func New(cfg Config) (*Server, error) {
	state := cfg.State
	if state == nil {
		state, _ = cfg.Registry.(registry.State)
	}
	if cfg.Registry == nil || state == nil || cfg.Tenants == nil {
		return nil, errors.New("smart: Config.Registry, Config.Tenants and a registry.State (Config.State, or the Registry) are required")
	}
	s := &Server{
		reg:       cfg.Registry,
		tenantsDB: cfg.Tenants,
		state:     state,
		patients:  cfg.Patients,
		publicURL: strings.TrimRight(cfg.PublicBaseURL, "/"),
		adminTok:  cfg.AdminToken,
		external:  cfg.ExternalIssuers,
		filter:    cfg.ScopeFilter,
		log:       cfg.Logger,
		now:       cfg.Now,
		ttl: ttls{
			access:     orDefault(cfg.AccessTokenTTL, time.Hour),
			backend:    orDefault(cfg.BackendTokenTTL, 5*time.Minute),
			offline:    orDefault(cfg.OfflineTTL, 30*24*time.Hour),
			online:     orDefault(cfg.OnlineTTL, 12*time.Hour),
			code:       orDefault(cfg.CodeTTL, time.Minute),
			launch:     orDefault(cfg.LaunchTTL, time.Hour),
			keyOverlap: orDefault(cfg.KeyOverlap, 24*time.Hour),
			keyCache:   orDefault(cfg.KeyCacheTTL, time.Minute),
		},
		tenants:           map[string]time.Time{},
		revocationRefresh: orDefault(cfg.RevocationRefresh, defaultRevocationRefresh),
	}
	if s.filter == nil {
		s.filter = exactScopes
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.revoked = newRevocationSet(s.state, orDefault(cfg.RevocationMaxStale, defaultRevocationMaxStale), s.log)
	for tenant, iss := range s.external {
		for _, x := range iss {
			if err := x.validate(); err != nil {
				return nil, fmt.Errorf("external issuer of tenant %s: %w", tenant, err)
			}
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	s.keys = newKeyCache(s)
	s.jwks = newJWKSCache(hc, orDefault(cfg.JWKSCacheTTL, 5*time.Minute), s.now)
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	s.pages = p
	return s, nil
}

// Register mounts the authorization server's routes on e (see the package
// comment). Errors of the admin routes and unknown tenants are *fhir.Error
// values for e's HTTPErrorHandler (rest.ErrorHandler); the OAuth endpoints
// answer RFC 6749 JSON errors themselves.
//
// The FHIR API registers /t/:tenant/fhir/:type/:id; the static
// .well-known routes here take precedence over it in echo's router.
func (s *Server) Register(e *echo.Echo) {
	mw := []echo.MiddlewareFunc{s.tenantCheck}
	// Browser apps (public clients) read the discovery documents and keys
	// and call the token and revocation endpoints from their own origin.
	// Nothing there uses cookies, so any origin may (CORS without
	// credentials). The pages and the admin API get no CORS headers.
	api := []echo.MiddlewareFunc{cors, s.tenantCheck}
	fhirBase := e.Group("/t/:tenant/fhir")
	fhirBase.GET("/.well-known/smart-configuration", s.smartConfiguration, api...)
	fhirBase.GET("/.well-known/openid-configuration", s.openIDConfiguration, api...)

	auth := e.Group("/t/:tenant/auth")
	auth.GET("/jwks", s.jwksHandler, api...)
	auth.GET("/authorize", s.authorize, mw...)
	auth.POST("/authorize", s.authorize, mw...)
	auth.POST("/login", s.login, mw...)
	auth.POST("/approve", s.approve, mw...)
	auth.POST("/token", s.token, api...)
	auth.POST("/introspect", s.introspect, mw...)
	auth.POST("/revoke", s.revoke, api...)
	for _, p := range []string{"/token", "/revoke"} {
		auth.OPTIONS(p, preflight, cors)
	}

	admin := append(mw, s.adminOnly)
	auth.POST("/launch", s.createLaunch, admin...)
	ad := e.Group("/t/:tenant/admin")
	ad.POST("/clients", s.addClient, admin...)
	ad.GET("/clients", s.listClients, admin...)
	ad.GET("/clients/:id", s.getClient, admin...)
	ad.DELETE("/clients/:id", s.deleteClient, admin...)
	ad.POST("/users", s.addUser, admin...)
	ad.GET("/users", s.listUsers, admin...)
	ad.DELETE("/users/:username", s.deleteUser, admin...)
}

// cors allows cross-origin reads without credentials.
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		c.Response().Header().Set("Access-Control-Allow-Origin", "*")
		return next(c)
	}
}

// preflight answers a CORS preflight of the token and revocation
// endpoints (a client_secret_basic app sends Authorization).
func preflight(c *echo.Context) error {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	return c.NoContent(http.StatusNoContent)
}

// tenantCheck rejects a tenant that is not registered (404). Known tenants
// are cached for a minute; unknown ones are not cached.
func (s *Server) tenantCheck(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ok, err := s.tenantExists(c.Request().Context(), c.Param("tenant"))
		if err != nil {
			return err
		}
		if !ok {
			return fhir.Errorf(fhir.KindNotFound, "unknown tenant")
		}
		return next(c)
	}
}

func (s *Server) tenantExists(ctx context.Context, t string) (bool, error) {
	if !fhir.ValidTenant(t) {
		return false, nil
	}
	now := s.now()
	s.tenantsMu.Lock()
	until, ok := s.tenants[t]
	s.tenantsMu.Unlock()
	if ok && now.Before(until) {
		return true, nil
	}
	exists, err := s.tenantsDB.TenantExists(ctx, t)
	if err != nil {
		return false, fhir.Errorf(fhir.KindInternal, "checking tenant").Wrap(err)
	}
	if exists {
		s.tenantsMu.Lock()
		s.tenants[t] = now.Add(time.Minute)
		s.tenantsMu.Unlock()
	}
	return exists, nil
}

// root is the public root URL for a request.
func (s *Server) root(r *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// fhirBase is the tenant's FHIR base URL for a request: the issuer of its
// tokens and the audience they are for.
func (s *Server) fhirBase(r *http.Request, tenant string) string {
	return s.root(r) + "/t/" + tenant + "/fhir"
}

// endpoints are one tenant's URLs as clients see them.
type endpoints struct {
	base      string // the FHIR base URL: issuer and resource-server audience
	authorize string
	token     string
	jwks      string
	introspect,
	revoke string
	cookiePath string // path of the authorization cookies
	secure     bool   // the public URL is https
}

func (s *Server) endpoints(r *http.Request, tenant string) endpoints {
	root := s.root(r)
	auth := root + "/t/" + tenant + "/auth"
	path := "/t/" + tenant + "/auth"
	if i := strings.Index(strings.TrimPrefix(strings.TrimPrefix(root, "https://"), "http://"), "/"); i >= 0 {
		// A public URL with a path prefix: cookies are set for the prefixed path.
		hostAndPath := strings.TrimPrefix(strings.TrimPrefix(root, "https://"), "http://")
		path = hostAndPath[i:] + path
	}
	return endpoints{
		base:       s.fhirBase(r, tenant),
		authorize:  auth + "/authorize",
		token:      auth + "/token",
		jwks:       auth + "/jwks",
		introspect: auth + "/introspect",
		revoke:     auth + "/revoke",
		cookiePath: path,
		secure:     strings.HasPrefix(root, "https://"),
	}
}
