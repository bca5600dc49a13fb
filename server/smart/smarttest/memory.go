package smarttest

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
)

// Memory is an in-memory registry.Store for tests of server/smart. It
// passes Run. It is not durable: production uses the SQL stores.
type Memory struct {
	mu      sync.Mutex
	tenants map[string]*memTenant
}

type memTenant struct {
	clients map[string]registry.Client
	users   map[string]registry.User
	keys    map[string]registry.SigningKey
}

var _ Store = (*Memory)(nil)

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
			keys: map[string]registry.SigningKey{}}
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
