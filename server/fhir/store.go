package fhir

import (
	"context"
	"encoding/json"
)

// Store is the resource store contract. adapters/sqlite and adapters/postgres
// implement it and both pass server/fhir/storetest. Every method is scoped to
// one tenant; an implementation must make it impossible to read or write
// another tenant's rows through it (Postgres enforces this with row-level
// security, not only with WHERE clauses).
//
// Errors are *Error values: KindNotFound, KindGone, KindPreconditionFailed,
// KindConflict, KindInvalid (a query the store cannot run), KindInternal
// (wrapping the driver error) — as each method says.
type Store interface {
	Reader

	// History lists versions, newest first. Deleted versions appear as
	// tombstones (Deleted true, Body nil).
	History(ctx context.Context, tenant string, q *HistoryQuery) (*HistoryResult, error)

	// Tx runs fn in one database transaction: all of fn's writes commit
	// together, or none do when fn (or the commit) returns an error. The
	// error fn returns is returned unchanged. Tx may retry fn after a
	// serialization failure, so fn must not have side effects outside tx.
	Tx(ctx context.Context, tenant string, fn func(Tx) error) error

	// EnsureTenant registers a tenant (idempotent). TenantExists reports
	// whether it is registered. A Store rejects reads and writes for a
	// tenant that is not registered with KindNotFound.
	EnsureTenant(ctx context.Context, tenant string) error
	TenantExists(ctx context.Context, tenant string) (bool, error)

	// Ping checks the database answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Reader is the read side, available both outside and inside a transaction.
type Reader interface {
	// Read returns the current version. KindNotFound when type/id never
	// existed; KindGone when its current version is a delete (the returned
	// error wraps nothing; the tombstone is not returned).
	Read(ctx context.Context, tenant, typ, id string) (*Resource, error)

	// VRead returns one version. KindNotFound when that version does not
	// exist; KindGone when that version is a delete.
	VRead(ctx context.Context, tenant, typ, id string, version int64) (*Resource, error)

	// Search runs q over current, non-deleted resources of q.Type, ordered
	// by q.Sort then by id (so paging is stable), skipping q.Offset and
	// returning at most q.Count. Includes are resolved for the page.
	// KindInvalid when q names a parameter or sort the store cannot run.
	Search(ctx context.Context, tenant string, q *Query) (*SearchResult, error)

	// LastN implements Observation/$lastn over the matches of q: for each
	// distinct Observation code (system and code of each coding indexed
	// under the "code" parameter), the max most recent by the "date"
	// parameter (ties broken by lastUpdated, then id). A resource is
	// returned once even if it belongs to several groups. Order: by code
	// group, newest first within a group.
	LastN(ctx context.Context, tenant string, q *Query, max int) ([]*Resource, error)
}

// Tx is a store transaction for one tenant.
type Tx interface {
	Reader

	// Lock takes an exclusive lock on each key, held until the transaction
	// ends: two transactions that Lock the same key run one after the
	// other. It is how conditional create/update are made race-free: lock
	// the normalized condition, search, then write. The keys of one call
	// are taken together, in an order of the store's that is the same for
	// every transaction (so two calls with overlapping keys cannot
	// deadlock), at the cost of one round trip.
	Lock(ctx context.Context, keys ...string) error

	// Put writes a new current version of w.Type/w.ID: version 1 when the
	// resource is new (or was deleted, then its version is the tombstone's
	// + 1), else current + 1. The store sets id, meta.versionId and
	// meta.lastUpdated in the stored body (StampMeta) and replaces the
	// resource's index entries with w.Index. KindPreconditionFailed when
	// w.IfMatch > 0 and differs from the current version (a deleted or
	// missing resource has no current version). created reports whether
	// there was no live version before.
	Put(ctx context.Context, w *Write) (res *Resource, created bool, err error)

	// Delete writes a tombstone version and removes index entries.
	// KindPreconditionFailed on an IfMatch mismatch. Deleting a resource
	// that does not exist or is already deleted is not an error: it
	// returns (nil, nil) and writes nothing.
	Delete(ctx context.Context, typ, id string, ifMatch int64) (*Resource, error)
}

// Write is one resource version to store.
type Write struct {
	Type    string
	ID      string
	Body    json.RawMessage // the validated JSON
	Index   []IndexEntry    // from search.Extract on Body
	IfMatch int64           // 0: no version check

	// Fresh says the caller made ID up just now (a server-assigned id on
	// create), so the resource almost certainly does not exist. A store may
	// then write version 1 without reading first, and must fall back to an
	// ordinary Put (by running the transaction again) when it does exist.
	Fresh bool
}

// SearchResult is one page of a search.
type SearchResult struct {
	Resources []*Resource // the page, in order
	Included  []*Resource // _include/_revinclude targets, each once, none of Resources
	Total     int         // number of all matches when q.Total or q.CountOnly, else -1
	HasMore   bool        // there are matches after this page
}

// HistoryResult is one page of history, newest first.
type HistoryResult struct {
	Versions []*Resource
	Total    int
	HasMore  bool
}

// ManyReader is implemented by readers that read several resources of one
// type at once (one round trip instead of one per id).
type ManyReader interface {
	// ReadMany returns the current versions of the resources of typ among
	// ids that exist, deleted ones included as tombstones (Deleted true,
	// Body nil), in no particular order.
	ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*Resource, error)
}

// ReadMany reads the current versions of typ/ids through r, at once when r
// is a ManyReader, else one by one; see ManyReader.ReadMany.
func ReadMany(ctx context.Context, r Reader, tenant, typ string, ids []string) ([]*Resource, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if m, ok := r.(ManyReader); ok {
		return m.ReadMany(ctx, tenant, typ, ids)
	}
	out := make([]*Resource, 0, len(ids))
	for _, id := range ids {
		res, err := r.Read(ctx, tenant, typ, id)
		switch {
		case err == nil:
			out = append(out, res)
		case IsKind(err, KindGone):
			out = append(out, &Resource{Type: typ, ID: id, Deleted: true})
		case !IsKind(err, KindNotFound):
			return nil, err
		}
	}
	return out, nil
}

// ManySearcher is implemented by readers that run several searches at once
// (one round trip instead of one per search, where each search is one
// query: no total and no includes).
type ManySearcher interface {
	// SearchMany returns the result of each of qs, in order, as Search
	// would; an error of any fails all.
	SearchMany(ctx context.Context, tenant string, qs []*Query) ([]*SearchResult, error)
}

// SearchMany runs qs through r, at once when r is a ManySearcher, else one
// by one; see ManySearcher.SearchMany.
func SearchMany(ctx context.Context, r Reader, tenant string, qs []*Query) ([]*SearchResult, error) {
	if m, ok := r.(ManySearcher); ok {
		return m.SearchMany(ctx, tenant, qs)
	}
	out := make([]*SearchResult, len(qs))
	for i, q := range qs {
		res, err := r.Search(ctx, tenant, q)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

// Change is one write inside a transaction, as a WriteHook sees it.
type Change struct {
	Tenant   string
	Resource *Resource // the version written (for a delete: the tombstone, Body nil)
	Created  bool      // there was no live version before
	// Index is the written version's index entries (Write.Index), so that
	// a hook needing a fact of the resource (its patient) need not
	// extract it again; nil for a delete.
	Index []IndexEntry
}

// WriteHook runs inside the transaction of every Put and Delete, right after
// the write: what it writes through tx — or through the store's other
// transaction-scoped tables, which it reaches by a type assertion on tx —
// commits with the resource or not at all, and an error it returns fails
// the write. Hooks carry what must be written with a resource: outbox rows
// (server/delivery), audit records (server/audit). A hook's own Puts run
// the hooks again.
type WriteHook func(ctx context.Context, tx Tx, c Change) error

// Hooked is implemented by stores that run WriteHooks. AddWriteHook must be
// called before the store is used; hooks run in the order added.
type Hooked interface {
	AddWriteHook(h WriteHook)
}

// RunHooks runs hooks in order for c, stopping at the first error.
func RunHooks(ctx context.Context, hooks []WriteHook, tx Tx, c Change) error {
	for _, h := range hooks {
		if err := h(ctx, tx, c); err != nil {
			return err
		}
	}
	return nil
}
