package search

import "github.com/pulsewire/pulsewire/server/fhir"

// def is one row of the R4 search parameter table below.
type def struct {
	typ, code string
	ptype     fhir.ParamType
	desc      string
	expr      string   // R4 FHIRPath, restricted to typ
	targets   []string // reference targets; nil = any
	shared    string   // id of a multi-resource R4 SearchParameter (clinical-code ...), "" for Type-code
	paths     []string // extraction paths (see pathSyntax)
}

const (
	tok  = fhir.ParamToken
	stg  = fhir.ParamString
	date = fhir.ParamDate
	ref  = fhir.ParamReference
	qty  = fhir.ParamQuantity
)

// r4Params are the supported parameters, transcribed from the R4 (4.0.1)
// search parameter registry. Descriptions and expressions are the R4 ones
// for that resource type. Composite combo-code is indexed as a token.
// Observation value-quantity's SampledData branch is not extracted.
var r4Params = []def{
	// Patient
	{"Patient", "identifier", tok, "A patient identifier", "Patient.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"Patient", "name", stg, "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text", "Patient.name", nil, "",
		[]string{"name:HumanName"}},
	{"Patient", "family", stg, "A portion of the family name of the patient", "Patient.name.family", nil, "individual-family",
		[]string{"name.family:string"}},
	{"Patient", "given", stg, "A portion of the given name of the patient", "Patient.name.given", nil, "individual-given",
		[]string{"name.given:string"}},
	{"Patient", "birthdate", date, "The patient's date of birth", "Patient.birthDate", nil, "individual-birthdate",
		[]string{"birthDate:date"}},
	{"Patient", "gender", tok, "Gender of the patient", "Patient.gender", nil, "individual-gender",
		[]string{"gender:code"}},
	{"Patient", "active", tok, "Whether the patient record is active", "Patient.active", nil, "",
		[]string{"active:boolean"}},
	{"Patient", "telecom", tok, "The value in any kind of telecom details of the patient", "Patient.telecom", nil, "individual-telecom",
		[]string{"telecom:ContactPoint"}},
	{"Patient", "address-postalcode", stg, "A postalCode specified in an address", "Patient.address.postalCode", nil, "individual-address-postalcode",
		[]string{"address.postalCode:string"}},
	{"Patient", "general-practitioner", ref, "Patient's nominated general practitioner, not the organization that manages the record", "Patient.generalPractitioner",
		[]string{"Organization", "Practitioner", "PractitionerRole"}, "",
		[]string{"generalPractitioner:Reference"}},
	{"Patient", "organization", ref, "The organization that is the custodian of the patient record", "Patient.managingOrganization",
		[]string{"Organization"}, "",
		[]string{"managingOrganization:Reference"}},

	// Device
	{"Device", "identifier", tok, "Instance id from manufacturer, owner, and others", "Device.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"Device", "patient", ref, "Patient information, if the resource is affixed to a person", "Device.patient",
		[]string{"Patient"}, "",
		[]string{"patient:Reference"}},
	{"Device", "type", tok, "The type of the device", "Device.type", nil, "",
		[]string{"type:CodeableConcept"}},
	{"Device", "status", tok, "active | inactive | entered-in-error | unknown", "Device.status", nil, "",
		[]string{"status:code"}},
	{"Device", "manufacturer", stg, "The manufacturer of the device", "Device.manufacturer", nil, "",
		[]string{"manufacturer:string"}},
	{"Device", "model", stg, "The model of the device", "Device.modelNumber", nil, "",
		[]string{"modelNumber:string"}},
	{"Device", "location", ref, "A location, where the resource is found", "Device.location",
		[]string{"Location"}, "",
		[]string{"location:Reference"}},
	{"Device", "organization", ref, "The organization responsible for the device", "Device.owner",
		[]string{"Organization"}, "",
		[]string{"owner:Reference"}},

	// DeviceMetric
	{"DeviceMetric", "identifier", tok, "The identifier of the metric", "DeviceMetric.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"DeviceMetric", "source", ref, "The device resource", "DeviceMetric.source",
		[]string{"Device"}, "",
		[]string{"source:Reference"}},
	{"DeviceMetric", "parent", ref, "The parent DeviceMetric resource", "DeviceMetric.parent",
		[]string{"Device"}, "",
		[]string{"parent:Reference"}},
	{"DeviceMetric", "type", tok, "The component type", "DeviceMetric.type", nil, "",
		[]string{"type:CodeableConcept"}},
	{"DeviceMetric", "category", tok, "The category of the metric", "DeviceMetric.category", nil, "",
		[]string{"category:code"}},

	// DeviceUseStatement (device-to-patient association over time, see
	// server/ingest). timing is Pulsewire's own parameter: R4 defines none
	// over DeviceUseStatement.timing[x].
	{"DeviceUseStatement", "device", ref, "Search by Device", "DeviceUseStatement.device",
		[]string{"Device"}, "",
		[]string{"device:Reference"}},
	{"DeviceUseStatement", "identifier", tok, "Search by identifier", "DeviceUseStatement.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"DeviceUseStatement", "patient", ref, "Search by subject - a patient", "DeviceUseStatement.subject",
		[]string{"Patient", "Group"}, "clinical-patient",
		[]string{"subject:Reference(Patient)"}},
	{"DeviceUseStatement", "subject", ref, "Search by subject", "DeviceUseStatement.subject",
		[]string{"Patient", "Group"}, "",
		[]string{"subject:Reference"}},
	{"DeviceUseStatement", "timing", date, "When the device was used (Pulsewire)", "DeviceUseStatement.timing",
		nil, "",
		[]string{"timing[x]:Timing|Period|dateTime"}},

	// Observation
	{"Observation", "subject", ref, "The subject that the observation is about", "Observation.subject",
		[]string{"Group", "Device", "Patient", "Location"}, "",
		[]string{"subject:Reference"}},
	{"Observation", "patient", ref, "The subject that the observation is about (if patient)", "Observation.subject.where(resolve() is Patient)",
		[]string{"Patient"}, "clinical-patient",
		[]string{"subject:Reference(Patient)"}},
	{"Observation", "code", tok, "The code of the observation type", "Observation.code", nil, "clinical-code",
		[]string{"code:CodeableConcept"}},
	{"Observation", "category", tok, "The classification of the type of observation", "Observation.category", nil, "",
		[]string{"category:CodeableConcept"}},
	{"Observation", "date", date, "Obtained date/time. If the obtained element is a period, a date that falls in the period", "Observation.effective", nil, "clinical-date",
		[]string{"effective[x]:dateTime|Period|instant|Timing"}},
	{"Observation", "device", ref, "The Device that generated the observation data.", "Observation.device",
		[]string{"Device", "DeviceMetric"}, "",
		[]string{"device:Reference"}},
	{"Observation", "status", tok, "The status of the observation", "Observation.status", nil, "",
		[]string{"status:code"}},
	{"Observation", "value-quantity", qty, "The value of the observation, if the value is a Quantity, or a SampledData (just search on the bounds of the values in sampled data)", "(Observation.value as Quantity) | (Observation.value as SampledData)", nil, "",
		[]string{"value[x]:Quantity"}},
	{"Observation", "combo-code", tok, "The code of the observation type or component type", "Observation.code | Observation.component.code", nil, "",
		[]string{"code:CodeableConcept", "component.code:CodeableConcept"}},
	{"Observation", "component-code", tok, "The component code of the observation type", "Observation.component.code", nil, "",
		[]string{"component.code:CodeableConcept"}},
	{"Observation", "encounter", ref, "Encounter related to the observation", "Observation.encounter",
		[]string{"Encounter"}, "clinical-encounter",
		[]string{"encounter:Reference"}},
	{"Observation", "identifier", tok, "The unique id for a particular observation", "Observation.identifier", nil, "clinical-identifier",
		[]string{"identifier:Identifier"}},
	{"Observation", "performer", ref, "Who performed the observation", "Observation.performer",
		[]string{"Practitioner", "Organization", "CareTeam", "Patient", "PractitionerRole", "RelatedPerson"}, "",
		[]string{"performer:Reference"}},
	{"Observation", "based-on", ref, "Reference to the service request.", "Observation.basedOn",
		[]string{"CarePlan", "DeviceRequest", "ImmunizationRecommendation", "MedicationRequest", "NutritionOrder", "ServiceRequest"}, "",
		[]string{"basedOn:Reference"}},
	{"Observation", "value-concept", tok, "The value of the observation, if the value is a CodeableConcept", "(Observation.value as CodeableConcept)", nil, "",
		[]string{"value[x]:CodeableConcept"}},

	// Encounter
	{"Encounter", "patient", ref, "The patient or group present at the encounter", "Encounter.subject.where(resolve() is Patient)",
		[]string{"Patient"}, "clinical-patient",
		[]string{"subject:Reference(Patient)"}},
	{"Encounter", "subject", ref, "The patient or group present at the encounter", "Encounter.subject",
		[]string{"Group", "Patient"}, "",
		[]string{"subject:Reference"}},
	{"Encounter", "date", date, "A date within the period the Encounter lasted", "Encounter.period", nil, "clinical-date",
		[]string{"period:Period"}},
	{"Encounter", "status", tok, "planned | arrived | triaged | in-progress | onleave | finished | cancelled +", "Encounter.status", nil, "",
		[]string{"status:code"}},
	{"Encounter", "identifier", tok, "Identifier(s) by which this encounter is known", "Encounter.identifier", nil, "clinical-identifier",
		[]string{"identifier:Identifier"}},
	{"Encounter", "class", tok, "Classification of patient encounter", "Encounter.class", nil, "",
		[]string{"class:Coding"}},
	{"Encounter", "location", ref, "Location the encounter takes place", "Encounter.location.location",
		[]string{"Location"}, "",
		[]string{"location.location:Reference"}},
	{"Encounter", "type", tok, "Specific type of encounter", "Encounter.type", nil, "clinical-type",
		[]string{"type:CodeableConcept"}},
	{"Encounter", "service-provider", ref, "The organization (facility) responsible for this encounter", "Encounter.serviceProvider",
		[]string{"Organization"}, "",
		[]string{"serviceProvider:Reference"}},

	// Location
	{"Location", "identifier", tok, "An identifier for the location", "Location.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"Location", "name", stg, "A portion of the location's name or alias", "Location.name | Location.alias", nil, "",
		[]string{"name:string", "alias:string"}},
	{"Location", "status", tok, "Searches for locations with a specific kind of status", "Location.status", nil, "",
		[]string{"status:code"}},
	{"Location", "organization", ref, "Searches for locations that are managed by the provided organization", "Location.managingOrganization",
		[]string{"Organization"}, "",
		[]string{"managingOrganization:Reference"}},
	{"Location", "partof", ref, "A location of which this location is a part", "Location.partOf",
		[]string{"Location"}, "",
		[]string{"partOf:Reference"}},
	{"Location", "address", stg, "A (part of the) address of the location", "Location.address", nil, "",
		[]string{"address:Address"}},

	// Organization
	{"Organization", "identifier", tok, "Any identifier for the organization (not the accreditation issuer's identifier)", "Organization.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"Organization", "name", stg, "A portion of the organization's name or alias", "Organization.name | Organization.alias", nil, "",
		[]string{"name:string", "alias:string"}},
	{"Organization", "active", tok, "Is the Organization record active", "Organization.active", nil, "",
		[]string{"active:boolean"}},
	{"Organization", "partof", ref, "An organization of which this organization forms a part", "Organization.partOf",
		[]string{"Organization"}, "",
		[]string{"partOf:Reference"}},

	// Practitioner
	{"Practitioner", "identifier", tok, "A practitioner's Identifier", "Practitioner.identifier", nil, "",
		[]string{"identifier:Identifier"}},
	{"Practitioner", "name", stg, "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text", "Practitioner.name", nil, "",
		[]string{"name:HumanName"}},
	{"Practitioner", "family", stg, "A portion of the family name", "Practitioner.name.family", nil, "individual-family",
		[]string{"name.family:string"}},
	{"Practitioner", "given", stg, "A portion of the given name", "Practitioner.name.given", nil, "individual-given",
		[]string{"name.given:string"}},
	{"Practitioner", "active", tok, "Whether the practitioner record is active", "Practitioner.active", nil, "",
		[]string{"active:boolean"}},

	// Consent
	{"Consent", "patient", ref, "Who the consent applies to", "Consent.patient",
		[]string{"Patient"}, "clinical-patient",
		[]string{"patient:Reference"}},
	{"Consent", "status", tok, "draft | proposed | active | rejected | inactive | entered-in-error", "Consent.status", nil, "",
		[]string{"status:code"}},
	{"Consent", "category", tok, "Classification of the consent statement - for indexing/retrieval", "Consent.category", nil, "",
		[]string{"category:CodeableConcept"}},
	{"Consent", "date", date, "When this Consent was created or indexed", "Consent.dateTime", nil, "clinical-date",
		[]string{"dateTime:dateTime"}},
	{"Consent", "identifier", tok, "Identifier for this record (external references)", "Consent.identifier", nil, "clinical-identifier",
		[]string{"identifier:Identifier"}},
	{"Consent", "scope", tok, "Which of the four areas this resource covers (extensible)", "Consent.scope", nil, "",
		[]string{"scope:CodeableConcept"}},
	{"Consent", "action", tok, "Actions controlled by this rule", "Consent.provision.action", nil, "",
		[]string{"provision.action:CodeableConcept"}},
	{"Consent", "actor", ref, "Resource for the actor (or group, by role)", "Consent.provision.actor.reference",
		[]string{"Practitioner", "Group", "Organization", "CareTeam", "Device", "Patient", "PractitionerRole", "RelatedPerson"}, "",
		[]string{"provision.actor.reference:Reference"}},
	{"Consent", "purpose", tok, "Context of activities covered by this rule", "Consent.provision.purpose", nil, "",
		[]string{"provision.purpose:Coding"}},

	// AuditEvent
	{"AuditEvent", "date", date, "Time when the event was recorded", "AuditEvent.recorded", nil, "",
		[]string{"recorded:instant"}},
	{"AuditEvent", "type", tok, "Type/identifier of event", "AuditEvent.type", nil, "",
		[]string{"type:Coding"}},
	{"AuditEvent", "subtype", tok, "More specific type/id for the event", "AuditEvent.subtype", nil, "",
		[]string{"subtype:Coding"}},
	{"AuditEvent", "action", tok, "Type of action performed during the event", "AuditEvent.action", nil, "",
		[]string{"action:code"}},
	{"AuditEvent", "outcome", tok, "Whether the event succeeded or failed", "AuditEvent.outcome", nil, "",
		[]string{"outcome:code"}},
	{"AuditEvent", "agent", ref, "Identifier of who", "AuditEvent.agent.who",
		[]string{"Practitioner", "Organization", "Device", "Patient", "PractitionerRole", "RelatedPerson"}, "",
		[]string{"agent.who:Reference"}},
	{"AuditEvent", "entity", ref, "Specific instance of resource", "AuditEvent.entity.what", nil, "",
		[]string{"entity.what:Reference"}},
	{"AuditEvent", "patient", ref, "Identifier of who", "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)",
		[]string{"Patient"}, "",
		[]string{"agent.who:Reference(Patient)", "entity.what:Reference(Patient)"}},
	{"AuditEvent", "source", ref, "The identity of source detecting the event", "AuditEvent.source.observer",
		[]string{"Practitioner", "Organization", "Device", "Patient", "PractitionerRole", "RelatedPerson"}, "",
		[]string{"source.observer:Reference"}},
}
