// Package rest serves the FHIR R4 RESTful API (https://hl7.org/fhir/R4/http.html)
// over echo v5, one base URL per tenant: /t/{tenant}/fhir.
//
// It implements read, vread, create (with conditional If-None-Exist), update
// (with update-as-create and conditional update), delete, instance, type and
// system history, search (https://hl7.org/fhir/R4/search.html) with paging,
// _include/_revinclude, _summary and _elements, Observation/$lastn
// (https://hl7.org/fhir/R4/observation-operation-lastn.html), and batch and
// transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).
//
// It is the one place where errors become an OperationOutcome and an HTTP
// status: handlers return *fhir.Error values and ErrorHandler translates them
// (and echo's own 404/405, oversized bodies and recovered panics). Internal
// errors reach the client only as "exception" with a correlation id.
//
// Conditional create and conditional update are race-free: inside one store
// transaction the handler takes Tx.Lock on the normalized condition, searches
// and then writes, so two racing requests with the same condition serialize.
//
// Authorization: with Config.Auth and Config.Authorizer set (server/app
// sets them unless authorization is off), every route but /metadata takes
// a SMART access token, and every path that returns or changes data asks
// server/authz's decision and applies it (access.go says how, path by
// path). A denial is 403 forbidden with the reason code in the issue's
// details; a missing or invalid token is 401 with WWW-Authenticate.
//
// Audit: with Config.Auditor set (server/app always sets it), reads,
// searches, history, $lastn, every denial and every 401 are recorded as
// AuditEvents before the response is written, and every request carries
// its principal for the store's audit write hook (audit.go says how).
//
// rest imports server/fhir, server/search, server/authz (the decision's
// request and result types), server/smart (the grant of the token check),
// server/audit (the event and principal types), echo and the standard
// library; it never imports adapters/ (the store,
// validator, token check and decision are injected through Config).
// server/app wires it.
//
// Presentation parameters (applied here, not in the store):
//   - _elements keeps resourceType, id, meta, the listed top-level elements
//     and the mandatory top-level elements of the type, and tags the result
//     SUBSETTED.
//   - _summary=true keeps resourceType, id, meta, implicitRules and the
//     top-level elements the R4 spec marks as summary (isSummary) for
//     Patient and Observation; for the other supported types it keeps
//     identifier and status (see summaryElements). Mandatory elements are
//     always kept.
//   - _summary=text keeps resourceType, id, meta, text and the mandatory
//     elements; _summary=data removes text. _summary=true, text and data
//     add the SUBSETTED tag. _summary=count returns only the total.
//
// Known limits: conditional operations lock their normalized condition, so
// two conditions written differently that match the same resource do not
// serialize; urn:uuid references that name no entry of a transaction are
// left as they are. Conditional delete and PATCH are outside this API's
// scope (the CapabilityStatement does not claim them): they are answered
// 405 with an OperationOutcome (scope_test.go).
package rest
