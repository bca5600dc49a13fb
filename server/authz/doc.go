// Package authz is Pulsewire's policy decision: SMART App Launch 2.2 scopes
// (v1 and v2, with granular ?category=… restrictions;
// https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html)
// × the tenant's policy × the patient's FHIR R4 Consents
// (https://hl7.org/fhir/R4/consent.html) → permit, deny with a reason, or
// permit with narrowing.
//
// Authorizer.Decide is the one decision function. No handler decides on
// its own: REST, GraphQL, export and every later path that returns or
// writes data ask Decide (or Check and Filter, which call it) and apply
// what it says. A narrowed permit is applied twice: Decision.Narrow ANDs
// search parameters into the query (the patient compartment of patient/
// scopes, the granular restriction, the Consent exclusions it can express),
// and Check/Filter test every resource that leaves the server against the
// same rules, so the query is a fast path and never the only guard.
//
// Consents: only active Consents with scope patient-privacy count. The
// base provision's type (or policyRule OPTIN/OPTOUT when it has none) is
// the Consent's rule; nested provisions are exceptions, deeper ones
// overriding their parent, deny overriding permit among siblings; across
// Consents any deny wins, then any permit, then the tenant's consent model
// (opt-out permits, opt-in denies). A provision applies by period (now),
// actor (a reference equal to the fhirUser or one of the client's actors;
// roles are not read), action (access or use), purpose (the request's
// purpose of use, else the tenant default), and by data: class (resource
// type), code, dataPeriod (the resource's clinical time, its "date" search
// parameter), data (the instance; every meaning is read as instance) and
// securityLabel (meta.security). A criterion that cannot be evaluated (an
// unknown code system, a request without a purpose, data without a date)
// makes a deny provision apply and a permit provision not apply. Consent
// controls disclosure: it applies to read, search, history and operations,
// not to writes, and system/ scopes bypass it when the tenant policy says
// so.
//
// Decisions are cached: see Authorizer. The L2 store is any kv.Store
// (server/kv): adapters/redis across replicas, memkv in one process.
//
// authz imports server/fhir, server/search and server/kv; server/rest,
// server/graph, server/smart (for its own introspection of scopes) and
// server/app may import it. It never imports adapters/.
package authz
