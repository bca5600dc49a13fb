package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/adapters/redis"
	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/kv/memkv"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/smart"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// AuthMode says whether the server requires access tokens.
type AuthMode string

// Authorization modes.
const (
	// AuthSMART (the default): the FHIR API takes SMART access tokens and
	// server/authz decides every request; the operator routes of ingest
	// take the admin token or a system/* token.
	AuthSMART AuthMode = "smart"
	// AuthOff serves everyone without a token: development only.
	AuthOff AuthMode = "off"
)

// AuthConfig configures SMART authorization (server/smart) and the policy
// decision (server/authz).
type AuthConfig struct {
	Mode AuthMode // "" means AuthSMART
	// AdminToken protects the admin API (clients, users, EHR launch
	// contexts) and the ingest operator routes; "" disables the admin API.
	AdminToken string
	// ExternalIssuers lists, per tenant, the outside issuers whose tokens
	// the tenant accepts.
	ExternalIssuers map[string][]smart.ExternalIssuer
	// RedisURL, when set, makes Redis the decision cache's L2 (shared by
	// replicas, invalidated by pub/sub); else the cache is in process only.
	// The authorization server's state (codes, refresh tokens,
	// revocations) is in the store either way, so a Redis outage or
	// restart loses none of it. RedisPrefix prefixes every key and channel
	// ("" means "pulsewire:").
	RedisURL    string
	RedisPrefix string
	// ConsentModel applies to patients without a Consent that says
	// anything about a request ("" means opt-out).
	ConsentModel authz.ConsentModel
	// SystemBypassesConsent lets system/ scopes (backend services) see
	// data regardless of patients' Consents.
	SystemBypassesConsent bool
}

func (c *AuthConfig) mode() AuthMode {
	if c.Mode == "" {
		return AuthSMART
	}
	return c.Mode
}

func (c *AuthConfig) validate() error {
	switch c.mode() {
	case AuthSMART, AuthOff:
	default:
		return fmt.Errorf("authorization mode %q: want smart or off", c.Mode)
	}
	switch c.ConsentModel {
	case "", authz.OptOut, authz.OptIn:
	default:
		return fmt.Errorf("consent model %q: want opt-out or opt-in", c.ConsentModel)
	}
	return nil
}

// ParseExternalIssuers reads the JSON of PULSEWIRE_EXTERNAL_ISSUERS:
// {"tenant": [{"issuer": "...", "jwks_uri": "...", "audience": "..."}]}.
func ParseExternalIssuers(s string) (map[string][]smart.ExternalIssuer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var m map[string][]smart.ExternalIssuer
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("reading external issuers (JSON object of tenant to a list of {issuer, jwks_uri, audience}): %w", err)
	}
	return m, nil
}

// authWiring is authorization as wired into one App: nil when off (its
// methods then wire nothing).
type authWiring struct {
	smart *smart.Server
	az    *authz.Authorizer
	redis *redis.Store // nil: in-process state
	admin string
	log   *slog.Logger
	once  sync.Once
}

// Guards: the decision and the token check fit what rest consumes.
var _ rest.Authorizer = (*authz.Authorizer)(nil)

// setupAuth builds the authorization server and the decision over store,
// adds the Consent hook to the store (before it serves) and gives the
// configured tenants their signing keys. It returns nil when authorization
// is off.
func setupAuth(ctx context.Context, cfg Config, store fhir.Store, reg *search.Registry) (*authWiring, error) {
	ac := cfg.Auth
	if err := ac.validate(); err != nil {
		return nil, err
	}
	if ac.mode() == AuthOff {
		cfg.Logger.Warn("authorization is OFF: development only; every client may read and write every tenant's data")
		return nil, nil
	}
	hooked, ok := store.(fhir.Hooked)
	if !ok {
		return nil, errors.New("the store runs no write hooks: Consent changes could not invalidate decisions")
	}
	regStore, ok := store.(registry.Store)
	if !ok {
		return nil, errors.New("the store keeps no SMART client registry")
	}
	state, ok := store.(registry.State)
	if !ok {
		return nil, errors.New("the store keeps no SMART authorization state")
	}
	w := &authWiring{admin: ac.AdminToken, log: cfg.Logger}
	var shared kv.Store = memkv.New()
	if ac.RedisURL != "" {
		prefix := ac.RedisPrefix
		if prefix == "" {
			prefix = "pulsewire:"
		}
		rs, err := redis.New(redis.Options{URL: ac.RedisURL, Prefix: prefix, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("configuring Redis: %w", err)
		}
		w.redis, shared = rs, rs
	}
	az, err := authz.New(authz.Config{
		Consents: authz.StoreConsents{Store: store},
		Policies: authz.StaticPolicies{Default: authz.Policy{
			ConsentModel:          ac.ConsentModel,
			SystemBypassesConsent: ac.SystemBypassesConsent,
		}},
		Registry: reg,
		KV:       shared,
		Logger:   cfg.Logger,
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("setting up authorization decisions: %w", err)
	}
	w.az = az
	hooked.AddWriteHook(az.ConsentHook(store))
	w.smart, err = smart.New(smart.Config{
		Registry:        invalidatingRegistry{Store: regStore, az: az, log: cfg.Logger},
		State:           state, // durable, shared by the replicas of the store; never Redis
		Tenants:         store,
		Patients:        storePatients{store: store, reg: reg},
		ScopeFilter:     authz.GrantableScopes, // registered patient/*.rs covers a requested patient/Observation.rs
		PublicBaseURL:   cfg.PublicBaseURL,
		AdminToken:      ac.AdminToken,
		ExternalIssuers: ac.ExternalIssuers,
		Logger:          cfg.Logger,
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("setting up the SMART authorization server: %w", err)
	}
	if err := w.smart.EnsureKeys(ctx, cfg.Tenants...); err != nil {
		w.close()
		return nil, fmt.Errorf("creating signing keys: %w", err)
	}
	return w, nil
}

// close stops the decision's background work and closes Redis, once.
// Safe on nil.
func (w *authWiring) close() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		if w.az != nil {
			_ = w.az.Close()
		}
		if w.redis != nil {
			_ = w.redis.Close()
		}
	})
}

// register mounts the authorization server (discovery, authorize, token,
// introspection, revocation, admin API).
func (w *authWiring) register(e *echo.Echo) {
	if w != nil {
		w.smart.Register(e)
	}
}

// runner keeps the authorization server's revocation set current and
// purges its expired state (smart.Server.Run) until the server stops,
// then closes the wiring (after the HTTP server has drained, before the
// store closes).
func (w *authWiring) runner() runner {
	return runner{
		name:  "authorization",
		run:   w.smart.Run,
		close: w.close,
	}
}

// restConfig sets the authentication and decision of the FHIR API, and
// gives it the store through commitInvalidator.
func (w *authWiring) restConfig(c *rest.Config) {
	if w == nil {
		return
	}
	c.Store = commitInvalidator{Store: c.Store, az: w.az, log: w.log}
	c.Auth = w.smart.Middleware()
	c.Authorizer = w.az
}

// operator is the guard of the ingest operator routes (nil when off).
func (w *authWiring) operator() echo.MiddlewareFunc {
	if w == nil {
		return nil
	}
	return w.operatorOnly
}

// operatorOnly lets through the admin token, or an access token of the
// tenant with a system/* scope (no granular restriction) that grants what
// the method needs: read for GET, create or update otherwise. The routes
// expose device payloads and change associations: no patient/ or user/
// scope reaches them. Their writes are audited as the client's, or the
// admin's.
func (w *authWiring) operatorOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		if w.admin != "" {
			if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") &&
				subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(w.admin)) == 1 {
				return next(withPrincipal(c, audit.Principal{Module: "admin", Address: c.RealIP()}))
			}
		}
		g, err := w.smart.Authenticate(r, c.Param("tenant"))
		if err != nil {
			if ch := smart.Challenge(err); ch != "" {
				c.Response().Header().Set("WWW-Authenticate", ch)
			}
			return err
		}
		need := authz.PermCreate | authz.PermUpdate
		if r.Method == http.MethodGet {
			need = authz.PermRead
		}
		scopes, _ := authz.ParseScopes(g.Scopes)
		for _, s := range scopes {
			if s.Context == authz.ContextSystem && s.Type == "*" && s.Query == nil && s.Perms&need != 0 {
				return next(withPrincipal(c, audit.Principal{ClientID: g.ClientID, TokenID: g.TokenID, Address: c.RealIP()}))
			}
		}
		return fhir.Errorf(fhir.KindForbidden, "the ingest operator routes need the admin token or a system/* scope")
	}
}

// withPrincipal puts p in c's request context: the writes of the request
// are audited as p's (server/audit).
func withPrincipal(c *echo.Context, p audit.Principal) *echo.Context {
	c.SetRequest(c.Request().WithContext(audit.WithPrincipal(c.Request().Context(), p)))
	return c
}

// commitInvalidator is the resource store as the FHIR API sees it: after
// a transaction that wrote or deleted a Consent has committed, it
// invalidates the tenant's decisions before the response goes out, so the
// writer's next request is decided on the new Consent. (authz's
// ConsentHook invalidates after every writer's commit too, within
// milliseconds, and other replicas learn of it through L2 within a
// second.)
type commitInvalidator struct {
	fhir.Store
	az  *authz.Authorizer
	log *slog.Logger
}

// Tx implements fhir.Store.
func (s commitInvalidator) Tx(ctx context.Context, tenant string, fn func(fhir.Tx) error) error {
	var consent bool
	err := s.Store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		consent = false // fresh on a retry
		return fn(consentTx{Tx: tx, consent: &consent})
	})
	if err == nil && consent {
		if ierr := s.az.Invalidate(ctx, tenant); ierr != nil {
			// Retried in the background; until then this replica decides
			// without its cache.
			s.log.Warn("invalidating decisions after a Consent change", "tenant", tenant, "err", ierr)
		}
	}
	return err
}

// consentTx notes whether a Consent is written or deleted.
type consentTx struct {
	fhir.Tx
	consent *bool
}

func (t consentTx) Put(ctx context.Context, w *fhir.Write) (*fhir.Resource, bool, error) {
	if w.Type == "Consent" {
		*t.consent = true
	}
	return t.Tx.Put(ctx, w)
}

func (t consentTx) Delete(ctx context.Context, typ, id string, ifMatch int64) (*fhir.Resource, error) {
	if typ == "Consent" {
		*t.consent = true
	}
	return t.Tx.Delete(ctx, typ, id, ifMatch)
}

// invalidatingRegistry is the SMART registry that invalidates a tenant's
// decisions when one of its clients is added or removed (authz's Request
// names the client; what a client stands for may enter a decision).
type invalidatingRegistry struct {
	registry.Store
	az  *authz.Authorizer
	log *slog.Logger
}

func (r invalidatingRegistry) AddClient(ctx context.Context, tenant string, c *registry.Client) error {
	if err := r.Store.AddClient(ctx, tenant, c); err != nil {
		return err
	}
	r.invalidate(ctx, tenant)
	return nil
}

func (r invalidatingRegistry) DeleteClient(ctx context.Context, tenant, id string) error {
	if err := r.Store.DeleteClient(ctx, tenant, id); err != nil {
		return err
	}
	r.invalidate(ctx, tenant)
	return nil
}

func (r invalidatingRegistry) invalidate(ctx context.Context, tenant string) {
	if err := r.az.Invalidate(ctx, tenant); err != nil {
		r.log.Warn("invalidating decisions after a client change", "tenant", tenant, "err", err)
	}
}

// storePatients is the standalone-launch patient picker over the store.
type storePatients struct {
	store fhir.Reader
	reg   *search.Registry
}

var _ smart.PatientLister = storePatients{}

func (p storePatients) ListPatients(ctx context.Context, tenant, query string, limit int) ([]smart.PatientChoice, error) {
	v := url.Values{}
	if query = strings.TrimSpace(query); query != "" {
		v.Set("name", query)
	}
	q, _, err := p.reg.Parse("Patient", v, search.ParseOptions{})
	if err != nil {
		return nil, err
	}
	q.Count, q.Offset = limit, 0
	res, err := p.store.Search(ctx, tenant, q)
	if err != nil {
		return nil, err
	}
	out := make([]smart.PatientChoice, 0, len(res.Resources))
	for _, r := range res.Resources {
		out = append(out, smart.PatientChoice{ID: r.ID, Display: displayName(r.Body, r.ID)})
	}
	return out, nil
}

func (p storePatients) PatientExists(ctx context.Context, tenant, id string) (bool, error) {
	_, err := p.store.Read(ctx, tenant, "Patient", id)
	switch {
	case err == nil:
		return true, nil
	case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
		return false, nil
	}
	return false, err
}

// displayName is a Patient's first name as the picker shows it: its text,
// or given names and family; the id when it has none.
func displayName(body []byte, id string) string {
	var doc struct {
		Name []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Name) == 0 {
		return id
	}
	n := doc.Name[0]
	if n.Text != "" {
		return n.Text
	}
	if s := strings.TrimSpace(strings.Join(append(n.Given, n.Family), " ")); s != "" {
		return s
	}
	return id
}
