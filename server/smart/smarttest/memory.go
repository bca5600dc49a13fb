package smarttest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// Memory is an in-memory registry.Store and registry.State for tests of
// server/smart. It passes Run and RunState. It is not durable and not
// shared between processes: production uses the SQL stores.
type Memory struct {
	mu      sync.Mutex
	tenants map[string]*memTenant
}

type memTenant struct {
	clients map[string]registry.Client
	users   map[string]registry.User
	keys    map[string]registry.SigningKey

	state   map[string]memEntry
	revoked map[string]registry.Revocation
	seq     int64 // the last revocation's sequence number
}

type memEntry struct {
	v       []byte
	expires time.Time
}

var (
	_ Store      = (*Memory)(nil)
	_ StateStore = (*Memory)(nil)
)

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{tenants: map[string]*memTenant{}} }

// EnsureTenant registers tenant (idempotent).
func (m *Memory) EnsureTenant(_ context.Context, tenant string) error {
	if !fhir.ValidTenant(tenant) {
		return fhir.Errorf(fhir.KindInvalid, "invalid tenant name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tenants[tenant] == nil {
		m.tenants[tenant] = &memTenant{clients: map[string]registry.Client{}, users: map[string]registry.User{},
			keys: map[string]registry.SigningKey{}, state: map[string]memEntry{}, revoked: map[string]registry.Revocation{}}
	}
	return nil
}

// TenantExists reports whether tenant is registered.
func (m *Memory) TenantExists(_ context.Context, tenant string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tenants[tenant] != nil, nil
}

// tenant returns the tenant's maps; the caller holds m.mu.
func (m *Memory) tenant(name string) (*memTenant, error) {
	t := m.tenants[name]
	if t == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "unknown tenant")
	}
	return t, nil
}

func cloneClient(c registry.Client) *registry.Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.Scopes = slices.Clone(c.Scopes)
	c.JWKS = slices.Clone(c.JWKS)
	return &c
}

// AddClient implements registry.Store.
func (m *Memory) AddClient(_ context.Context, tenant string, c *registry.Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return err
	}
	if _, ok := t.clients[c.ID]; ok {
		return registry.Conflict("client")
	}
	t.clients[c.ID] = *cloneClient(*c)
	return nil
}

// Client implements registry.Store.
func (m *Memory) Client(_ context.Context, tenant, id string) (*registry.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, err
	}
	c, ok := t.clients[id]
	if !ok {
		return nil, registry.NotFound("client")
	}
	return cloneClient(c), nil
}

// Clients implements registry.Store.
func (m *Memory) Clients(_ context.Context, tenant string) ([]*registry.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, err
	}
	var out []*registry.Client
	for _, c := range t.clients {
		out = append(out, cloneClient(c))
	}
	slices.SortFunc(out, func(a, b *registry.Client) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteClient implements registry.Store.
func (m *Memory) DeleteClient(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return err
	}
	if _, ok := t.clients[id]; !ok {
		return registry.NotFound("client")
	}
	delete(t.clients, id)
	return nil
}

// AddUser implements registry.Store.
func (m *Memory) AddUser(_ context.Context, tenant string, u *registry.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return err
	}
	if _, ok := t.users[u.Username]; ok {
		return registry.Conflict("user")
	}
	t.users[u.Username] = *u
	return nil
}

// User implements registry.Store.
func (m *Memory) User(_ context.Context, tenant, username string) (*registry.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, err
	}
	u, ok := t.users[username]
	if !ok {
		return nil, registry.NotFound("user")
	}
	return &u, nil
}

// Users implements registry.Store.
func (m *Memory) Users(_ context.Context, tenant string) ([]*registry.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, err
	}
	var out []*registry.User
	for _, u := range t.users {
		out = append(out, &u)
	}
	slices.SortFunc(out, func(a, b *registry.User) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// DeleteUser implements registry.Store.
func (m *Memory) DeleteUser(_ context.Context, tenant, username string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return err
	}
	if _, ok := t.users[username]; !ok {
		return registry.NotFound("user")
	}
	delete(t.users, username)
	return nil
}

// AddSigningKey implements registry.Store.
func (m *Memory) AddSigningKey(_ context.Context, tenant string, k *registry.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return err
	}
	if _, ok := t.keys[k.ID]; ok {
		return registry.Conflict("signing key")
	}
	c := *k
	c.Private = slices.Clone(k.Private)
	t.keys[k.ID] = c
	return nil
}

// SigningKeys implements registry.Store.
func (m *Memory) SigningKeys(_ context.Context, tenant string) ([]*registry.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, err
	}
	var out []*registry.SigningKey
	for _, k := range t.keys {
		k.Private = slices.Clone(k.Private)
		out = append(out, &k)
	}
	slices.SortFunc(out, func(a, b *registry.SigningKey) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

// checkKey fails for a key PostgreSQL could not store (TEXT holds UTF-8
// without NUL), so that tests on Memory catch such keys too.
func checkKey(key string) error {
	if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return fhir.Errorf(fhir.KindInternal, "a state key that is not UTF-8 text without NUL")
	}
	return nil
}

// live returns the live entry of key; the caller holds m.mu.
func (t *memTenant) live(key string, now time.Time) (memEntry, bool) {
	e, ok := t.state[key]
	if !ok || !now.Before(e.expires) {
		return memEntry{}, false
	}
	return e, true
}

// PutState implements registry.State.
func (m *Memory) PutState(_ context.Context, tenant, key string, value []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil || ttl <= 0 {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	now := time.Now()
	if _, ok := t.live(key, now); ok {
		return false, nil
	}
	t.state[key] = memEntry{v: slices.Clone(value), expires: now.Add(ttl)}
	return true, nil
}

// GetState implements registry.State.
func (m *Memory) GetState(_ context.Context, tenant, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, false, nil
	}
	e, ok := t.live(key, time.Now())
	return slices.Clone(e.v), ok, nil
}

// TakeState implements registry.State.
func (m *Memory) TakeState(_ context.Context, tenant, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, false, nil
	}
	e, ok := t.live(key, time.Now())
	delete(t.state, key)
	return e.v, ok, nil
}

// DeleteState implements registry.State.
func (m *Memory) DeleteState(_ context.Context, tenant, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, err := m.tenant(tenant); err == nil {
		delete(t.state, key)
	}
	return nil
}

// Revoke implements registry.State.
func (m *Memory) Revoke(_ context.Context, tenant, id string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil || ttl <= 0 {
		return err
	}
	expires := time.Now().Add(ttl).Truncate(time.Microsecond)
	if old, ok := t.revoked[id]; ok && old.Expires.After(expires) {
		expires = old.Expires
	}
	t.seq++
	t.revoked[id] = registry.Revocation{ID: id, Seq: t.seq, Expires: expires}
	return nil
}

// Revocations implements registry.State.
func (m *Memory) Revocations(_ context.Context, tenant string, after int64, limit int) ([]registry.Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return nil, nil
	}
	now := time.Now()
	var out []registry.Revocation
	for _, r := range t.revoked {
		if r.Seq > after && now.Before(r.Expires) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b registry.Revocation) int { return int(a.Seq - b.Seq) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// PurgeState implements registry.State.
func (m *Memory) PurgeState(_ context.Context, tenant string, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, err := m.tenant(tenant)
	if err != nil {
		return 0, nil
	}
	now := time.Now()
	n, revs := 0, 0
	for k, e := range t.state {
		if n == limit {
			break
		}
		if !now.Before(e.expires) {
			delete(t.state, k)
			n++
		}
	}
	for id, r := range t.revoked {
		if revs == limit {
			break
		}
		if !now.Before(r.Expires) {
			delete(t.revoked, id)
			revs++
		}
	}
	return n + revs, nil
}
