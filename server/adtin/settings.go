package adtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/pulsewire/pulsewire/mappings/adt"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// settingsJSON is one tenant's entry of a settings file.
type settingsJSON struct {
	Authorities   map[string]string `json:"authorities,omitempty"`
	DefaultSystem string            `json:"defaultSystem,omitempty"`
	TimeZone      string            `json:"timeZone,omitempty"` // IANA name, for times without an offset; default UTC
	FollowBeds    bool              `json:"followBeds,omitempty"`
}

// ParseSettings reads per-tenant settings from JSON, an object keyed by
// tenant:
//
//	{"acme": {"authorities": {"GENHOSP": "urn:oid:1.2.3.4.5"},
//	          "defaultSystem": "urn:oid:1.2.3.4.5", "timeZone": "America/Chicago",
//	          "followBeds": true}}
//
// authorities maps a CX-4 namespace or universal id to an identifier system
// (mappings/adt.Config). Unknown members are errors, so a misspelt
// "followBeds" does not silently leave devices where they are.
func ParseSettings(b []byte) (map[string]Settings, error) {
	var raw map[string]settingsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("reading ADT settings: %w", err)
	}
	tenants := make([]string, 0, len(raw))
	for t := range raw {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	out := make(map[string]Settings, len(raw))
	for _, t := range tenants {
		r := raw[t]
		if !fhir.ValidTenant(t) {
			return nil, fmt.Errorf("reading ADT settings: %q is not a valid tenant name", t)
		}
		s := Settings{ADT: adt.Config{Authorities: r.Authorities, DefaultSystem: r.DefaultSystem}, FollowBeds: r.FollowBeds}
		for k, v := range r.Authorities {
			if k == "" || v == "" {
				return nil, fmt.Errorf("reading ADT settings of %s: an authority needs a name and a system", t)
			}
		}
		if r.TimeZone != "" {
			loc, err := time.LoadLocation(r.TimeZone)
			if err != nil {
				return nil, fmt.Errorf("reading ADT settings of %s: time zone: %w", t, err)
			}
			s.ADT.Location = loc
		}
		out[t] = s
	}
	return out, nil
}
