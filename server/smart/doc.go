// Package smart is Pulsewire's SMART App Launch 2.2 authorization server
// (https://hl7.org/fhir/smart-app-launch/) and the bearer-token check every
// API uses. One authorization server per tenant, under the tenant's FHIR
// base URL [base] = {public URL}/t/{tenant}/fhir:
//
//	GET  [base]/.well-known/smart-configuration   discovery (conformance.html)
//	GET  [base]/.well-known/openid-configuration  OpenID Connect discovery (issuer = [base])
//	GET  /t/{tenant}/auth/jwks                     the tenant's public signing keys
//	GET|POST /t/{tenant}/auth/authorize           authorization endpoint (app-launch.html#obtain-authorization-code)
//	POST /t/{tenant}/auth/login, /approve         the HTML login and approval pages it leads to
//	POST /t/{tenant}/auth/token                    authorization_code, refresh_token, client_credentials
//	POST /t/{tenant}/auth/introspect               RFC 7662 (token-introspection.html)
//	POST /t/{tenant}/auth/revoke                   RFC 7009
//	POST /t/{tenant}/auth/launch                   admin: create an EHR launch context (patient, encounter)
//	     /t/{tenant}/admin/clients[/{id}]          admin: client registry (POST, GET, DELETE)
//	     /t/{tenant}/admin/users[/{username}]      admin: login users (POST, GET, DELETE)
//
// What it implements: PKCE with S256 only (plain and a missing challenge
// are refused); state echoed; aud checked against the tenant's FHIR base;
// EHR launch (the launch parameter resolves a context created through the
// admin API) and standalone launch with a patient picker; public clients,
// confidential clients with client_secret_basic, and confidential clients
// with private_key_jwt (RS384, ES384; JWKS inline or by URL, cached; jti
// replay refused until the assertion expires; aud = token endpoint; exp at
// most five minutes ahead; kid required) — which is also how backend
// services (client_credentials, backend-services.html) authenticate;
// refresh tokens rotated on use, scopes only narrowing, reuse of a rotated
// token revoking its whole family; single-use authorization codes whose
// replay revokes what they issued; access tokens are RS256 JWTs
// (typ at+jwt) signed with the tenant's key and carrying scope, client_id,
// tenant, patient, encounter and fhirUser; id_tokens (RS256) with fhirUser.
// Tokens of an external issuer (an EHR's, an identity provider's) are
// accepted for a tenant configured to trust its JWKS URL.
//
// What it does not do: decide what a scope permits. It issues and verifies
// tokens and hands the granted scope strings and launch context to
// server/authz through Grant; no handler here reads FHIR data except the
// patient picker, through PatientLister.
//
// The OAuth machinery: zitadel/oidc's op.Provider is not used. Its storage
// model assumes one issuer per provider (ours is per tenant, in the path),
// its authorize flow accepts plain PKCE, its token responses cannot carry
// SMART's patient/encounter context, and its private_key_jwt is its own JWT
// profile. So the handlers are ours, built on zitadel/oidc's protocol
// types (discovery, errors, token and introspection responses, id_token
// claims, PKCE verification) and on lestrrat-go/jwx v3 for JWS and JWK.
//
// The bearer check (Authenticate, Middleware) verifies a token once and
// then remembers its grant until it expires (at most five minutes);
// revocation is looked up on every request, in process: each replica holds
// the revoked token ids of the tenants it serves, loaded from the store and
// kept current by Run, which reads the store's change feed of revocations
// (those numbered above the last one seen) every 500 ms. A revocation made
// on one replica is honoured there at once and on every other replica
// within one second — the promise server/authz makes for Consent changes.
// It is never silently stale: a check that finds its set not refreshed for
// three seconds reloads it itself and fails (500) if the store cannot be
// read, rather than letting a revoked token through. A revocation that
// cannot be stored is answered with an error, not 200. Signing keys are
// per tenant (RS256), created on first use or start (EnsureKeys) and
// rotated with `pulsewire keys rotate`; clients and users are managed with
// the admin API or `pulsewire clients|users`.
//
// Durable records (clients, users, signing keys) live behind
// registry.Store; short-lived state (pending authorization requests, codes,
// refresh tokens and their families, used-code and used-refresh markers,
// the jti replay set, launch contexts, revocations) behind registry.State.
// Both are the database (adapters/sqlite, adapters/postgres: migrations
// 0030 and 0031), shared by the replicas of one store, so neither a restart
// nor a Redis outage loses a revocation, a refresh token or a replay marker
// — and Redis is not on this package's path at all (server/authz uses it
// as the decision cache's L2). Run also purges expired state, in small
// batches. Imported by server/app (wiring) and by whatever needs Grant
// (server/rest, server/authz); it never imports adapters/.
package smart
