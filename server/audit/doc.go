// Package audit records who did what to which data, as FHIR R4 AuditEvent
// resources (https://hl7.org/fhir/R4/auditevent.html) following the IHE
// Basic Audit Log Patterns for RESTful interactions
// (https://profiles.ihe.net/ITI/BALP/): issue 5, point 4. Every read,
// search, write and denial, whichever door it came through (REST, GraphQL,
// device ingest, ADT), produces one AuditEvent with the client, the
// signed-in user (fhirUser), the tenant, the patient, the interaction, the
// resource, the query and the outcome.
//
// # Writes
//
// Hook returns a fhir.WriteHook. The store runs it inside the transaction
// of every Put and Delete, so a write's AuditEvent commits with the write
// or not at all. The principal is the one the caller put in the context
// with WithPrincipal (the REST layer, from the SMART grant; a server module
// acting on its own, with System); a write without one is recorded as the
// system agent "unknown". The hook also refuses every write of an
// AuditEvent through the ordinary store (403 for a create, 405 for an
// update or delete): AuditEvents are append-only and only this package
// appends them, through chain.Appender.
//
// # Reads, searches and denials
//
// These have no transaction to join. Record queues an Event in a bounded
// in-memory queue and returns; a dispatcher appends queued events in
// batches, one transaction per tenant and batch (a group commit: the more
// requests, the larger the batches). A read's response does not wait for
// its record to be durable: waiting would add a commit (an fsync and a
// round trip) to every read and cap read throughput at the commit rate.
// What that costs: a crash (kill -9, power loss) loses the records still
// queued or in the batches being committed, at most Config.QueueSize
// plus (Config.Workers + 1) * Config.BatchSize events, all of them reads,
// searches or denials (never writes). A graceful shutdown (Close) drains the queue.
// Record blocks while the queue is full (backpressure: a slow database
// slows reads down rather than losing their records) and fails when its
// context ends first, so a caller that fails the request then discloses
// nothing unaudited. RecordDurable waits for the record's commit, for the
// few callers that must not return before it (bulk export, break-glass).
//
// # Tamper evidence
//
// Each tenant's AuditEvents form a hash chain (see package chain) that runs
// in lanes: independent chains, each with its own sequence numbers and
// links, so that the tenant's transactions committing at the same time
// append to different lanes instead of one after the other (PostgreSQL
// holds a lane's head until the commit's WAL flush is done; with one head
// per tenant its audited commits flushed one at a time). PostgreSQL gives a
// tenant up to eight lanes, a commit taking the lowest one no other commit
// holds, so a quiet tenant's chain stays in lane 0; SQLite, whose single
// writer commits one transaction at a time, uses one. A lane orders its
// own events; across lanes, the time each event records orders them.
// Verify walks every lane and reports the first broken link (an altered
// body, a removed, inserted or reordered event, an event moved to another
// lane, a head that does not match its lane) and any chain entry or
// AuditEvent outside the lanes. A chain proves the records were not
// changed piecemeal; someone able to rewrite the whole tail of a lane and
// its head (or remove a lane with its head, which the application's
// database role cannot) can forge it, so operators should keep the heads
// Verify prints somewhere else (anchoring) to detect that too.
//
// # Patient data
//
// AuditEvents are kept in the tenant's own store, under the same access
// control as the data (auditors read them with their own AuditEvent scope).
// A search's query string goes into entity.query only, base64-encoded as
// BALP requires, so that what was asked (a name, a birth date) can be
// reviewed; Config.RedactQueries keeps only the parameter names instead.
// Nothing of it reaches logs or metrics: those carry tenants, counts and
// error kinds only.
//
// Only the wiring (server/app, server/cmd) constructs an Auditor; the REST,
// GraphQL and ingestion layers receive it (or the small interface they
// declare) and call Record; the stores implement package chain.
package audit
