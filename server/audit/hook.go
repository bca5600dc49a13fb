package audit

import (
	"context"

	"github.com/pulsewire/pulsewire/server/audit/chain"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Hook returns the write hook that appends, inside the transaction of
// every Put and Delete, the AuditEvent of that write (create, update or
// delete; success, since a failed write rolls its record back with it),
// so that a write and its record commit together or not at all. Add it to
// the store (fhir.Hooked) before the store is used.
//
// It refuses every write of an AuditEvent through the ordinary store:
// KindForbidden (403) for a create, KindNotSupported (405) for an update
// or a delete. AuditEvents are appended only by this package (through
// chain.Appender, which runs no hooks), so the chain has no gaps.
//
// A store whose transactions do not implement chain.Appender fails every
// write (KindInternal): a write that cannot be audited is not made.
func (a *Auditor) Hook() fhir.WriteHook {
	return func(ctx context.Context, tx fhir.Tx, c fhir.Change) error {
		r := c.Resource
		if r == nil {
			return nil
		}
		if r.Type == "AuditEvent" {
			a.stats.refused.Add(1)
			if c.Created && !r.Deleted {
				return fhir.Errorf(fhir.KindForbidden, "AuditEvent resources are recorded by the server; clients cannot create them")
			}
			return fhir.Errorf(fhir.KindNotSupported, "AuditEvent resources are append-only: they cannot be updated or deleted")
		}
		app, ok := tx.(chain.Appender)
		if !ok {
			return errNoChain
		}
		ev := Event{Tenant: c.Tenant, Type: r.Type, ID: r.ID, Version: r.VersionID}
		b, batched := ctx.Value(batchKey{}).(*batch)
		switch {
		case r.Deleted:
			ev.Interaction = Delete
		case c.Created:
			ev.Interaction = Create
		default:
			ev.Interaction = Update
		}
		ev.Principal, ok = PrincipalFrom(ctx)
		if !ok || ev.Principal.isZero() {
			ev.Principal = unknown
		}
		body := r.Body
		if r.Deleted && r.VersionID > 1 {
			// The tombstone has no body: the patient is the deleted
			// version's.
			prev, err := tx.VRead(ctx, c.Tenant, r.Type, r.ID, r.VersionID-1)
			if err == nil {
				body = prev.Body
			} else if !fhir.IsKind(err, fhir.KindNotFound) && !fhir.IsKind(err, fhir.KindGone) {
				return err
			}
		}
		ev.Patient = a.patientOf(r.Type, r.ID, body, c.Index) // a delete has none: body is the version before
		if err := ev.check(); err != nil {
			return err
		}
		if batched {
			b.events = append(b.events, ev)
			return nil
		}
		ce, err := a.build(&ev, a.now())
		if err != nil {
			return err
		}
		if err := app.AppendAudit(ctx, []*chain.Event{ce}); err != nil {
			return err
		}
		a.stats.written.Add(1)
		return nil
	}
}

// patientOf returns the id of the patient whose compartment a resource
// version is in: the Patient itself, else the first Patient reference
// under the type's "patient" parameter (or "subject", which some types
// index it as); "" when there is none or the body cannot be read. index,
// when not nil, is the version's index entries as written (extracted from
// body, parameters in code order): they are read instead of body.
func (a *Auditor) patientOf(typ, id string, body []byte, index []fhir.IndexEntry) string {
	if typ == "Patient" {
		return id
	}
	entries := index
	if entries == nil {
		if body == nil {
			return ""
		}
		var err error
		if entries, err = a.reg.ExtractOnly(typ, body, "patient", "subject"); err != nil {
			return ""
		}
	}
	for _, e := range entries {
		if e.Type == fhir.ParamReference && e.RefType == "Patient" && (e.Param == "patient" || e.Param == "subject") && fhir.ValidID(e.RefID) {
			return e.RefID
		}
	}
	return ""
}

type batchKey struct{}

// batch collects the write events of one transaction (see Collect).
type batch struct{ events []Event }

// Collect returns a context under which the hook collects the events of the
// writes made with it instead of appending one AuditEvent per write; the
// caller then appends them, still inside the transaction, with
// (*Auditor).FlushBatch: one AuditEvent per interaction and principal,
// listing every resource version and patient. Device ingestion writes
// hundreds of resources per transaction, and an AuditEvent each would cost
// more than the data. Call it inside the transaction function, so that a
// retried transaction starts with an empty batch.
func Collect(ctx context.Context) context.Context {
	return context.WithValue(ctx, batchKey{}, &batch{})
}

// FlushBatch appends the events collected under ctx (see Collect) in tx, and
// empties the collection. Without a batch in ctx it does nothing.
func (a *Auditor) FlushBatch(ctx context.Context, tx fhir.Tx) error {
	b, ok := ctx.Value(batchKey{}).(*batch)
	if !ok || len(b.events) == 0 {
		return nil
	}
	app, ok := tx.(chain.Appender)
	if !ok {
		return errNoChain
	}
	type groupKey struct {
		interaction Interaction
		principal   Principal
		tenant      string
	}
	var order []groupKey
	groups := map[groupKey]*Event{}
	for _, ev := range b.events {
		k := groupKey{ev.Interaction, ev.Principal, ev.Tenant}
		g := groups[k]
		if g == nil {
			e := ev
			groups[k], order = &e, append(order, k)
			continue
		}
		g.More = append(g.More, Entity{Type: ev.Type, ID: ev.ID, Version: ev.Version, Patient: ev.Patient})
	}
	b.events = b.events[:0]
	now := a.now()
	out := make([]*chain.Event, 0, len(order))
	for _, k := range order {
		ce, err := a.build(groups[k], now)
		if err != nil {
			return err
		}
		out = append(out, ce)
	}
	if err := app.AppendAudit(ctx, out); err != nil {
		return err
	}
	a.stats.written.Add(uint64(len(out)))
	return nil
}
