package smart

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Ephemeral holds the authorization server's short-lived state: pending
// authorization requests, authorization codes, refresh tokens, the jti
// replay set of client assertions, revoked token ids and EHR launch
// contexts. Every entry has a TTL. Keys are namespaced by tenant and never
// contain a usable token (tokens are hashed first); values are small JSON
// documents.
//
// A Redis implementation maps the methods to SET key value NX PX ttl,
// GET, GETDEL and DEL; several replicas then share one state. Errors are
// the backend's (the server turns them into 500 / server_error and never
// treats a failing Ephemeral as "absent": a revoked token is not accepted
// because Redis is down).
type Ephemeral interface {
	// SetNX stores value under key for ttl unless key exists, and reports
	// whether it stored it.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Get returns the value of key; ok is false when it is absent or expired.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Take returns the value of key and deletes it, atomically: of several
	// concurrent Takes of one key, one gets the value.
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Del deletes key; an absent key is not an error.
	Del(ctx context.Context, key string) error
}

// MemoryEphemeral is an in-process Ephemeral for a single replica (the
// embedded default). Expired entries are dropped on access and swept
// every minute at most, on writes.
type MemoryEphemeral struct {
	mu        sync.Mutex
	m         map[string]memEntry
	lastSweep time.Time
	now       func() time.Time
}

type memEntry struct {
	v       []byte
	expires time.Time
}

var _ Ephemeral = (*MemoryEphemeral)(nil)

// NewMemoryEphemeral returns an empty MemoryEphemeral.
func NewMemoryEphemeral() *MemoryEphemeral {
	return &MemoryEphemeral{m: map[string]memEntry{}, now: time.Now}
}

// get returns the live entry of key; the caller holds mu.
func (m *MemoryEphemeral) get(key string, now time.Time) (memEntry, bool) {
	e, ok := m.m[key]
	if ok && !now.Before(e.expires) {
		delete(m.m, key)
		return memEntry{}, false
	}
	return e, ok
}

// SetNX implements Ephemeral.
func (m *MemoryEphemeral) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.lastSweep) > time.Minute {
		for k, e := range m.m {
			if !now.Before(e.expires) {
				delete(m.m, k)
			}
		}
		m.lastSweep = now
	}
	if _, ok := m.get(key, now); ok {
		return false, nil
	}
	m.m[key] = memEntry{v: slices.Clone(value), expires: now.Add(ttl)}
	return true, nil
}

// Get implements Ephemeral.
func (m *MemoryEphemeral) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.get(key, m.now())
	return slices.Clone(e.v), ok, nil
}

// Take implements Ephemeral.
func (m *MemoryEphemeral) Take(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.get(key, m.now())
	delete(m.m, key)
	return e.v, ok, nil
}

// Del implements Ephemeral.
func (m *MemoryEphemeral) Del(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
	return nil
}
