// Package fhir is Pulsewire's core vocabulary: the resource envelope, tenants,
// typed errors that carry a FHIR OperationOutcome issue type, the typed search
// query, the search-index entries extracted at write time, and the Store
// contract that adapters/sqlite and adapters/postgres implement.
//
// It imports only the standard library. Every other package may import it;
// it imports none of ours. See https://hl7.org/fhir/R4/http.html for the REST
// semantics the contract serves.
package fhir
