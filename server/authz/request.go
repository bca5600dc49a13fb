package authz

import (
	"fmt"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Action is what a request does, as the permission it needs.
type Action uint8

// Actions. The comment names the SMART v2 permission each needs.
const (
	ActionRead            Action = iota + 1 // r: read, vread
	ActionHistoryInstance                   // r: _history of one resource
	ActionSearch                            // s: search (type or system level)
	ActionHistory                           // s: type or system _history
	ActionOperation                         // s: a read-only operation that searches ($lastn)
	ActionCreate                            // c
	ActionUpdate                            // u
	ActionDelete                            // d
)

var actionNames = map[Action]string{
	ActionRead: "read", ActionHistoryInstance: "history-instance", ActionSearch: "search",
	ActionHistory: "history", ActionOperation: "operation", ActionCreate: "create",
	ActionUpdate: "update", ActionDelete: "delete",
}

func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// perm is the permission the action needs.
func (a Action) perm() Perms {
	switch a {
	case ActionRead, ActionHistoryInstance:
		return PermRead
	case ActionSearch, ActionHistory, ActionOperation:
		return PermSearch
	case ActionCreate:
		return PermCreate
	case ActionUpdate:
		return PermUpdate
	case ActionDelete:
		return PermDelete
	}
	return 0
}

// discloses reports whether the action returns data: FHIR Consent (a
// privacy consent controls disclosure) applies to these only. Writes are
// governed by scopes alone.
func (a Action) discloses() bool {
	switch a {
	case ActionRead, ActionHistoryInstance, ActionSearch, ActionHistory, ActionOperation:
		return true
	}
	return false
}

// Coding is a code in a code system (system may be empty: any system).
type Coding struct {
	System string `json:"s,omitempty"`
	Code   string `json:"c"`
}

// Request is everything a decision depends on. server/smart's token check
// supplies the principal part (client, user, scopes, launch context);
// the handler supplies what is being done. It must not carry patient data
// other than ids.
type Request struct {
	Tenant string

	// ClientID is the OAuth client; FHIRUser the signed-in user as a
	// reference ("Practitioner/123", relative or absolute), empty for a
	// backend service.
	ClientID string
	FHIRUser string
	// Actors are further references that stand for the client when a
	// Consent names actors: its Organization, its Device ("Organization/o1").
	// server/smart's client registry knows them.
	Actors []string
	// Scopes are the granted scope strings, as in the token.
	Scopes []string
	// LaunchPatient is the patient id of the launch context (the "patient"
	// token parameter); LaunchEncounter the encounter id. SMART defines no
	// encounter-level permissions, so LaunchEncounter does not change a
	// decision (it is there for audit).
	LaunchPatient   string
	LaunchEncounter string
	// Purpose is the purpose of use (v3 PurposeOfUse codes such as TREAT);
	// empty means the tenant policy's DefaultPurpose.
	Purpose []Coding

	Action Action
	// Type is the resource type; "" for system-level search or history.
	Type string
	// TargetPatient is the patient id whose compartment the request is
	// confined to, when it is known before touching data: a search with
	// patient=X (see QueryPatient), or a write of a resource about X.
	// Empty when unknown: the decision then narrows and every resource is
	// checked after reading (Check, Filter).
	TargetPatient string

	// noPatient is set by Check for a resource of a patient-compartment
	// type that names no patient: no patient's consent applies to it and
	// patient-scoped grants do not reach it.
	noPatient bool
}

func (r *Request) validate() error {
	if !fhir.ValidTenant(r.Tenant) {
		return fhir.Errorf(fhir.KindInternal, "authorization request without a valid tenant")
	}
	if r.Action.perm() == 0 {
		return fhir.Errorf(fhir.KindInternal, "authorization request with unknown action %d", r.Action)
	}
	if r.Type == "" && r.Action != ActionSearch && r.Action != ActionHistory {
		return fhir.Errorf(fhir.KindInternal, "authorization request for %s without a resource type", r.Action)
	}
	if r.TargetPatient != "" && !fhir.ValidID(r.TargetPatient) {
		return fhir.Errorf(fhir.KindInvalid, "target patient is not a valid id")
	}
	return nil
}

// Reason is a stable, PHI-free code saying why a decision came out as it
// did. It is safe to show to the client, log, count in metrics and write
// into an AuditEvent.
type Reason string

// Reasons.
const (
	ReasonPermit             Reason = "permit"
	ReasonNoScope            Reason = "scope-missing"          // no granted scope covers the action on the type
	ReasonNoLaunchPatient    Reason = "no-launch-patient"      // only patient/ scopes, but no patient in context
	ReasonNoUser             Reason = "no-fhir-user"           // only user/ scopes, but no signed-in user
	ReasonPatientOutOfScope  Reason = "patient-not-in-context" // the target patient is not the launch patient
	ReasonScopeRestriction   Reason = "scope-restriction"      // the resource is outside what the scopes grant (granular query, patient compartment)
	ReasonConsentDeny        Reason = "consent-deny"           // a patient's Consent denies it
	ReasonConsentRequired    Reason = "consent-required"       // opt-in tenant, and no Consent permits it
	ReasonUnreadableResource Reason = "resource-unreadable"    // a deleted version or a body that cannot be checked
)

// Effect is the outcome of a decision.
type Effect uint8

// Effects.
const (
	Deny Effect = iota
	// Permit: everything the request asks for, no narrowing.
	Permit
	// PermitNarrowed: only some data; see Decision.Narrow and Check.
	PermitNarrowed
)

func (e Effect) String() string {
	switch e {
	case Permit:
		return "permit"
	case PermitNarrowed:
		return "permit-narrowed"
	}
	return "deny"
}
