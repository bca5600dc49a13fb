// Package delivery is Pulsewire's guaranteed delivery of outbound HL7 v2
// results (issue 4, point 4): a write hook that enqueues, in the database
// transaction that stores an Observation, one outbox entry per destination
// of its tenant (the transactional outbox of server/delivery/outbox), and a
// worker that delivers the entries as ORU^R01 messages (IHE PCD-01, built
// by mappings/oru with each destination's profile) over MLLP or HTTPS and
// reads the HL7 acknowledgment (HL7 v2.6 chapter 2, 2.9 "Message
// processing rules": original mode AA/AE/AR, enhanced mode CA/CE/CR).
//
// It imports the core (server/fhir, server/delivery/outbox) and mappings;
// never an adapter: transports reach it as a Sender, which server/app builds
// from adapters/mllp or adapters/hl7http. Only server/app, server/cmd and
// tests import it.
//
// # What is enqueued
//
// An Observation version is sent when its subject is a Patient (PCD-01
// needs a PID) and:
//   - it is new (no live version before) with status preliminary, final,
//     amended or corrected (event "new");
//   - it is a later version with status amended, corrected (OBX-11 C) or
//     entered-in-error (W) (event "correction");
//   - it is a later version whose status changed to preliminary or final
//     (preliminary -> final) (event "correction").
//
// A later version that stays final is not sent: FHIR requires amended or
// corrected for a changed final result (R4 Observation.status), and
// resending F would file a duplicate result in the EHR. Deletes send
// nothing (entered-in-error is how a result is withdrawn). The message is
// built when it is sent, from the enqueued Observation version and the
// then current Patient, Device, Encounter and the Encounter's first
// Location.
//
// # Delivery
//
// Each destination has Lanes loops, each with one connection, that claim
// due entries (outbox.Store.Claim hands out each patient's pending entries
// as an ordered prefix, to one claimer at a time), load what their
// messages need in a few round trips (outbox.Store.Load), send each
// patient's entries in order, and settle the results in one transaction.
// Different patients go in parallel on different lanes. The ACK decides:
//   - AA, CA: done.
//   - AE, CE, no ACK in time, a transport error, an ACK that is unreadable
//     or acknowledges another message: retried after an exponential backoff
//     with full jitter, capped (RetryPolicy); the patient's later entries
//     wait. With MaxAttempts set, given up on (dead letter) after that many.
//   - AR, CR: dead letter, or retried when RetryOnReject is set.
//   - a message that cannot be built (the Observation or its Patient is
//     gone, the profile cannot code it): dead letter at once.
//
// AE, timeouts and transport errors count towards the destination's
// circuit breaker (BreakerPolicy): after Failures in a row it opens,
// nothing is sent for CoolDown, then one entry goes as a probe. AA and AR
// close it (the engine answered). An operator pauses and resumes a
// destination (persisted, honoured by every replica's claims) and lists,
// inspects and replays dead letters (pulsewire outbox ...).
//
// # Exactly once, in effect
//
// Delivery is at least once: an entry is marked done only after its AA was
// read, so the window between reading the AA and recording it (a crash,
// the store unreachable, the lease ending) can send a message twice. A lane
// records a claim's results together (one transaction per claim, not per
// message: that is what makes thousands of messages a second possible), so
// a crash re-sends at most each lane's current claim (Batch entries). A
// retry carries the same MSH-10 (derived from the entry id), so a receiver
// that discards duplicate control ids — as HL7 receivers do — files it
// once. An entry recorded done is never sent again. A stopping worker lets
// its messages in flight finish and records them; entries claimed but not
// sent are released. Claimed entries are leased (DestinationConfig.Lease):
// a replica that died holding them gives them back when the lease ends,
// and a lane never starts a send that could outlast its lease.
package delivery
