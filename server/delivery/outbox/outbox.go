// Package outbox declares the transactional outbox of outbound HL7 results
// (issue 4, point 4): the entry a store keeps for every (Observation
// version, destination) to deliver, the transaction-scoped Enqueuer through
// which server/delivery's write hook adds entries in the same database
// transaction as the Observation (the "transactional outbox" pattern,
// https://microservices.io/patterns/data/transactional-outbox.html), and the
// store-level Store the delivery worker claims, settles and inspects them
// through.
//
// It is pure (standard library and server/fhir only) so that the adapters
// can implement it without importing server/delivery. adapters/sqlite and
// adapters/postgres implement Store, and their transactions implement
// Enqueuer; server/delivery and server/cmd consume them; every
// implementation passes outboxtest.
//
// # Ordering
//
// Entries of one destination are ordered by Seq, which the store assigns
// when an entry is enqueued (and again when it is replayed, which puts it
// at the back of the queue). A transaction that starts after another
// committed gets larger Seqs, so causally ordered writes keep their order.
// Per destination and patient, entries are delivered in Seq order: Claim
// only hands out a patient's pending entries as a prefix starting at the
// oldest one (see Claim).
//
// # Times
//
// Times are stored with microsecond precision (UTC). The worker passes its
// clock's now to every call, so one process's clock decides due times and
// leases; replicas' clocks must agree to well within a lease.
package outbox

import (
	"context"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// State is where an entry is in its life.
type State string

// States. An entry is pending until it is delivered (done) or given up on
// (dead, a dead letter an operator can replay).
const (
	Pending State = "pending"
	Done    State = "done"
	Dead    State = "dead"
)

// Event is why an entry was enqueued.
type Event string

// Events: the first result message for an Observation, or a later version
// of it (server/delivery documents which versions it enqueues).
const (
	EventNew        Event = "new"
	EventCorrection Event = "correction"
)

// Item is what the write hook enqueues: one resource version for one
// destination.
type Item struct {
	Destination string // the destination's name, unique within the tenant
	Patient     string // ordering key: the subject reference, "Patient/<id>"
	Type        string // resource type, "Observation"
	ResourceID  string
	Version     int64
	Event       Event
}

// Entry is one outbox row.
type Entry struct {
	ID     int64 // unique in the database, never reused (MSH-10 is derived from it)
	Seq    int64 // order within the destination; reassigned on replay
	Tenant string
	Item
	State       State
	Attempts    int       // send attempts settled so far
	NextAttempt time.Time // when a pending entry is due
	LeaseUntil  time.Time // a claimed entry is leased to its claimer until then; zero when not leased
	LastError   string    // why the last attempt failed: codes and ids, never patient data
	Replays     int       // times an operator replayed it from the dead letters
	Created     time.Time
	Updated     time.Time // last change of State, Attempts or LastError
}

// Enqueuer is implemented by the fhir.Tx of a store that keeps an outbox.
// A write hook reaches it with a type assertion, tx.(outbox.Enqueuer), so
// the entries commit with the resource or not at all.
type Enqueuer interface {
	// Enqueue adds one pending entry per item for the transaction's tenant,
	// created and due at the given time, not leased, with fresh ids and Seqs
	// in item order. A store may send the rows with the transaction's next
	// statement or its commit; an error then fails the transaction.
	Enqueue(ctx context.Context, at time.Time, items ...Item) error
}

// ClaimOptions bound one Claim.
type ClaimOptions struct {
	Limit      int           // most entries returned; at least 1
	PerPatient int           // most entries of one patient; at least 1
	Lease      time.Duration // how long the claimed entries stay leased
}

// Result is what became of one claimed entry.
type Result int

// Results of a delivery attempt.
const (
	// Delivered: the peer accepted it (state done).
	Delivered Result = iota + 1
	// Retry: it failed and is due again at NextAttempt.
	Retry
	// DeadLetter: it is given up on (state dead) until an operator replays it.
	DeadLetter
	// Release: it was claimed but not sent (the lease ends; no attempt counted).
	Release
)

// Outcome settles one claimed entry.
type Outcome struct {
	ID          int64
	Result      Result
	NextAttempt time.Time // Retry
	Error       string    // Retry, DeadLetter: codes and ids, never patient data
}

// Filter selects entries to list.
type Filter struct {
	Destination string // "" for every destination
	State       State  // required
	Offset      int
	Limit       int
}

// DestinationStats describes one destination's queue.
type DestinationStats struct {
	Destination string
	Pending     int64     // pending entries, leased or not
	InFlight    int64     // pending entries leased at now
	Dead        int64     // dead letters
	Oldest      time.Time // creation time of the oldest pending entry; zero when none
	Paused      bool
}

// ResourceKey names a resource version to Load; Version 0 means the
// current version.
type ResourceKey struct {
	Type    string
	ID      string
	Version int64
}

// Store is a fhir.Store that also keeps the outbox. Every method is scoped
// to one tenant, like the resource store (row-level security in
// PostgreSQL): the worker loops over the tenants its destinations belong to.
// Errors are *fhir.Error values: KindNotFound for an unknown tenant or entry,
// KindConflict as documented, KindInternal for database failures.
type Store interface {
	fhir.Store

	// Claim leases due entries of one destination to the caller and returns
	// them in Seq order, none when the destination is paused. For every
	// patient it considers a prefix of that patient's pending entries in Seq
	// order, starting at the oldest: the oldest must be due (NextAttempt <=
	// now) and not leased (LeaseUntil <= now), the prefix stops before the
	// first entry that is not, and at PerPatient entries. It takes whole
	// prefixes, the patients whose oldest entry is oldest first, until Limit
	// entries (the last prefix cut to fit). So a patient's entry is never
	// handed out while an earlier one of the same destination is pending
	// and not handed out in the same call, and one claim holds few patients
	// (concurrent claimers get different ones). Claimed entries have
	// LeaseUntil = now + Lease. Concurrent Claims of one destination (other
	// lanes, other replicas) never return the same entry or break a prefix.
	Claim(ctx context.Context, tenant, destination string, now time.Time, opts ClaimOptions) ([]*Entry, error)

	// Settle applies outcomes in one transaction at time now. Delivered:
	// state done, Attempts+1. Retry: Attempts+1, NextAttempt and LastError
	// set. DeadLetter: state dead, Attempts+1, LastError set. Release:
	// nothing but the lease. Every outcome ends the entry's lease and sets
	// Updated (except Release). Outcomes for ids that are not pending
	// (already settled, replayed meanwhile) or do not exist are ignored.
	Settle(ctx context.Context, tenant string, now time.Time, outcomes []Outcome) error

	// Entries lists entries in f.State (of f.Destination, when set) by id,
	// skipping f.Offset and returning at most f.Limit.
	Entries(ctx context.Context, tenant string, f Filter) ([]*Entry, error)

	// Entry returns one entry; KindNotFound when there is none.
	Entry(ctx context.Context, tenant string, id int64) (*Entry, error)

	// Replay makes a dead letter pending again at the back of its
	// destination's queue: a new Seq, due at now, Attempts 0, Replays+1.
	// KindNotFound when there is no such entry, KindConflict when it is
	// not dead.
	Replay(ctx context.Context, tenant string, id int64, now time.Time) error

	// SetPaused pauses or resumes a destination (persisted: every replica's
	// Claim honours it). Destinations are named by configuration; pausing
	// one that has no entries yet is allowed.
	SetPaused(ctx context.Context, tenant, destination string, paused bool, now time.Time) error

	// Stats describes the queue of every destination of the tenant that has
	// entries or a pause setting, ordered by destination.
	Stats(ctx context.Context, tenant string, now time.Time) ([]DestinationStats, error)

	// Load reads many resources in one call, as the worker does for a
	// claimed batch's Observation versions and the resources they
	// reference: for each key its version, or its current version when
	// Version is 0. Keys that do not exist, or name a deleted version (or a
	// deleted resource, for the current version), are absent from the map.
	Load(ctx context.Context, tenant string, keys []ResourceKey) (map[ResourceKey]*fhir.Resource, error)

	// Purge deletes at most limit done entries last updated before before,
	// and returns how many it deleted.
	Purge(ctx context.Context, tenant string, before time.Time, limit int) (int, error)
}
