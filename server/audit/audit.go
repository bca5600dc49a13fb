package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// Principal is who acts: a SMART client and its user, or a server module
// acting on its own. It carries identifiers only, never names.
type Principal struct {
	ClientID string // the OAuth client
	FHIRUser string // the signed-in user as a relative reference ("Practitioner/123"), or ""
	Subject  string // the user's login (or a backend client's sub), when there is no FHIRUser
	TokenID  string // the access token's jti, recorded as the agent's policy
	Address  string // the client's network address (IP), or ""
	// Module names the server module when no client acts: "ingest",
	// "adt", "delivery"; "unknown" when a write came without a principal.
	Module string
}

// System is the principal of a server module acting on its own (device
// ingestion, inbound ADT, delivery): ingestion and ADT set it with
// WithPrincipal before writing.
func System(module string) Principal { return Principal{Module: module} }

func (p Principal) isZero() bool { return p == Principal{} }

type principalKey struct{}

// WithPrincipal returns ctx carrying p: the write hook records the writes
// made with that context as p's. The REST layer sets it from the SMART
// grant (see the package comment of server/audit for the wiring).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, &p)
}

// Identify replaces, in place, the principal WithPrincipal put in ctx, and
// reports whether there was one. It is for a request's own middleware that
// learns who acts after the principal went into the request context (the
// REST layer sets the anonymous one before the token is checked): it
// spares a copy of the request per request. Every context derived from
// ctx sees the change, so call it only before the request's work starts.
func Identify(ctx context.Context, p Principal) bool {
	cur, ok := ctx.Value(principalKey{}).(*Principal)
	if ok {
		*cur = p
	}
	return ok
}

// PrincipalFrom returns the principal WithPrincipal put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	if !ok {
		return Principal{}, false
	}
	return *p, true
}

// unknown is the principal of a write that came without one.
var unknown = System("unknown")

// Interaction is the FHIR RESTful interaction an event records
// (http://hl7.org/fhir/R4/codesystem-restful-interaction.html).
type Interaction string

// Interactions.
const (
	Read        Interaction = "read"
	VRead       Interaction = "vread"
	Search      Interaction = "search"  // recorded as search-type or search-system too
	History     Interaction = "history" // recorded as history-instance, -type or -system too
	Create      Interaction = "create"
	Update      Interaction = "update"
	Patch       Interaction = "patch"
	Delete      Interaction = "delete"
	Transaction Interaction = "transaction"
	Batch       Interaction = "batch"
	Operation   Interaction = "operation" // $lastn, $export ...: Event.Operation names it
)

// Action is AuditEvent.action.
type Action string

// Actions.
const (
	ActionCreate  Action = "C"
	ActionRead    Action = "R"
	ActionUpdate  Action = "U"
	ActionDelete  Action = "D"
	ActionExecute Action = "E" // search, history, operations, transactions
)

// action is the default action of an interaction.
func (i Interaction) action() (Action, bool) {
	switch i {
	case Read, VRead:
		return ActionRead, true
	case Create:
		return ActionCreate, true
	case Update, Patch:
		return ActionUpdate, true
	case Delete:
		return ActionDelete, true
	case Search, History, Transaction, Batch, Operation:
		return ActionExecute, true
	}
	return "", false
}

// Outcome is AuditEvent.outcome.
type Outcome int

// Outcomes (http://hl7.org/fhir/R4/valueset-audit-event-outcome.html).
const (
	OutcomeSuccess Outcome = 0  // done (also with warnings)
	OutcomeMinor   Outcome = 4  // refused or failed for the client's sake: a 4xx, a denial
	OutcomeSerious Outcome = 8  // failed for ours: a 5xx
	OutcomeMajor   Outcome = 12 // the service is unusable
)

// OutcomeOf is the outcome of a request that ended with err: success for
// nil, serious for an internal error, minor for any other *fhir.Error (the
// client's mistake, or a denial).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeSuccess
	case fhir.ErrorKind(err) == fhir.KindInternal:
		return OutcomeSerious
	}
	return OutcomeMinor
}

// Event is one thing to record. Only Tenant and Interaction are required.
type Event struct {
	Tenant string
	// Principal is who acted; zero means the one in Record's context
	// (WithPrincipal), else the system agent "unknown".
	Principal   Principal
	Interaction Interaction
	Action      Action // "": the interaction's (see the Action constants)
	Type        string // resource type; "" for a system-level search or history
	ID          string // resource id, for instance-level interactions
	Version     int64  // the version read (vread, a write's new version); 0 when none
	// Patient is the id of the patient whose data was read, written or
	// asked for: the read resource's compartment, the search's patient
	// parameter, the launch patient. "" when none is known.
	Patient string
	// Resource is the version read (read, vread), for a caller that does
	// not know its patient: when Patient is empty, the dispatcher derives
	// it from the body, off the request's path.
	Resource *fhir.Resource
	// Query is the raw query string of a search, history or operation
	// (without "?"): stored base64-encoded in entity.query, never logged.
	Query     string
	Operation string // the operation's name for Interaction operation, e.g. "$lastn"
	Outcome   Outcome
	// Reason says why an event failed or was denied: a PHI-free code or
	// message (authz.Reason, an OperationOutcome issue code).
	Reason    string
	RequestID string // X-Request-Id, to correlate with access logs
	// More are further resources of the same interaction, recorded in the
	// same event (a batch of writes: see Collect); their patients are listed
	// with Patient's.
	More []Entity
}

// Entity is one more resource (version) an event is about.
type Entity struct {
	Type, ID string
	Version  int64
	Patient  string // its patient's id, "" when none
}

// check validates what a caller gave; its errors are programming errors.
func (e *Event) check() error {
	switch {
	case !fhir.ValidTenant(e.Tenant):
		return fhir.Errorf(fhir.KindInternal, "audit event without a valid tenant")
	case e.Type != "" && strings.ContainsAny(e.Type, "/?#"):
		return fhir.Errorf(fhir.KindInternal, "audit event with an invalid resource type")
	case e.ID != "" && !fhir.ValidID(e.ID):
		return fhir.Errorf(fhir.KindInternal, "audit event with an invalid resource id")
	case e.Patient != "" && !fhir.ValidID(e.Patient):
		return fhir.Errorf(fhir.KindInternal, "audit event with an invalid patient id")
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeMinor, OutcomeSerious, OutcomeMajor:
	default:
		return fhir.Errorf(fhir.KindInternal, "audit event with outcome %d", e.Outcome)
	}
	if _, ok := e.Interaction.action(); !ok {
		return fhir.Errorf(fhir.KindInternal, "audit event with unknown interaction %q", e.Interaction)
	}
	switch e.Action {
	case "", ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionExecute:
	default:
		return fhir.Errorf(fhir.KindInternal, "audit event with unknown action %q", e.Action)
	}
	return nil
}

// Config configures an Auditor.
type Config struct {
	// Store keeps the AuditEvents: it must implement chain.Store and its
	// transactions chain.Appender (adapters/sqlite and adapters/postgres
	// do). Record's dispatcher writes through its Tx.
	Store fhir.Store
	// Registry extracts the search index entries of each AuditEvent and
	// the patient of written resources.
	Registry *search.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives failures (tenants, counts and errors, never event
	// content); nil discards.
	Logger *slog.Logger
	// Source names this server in AuditEvent.source and the server agent;
	// "" means "pulsewire".
	Source string
	// RedactQueries stores only the parameter names of a query in
	// entity.query (values dropped) instead of the raw query.
	RedactQueries bool

	// QueueSize bounds the records waiting to be written (default 8192);
	// BatchSize the records one transaction appends (default 512);
	// Workers the batches committed at once (default 2).
	QueueSize int
	BatchSize int
	Workers   int
}

// Auditor records AuditEvents. It is safe for concurrent use. New starts
// its dispatcher; Close stops it.
type Auditor struct {
	store     fhir.Store
	reg       *search.Registry
	now       func() time.Time
	log       *slog.Logger
	source    string
	redact    bool
	batchSize int
	workers   int

	// Record's queue. mu guards closed: Record sends under RLock, Close
	// sets closed under Lock and only then closes queue.
	mu      sync.RWMutex
	closed  bool
	queue   chan *queued
	stopped chan struct{} // closed when the dispatcher has exited
	abandon chan struct{} // closed when Close gives up on retrying
	once    sync.Once     // closes queue
	giveUp  sync.Once     // closes abandon

	stats counters
}

// counters back Stats.
type counters struct {
	recorded, written, batches, retries, dropped, refused atomic.Uint64
}

// Stats are the Auditor's counters since New, for metrics.
type Stats struct {
	Recorded uint64 // events Record queued that are committed
	Written  uint64 // events the write hook appended (their transaction may still have rolled back)
	Queued   int    // events waiting in the queue now
	Batches  uint64 // transactions the dispatcher committed
	Retries  uint64 // batch attempts that failed and were tried again
	// Dropped counts events given up on (an unknown tenant, the shutdown
	// deadline; each batch is logged) and Record calls whose context ended
	// while the queue stayed full (the caller got an error).
	Dropped uint64
	Refused uint64 // writes of AuditEvent through the ordinary store, refused by the hook
}

// Stats returns the current counters.
func (a *Auditor) Stats() Stats {
	return Stats{
		Recorded: a.stats.recorded.Load(),
		Written:  a.stats.written.Load(),
		Queued:   len(a.queue),
		Batches:  a.stats.batches.Load(),
		Retries:  a.stats.retries.Load(),
		Dropped:  a.stats.dropped.Load(),
		Refused:  a.stats.refused.Load(),
	}
}

// New returns an Auditor and starts its dispatcher. It fails when the
// store does not keep audit chains.
func New(cfg Config) (*Auditor, error) {
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("audit: Config.Store and Config.Registry are required")
	}
	if _, ok := cfg.Store.(chain.Store); !ok {
		return nil, fmt.Errorf("audit: the store (%T) keeps no audit chain", cfg.Store)
	}
	a := &Auditor{
		store: cfg.Store, reg: cfg.Registry, now: cfg.Now, log: cfg.Logger, source: cfg.Source,
		redact: cfg.RedactQueries, batchSize: cfg.BatchSize, workers: cfg.Workers,
		stopped: make(chan struct{}), abandon: make(chan struct{}),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.source == "" {
		a.source = "pulsewire"
	}
	if a.batchSize <= 0 {
		a.batchSize = 512
	}
	if a.workers <= 0 {
		a.workers = 2
	}
	size := cfg.QueueSize
	if size <= 0 {
		size = 8192
	}
	a.queue = make(chan *queued, size)
	go a.dispatch()
	return a, nil
}
