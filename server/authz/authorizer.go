package authz

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/search"
)

// Config configures New.
type Config struct {
	// Consents loads Consents (required); StoreConsents on the resource
	// store is the usual one.
	Consents ConsentSource
	// Policies gives each tenant's policy; nil: opt-out, no bypass.
	Policies PolicySource
	// Registry reads resources (patient compartment, codes, clinical time)
	// and granular scopes; nil: search.NewRegistry().
	Registry *search.Registry
	// KV is the shared store of version stamps, cached decisions and
	// invalidation messages (required): adapters/redis when replicas share
	// decisions, server/kv/memkv for one process.
	KV kv.Store
	// Logger gets warnings about L2 (ids and error text only); nil: none.
	Logger *slog.Logger
	// Now is the clock (Consent periods, cache expiry); nil: time.Now.
	Now func() time.Time

	// L1Size bounds the in-process cache (decisions); default 65536.
	L1Size int
	// L1TTL and L2TTL bound how long a decision is cached in process and in
	// L2; defaults 1 min and 10 min. Version stamps, not TTLs, make
	// invalidation prompt; TTLs bound memory and the damage of a lost
	// invalidation after a double fault (see Invalidate).
	L1TTL, L2TTL time.Duration
	// VersionCheck is how long a replica trusts its copy of a tenant's
	// version stamp before reading it from L2 again; default 500 ms. It
	// bounds invalidation delay when pub/sub messages are lost; keep it
	// under a second.
	VersionCheck time.Duration
	// L2Timeout bounds each L2 call; default 250 ms. L2RetryAfter is how
	// long L2 (and with it L1) is bypassed after an L2 failure; default 1 s.
	L2Timeout, L2RetryAfter time.Duration
	// CommitWait is how long ConsentHook watches for a Consent write to
	// commit before giving up (the transaction rolled back); default 2 min.
	CommitWait time.Duration
	// KeyPrefix prefixes every L2 key and the channel; default "authz:".
	KeyPrefix string
}

// Authorizer is Pulsewire's one policy decision point: Decide (and Check,
// Filter, which call it) is the only code that decides whether data may be
// seen or written. Handlers ask it; none decides alone.
//
// Decisions are cached in process (L1) and in the shared KV store (L2),
// under a key made of the tenant, the tenant's version stamp and a hash of
// everything the decision depends on (principal, scopes, launch context,
// purpose, action, type, target patient). Invalidate bumps the stamp in L2
// and publishes the tenant on a channel; every replica's subscriber drops
// its L1 for the tenant on the message, and each replica re-reads a stamp
// it has not verified within VersionCheck, so an invalidation reaches every
// replica within VersionCheck even when messages are lost. While L2 cannot
// be reached, no cache is used at all (L1 included, since nobody could tell
// this replica of a change): decisions come from the sources, slower and
// never stale.
type Authorizer struct {
	src      ConsentSource
	policies PolicySource
	reg      *search.Registry
	kv       kv.Store
	log      *slog.Logger
	now      func() time.Time

	l1Size                          int64
	l1TTL, l2TTL, versionCheck      time.Duration
	l2Timeout, l2RetryAfter, waitTx time.Duration
	prefix, channel, epochKey       string

	mu      sync.RWMutex
	tenants map[string]*tenantState
	size    atomic.Int64 // decisions in L1

	l2DownUntil atomic.Int64 // unix nanos; L2 is bypassed before then
	recovering  atomic.Bool  // L2 failed since the epoch was last bumped

	pendingMu sync.Mutex
	pending   map[string]bool // tenants whose version bump failed; retried
	nPending  atomic.Int32

	stats struct{ l1Hits, l2Hits, misses, bypassed, l2Errors atomic.Uint64 }

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns an Authorizer and starts its invalidation subscriber and the
// retry of failed version bumps. Close stops them.
func New(cfg Config) (*Authorizer, error) {
	if cfg.Consents == nil || cfg.KV == nil {
		return nil, errors.New("authz: Config needs Consents and KV")
	}
	a := &Authorizer{
		src: cfg.Consents, policies: cfg.Policies, reg: cfg.Registry, kv: cfg.KV,
		log: cfg.Logger, now: cfg.Now,
		l1Size: int64(cfg.L1Size), l1TTL: cfg.L1TTL, l2TTL: cfg.L2TTL, versionCheck: cfg.VersionCheck,
		l2Timeout: cfg.L2Timeout, l2RetryAfter: cfg.L2RetryAfter, waitTx: cfg.CommitWait,
		prefix:  cfg.KeyPrefix,
		tenants: map[string]*tenantState{},
		pending: map[string]bool{},
	}
	if a.policies == nil {
		a.policies = StaticPolicies{}
	}
	if a.reg == nil {
		a.reg = search.NewRegistry()
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	setDefault(&a.l1TTL, time.Minute)
	setDefault(&a.l2TTL, 10*time.Minute)
	setDefault(&a.versionCheck, 500*time.Millisecond)
	setDefault(&a.l2Timeout, 250*time.Millisecond)
	setDefault(&a.l2RetryAfter, time.Second)
	setDefault(&a.waitTx, 2*time.Minute)
	if a.l1Size <= 0 {
		a.l1Size = 65536
	}
	if a.prefix == "" {
		a.prefix = "authz:"
	}
	a.channel = a.prefix + "inval"
	a.epochKey = a.prefix + "epoch"
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg.Add(2)
	go a.subscribeLoop()
	go a.retryLoop()
	return a, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Close stops the subscriber and background work and waits for them.
func (a *Authorizer) Close() error {
	a.cancel()
	a.wg.Wait()
	return nil
}

// Stats are counters of the cache, for metrics and tests.
type Stats struct {
	L1Hits, L2Hits, Misses uint64
	// Bypassed counts decisions computed without any cache because L2 was
	// unreachable; L2Errors counts failed L2 calls.
	Bypassed, L2Errors uint64
}

// Stats returns the counters so far.
func (a *Authorizer) Stats() Stats {
	return Stats{
		L1Hits: a.stats.l1Hits.Load(), L2Hits: a.stats.l2Hits.Load(), Misses: a.stats.misses.Load(),
		Bypassed: a.stats.bypassed.Load(), L2Errors: a.stats.l2Errors.Load(),
	}
}

var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Decide is the decision function. It returns a Deny (with a Reason), a
// Permit, or a PermitNarrowed whose narrowing the caller must apply
// (Decision.Narrow for searches; Check or Filter on every resource
// returned). An error (a Consent or policy that cannot be loaded, an
// invalid request) is never a permit: the caller fails the request.
func (a *Authorizer) Decide(ctx context.Context, req Request) (*Decision, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	kb := keyPool.Get().(*[]byte)
	key := appendKey((*kb)[:0], &req)
	defer func() { *kb = key; keyPool.Put(kb) }()

	now := a.now()
	ts := a.tenant(req.Tenant)
	version, ok := a.version(ctx, ts, now)
	if !ok {
		a.stats.bypassed.Add(1)
		return a.compute(ctx, &req, now)
	}
	if d := ts.get(version, key, now); d != nil {
		a.stats.l1Hits.Add(1)
		return d, nil
	}
	l2key := a.l2Key(req.Tenant, version, key)
	if d := a.l2Get(ctx, l2key, now); d != nil {
		a.stats.l2Hits.Add(1)
		a.put(ts, version, string(key), d, now)
		return d, nil
	}
	a.stats.misses.Add(1)
	d, err := a.compute(ctx, &req, now)
	if err != nil {
		return nil, err
	}
	a.l2Set(ctx, l2key, d, now)
	a.put(ts, version, string(key), d, now)
	return d, nil
}

// compute makes a decision from the sources: scopes, the tenant policy and
// the patient's Consents.
func (a *Authorizer) compute(ctx context.Context, req *Request, now time.Time) (*Decision, error) {
	pol, err := a.policies.Policy(ctx, req.Tenant)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "loading the tenant's authorization policy").Wrap(err)
	}
	// An invalid scope grants nothing; server/smart does not issue them.
	scopes, _ := ParseScopes(req.Scopes)
	need := req.Action.perm()
	compartment := req.Type != "" && inCompartment(a.reg, req.Type)
	reason := ReasonNoScope
	var grants []grant
	for _, s := range scopes {
		if s.Context == "" || s.Perms&need == 0 || s.Type != "*" && s.Type != req.Type {
			continue
		}
		g := grant{Context: s.Context}
		switch s.Context {
		case ContextPatient:
			if req.LaunchPatient == "" {
				reason = ReasonNoLaunchPatient
				continue
			}
			if compartment || req.Type == "" {
				g.Patient = req.LaunchPatient
			}
			if req.noPatient {
				reason = ReasonScopeRestriction
				continue
			}
		case ContextUser:
			if req.FHIRUser == "" {
				reason = ReasonNoUser
				continue
			}
		case ContextSystem:
			g.Bypass = pol.SystemBypassesConsent
		}
		if s.Query != nil {
			if req.Type == "" {
				g.Granular = true
			} else if g.Params = a.granularParams(req.Type, s.Query); g.Params == nil {
				continue // a granular query this type cannot answer grants nothing on it
			}
		}
		grants = append(grants, g)
	}
	if len(grants) == 0 {
		return deny(req.Type, reason), nil
	}
	if req.TargetPatient != "" && compartment {
		kept := grants[:0:0]
		for _, g := range grants {
			if g.Patient == "" || g.Patient == req.TargetPatient {
				kept = append(kept, g)
			}
		}
		if len(kept) == 0 {
			return deny(req.Type, ReasonPatientOutOfScope), nil
		}
		grants = kept
	}
	grants = simplify(grants)
	d := &Decision{typ: req.Type, grants: grants}

	consentApplies := req.Action.discloses() && !req.noPatient
	if consentApplies {
		consentApplies = false
		for _, g := range grants {
			consentApplies = consentApplies || !g.Bypass
		}
	}
	if consentApplies && pol.ConsentModel != OptIn && !a.tenantHasConsents(ctx, req.Tenant) {
		// Opt-out, and no active Consent in the tenant: nothing can deny,
		// whoever the patient (the decision is exact and needs no look at
		// each resource's patient).
		consentApplies = false
	}
	switch {
	case !consentApplies:
	case req.Type == "":
		d.perPatient = true // Filter decides per resource type and patient
	case compartment:
		patient := req.TargetPatient
		if patient == "" {
			patient = grants[0].Patient
			for _, g := range grants[1:] {
				if g.Patient != patient {
					patient = ""
				}
			}
		}
		if patient == "" {
			d.perPatient = true
			break
		}
		cs, expires, err := a.loadConsents(ctx, req, pol, patient, now)
		if err != nil {
			return nil, err
		}
		d.expires = expires
		switch eff, ok := cs.constant(); {
		case !ok:
			d.consent = cs
		case eff == effDeny:
			kept := grants[:0:0]
			for _, g := range grants {
				if g.Bypass {
					kept = append(kept, g)
				}
			}
			if len(kept) == 0 {
				dd := deny(req.Type, cs.denyReason())
				dd.expires = expires
				return dd, nil
			}
			d.grants = kept
		}
	}
	d.finish(traitsOf(a.reg, req.Type), compartment, a.paramMaker(req.Type))
	return d, nil
}

// loadConsents loads and resolves the patient's Consents for the request.
func (a *Authorizer) loadConsents(ctx context.Context, req *Request, pol Policy, patient string, now time.Time) (*consentSet, time.Time, error) {
	res, err := a.src.ActiveConsents(ctx, req.Tenant, patient)
	if err != nil {
		return nil, time.Time{}, fhir.Errorf(fhir.KindInternal, "loading consents").Wrap(err)
	}
	rc := &reqContext{now: now, actors: map[string]bool{}, purposes: req.Purpose}
	if len(rc.purposes) == 0 {
		rc.purposes = pol.DefaultPurpose
	}
	for _, ref := range append([]string{req.FHIRUser}, req.Actors...) {
		if n := normRef(ref); n != "" {
			rc.actors[n] = true
		}
	}
	roots, err := parseConsents(res, patient, rc)
	if err != nil {
		return nil, time.Time{}, fhir.Errorf(fhir.KindInternal, "reading consents").Wrap(err)
	}
	cs := &consentSet{Patient: patient, Default: effPermit}
	if pol.ConsentModel == OptIn {
		cs.Default = effDeny
	}
	tt := traitsOf(a.reg, req.Type)
	for _, r := range roots {
		if s := r.specialize(tt); s != nil {
			cs.Roots = append(cs.Roots, s)
		}
	}
	return cs, rc.expires, nil
}

// granularParams turns a scope's granular query into search parameters on
// typ; nil when the type does not have them or they are not plain token or
// reference parameters (which is all SMART's examples use: category, code).
func (a *Authorizer) granularParams(typ string, q url.Values) []fhir.Param {
	for k := range q {
		name, _, _ := strings.Cut(k, ":")
		if _, ok := a.reg.Lookup(typ, name); !ok || strings.HasPrefix(name, "_") {
			return nil
		}
	}
	parsed, _, err := a.reg.Parse(typ, q, search.ParseOptions{Strict: true})
	if err != nil || len(parsed.Params) == 0 {
		return nil
	}
	for _, p := range parsed.Params {
		switch {
		case p.Type == fhir.ParamToken && p.Modifier == "":
		case p.Type == fhir.ParamReference && (p.Modifier == "" || len(p.Targets) > 0):
		default:
			return nil
		}
	}
	return parsed.Params
}

// paramMaker builds narrowing parameters of typ through the registry's own
// parser (a sample value, then dropped), so they carry what the parser
// would put there for a client's query.
func (a *Authorizer) paramMaker(typ string) paramMaker {
	return func(name, modifier string) (fhir.Param, bool) {
		def, ok := a.reg.Lookup(typ, name)
		if !ok {
			return fhir.Param{}, false
		}
		sample := map[fhir.ParamType]string{fhir.ParamToken: "x", fhir.ParamReference: "Patient/x", fhir.ParamDate: "2000"}[def.Type]
		key := name
		if modifier != "" {
			key += ":" + modifier
		}
		q, _, err := a.reg.Parse(typ, url.Values{key: {sample}}, search.ParseOptions{Strict: true})
		if sample == "" || err != nil || len(q.Params) != 1 {
			return fhir.Param{}, false
		}
		p := q.Params[0]
		p.Values = nil
		return p, true
	}
}

// Check decides whether one resource may be returned (or written) under
// req: a read's result, a search match, an _include/_revinclude target, a
// history version, a transaction entry, the body of a create or update.
// req.Type and req.TargetPatient are taken from the resource. It returns
// nil, or a KindForbidden *fhir.Error naming the reason; other errors as
// Decide.
func (a *Authorizer) Check(ctx context.Context, req Request, res *fhir.Resource) error {
	ok, reason, err := a.check(ctx, req, res)
	if err != nil {
		return err
	}
	if !ok {
		return fhir.Errorf(fhir.KindForbidden, "access denied (%s)", reason)
	}
	return nil
}

func (a *Authorizer) check(ctx context.Context, req Request, res *fhir.Resource) (bool, Reason, error) {
	req.Type, req.TargetPatient, req.noPatient = res.Type, "", false
	if res.Deleted || len(res.Body) == 0 {
		// A tombstone tells nothing about whose it was: only an
		// unrestricted permit lets it through.
		d, err := a.Decide(ctx, req)
		if err != nil {
			return false, "", err
		}
		if d.Effect == Permit {
			return true, ReasonPermit, nil
		}
		if d.Effect == Deny {
			return false, d.Reason, nil
		}
		return false, ReasonUnreadableResource, nil
	}
	// An unrestricted permit for the type (no patient confinement, no
	// granular restriction, no Consent that could deny) lets every resource
	// of it through: no need to read this one.
	if d, err := a.Decide(ctx, req); err != nil {
		return false, "", err
	} else if d.Effect == Permit {
		return true, ReasonPermit, nil
	}
	it, err := extractFacts(a.reg, res)
	if err != nil {
		return false, ReasonUnreadableResource, nil
	}
	if len(it.patients) == 0 {
		req.noPatient = inCompartment(a.reg, res.Type)
		d, err := a.Decide(ctx, req)
		if err != nil {
			return false, "", err
		}
		ok, reason := d.allows(it)
		return ok, reason, nil
	}
	for _, p := range it.patients {
		req.TargetPatient = p
		d, err := a.Decide(ctx, req)
		if err != nil {
			return false, "", err
		}
		if ok, reason := d.allows(it); !ok {
			return false, reason, nil
		}
	}
	return true, ReasonPermit, nil
}

// Filter returns the resources of rs that may be returned under req, in
// order (a new slice; rs is not changed). Use it on every list that leaves
// the server: search matches and includes, history, $lastn. req.Type and
// req.TargetPatient are taken from each resource.
func (a *Authorizer) Filter(ctx context.Context, req Request, rs []*fhir.Resource) ([]*fhir.Resource, error) {
	out := make([]*fhir.Resource, 0, len(rs))
	byType := map[string]*Decision{}
	for _, res := range rs {
		d, ok := byType[res.Type]
		if !ok {
			r := req
			r.Type, r.TargetPatient, r.noPatient = res.Type, "", false
			var err error
			if d, err = a.Decide(ctx, r); err != nil {
				return nil, err
			}
			byType[res.Type] = d
		}
		switch d.Effect {
		case Deny:
			continue
		case Permit:
			out = append(out, res)
			continue
		}
		ok, _, err := a.check(ctx, req, res)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, res)
		}
	}
	return out, nil
}

// QueryPatient returns the patient id a search is confined to by its own
// parameters — patient=X, subject=Patient/X, or _id=X on Patient — or ""
// when it is not confined to one patient. Pass it as Request.TargetPatient.
func QueryPatient(q *fhir.Query) string {
	id := ""
	for _, p := range q.Params {
		if len(p.Values) != 1 || p.Modifier != "" && (len(p.Targets) != 1 || p.Targets[0] != "Patient") {
			continue
		}
		v := p.Values[0]
		cand := ""
		switch {
		case q.Type == "Patient" && p.Name == "_id":
			cand = v.Code
		case p.Type == fhir.ParamReference && (p.Name == compartmentParam || p.Name == "subject"):
			if v.RefType == "Patient" || v.RefType == "" && p.Name == compartmentParam {
				cand = v.RefID
			}
		}
		if cand == "" || !fhir.ValidID(cand) {
			continue
		}
		if id != "" && id != cand {
			return "" // two patients ANDed: nothing matches; decide as unknown
		}
		id = cand
	}
	return id
}

// --- the cache ---

// tenantState is one tenant's L1: the version stamp it was filled under,
// when that stamp was last read from L2, and the decisions.
type tenantState struct {
	name      string
	refreshMu sync.Mutex // one L2 read of the stamp at a time

	mu      sync.RWMutex
	version string // "" unknown: L1 unusable
	until   int64  // unix nanos: the stamp is trusted before then
	entries map[string]*entry
	// gen counts resets: a stamp read from L2 is installed only if no
	// invalidation arrived while it was being read.
	gen uint64
	// consents is whether the tenant has any active Consent (0 unknown,
	// 1 none, 2 some), known under the current stamp (see
	// tenantHasConsents).
	consents int8
}

type entry struct {
	d       *Decision
	expires int64 // unix nanos
}

func (a *Authorizer) tenant(name string) *tenantState {
	a.mu.RLock()
	ts := a.tenants[name]
	a.mu.RUnlock()
	if ts != nil {
		return ts
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ts = a.tenants[name]; ts == nil {
		ts = &tenantState{name: name, entries: map[string]*entry{}}
		a.tenants[name] = ts
	}
	return ts
}

func (ts *tenantState) get(version string, key []byte, now time.Time) *Decision {
	ts.mu.RLock()
	var e *entry
	if ts.version == version {
		e = ts.entries[string(key)]
	}
	ts.mu.RUnlock()
	if e == nil || now.UnixNano() >= e.expires {
		return nil
	}
	return e.d
}

// reset empties the tenant's L1 and forgets its stamp. ts.mu is held.
func (a *Authorizer) reset(ts *tenantState) {
	a.size.Add(-int64(len(ts.entries)))
	ts.entries = map[string]*entry{}
	ts.version, ts.until = "", 0
	ts.consents = 0
	ts.gen++
}

// tenantHasConsents reports whether the tenant has any active Consent, when
// the source can tell (ConsentCounter; else it says true, the safe answer).
// The answer is kept while the tenant's stamp is trusted: a change of a
// Consent bumps the stamp and resets it (reset). An error also says true:
// then the patient's own Consents are loaded, and their errors fail the
// decision as before.
func (a *Authorizer) tenantHasConsents(ctx context.Context, tenant string) bool {
	cc, ok := a.src.(ConsentCounter)
	if !ok {
		return true
	}
	ts := a.tenant(tenant)
	ts.mu.RLock()
	known, gen, trusted := ts.consents, ts.gen, ts.version != ""
	ts.mu.RUnlock()
	if known != 0 && trusted {
		return known == 2
	}
	some, err := cc.AnyActiveConsents(ctx, tenant)
	if err != nil {
		return true
	}
	ts.mu.Lock()
	if ts.gen == gen && ts.version != "" {
		ts.consents = 1
		if some {
			ts.consents = 2
		}
	}
	ts.mu.Unlock()
	return some
}

func (a *Authorizer) put(ts *tenantState, version, key string, d *Decision, now time.Time) {
	exp := now.Add(a.l1TTL)
	if !d.expires.IsZero() && d.expires.Before(exp) {
		exp = d.expires
	}
	if !exp.After(now) {
		return
	}
	if a.size.Load() >= a.l1Size {
		a.evict()
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.version != version {
		return // a newer stamp arrived while this decision was made
	}
	if _, ok := ts.entries[key]; !ok {
		a.size.Add(1)
	}
	ts.entries[key] = &entry{d: d, expires: exp.UnixNano()}
}

// evict drops an eighth (at least one) of some tenant's decisions, chosen
// by map order, i.e. at random: cheap, and good enough for a cache whose
// entries are all alike in cost.
func (a *Authorizer) evict() {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, ts := range a.tenants {
		ts.mu.Lock()
		n := len(ts.entries)
		drop := max(1, n/8)
		for k := range ts.entries {
			if drop == 0 {
				break
			}
			delete(ts.entries, k)
			a.size.Add(-1)
			drop--
		}
		ts.mu.Unlock()
		if n > 0 {
			return
		}
	}
}

// version returns the tenant's version stamp when L1 and L2 may be used,
// reading it from L2 when it has not been verified within VersionCheck.
func (a *Authorizer) version(ctx context.Context, ts *tenantState, now time.Time) (string, bool) {
	ts.mu.RLock()
	v, until := ts.version, ts.until
	ts.mu.RUnlock()
	if v != "" && now.UnixNano() < until {
		return v, true
	}
	return a.refresh(ctx, ts, now)
}

func (a *Authorizer) refresh(ctx context.Context, ts *tenantState, now time.Time) (string, bool) {
	ts.refreshMu.Lock()
	defer ts.refreshMu.Unlock()
	ts.mu.RLock()
	v, until, gen := ts.version, ts.until, ts.gen
	ts.mu.RUnlock()
	if v != "" && now.UnixNano() < until {
		return v, true // another request refreshed it meanwhile
	}
	if a.l2Down(now) || a.isPending(ts.name) {
		ts.mu.Lock()
		a.reset(ts)
		ts.mu.Unlock()
		return "", false
	}
	v, err := a.readVersion(ctx, ts.name)
	if err != nil {
		a.l2Failed(err)
		ts.mu.Lock()
		a.reset(ts)
		ts.mu.Unlock()
		return "", false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.gen != gen {
		// An invalidation arrived while the stamp was read: it may be
		// older than the bump. Decide without the cache this once; the
		// next request reads the stamp again.
		return "", false
	}
	if ts.version != v {
		a.reset(ts)
		ts.version = v
	}
	ts.until = now.Add(a.versionCheck).UnixNano()
	return v, true
}

// readVersion reads the tenant's stamp: the global epoch and the tenant's
// counter. After L2 failed, the epoch is bumped first: a change made while
// L2 was down could not bump its tenant's counter, so no decision stored in
// L2 before may be used again.
func (a *Authorizer) readVersion(ctx context.Context, tenant string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.l2Timeout)
	defer cancel()
	if a.recovering.Load() {
		if _, err := a.getOrInit(ctx, a.epochKey); err != nil {
			return "", err
		}
		if _, err := a.kv.Incr(ctx, a.epochKey); err != nil {
			return "", err
		}
		a.recovering.Store(false)
	}
	e, err := a.getOrInit(ctx, a.epochKey)
	if err != nil {
		return "", err
	}
	t, err := a.getOrInit(ctx, a.versionKey(tenant))
	if err != nil {
		return "", err
	}
	return e + "." + t, nil
}

// getOrInit reads a counter, creating it when missing. A new counter
// starts at the current time in nanoseconds, not 0: when L2 loses its data
// (a restart without persistence) the counters start above every value
// they had, so no stamp repeats and no old decision becomes reachable.
func (a *Authorizer) getOrInit(ctx context.Context, key string) (string, error) {
	b, err := a.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		if _, err := a.kv.SetNX(ctx, key, fmt.Appendf(nil, "%d", a.now().UnixNano()), 0); err != nil {
			return "", err
		}
		b, err = a.kv.Get(ctx, key)
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// appendKey writes everything a decision depends on, each field length-
// prefixed so that no two requests share a key. The tenant and its stamp
// are not in it: L1 is per tenant and per stamp, and the L2 key adds them.
func appendKey(b []byte, r *Request) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(r.Action))
	if r.noPatient {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	str(r.Type)
	str(r.TargetPatient)
	str(r.LaunchPatient)
	str(r.ClientID)
	str(r.FHIRUser)
	b = binary.AppendUvarint(b, uint64(len(r.Actors)))
	for _, s := range r.Actors {
		str(s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Purpose)))
	for _, c := range r.Purpose {
		str(c.System)
		str(c.Code)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Scopes)))
	for _, s := range r.Scopes {
		str(s)
	}
	return b
}

func (a *Authorizer) versionKey(tenant string) string { return a.prefix + "v:" + tenant }

func (a *Authorizer) l2Key(tenant, version string, key []byte) string {
	sum := sha256.Sum256(key)
	return a.prefix + "d:" + tenant + ":" + version + ":" + hex.EncodeToString(sum[:16])
}

func (a *Authorizer) l2Down(now time.Time) bool { return now.UnixNano() < a.l2DownUntil.Load() }

// l2Failed bypasses L2 (and L1) for L2RetryAfter.
func (a *Authorizer) l2Failed(err error) {
	a.stats.l2Errors.Add(1)
	a.recovering.Store(true)
	until := a.now().Add(a.l2RetryAfter).UnixNano()
	if prev := a.l2DownUntil.Swap(until); prev < a.now().UnixNano() {
		a.log.Warn("authz: decision cache L2 unreachable; deciding from the database", "err", err, "retry_after", a.l2RetryAfter)
	}
}

func (a *Authorizer) l2Get(ctx context.Context, key string, now time.Time) *Decision {
	ctx, cancel := context.WithTimeout(ctx, a.l2Timeout)
	defer cancel()
	b, err := a.kv.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, kv.ErrNotFound) {
			a.l2Failed(err)
		}
		return nil
	}
	d, err := unmarshalDecision(b)
	if err != nil || !d.expires.IsZero() && !d.expires.After(now) {
		return nil
	}
	return d
}

func (a *Authorizer) l2Set(ctx context.Context, key string, d *Decision, now time.Time) {
	ttl := a.l2TTL
	if !d.expires.IsZero() {
		ttl = min(ttl, d.expires.Sub(now))
	}
	if ttl <= 0 {
		return
	}
	b, err := d.marshal()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.l2Timeout)
	defer cancel()
	if err := a.kv.Set(ctx, key, b, ttl); err != nil {
		a.l2Failed(err)
	}
}

// --- invalidation ---

// Invalidate makes every cached decision of the tenant unusable, on every
// replica: call it after a change of a Consent (ConsentHook does), of a
// client or of the tenant policy has committed. It drops this replica's L1
// at once, bumps the tenant's stamp in L2 and publishes the tenant.
//
// When L2 cannot be reached the bump is retried in the background until it
// succeeds, and meanwhile this replica uses no cache for the tenant; the
// other replicas bypass L2 too while they cannot reach it, and bump the
// epoch when they can again. What stays open is a double fault: L2 down
// for the writer only, and the writer gone before its retry succeeds;
// L1TTL and L2TTL bound that.
func (a *Authorizer) Invalidate(ctx context.Context, tenant string) error {
	a.dropLocal(tenant)
	if err := a.bump(ctx, tenant); err != nil {
		a.addPending(tenant)
		return fmt.Errorf("invalidating decisions of tenant %s: %w", tenant, err)
	}
	return nil
}

func (a *Authorizer) bump(ctx context.Context, tenant string) error {
	ctx, cancel := context.WithTimeout(ctx, a.l2Timeout)
	defer cancel()
	key := a.versionKey(tenant)
	if _, err := a.getOrInit(ctx, key); err != nil {
		a.l2Failed(err)
		return err
	}
	if _, err := a.kv.Incr(ctx, key); err != nil {
		a.l2Failed(err)
		return err
	}
	if err := a.kv.Publish(ctx, a.channel, []byte(tenant)); err != nil {
		// The stamp moved: replicas see it within VersionCheck.
		a.log.Warn("authz: publishing an invalidation failed", "tenant", tenant, "err", err)
	}
	return nil
}

// dropLocal empties the tenant's L1 and makes the next decision read the
// stamp from L2.
func (a *Authorizer) dropLocal(tenant string) {
	a.mu.RLock()
	ts := a.tenants[tenant]
	a.mu.RUnlock()
	if ts == nil {
		return
	}
	ts.mu.Lock()
	a.reset(ts)
	ts.mu.Unlock()
}

func (a *Authorizer) addPending(tenant string) {
	a.pendingMu.Lock()
	defer a.pendingMu.Unlock()
	if !a.pending[tenant] {
		a.pending[tenant] = true
		a.nPending.Add(1)
	}
}

func (a *Authorizer) isPending(tenant string) bool {
	if a.nPending.Load() == 0 {
		return false
	}
	a.pendingMu.Lock()
	defer a.pendingMu.Unlock()
	return a.pending[tenant]
}

// retryLoop retries failed version bumps every half second.
func (a *Authorizer) retryLoop() {
	defer a.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		if a.nPending.Load() == 0 {
			continue
		}
		a.pendingMu.Lock()
		tenants := make([]string, 0, len(a.pending))
		for t := range a.pending {
			tenants = append(tenants, t)
		}
		a.pendingMu.Unlock()
		for _, t := range tenants {
			if a.bump(a.ctx, t) != nil {
				break // still down; try again next tick
			}
			a.pendingMu.Lock()
			delete(a.pending, t)
			a.nPending.Add(-1)
			a.pendingMu.Unlock()
			a.dropLocal(t)
		}
	}
}

// subscribeLoop keeps the invalidation subscription in place: it retries
// Subscribe every second until it succeeds (the kv implementation then
// reconnects by itself and reports resyncs).
func (a *Authorizer) subscribeLoop() {
	defer a.wg.Done()
	for {
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
		sub, err := a.kv.Subscribe(ctx, a.channel, a.onMessage)
		cancel()
		if err == nil {
			// Messages sent before the subscription was in place are lost.
			a.resync()
			<-a.ctx.Done()
			_ = sub.Close()
			return
		}
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (a *Authorizer) onMessage(m kv.Message) {
	if m.Resync {
		a.resync()
		return
	}
	a.dropLocal(string(m.Payload))
}

// resync makes every tenant's stamp be read from L2 again (decisions
// stay; they are dropped if the stamp moved).
func (a *Authorizer) resync() {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, ts := range a.tenants {
		ts.mu.Lock()
		ts.until = 0
		ts.mu.Unlock()
	}
}
