package smart

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// The authorization server's short-lived state (codes, refresh tokens,
// replay markers, launch contexts, pending requests) is in registry.State,
// durable and shared by the replicas of one store. These helpers name the
// entries (kind:id, the id hashed where it is a secret) and note which
// tenants have state, for Run's purge.

func (s *Server) putState(ctx context.Context, tenant, kind, id string, v []byte, ttl time.Duration) (bool, error) {
	if !validStateID(id) {
		return false, errors.New("invalid state key") // ids we make are always valid
	}
	s.touch(tenant)
	return s.state.PutState(ctx, tenant, kind+":"+id, v, ttl)
}

func (s *Server) getState(ctx context.Context, tenant, kind, id string) ([]byte, bool, error) {
	if !validStateID(id) {
		return nil, false, nil
	}
	return s.state.GetState(ctx, tenant, kind+":"+id)
}

func (s *Server) takeState(ctx context.Context, tenant, kind, id string) ([]byte, bool, error) {
	if !validStateID(id) {
		return nil, false, nil
	}
	return s.state.TakeState(ctx, tenant, kind+":"+id)
}

func (s *Server) delState(ctx context.Context, tenant, kind, id string) error {
	if !validStateID(id) {
		return nil
	}
	return s.state.DeleteState(ctx, tenant, kind+":"+id)
}

// validStateID reports whether id may be part of a state key (UTF-8 text
// without NUL, as registry.State requires). An id from a request (the
// authorization request id of the login pages) that is not cannot name an
// entry: it is absent, not a store error.
func validStateID(id string) bool {
	return len(id) <= 512 && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// touch notes that tenant has state this replica should purge.
func (s *Server) touch(tenant string) {
	if _, ok := s.stateTenants.Load(tenant); !ok {
		s.stateTenants.Store(tenant, struct{}{})
	}
}

// revocationID is the id under which an access token is revoked: a hash
// of its issuer and jti.
func revocationID(iss, jti string) string { return hashKey(iss + "\x00" + jti) }

// Defaults of the revocation set and the purge (see Config).
const (
	defaultRevocationRefresh  = 500 * time.Millisecond
	defaultRevocationMaxStale = 3 * time.Second
	revocationPage            = 1000             // revocations read per query
	purgeEvery                = 30 * time.Second // how often Run deletes expired state
	purgeBatch                = 500              // rows per PurgeState
	purgeBatches              = 20               // PurgeState calls per tenant and round, at most
)

// revocationSet holds, in process, the revoked access token ids of every
// tenant whose tokens this replica checks, so that the bearer check makes
// no network call. A tenant's set is loaded from registry.State on its
// first check and follows the store's change feed (revocations with a
// sequence number above the last one seen) on every refresh: Run refreshes
// every tenant each Config.RevocationRefresh, so a revocation made on
// another replica is honoured here within about that interval; one made
// here is added at once.
//
// It is never wrong for longer than maxStale: a check that finds its
// tenant's set not refreshed for longer (Run stopped, or the store failing)
// refreshes it synchronously and, if that fails too, fails.
//
// Readers take no lock: each tenant's ids are an immutable map replaced on
// change (revocations are rare, checks are every request).
type revocationSet struct {
	st       registry.State
	log      *slog.Logger
	maxStale time.Duration
	epoch    time.Time // freshness is measured on the monotonic clock from here

	tenants sync.Map // tenant -> *tenantRevocations
}

type tenantRevocations struct {
	ids       atomic.Pointer[map[string]time.Time] // revoked id -> expiry; never modified once stored
	refreshed atomic.Int64                         // start of the last good refresh, ns after epoch; 0: never

	mu      sync.Mutex // serializes refreshes and additions; guards the fields below
	after   int64      // the last sequence number applied
	failing bool       // the last background refresh failed (logged once)
}

func newRevocationSet(st registry.State, maxStale time.Duration, log *slog.Logger) *revocationSet {
	return &revocationSet{st: st, log: log, maxStale: maxStale, epoch: time.Now()}
}

// since is the monotonic time since the set's epoch, never 0.
func (r *revocationSet) since() int64 { return int64(time.Since(r.epoch)) + 1 }

func (r *revocationSet) tenant(name string) *tenantRevocations {
	if t, ok := r.tenants.Load(name); ok {
		return t.(*tenantRevocations)
	}
	t, _ := r.tenants.LoadOrStore(name, &tenantRevocations{})
	return t.(*tenantRevocations)
}

// revoked reports whether id is revoked in tenant. Its error means the
// answer is unknown: the caller must not treat the token as valid.
func (r *revocationSet) revoked(ctx context.Context, tenant, id string) (bool, error) {
	t := r.tenant(tenant)
	if at := t.refreshed.Load(); at == 0 || time.Duration(r.since()-at) > r.maxStale {
		if err := r.refresh(ctx, tenant, t, r.maxStale); err != nil {
			return false, err
		}
	}
	ids := t.ids.Load()
	if ids == nil {
		return false, nil
	}
	exp, ok := (*ids)[id]
	return ok && time.Now().Before(exp), nil
}

// refresh applies the tenant's revocations that are newer than the last
// one applied, unless a refresh that started at most maxAge ago succeeded
// (a concurrent caller did it).
func (r *revocationSet) refresh(ctx context.Context, tenant string, t *tenantRevocations, maxAge time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at := t.refreshed.Load(); at != 0 && time.Duration(r.since()-at) <= maxAge {
		return nil
	}
	start := r.since()
	var fresh []registry.Revocation
	for after := t.after; ; {
		page, err := r.st.Revocations(ctx, tenant, after, revocationPage)
		if err != nil {
			return err
		}
		fresh = append(fresh, page...)
		if len(page) < revocationPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(fresh) > 0 {
		t.apply(fresh)
	}
	t.refreshed.Store(start)
	return nil
}

// apply adds revocations to the set (a new map), dropping expired ids;
// the caller holds t.mu.
func (t *tenantRevocations) apply(rs []registry.Revocation) {
	now := time.Now()
	next := map[string]time.Time{}
	if old := t.ids.Load(); old != nil {
		for id, exp := range *old {
			if now.Before(exp) {
				next[id] = exp
			}
		}
	}
	for _, rv := range rs {
		if rv.Expires.After(next[rv.ID]) {
			next[rv.ID] = rv.Expires
		}
		t.after = max(t.after, rv.Seq)
	}
	t.ids.Store(&next)
}

// add makes a revocation stored by this replica count here at once,
// before the feed brings it back.
func (r *revocationSet) add(tenant, id string, expires time.Time) {
	t := r.tenant(tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apply([]registry.Revocation{{ID: id, Expires: expires}})
}

// refreshAll refreshes every tenant's set (Run's tick). A failure is
// logged once until the tenant's refresh works again; checks fail closed
// once the set is older than maxStale.
func (r *revocationSet) refreshAll(ctx context.Context) {
	r.tenants.Range(func(k, v any) bool {
		tenant, t := k.(string), v.(*tenantRevocations)
		rctx, cancel := context.WithTimeout(ctx, r.maxStale)
		err := r.refresh(rctx, tenant, t, 0)
		cancel()
		t.mu.Lock()
		wasFailing := t.failing
		t.failing = err != nil
		t.mu.Unlock()
		switch {
		case err != nil && !wasFailing && ctx.Err() == nil:
			r.log.Warn("refreshing revoked tokens failed; checks reload them themselves, and fail while the store fails",
				"tenant", tenant, "err", err)
		case err == nil && wasFailing:
			r.log.Info("refreshing revoked tokens works again", "tenant", tenant)
		}
		return true
	})
}

// prune drops expired ids (Run, with the purge).
func (r *revocationSet) prune() {
	now := time.Now()
	r.tenants.Range(func(_, v any) bool {
		t := v.(*tenantRevocations)
		t.mu.Lock()
		if ids := t.ids.Load(); ids != nil {
			for _, exp := range *ids {
				if !now.Before(exp) {
					t.apply(nil)
					break
				}
			}
		}
		t.mu.Unlock()
		return true
	})
}

// Run keeps the revocation set current and deletes expired state until
// ctx ends: every Config.RevocationRefresh it reads each tenant's new
// revocations, and every 30 s it purges the expired state of the tenants
// this replica has seen, in small batches. It returns nil when ctx ends.
// Without Run the server stays correct: a bearer check reloads a set
// older than Config.RevocationMaxStale itself.
func (s *Server) Run(ctx context.Context) error {
	refresh := time.NewTicker(s.revocationRefresh)
	defer refresh.Stop()
	purge := time.NewTicker(purgeEvery)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			s.revoked.refreshAll(ctx)
		case <-purge.C:
			s.purge(ctx)
			s.revoked.prune()
		}
	}
}

// purge deletes the expired state of every tenant this replica has seen,
// at most purgeBatches batches of purgeBatch rows per tenant and round.
func (s *Server) purge(ctx context.Context) {
	tenants := map[string]bool{}
	s.stateTenants.Range(func(k, _ any) bool { tenants[k.(string)] = true; return true })
	s.revoked.tenants.Range(func(k, _ any) bool { tenants[k.(string)] = true; return true })
	for tenant := range tenants {
		for range purgeBatches {
			n, err := s.state.PurgeState(ctx, tenant, purgeBatch)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					s.log.Warn("purging expired authorization state failed", "tenant", tenant, "err", err)
				}
				return
			}
			if n < purgeBatch {
				break
			}
		}
	}
}
