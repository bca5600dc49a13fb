package rest

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Validator parses and validates a resource as FHIR R4 JSON. It returns the
// resource type, its id ("" when absent) and the canonical JSON to store.
// Errors are *fhir.Error: KindInvalid for malformed JSON, KindUnprocessable
// for invalid content (with element paths), KindNotSupported for an unknown
// resourceType. conformance/validate implements it.
type Validator interface {
	Validate(body []byte) (typ, id string, canonical []byte, err error)
}

// Config is what the API needs. Store, Registry and Validator are required.
type Config struct {
	Store     fhir.Store
	Registry  *search.Registry
	Validator Validator

	// Capability returns the CapabilityStatement JSON for a base URL
	// (GET [base]/metadata). Nil: metadata answers 404 not-supported.
	Capability func(baseURL string) ([]byte, error)

	MaxBodyBytes int64 // request body limit; 0: 4 MiB
	Logger       *slog.Logger

	// PublicBaseURL is scheme://host[:port][/prefix] as clients reach the
	// server; "" derives it from each request (scheme and Host).
	PublicBaseURL string

	// Auth authenticates every route except /metadata and puts the
	// caller's grant in the request context (smart.Server.Middleware);
	// Authorizer decides what the grant permits (see access.go). Set both,
	// or neither: without them the API serves everyone (development only).
	Auth       echo.MiddlewareFunc
	Authorizer Authorizer

	// Auditor records the AuditEvents of reads, searches and denials and
	// puts each request's principal in its context for the store's audit
	// write hook (see audit.go); nil audits nothing. AuditReads records
	// every read, search, history and operation; without it only denials
	// (and, through the hook, writes) are recorded.
	Auditor    Auditor
	AuditReads bool
}

// API is the FHIR REST API. Create it with New and mount it with Register.
type API struct {
	store     fhir.Store
	reg       *search.Registry
	validator Validator
	capab     func(string) ([]byte, error)
	maxBody   int64
	log       *slog.Logger
	publicURL string
	auth      echo.MiddlewareFunc
	az        Authorizer
	aud       Auditor
	audReads  bool // record reads, searches, history and operations too

	tenantTTL time.Duration
	tenantsMu sync.Mutex
	tenants   map[string]time.Time // tenant -> known to exist until
}

const defaultMaxBody = 4 << 20

// New returns an API over cfg.
func New(cfg Config) *API {
	a := &API{
		store:     cfg.Store,
		reg:       cfg.Registry,
		validator: cfg.Validator,
		capab:     cfg.Capability,
		maxBody:   cfg.MaxBodyBytes,
		log:       cfg.Logger,
		publicURL: strings.TrimRight(cfg.PublicBaseURL, "/"),
		auth:      cfg.Auth,
		az:        cfg.Authorizer,
		aud:       cfg.Auditor,
		audReads:  cfg.AuditReads,
		tenantTTL: 30 * time.Second,
		tenants:   map[string]time.Time{},
	}
	if a.maxBody <= 0 {
		a.maxBody = defaultMaxBody
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	return a
}

// Register mounts the API under /t/:tenant/fhir on e and sets e's
// HTTPErrorHandler to ErrorHandler, so that every error (including echo's
// own 404 and 405) becomes an OperationOutcome.
func (a *API) Register(e *echo.Echo) {
	e.HTTPErrorHandler = ErrorHandler(a.log)
	e.Pre(cors)
	// The middleware is attached to each route, not to the group: a group
	// with middleware registers catch-all 404 routes that would turn echo's
	// 405 (method not allowed) into 404.
	g := e.Group("/t/:tenant/fhir")
	mw := []echo.MiddlewareFunc{requestID, recoverPanic, a.tenantCheck}
	// /metadata is public (the CapabilityStatement, like the SMART
	// discovery documents server/smart serves); every other route
	// authenticates after the tenant check, and is audited (audit.go).
	g.Add(http.MethodGet, "/metadata", a.metadata, mw...)
	if a.aud != nil {
		mw = append(mw, a.audited)
	}
	if a.auth != nil {
		mw = append(mw, a.auth)
		if a.aud != nil {
			mw = append(mw, a.principal)
		}
	}
	route := func(method, path string, h echo.HandlerFunc) { g.Add(method, path, h, mw...) }

	route(http.MethodPost, "", a.bundle)
	route(http.MethodPost, "/", a.bundle)
	route(http.MethodGet, "/_history", a.systemHistory)

	route(http.MethodGet, "/Observation/$lastn", a.lastN)
	route(http.MethodPost, "/Observation/$lastn", a.lastN)

	route(http.MethodGet, "/:type", a.searchType)
	route(http.MethodPost, "/:type", a.create)
	route(http.MethodPut, "/:type", a.conditionalUpdate)
	route(http.MethodPost, "/:type/_search", a.searchType)
	route(http.MethodGet, "/:type/_history", a.typeHistory)
	route(http.MethodGet, "/:type/:id", a.read)
	route(http.MethodPut, "/:type/:id", a.update)
	route(http.MethodDelete, "/:type/:id", a.delete)
	route(http.MethodGet, "/:type/:id/_history", a.instanceHistory)
	route(http.MethodGet, "/:type/:id/_history/:vid", a.vread)
}

// tenantCheck rejects requests for a tenant that is not registered. Known
// tenants are cached for tenantTTL; unknown ones are not cached, so that
// random names cannot grow the cache.
func (a *API) tenantCheck(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		t := c.Param("tenant")
		if !fhir.ValidTenant(t) {
			return fhir.Errorf(fhir.KindNotFound, "unknown tenant")
		}
		ok, err := a.tenantExists(c.Request().Context(), t)
		if err != nil {
			return err
		}
		if !ok {
			return fhir.Errorf(fhir.KindNotFound, "unknown tenant")
		}
		return next(c)
	}
}

func (a *API) tenantExists(ctx context.Context, t string) (bool, error) {
	now := time.Now()
	a.tenantsMu.Lock()
	until, ok := a.tenants[t]
	a.tenantsMu.Unlock()
	if ok && now.Before(until) {
		return true, nil
	}
	exists, err := a.store.TenantExists(ctx, t)
	if err != nil {
		return false, fhir.Errorf(fhir.KindInternal, "checking tenant").Wrap(err)
	}
	a.tenantsMu.Lock()
	if exists {
		a.tenants[t] = now.Add(a.tenantTTL)
	} else {
		delete(a.tenants, t)
	}
	a.tenantsMu.Unlock()
	return exists, nil
}

// baseURL is the tenant's FHIR base URL as the client sees it.
func (a *API) baseURL(c *echo.Context) string {
	root := a.publicURL
	if root == "" {
		root = c.Scheme() + "://" + c.Request().Host
	}
	return root + "/t/" + c.Param("tenant") + "/fhir"
}

func (a *API) metadata(c *echo.Context) error {
	if a.capab == nil {
		return fhir.Errorf(fhir.KindNotFound, "metadata is not available").WithCode(fhir.IssueNotSupported)
	}
	b, err := a.capab(a.baseURL(c))
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "building CapabilityStatement").Wrap(err)
	}
	return send(c, http.StatusOK, b)
}

// checkType answers 404 not-supported for a resource type in the URL that
// the server does not serve.
func (a *API) checkType(typ string) error {
	if !a.reg.Supports(typ) {
		return fhir.Errorf(fhir.KindNotFound, "resource type %q is not supported", safeName(typ)).WithCode(fhir.IssueNotSupported)
	}
	return nil
}

// safeName returns s when it looks like a FHIR name (a type or parameter
// name) and a placeholder otherwise, so messages never echo arbitrary input.
func safeName(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return "(invalid)"
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == ':', r == '.', r == '$':
		default:
			return "(invalid)"
		}
	}
	return s
}
