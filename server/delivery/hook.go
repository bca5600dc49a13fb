package delivery

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/pulsewire/pulsewire/server/delivery/outbox"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// HookConfig configures Hook.
type HookConfig struct {
	// Destinations are every tenant's destinations; an Observation of a
	// tenant without any is not enqueued.
	Destinations []*Destination
}

// Hook returns the write hook that enqueues, in the transaction that writes
// an Observation version, one outbox entry per destination of its tenant
// when that version is a result to send (see the package comment for which
// versions are). The store's transaction must implement outbox.Enqueuer;
// when it does not, the write fails (KindInternal): a store without an
// outbox cannot promise delivery.
func Hook(cfg HookConfig) fhir.WriteHook {
	byTenant := map[string][]string{}
	for _, d := range cfg.Destinations {
		byTenant[d.Tenant] = append(byTenant[d.Tenant], d.Name)
	}
	return func(ctx context.Context, tx fhir.Tx, c fhir.Change) error {
		r := c.Resource
		if r == nil || r.Type != "Observation" || r.Deleted {
			return nil
		}
		names := byTenant[c.Tenant]
		if len(names) == 0 {
			return nil
		}
		var o hookObservation
		if err := json.Unmarshal(r.Body, &o); err != nil {
			return nil // stored bodies are validated JSON; nothing to build from otherwise
		}
		patient, ok := patientKey(o.Subject.Reference)
		if !ok {
			return nil // PCD-01 needs a Patient (PID): no ORU for other subjects
		}
		event, ok, err := eventOf(ctx, tx, c, o.Status)
		if err != nil || !ok {
			return err
		}
		enq, ok := tx.(outbox.Enqueuer)
		if !ok {
			return fhir.Errorf(fhir.KindInternal, "the store keeps no outbox; results cannot be delivered")
		}
		items := make([]outbox.Item, len(names))
		for i, n := range names {
			items[i] = outbox.Item{Destination: n, Patient: patient, Type: r.Type, ResourceID: r.ID, Version: r.VersionID, Event: event}
		}
		return enq.Enqueue(ctx, r.LastUpdated, items...)
	}
}

// hookObservation is what the hook reads of an Observation.
type hookObservation struct {
	Status  string `json:"status"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
}

// patientKey returns the ordering key of a relative Patient reference,
// "Patient/<id>".
func patientKey(ref string) (string, bool) {
	id, ok := strings.CutPrefix(ref, "Patient/")
	if !ok || !fhir.ValidID(id) {
		return "", false
	}
	return ref, true
}

// eventOf decides whether the version c wrote is sent, and as what.
func eventOf(ctx context.Context, tx fhir.Tx, c fhir.Change, status string) (outbox.Event, bool, error) {
	if c.Created {
		switch status {
		case "preliminary", "final", "amended", "corrected":
			return outbox.EventNew, true, nil
		}
		return "", false, nil
	}
	switch status {
	case "amended", "corrected", "entered-in-error":
		return outbox.EventCorrection, true, nil
	case "preliminary", "final":
		// Sent only when the status changed (preliminary -> final): a
		// final result rewritten without saying amended or corrected would
		// reach the EHR as a second, duplicate final result.
		r := c.Resource
		prev, err := tx.VRead(ctx, c.Tenant, r.Type, r.ID, r.VersionID-1)
		if err != nil {
			if fhir.IsKind(err, fhir.KindNotFound) || fhir.IsKind(err, fhir.KindGone) {
				return outbox.EventNew, true, nil
			}
			return "", false, err
		}
		var p hookObservation
		if json.Unmarshal(prev.Body, &p) == nil && p.Status == status {
			return "", false, nil
		}
		return outbox.EventCorrection, true, nil
	}
	return "", false, nil
}
