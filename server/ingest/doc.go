// Package ingest is Pulsewire's device ingestion pipeline (issue 3, points
// 1, 4, 5 and 6): it maps device payloads with the device mapping templates
// (mappings/device) into FHIR R4 vital-signs Observations
// (https://hl7.org/fhir/R4/observation-vitalsigns.html), finds or creates the
// sending Device (https://hl7.org/fhir/R4/device.html), attributes each
// reading to a patient through DeviceUseStatement
// (https://hl7.org/fhir/R4/deviceusestatement.html) by the reading's own
// time, and stores it idempotently. It serves the HTTP ingest endpoint and
// the operator API for associations and dead letters; the MQTT and NATS
// transports call Ingest too.
//
// Nothing accepted is lost: every payload ends, in one database transaction,
// as an Observation (stored or duplicate), a held reading (its device had no
// patient at its time; released when an association arrives) or a dead
// letter (it could not be mapped, with the reason). The transaction is the
// store's IngestTx (server/ingest/tables): the resource writes and the
// held-reading and dead-letter rows commit together, and callers acknowledge
// (HTTP 200, MQTT PUBACK, JetStream ack) only after Ingest returned without
// error, i.e. after the commit.
//
// Idempotency: an Observation's id is derived from tenant, device
// identifier, reading type and effective time (ObservationID: the time in
// milliseconds, then a hash of all four, so live readings' ids increase
// and land at the right edge of the indexes keyed by id; readings older
// than the store's LegacyIDsBefore keep the hash-only ids of the first
// releases), so two copies of a reading are readings of one device. Within the transaction
// the pipeline locks "ingest:Device/<id>" for every device of the batch
// (all keys in sorted order, so batches cannot deadlock), reads, and writes
// only when the Observation does not exist; a racing copy on another
// connection waits on its device's lock and then finds it ("duplicate").
// One lock per device, not per reading: PostgreSQL keeps advisory locks in
// a shared table of max_locks_per_transaction x max_connections entries
// (6,400 by default), which concurrent batches of 200 readings with two
// locks each exhausted ("out of shared memory").
// Association writes through this package take the same device lock, so a
// reading is never held after the release that should have taken it.
// DeviceUseStatements written through the plain FHIR REST API take no such
// lock: their held readings are released by Sweep (run periodically by the
// server, or `pulsewire ingest release`).
//
// Reasons and errors name templates, expressions, ids and element paths,
// never payload values; payloads are never logged.
//
// Only server/app, server/cmd and tests import it.
package ingest
