// Package search is Pulsewire's FHIR R4 search: the registry of the search
// parameters we support (codes, types, FHIRPath expressions and reference
// targets as in the R4 registry,
// https://hl7.org/fhir/R4/searchparameter-registry.html), the parser that
// turns a query string into a typed *fhir.Query
// (https://hl7.org/fhir/R4/search.html), and the extractor that computes a
// resource's index entries at write time.
//
// It is pure: no I/O, no logging, no mutable global state. It imports only
// server/fhir and the standard library (server/deptest enforces this; accent
// folding uses a table checked against golang.org/x/text in tests).
// server/rest, server/ingest, conformance wiring and tests may import it;
// stores must not (they receive fhir.Query and fhir.IndexEntry values).
//
// Extraction does not run FHIRPath: every parameter carries, next to its
// R4 expression (kept for the CapabilityStatement), a small path of its own
// that a walker over the decoded JSON follows (elements, arrays, choice
// types value[x], a reference-type restriction for "where(resolve() is X)").
package search
