package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pulsewire/pulsewire/mappings/oru"
	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// buildError is why an entry's message could not be built. Permanent ones
// (the Observation version, its Patient or the profile cannot make an ORU)
// dead-letter the entry; others (the store failed) are retried.
type buildError struct {
	permanent bool
	msg       string // ids, types, element paths and codes only
}

func (e *buildError) Error() string { return e.msg }

// controlID is MSH-10 for an entry (see DestinationConfig.ControlIDPrefix).
func controlID(prefix string, e *outbox.Entry) string {
	s := prefix + strings.ToUpper(strconv.FormatInt(e.ID, 36))
	if e.Replays > 0 {
		s += "." + strconv.Itoa(e.Replays)
	}
	return s
}

// observationRefs is what the worker reads of an Observation to find the
// resources its ORU needs.
type observationRefs struct {
	Subject   reference `json:"subject"`
	Device    reference `json:"device"`
	Encounter reference `json:"encounter"`
}

type reference struct {
	Reference string `json:"reference"`
}

// encounterLocation is what the worker reads of an Encounter: its first
// location (PV1-3).
type encounterLocation struct {
	Location []struct {
		Location reference `json:"location"`
	} `json:"location"`
}

// split returns the type and id of a relative reference "Type/id" of the
// given type.
func split(ref, typ string) (string, bool) {
	id, ok := strings.CutPrefix(ref, typ+"/")
	return id, ok && fhir.ValidID(id)
}

// resources are what one lane reads during one wave: the wave's preloaded
// resources (shared, read-only; a nil value means "does not exist"), then
// reads of its own, cached.
type resources struct {
	st     outbox.Store
	tenant string
	shared map[outbox.ResourceKey]*fhir.Resource
	local  map[outbox.ResourceKey]*fhir.Resource
}

// get returns k's resource (k.Version 0: the current one), nil when it does
// not exist or is deleted.
func (r *resources) get(ctx context.Context, k outbox.ResourceKey) (*fhir.Resource, error) {
	if res, ok := r.shared[k]; ok {
		return res, nil
	}
	if res, ok := r.local[k]; ok {
		return res, nil
	}
	var res *fhir.Resource
	var err error
	if k.Version > 0 {
		res, err = r.st.VRead(ctx, r.tenant, k.Type, k.ID, k.Version)
	} else {
		res, err = r.st.Read(ctx, r.tenant, k.Type, k.ID)
	}
	switch {
	case err == nil:
	case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
		res = nil
	default:
		return nil, err
	}
	if r.local == nil {
		r.local = map[outbox.ResourceKey]*fhir.Resource{}
	}
	r.local[k] = res
	return res, nil
}

// preload reads, in at most three Store.Load calls, the Observation
// versions of es, the current resources they reference, and the first
// Location of each Encounter, so that building the wave's messages takes no
// round trip per message. What it could not load is read later, one by one.
func preload(ctx context.Context, st outbox.Store, tenant string, es []*outbox.Entry) (map[outbox.ResourceKey]*fhir.Resource, error) {
	shared := map[outbox.ResourceKey]*fhir.Resource{}
	load := func(keys []outbox.ResourceKey) error {
		if len(keys) == 0 {
			return nil
		}
		got, err := st.Load(ctx, tenant, keys)
		if err != nil {
			return err
		}
		for _, k := range keys {
			shared[k] = got[k] // nil: does not exist
		}
		return nil
	}
	var keys []outbox.ResourceKey
	for _, e := range es {
		keys = append(keys, outbox.ResourceKey{Type: e.Type, ID: e.ResourceID, Version: e.Version})
	}
	if err := load(keys); err != nil {
		return nil, err
	}
	keys = keys[:0]
	want := func(ref, typ string) {
		if id, ok := split(ref, typ); ok {
			k := outbox.ResourceKey{Type: typ, ID: id}
			if _, seen := shared[k]; !seen {
				shared[k] = nil
				keys = append(keys, k)
			}
		}
	}
	for _, e := range es {
		if obs := shared[outbox.ResourceKey{Type: e.Type, ID: e.ResourceID, Version: e.Version}]; obs != nil {
			var refs observationRefs
			if json.Unmarshal(obs.Body, &refs) == nil {
				want(refs.Subject.Reference, "Patient")
				want(refs.Device.Reference, "Device")
				want(refs.Encounter.Reference, "Encounter")
			}
		}
	}
	encounters := append([]outbox.ResourceKey(nil), keys...)
	if err := load(keys); err != nil {
		return nil, err
	}
	keys = keys[:0]
	for _, k := range encounters {
		if k.Type != "Encounter" || shared[k] == nil {
			continue
		}
		var enc encounterLocation
		if json.Unmarshal(shared[k].Body, &enc) == nil && len(enc.Location) > 0 {
			want(enc.Location[0].Location.Reference, "Location")
		}
	}
	if err := load(keys); err != nil {
		return nil, err
	}
	return shared, nil
}

// build reads the entry's Observation version and the current versions of
// the resources it references, and builds the ORU^R01 for the destination.
func build(ctx context.Context, rs *resources, d *Destination, e *outbox.Entry, cid string) ([]byte, error) {
	obs, err := rs.get(ctx, outbox.ResourceKey{Type: e.Type, ID: e.ResourceID, Version: e.Version})
	switch {
	case err != nil:
		return nil, &buildError{msg: "reading " + e.Type + "/" + e.ResourceID + ": " + safeText(err)}
	case obs == nil:
		return nil, &buildError{permanent: true, msg: e.Type + "/" + e.ResourceID + " version " + strconv.FormatInt(e.Version, 10) + " is not available"}
	}
	var refs observationRefs
	if err := json.Unmarshal(obs.Body, &refs); err != nil {
		return nil, &buildError{permanent: true, msg: e.Type + "/" + e.ResourceID + " is not a JSON object"}
	}
	in := oru.Input{Observation: obs.Body}
	optional := func(ref, typ string) (json.RawMessage, error) {
		id, ok := split(ref, typ)
		if !ok {
			return nil, nil
		}
		r, err := rs.get(ctx, outbox.ResourceKey{Type: typ, ID: id})
		if err != nil {
			return nil, &buildError{msg: "reading " + typ + "/" + id + ": " + safeText(err)}
		}
		if r == nil {
			return nil, nil
		}
		return r.Body, nil
	}
	if in.Patient, err = optional(refs.Subject.Reference, "Patient"); err != nil {
		return nil, err
	}
	if in.Patient == nil {
		return nil, &buildError{permanent: true, msg: e.Type + "/" + e.ResourceID + ": its subject Patient is not available (Observation.subject)"}
	}
	if in.Device, err = optional(refs.Device.Reference, "Device"); err != nil {
		return nil, err
	}
	if in.Encounter, err = optional(refs.Encounter.Reference, "Encounter"); err != nil {
		return nil, err
	}
	if in.Encounter != nil {
		var enc encounterLocation
		if json.Unmarshal(in.Encounter, &enc) == nil && len(enc.Location) > 0 {
			if in.Location, err = optional(enc.Location[0].Location.Reference, "Location"); err != nil {
				return nil, err
			}
		}
	}
	msg, err := oru.BuildBytes(d.Profile, &in, oru.Options{ControlID: func() string { return cid }})
	if err != nil {
		return nil, &buildError{permanent: true, msg: "building ORU: " + safeText(err)}
	}
	return msg, nil
}

// safeText describes err for LastError and logs: a *fhir.Error's
// client-safe message and element paths, without its internal cause (a
// decoder's error could quote a value).
func safeText(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		s := fe.Msg
		if len(fe.Expression) > 0 {
			s += " (at " + strings.Join(fe.Expression, ", ") + ")"
		}
		return s
	}
	return errText(err)
}

// Message builds the message the worker would send for e to d now, for an
// operator inspecting an entry (pulsewire outbox show --message). It holds
// patient data.
func Message(ctx context.Context, st outbox.Store, d *Destination, e *outbox.Entry) ([]byte, error) {
	msg, err := build(ctx, &resources{st: st, tenant: e.Tenant}, d, e, controlID(d.ControlIDPrefix, e))
	if err != nil {
		return nil, fmt.Errorf("building the message of outbox entry %d: %w", e.ID, err)
	}
	return msg, nil
}
