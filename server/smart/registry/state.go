package registry

import (
	"context"
	"time"
)

// State keeps the authorization server's short-lived state: pending
// authorization requests, authorization codes, refresh tokens and their
// families, used-code and used-refresh markers, the jti replay set of
// client assertions, EHR launch contexts (the entries), and the revoked
// access token ids (the revocations). It is security state: a store that
// forgets it re-opens a replay window, brings a revoked token back or ends
// offline access, so implementations keep it durably, in the database
// (migration 0031), shared by every replica.
//
// Every entry and revocation has a time to live and belongs to one tenant;
// as for Store, another tenant's rows are unreachable (PostgreSQL
// row-level security). Keys and ids are UTF-8 text without NUL bytes (a
// PostgreSQL TEXT) and never contain a usable token (callers hash tokens
// first); values are small. Expiry is measured by the store's
// clock (the host's) and honoured on every read: an expired row is absent
// whether or not PurgeState has deleted it yet.
//
// Errors are *fhir.Error values: KindNotFound for an unregistered tenant
// on a write, KindInternal (wrapping the driver error) otherwise. Callers
// never treat an error as "absent".
type State interface {
	// PutState stores value under key for ttl unless a live entry has
	// key, and reports whether it stored it; an expired entry is replaced.
	// A ttl of zero or less stores nothing (false).
	PutState(ctx context.Context, tenant, key string, value []byte, ttl time.Duration) (bool, error)
	// GetState returns the value of a live entry; ok is false when there
	// is none.
	GetState(ctx context.Context, tenant, key string) (value []byte, ok bool, err error)
	// TakeState returns the value of a live entry and deletes it,
	// atomically: of concurrent Takes of one key (from any replica), one
	// gets the value.
	TakeState(ctx context.Context, tenant, key string) (value []byte, ok bool, err error)
	// DeleteState deletes an entry; an absent one is not an error.
	DeleteState(ctx context.Context, tenant, key string) error

	// Revoke records id as revoked for ttl and gives the record the next
	// sequence number of the tenant. Sequence numbers become visible in
	// order: once a reader sees number n, it sees every revocation with a
	// lower number that is still live. An id revoked again gets a new
	// number and keeps the later of the two expiries. A ttl of zero or
	// less records nothing.
	Revoke(ctx context.Context, tenant, id string, ttl time.Duration) error
	// Revocations returns at most limit live revocations of the tenant
	// with a sequence number above after, in sequence order: the change
	// feed replicas follow.
	Revocations(ctx context.Context, tenant string, after int64, limit int) ([]Revocation, error)

	// PurgeState deletes at most limit expired entries and at most limit
	// expired revocations of the tenant, soonest expired first, and
	// returns how many rows it deleted. Deleting in small batches keeps
	// each statement short (autovacuum may be off on the cluster).
	PurgeState(ctx context.Context, tenant string, limit int) (int, error)
}

// Revocation is one revoked token id of the change feed.
type Revocation struct {
	ID      string
	Seq     int64
	Expires time.Time
}
