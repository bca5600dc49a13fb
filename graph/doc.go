// Package graph is Pulsewire's GraphQL API: an Apollo Federation v2 subgraph
// (https://www.apollographql.com/docs/graphos/reference/federation/subgraph-spec)
// over the clinical data — Patient, Observation, Device, DeviceMetric,
// Encounter and Consent, each an entity with @key(fields: "id") that other
// subgraphs may extend — and the federation gateway embedded in the binary,
// which composes that subgraph with remote subgraphs. The gateway runs
// wundergraph graphql-go-tools' execution engine on a supergraph composed
// offline by `make generate` (generate.sh: wgc router compose); the HTTP
// layer around it (authentication, header forwarding, timeouts, limits) is
// ours.
//
// Routes, mounted by Handler.Register:
//
//	POST /t/{tenant}/graphql            the gateway: the endpoint clients use
//	POST /graphql                       the same, the tenant in the X-Pulsewire-Tenant header
//	POST /t/{tenant}/graphql/subgraph   the pulsewire subgraph alone, for outside routers
//
// The gateway executes an operation that only our subgraph can serve — a
// query that validates against the supergraph and selects only fields the
// composed configuration routes to the in-process subgraph, which with the
// embedded supergraph is every query — directly on the subgraph's gqlgen
// executor, with the same limits, errors and response shape as the
// federation engine (fastpath.go). Operations touching a remote subgraph,
// and any the subgraph refuses before running, take the engine.
//
// Every request carries a SMART access token (Authenticator; server/smart)
// for its tenant. From its Grant, an Authorizer makes the request's Policy,
// and every resolver that returns data goes through that one Policy: searches
// are decided and narrowed before they run, every resource is filtered
// before it leaves (AuthzAuthorizer applies server/authz, the decision
// function the REST API uses). What the caller may not see is absent, and an
// error with a stable extensions.code says so (FORBIDDEN, CONSENT_DENIED).
// Search arguments are turned into FHIR search parameters and parsed by
// server/search exactly as the REST API parses them, so a GraphQL list and
// the REST search with the same parameters return the same resources.
//
// graph imports server/fhir, server/search, server/smart (the Grant type)
// and server/authz (for AuthzAuthorizer); never adapters/. Only server/app
// (and tests) import graph.
package graph
