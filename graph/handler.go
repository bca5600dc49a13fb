package graph

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/labstack/echo/v5"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/pulsewire/pulsewire/graph/internal/exec"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/smart"
)

// Store is what the GraphQL API reads: the resource store's read side,
// reading several resources by id and running several searches at once,
// and its tenant registry. Both stores (adapters/sqlite, adapters/postgres)
// implement it.
type Store interface {
	fhir.Reader
	fhir.ManyReader
	fhir.ManySearcher
	TenantExists(ctx context.Context, tenant string) (bool, error)
}

// Config is what the GraphQL API needs. Store, Registry, Auth and
// Authorizer are required.
type Config struct {
	Store    Store
	Registry *search.Registry
	// Auth authenticates every request (*smart.Server).
	Auth Authenticator
	// Authorizer makes each request's Policy:
	// AuthzAuthorizer{Decider: the *authz.Authorizer REST uses}.
	Authorizer Authorizer

	// Supergraph is the composed supergraph (wgc router compose output)
	// the gateway serves; nil: the embedded one (Supergraph).
	Supergraph []byte
	// Remotes says where the supergraph's subgraphs are served, by
	// subgraph name, overriding their composed routing URLs; naming a
	// subgraph the supergraph lacks is an error.
	Remotes map[string]Remote
	// Transport carries requests to remote subgraphs; nil: a default
	// http.Transport.
	Transport http.RoundTripper

	Limits Limits
	Logger *slog.Logger
	// Auditor, when set, records one AuditEvent per request (operation
	// "graphql", outcome, principal from the token) before any data is
	// sent; a request whose event cannot be recorded is refused. REST
	// records per resource; a GraphQL request reads many, and its event
	// names the operation, not each resource.
	Auditor Auditor
	// Now is the clock (which device associations are current); nil:
	// time.Now.
	Now func() time.Time
}

// Auditor records audit events (*audit.Auditor).
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Handler is the GraphQL API: the gateway and the pulsewire subgraph.
// Create it with New, mount it with Register, stop it with Close.
type Handler struct {
	store    Store
	reg      *search.Registry
	auth     Authenticator
	authz    Authorizer
	limits   Limits
	log      *slog.Logger
	now      func() time.Time
	subgraph *handler.Server
	local    *executor.Executor // the fast path's (fastpath.go)
	gw       *gateway
	auditor  Auditor
	cancel   context.CancelFunc

	// Gateway operations served by the fast path and by the engine.
	servedLocal, servedEngine atomic.Int64

	tenantsMu sync.Mutex
	tenants   map[string]time.Time // known to exist until
}

// New builds the GraphQL API.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Registry == nil || cfg.Auth == nil || cfg.Authorizer == nil {
		return nil, errors.New("graph: Config needs Store, Registry, Auth and Authorizer")
	}
	h := &Handler{
		store: cfg.Store, reg: cfg.Registry, auth: cfg.Auth, authz: cfg.Authorizer,
		limits: cfg.Limits.withDefaults(), log: cfg.Logger, now: cfg.Now, auditor: cfg.Auditor,
		tenants: map[string]time.Time{},
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.subgraph = newSubgraphServer(&h.limits, h.log)
	h.local = newLocalExecutor(&h.limits, h.log)

	sg := cfg.Supergraph
	if sg == nil {
		sg = Supergraph
	}
	base := cfg.Transport
	if base == nil {
		base = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := newGateway(ctx, sg, cfg.Remotes, base, &h.limits, h.log, func(w http.ResponseWriter, r *http.Request, c *call) {
		h.serveSubgraph(w, r, c.tenant, c.grant)
	})
	if err != nil {
		cancel()
		return nil, err
	}
	h.gw, h.cancel = gw, cancel
	return h, nil
}

// Close stops the gateway's engine.
func (h *Handler) Close() error {
	h.cancel()
	return nil
}

// newExecutableSchema is the pulsewire subgraph's schema and resolvers.
func newExecutableSchema(l *Limits) graphql.ExecutableSchema {
	return exec.NewExecutableSchema(exec.Config{Resolvers: resolver{}, Complexity: complexity(l)})
}

// newSubgraphServer is gqlgen's server for the pulsewire subgraph.
func newSubgraphServer(l *Limits, log *slog.Logger) *handler.Server {
	srv := handler.New(newExecutableSchema(l))
	srv.AddTransport(transport.POST{})
	configureSubgraph(srv, l, log)
	return srv
}

// subgraphSetup is what configureSubgraph sets: *handler.Server and
// *executor.Executor both have it.
type subgraphSetup interface {
	SetQueryCache(graphql.Cache[*ast.QueryDocument])
	Use(graphql.HandlerExtension)
	SetErrorPresenter(graphql.ErrorPresenterFunc)
	SetRecoverFunc(graphql.RecoverFunc)
	AroundResponses(graphql.ResponseMiddleware)
}

// configureSubgraph gives a subgraph executor its query cache, limits and
// error presenter, the same for the subgraph's HTTP server and the
// gateway's fast path.
func configureSubgraph(srv subgraphSetup, l *Limits, log *slog.Logger) {
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(limitsExtension{l})
	srv.Use(extension.FixedComplexityLimit(l.MaxComplexity))
	srv.SetErrorPresenter(errorPresenter(log))
	srv.SetRecoverFunc(recoverPanic)
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp != nil && len(resp.Data) > l.MaxResponseBytes {
			e := gqlerror.Errorf("the response is larger than %d bytes; select less", l.MaxResponseBytes)
			e.Extensions = map[string]any{"code": CodeResultTooLarge}
			return &graphql.Response{Errors: gqlerror.List{e}}
		}
		return resp
	})
}

// Register mounts the API on e:
//
//	POST /t/:tenant/graphql            the gateway
//	POST /graphql                      the gateway, tenant in X-Pulsewire-Tenant
//	POST /t/:tenant/graphql/subgraph   the pulsewire subgraph
//
// and GET on each, answered 405. The handlers write every response
// themselves (GraphQL errors, never an OperationOutcome).
func (h *Handler) Register(e *echo.Echo) {
	e.POST("/t/:tenant/graphql", func(c *echo.Context) error {
		h.ServeGateway(c.Response(), c.Request(), c.Param("tenant"))
		return nil
	})
	e.POST("/graphql", func(c *echo.Context) error {
		h.ServeGateway(c.Response(), c.Request(), c.Request().Header.Get(HeaderTenant))
		return nil
	})
	e.POST("/t/:tenant/graphql/subgraph", func(c *echo.Context) error {
		h.ServeSubgraph(c.Response(), c.Request(), c.Param("tenant"))
		return nil
	})
	onlyPost := func(c *echo.Context) error {
		r := refuse(CodeMethodNotAllowed, "send GraphQL requests with POST")
		r.header = http.Header{"Allow": {http.MethodPost}}
		r.write(c.Response())
		return nil
	}
	for _, p := range []string{"/t/:tenant/graphql", "/graphql", "/t/:tenant/graphql/subgraph"} {
		e.GET(p, onlyPost)
	}
}

// ServeGateway serves one gateway request for tenant.
func (h *Handler) ServeGateway(w http.ResponseWriter, r *http.Request, tenant string) {
	h.serveGateway(w, r, tenant, true)
}

// serveGateway serves a gateway request; fast allows the fast path
// (fastpath.go) for operations it can serve.
func (h *Handler) serveGateway(w http.ResponseWriter, r *http.Request, tenant string, fast bool) {
	g, refused := h.admit(r, tenant)
	if !h.audit(w, r, tenant, g, refused) {
		return
	}
	if refused != nil {
		refused.write(w)
		return
	}
	req, refused := readRequest(w, r, &h.limits)
	if refused != nil {
		refused.write(w)
		return
	}
	rt := h.gw.router.decide(r.Context(), req.Query, req.OperationName)
	if rt.parsed {
		if e := h.limits.check(rt.sh, false); e != nil {
			refuse(e.Extensions["code"].(string), "%s", e.Message).write(w)
			return
		}
	} // a query that does not parse: the engine reports why
	hdr := http.Header{HeaderTenant: {tenant}}
	if a := r.Header.Get("Authorization"); a != "" {
		// The engine writes forwarded values into its fetch input (a JSON
		// template): only a plain bearer token is forwarded. A verified
		// token always is one.
		if !bearerPattern.MatchString(a) {
			refuse(CodeUnauthenticated, "the Authorization header is not a bearer token").write(w)
			return
		}
		hdr.Set("Authorization", a)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.limits.Timeout)
	defer cancel()
	if fast && rt.local && h.serveLocal(ctx, w, req, tenant, g) {
		h.servedLocal.Add(1)
		return
	}
	h.servedEngine.Add(1)
	h.gw.execute(ctx, w, req, tenant, g, hdr)
}

// audit records the request's event (see Config.Auditor); false when it
// could not, and the request was answered with an error.
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, tenant string, g *smart.Grant, refused *errorResponse) bool {
	if h.auditor == nil || tenant == "" {
		return true
	}
	p := audit.Principal{Module: "anonymous", Address: r.RemoteAddr}
	if g != nil {
		p = audit.Principal{ClientID: g.ClientID, FHIRUser: g.FHIRUser, Subject: g.Subject, TokenID: g.TokenID, Address: r.RemoteAddr}
	} else if refused != nil {
		p.Module = "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Address); err == nil {
		p.Address = host
	}
	e := audit.Event{Tenant: tenant, Principal: p, Interaction: audit.Operation, Operation: "graphql", Outcome: audit.OutcomeSuccess}
	if refused != nil {
		e.Outcome, e.Reason = audit.OutcomeMinor, refused.code()
	}
	if err := h.auditor.Record(r.Context(), e); err != nil {
		h.internal("recording the audit event", err).write(w)
		return false
	}
	return true
}

// ServeSubgraph serves one request of the pulsewire subgraph for tenant,
// authenticated like any other (outside routers forward the caller's
// Authorization header).
func (h *Handler) ServeSubgraph(w http.ResponseWriter, r *http.Request, tenant string) {
	g, refused := h.admit(r, tenant)
	if !h.audit(w, r, tenant, g, refused) {
		return
	}
	if refused != nil {
		refused.write(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.limits.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refuse(CodeRequestTooLarge, "the request body is larger than %d bytes", h.limits.MaxBodyBytes).write(w)
			return
		}
		refuse(CodeParseFailed, "reading the request body failed").write(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.limits.Timeout)
	defer cancel()
	r = r.WithContext(ctx)
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.serveSubgraph(w, r, tenant, g)
}

// admit checks the tenant and authenticates the caller.
func (h *Handler) admit(r *http.Request, tenant string) (*smart.Grant, *errorResponse) {
	if tenant == "" {
		return nil, refuse(CodeTenantRequired, "name the tenant: POST /t/{tenant}/graphql, or the %s header", HeaderTenant)
	}
	ok, err := h.tenantExists(r.Context(), tenant)
	if err != nil {
		return nil, h.internal("checking tenant", err)
	}
	if !ok {
		return nil, refuse(CodeNotFound, "unknown tenant")
	}
	g, err := h.auth.Authenticate(r, tenant)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) && fe.Kind == fhir.KindUnauthorized {
			resp := refuse(CodeUnauthenticated, "%s", fe.Msg)
			if ch := smart.Challenge(err); ch != "" {
				resp.header = http.Header{"Www-Authenticate": {ch}}
			}
			return nil, resp
		}
		return nil, h.internal("authenticating", err)
	}
	return g, nil
}

func (h *Handler) internal(what string, err error) *errorResponse {
	id := newCorrelationID()
	h.log.Error("graphql request failed", "during", what, "correlation_id", id, "error", err.Error())
	r := refuse(CodeInternal, "internal error; correlation id %s", id)
	r.Errors[0].Extensions["correlationId"] = id
	return r
}

// tenantExists is the store's answer, remembered for known tenants for 30
// s (unknown names are not cached, so they cannot grow the cache).
func (h *Handler) tenantExists(ctx context.Context, t string) (bool, error) {
	if !fhir.ValidTenant(t) {
		return false, nil
	}
	now := time.Now()
	h.tenantsMu.Lock()
	until, ok := h.tenants[t]
	h.tenantsMu.Unlock()
	if ok && now.Before(until) {
		return true, nil
	}
	exists, err := h.store.TenantExists(ctx, t)
	if err != nil || !exists {
		return false, err
	}
	h.tenantsMu.Lock()
	h.tenants[t] = now.Add(30 * time.Second)
	h.tenantsMu.Unlock()
	return true, nil
}

// serveSubgraph runs one subgraph request of an authenticated caller.
func (h *Handler) serveSubgraph(w http.ResponseWriter, r *http.Request, tenant string, g *smart.Grant) {
	ctx := r.Context()
	pol, err := h.authz.Policy(ctx, tenant, g)
	if err != nil {
		h.internal("making the request's policy", err).write(w)
		return
	}
	h.subgraph.ServeHTTP(w, r.WithContext(withRequest(ctx, h.newRequest(ctx, tenant, pol))))
}

// newRequest is the state of one subgraph operation.
func (h *Handler) newRequest(ctx context.Context, tenant string, pol Policy) *request {
	return &request{
		ctx: ctx, tenant: tenant, policy: pol, store: h.store, reg: h.reg, limits: &h.limits,
		now: h.now(), byID: map[string]*loader[string, *fhir.Resource]{},
	}
}
