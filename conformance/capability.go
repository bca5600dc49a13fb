// Package conformance states what a Pulsewire server claims to support: the
// FHIR R4 CapabilityStatement served at [base]/metadata
// (https://hl7.org/fhir/R4/capabilitystatement.html,
// https://hl7.org/fhir/R4/http.html#capabilities).
//
// Subpackages: validate (R4 JSON validation, what the server stores) and
// examples (the official examples corpus, for tests). Imported by the
// server's wiring, which hands server/rest a func producing the statement;
// it imports nothing of ours.
package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"
)

// FHIRVersion is the FHIR version Pulsewire implements.
const FHIRVersion = "4.0.1"

// lastnDefinition is the R4 $lastn operation on Observation
// (https://hl7.org/fhir/R4/observation-operation-lastn.html).
const lastnDefinition = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"

// SearchParam is one search parameter a resource type supports
// (CapabilityStatement.rest.resource.searchParam).
type SearchParam struct {
	Name          string // the code used in the URL, e.g. "subject"
	Type          string // number | date | string | token | reference | composite | quantity | uri | special
	Definition    string // canonical URL of the SearchParameter, may be ""
	Documentation string // may be ""
}

// ResourceSpec is what the server supports for one resource type.
type ResourceSpec struct {
	Type         string
	SearchParams []SearchParam
	// Includes and RevIncludes are the _include and _revinclude values
	// supported, e.g. "Observation:subject", "Provenance:target".
	Includes, RevIncludes []string
}

// Options describe the server the statement is about.
type Options struct {
	BaseURL           string // the FHIR base, e.g. https://host/t/acme/fhir (implementation.url)
	Software, Version string // software.name and software.version; Software "" omits software
	Resources         []ResourceSpec
	Date              time.Time // CapabilityStatement.date: when the statement was published (required)
	// OAuth, when set, says the API is protected by SMART on FHIR and where
	// its OAuth endpoints are (rest.security, with the oauth-uris
	// extension of SMART App Launch: https://hl7.org/fhir/smart-app-launch/conformance.html).
	OAuth *OAuthURIs
}

// OAuthURIs are the absolute URLs of a tenant's authorization server.
type OAuthURIs struct {
	Authorize, Token, Revoke, Introspect string
}

// oauthURIsExtension is SMART's extension of CapabilityStatement.rest.security.
const oauthURIsExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

// searchParamTypes are the R4 search-param-type codes.
var searchParamTypes = map[string]bool{
	"number": true, "date": true, "string": true, "token": true, "reference": true,
	"composite": true, "quantity": true, "uri": true, "special": true,
}

// CapabilityStatement returns the R4 CapabilityStatement (JSON) of a
// Pulsewire server with the given options. Every resource gets the same
// interactions and policies: Pulsewire implements them uniformly in
// server/rest. It returns an error when the options cannot make a valid
// statement (no base URL or date, an unknown search parameter type, a
// duplicate resource type).
func CapabilityStatement(o Options) ([]byte, error) {
	if o.BaseURL == "" {
		return nil, errors.New("conformance: BaseURL is required")
	}
	if u, err := url.Parse(o.BaseURL); err != nil || !u.IsAbs() {
		return nil, errors.New("conformance: BaseURL must be an absolute URL")
	}
	if o.Date.IsZero() {
		return nil, errors.New("conformance: Date is required")
	}

	specs := append([]ResourceSpec(nil), o.Resources...)
	sort.Slice(specs, func(i, j int) bool { return specs[i].Type < specs[j].Type })
	resources := make([]csResource, 0, len(specs))
	for i, s := range specs {
		if s.Type == "" {
			return nil, errors.New("conformance: a ResourceSpec has no Type")
		}
		if i > 0 && specs[i-1].Type == s.Type {
			return nil, fmt.Errorf("conformance: resource type %s listed twice", s.Type)
		}
		r, err := resource(s)
		if err != nil {
			return nil, err
		}
		resources = append(resources, r)
	}

	cs := capabilityStatement{
		ResourceType: "CapabilityStatement",
		Name:         "PulsewireCapabilityStatement",
		Title:        "Pulsewire FHIR R4 server",
		Status:       "active",
		Date:         o.Date.UTC().Format(time.RFC3339),
		Kind:         "instance",
		Implementation: &csImplementation{
			Description: "Pulsewire FHIR R4 server",
			URL:         o.BaseURL,
		},
		FHIRVersion: FHIRVersion,
		Format:      []string{"application/fhir+json", "json"},
		Rest: []csRest{{
			Mode:     "server",
			Resource: resources,
			Interaction: []csCode{
				{"transaction"}, {"batch"}, {"history-system"},
			},
		}},
	}
	if o.Software != "" {
		cs.Software = &csSoftware{Name: o.Software, Version: o.Version}
	}
	if o.OAuth != nil {
		sec, err := security(o.OAuth)
		if err != nil {
			return nil, err
		}
		cs.Rest[0].Security = sec
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return nil, fmt.Errorf("conformance: encoding CapabilityStatement: %w", err)
	}
	return b, nil
}

// security is rest.security for a SMART-protected API: the SMART-on-FHIR
// service code and the oauth-uris extension (authorize and token are
// required by SMART; revoke and introspect are given when set).
func security(o *OAuthURIs) (*csSecurity, error) {
	var ext []csExtension
	for _, e := range []struct{ name, uri string }{
		{"authorize", o.Authorize}, {"token", o.Token}, {"revoke", o.Revoke}, {"introspect", o.Introspect},
	} {
		if e.uri == "" {
			if e.name == "authorize" || e.name == "token" {
				return nil, fmt.Errorf("conformance: the OAuth %s URL is required", e.name)
			}
			continue
		}
		if u, err := url.Parse(e.uri); err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("conformance: the OAuth %s URL must be absolute", e.name)
		}
		ext = append(ext, csExtension{URL: e.name, ValueURI: e.uri})
	}
	return &csSecurity{
		Extension: []csExtension{{URL: oauthURIsExtension, Extension: ext}},
		Service: []csConcept{{Coding: []csCoding{{
			System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR", Display: "SMART-on-FHIR",
		}}}},
		Desc: "SMART App Launch 2.2: OAuth 2.0 access tokens (see .well-known/smart-configuration)",
	}, nil
}

// resourceInteractions are the type- and instance-level interactions every
// resource supports (https://hl7.org/fhir/R4/valueset-type-restful-interaction.html).
var resourceInteractions = []string{
	"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type",
}

func resource(s ResourceSpec) (csResource, error) {
	r := csResource{
		Type:              s.Type,
		Versioning:        "versioned-update",
		ReadHistory:       true,
		UpdateCreate:      true,
		ConditionalCreate: true,
		ConditionalUpdate: true,
		ConditionalDelete: "not-supported",
		ReferencePolicy:   []string{"literal", "local"},
		SearchInclude:     s.Includes,
		SearchRevInclude:  s.RevIncludes,
	}
	for _, code := range resourceInteractions {
		r.Interaction = append(r.Interaction, csCode{code})
	}
	for _, p := range s.SearchParams {
		if p.Name == "" {
			return csResource{}, fmt.Errorf("conformance: a search parameter of %s has no name", s.Type)
		}
		if !searchParamTypes[p.Type] {
			return csResource{}, fmt.Errorf("conformance: search parameter %s.%s has unknown type %q", s.Type, p.Name, p.Type)
		}
		r.SearchParam = append(r.SearchParam, csSearchParam{
			Name: p.Name, Definition: p.Definition, Type: p.Type, Documentation: p.Documentation,
		})
	}
	if s.Type == "Observation" {
		r.Operation = []csOperation{{Name: "lastn", Definition: lastnDefinition}}
	}
	return r, nil
}

// The JSON shape of the parts of CapabilityStatement we write, in the
// element order of the R4 definition.
type (
	capabilityStatement struct {
		ResourceType   string            `json:"resourceType"`
		Name           string            `json:"name"`
		Title          string            `json:"title"`
		Status         string            `json:"status"`
		Date           string            `json:"date"`
		Kind           string            `json:"kind"`
		Software       *csSoftware       `json:"software,omitempty"`
		Implementation *csImplementation `json:"implementation"`
		FHIRVersion    string            `json:"fhirVersion"`
		Format         []string          `json:"format"`
		Rest           []csRest          `json:"rest"`
	}
	csSoftware struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	csImplementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	}
	csRest struct {
		Mode        string       `json:"mode"`
		Security    *csSecurity  `json:"security,omitempty"`
		Resource    []csResource `json:"resource,omitempty"`
		Interaction []csCode     `json:"interaction"`
	}
	csSecurity struct {
		Extension []csExtension `json:"extension"`
		Service   []csConcept   `json:"service"`
		Desc      string        `json:"description,omitempty"`
	}
	csExtension struct {
		URL       string        `json:"url"`
		ValueURI  string        `json:"valueUri,omitempty"`
		Extension []csExtension `json:"extension,omitempty"`
	}
	csConcept struct {
		Coding []csCoding `json:"coding"`
		Text   string     `json:"text,omitempty"`
	}
	csCoding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	csResource struct {
		Type              string          `json:"type"`
		Interaction       []csCode        `json:"interaction"`
		Versioning        string          `json:"versioning"`
		ReadHistory       bool            `json:"readHistory"`
		UpdateCreate      bool            `json:"updateCreate"`
		ConditionalCreate bool            `json:"conditionalCreate"`
		ConditionalUpdate bool            `json:"conditionalUpdate"`
		ConditionalDelete string          `json:"conditionalDelete"`
		ReferencePolicy   []string        `json:"referencePolicy"`
		SearchInclude     []string        `json:"searchInclude,omitempty"`
		SearchRevInclude  []string        `json:"searchRevInclude,omitempty"`
		SearchParam       []csSearchParam `json:"searchParam,omitempty"`
		Operation         []csOperation   `json:"operation,omitempty"`
	}
	csCode struct {
		Code string `json:"code"`
	}
	csSearchParam struct {
		Name          string `json:"name"`
		Definition    string `json:"definition,omitempty"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	csOperation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
)
