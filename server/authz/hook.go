package authz

import (
	"context"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ConsentHook returns the fhir.WriteHook that invalidates the tenant's
// decisions when a Consent is written or deleted. Add it to the store
// (fhir.Hooked) with rd the same store: it reads through rd outside the
// transaction.
//
// Why it does not bump the version stamp in the hook: a hook runs inside
// the transaction, before commit. A replica that reads the bumped stamp
// and then loads the Consents before the commit becomes visible would cache
// the old answer under the new stamp, and nothing would invalidate it
// again. Bumping in the hook buys nothing either way (caches refill from
// the pre-commit data until the commit), so the bump that counts is after
// commit. The store contract has no after-commit callback, so the hook
// starts a watcher that reads the written version back through rd (outside
// the transaction) until it is visible — which is exactly when decisions
// computed from rd can see it — and then calls Invalidate. The watcher
// polls at 5 ms, doubling to 100 ms; it gives up after CommitWait (the
// transaction rolled back; a final Invalidate then is harmless).
// Nothing in the hook blocks or fails the write.
func (a *Authorizer) ConsentHook(rd fhir.Reader) fhir.WriteHook {
	return func(_ context.Context, _ fhir.Tx, c fhir.Change) error {
		if c.Resource == nil || c.Resource.Type != "Consent" {
			return nil
		}
		a.wg.Add(1)
		go a.watchCommit(rd, c.Tenant, c.Resource.ID, c.Resource.VersionID)
		return nil
	}
}

// watchCommit waits until version of Consent/id is visible through rd,
// then invalidates the tenant's decisions.
func (a *Authorizer) watchCommit(rd fhir.Reader, tenant, id string, version int64) {
	defer a.wg.Done()
	deadline := time.Now().Add(a.waitTx)
	wait := 5 * time.Millisecond
	for time.Now().Before(deadline) {
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
		_, err := rd.VRead(a.ctx, tenant, "Consent", id, version)
		if err == nil || fhir.IsKind(err, fhir.KindGone) {
			break
		}
		if !fhir.IsKind(err, fhir.KindNotFound) {
			a.log.Warn("authz: watching a Consent commit", "tenant", tenant, "id", id, "err", err)
		}
	}
	if err := a.Invalidate(a.ctx, tenant); err != nil {
		a.log.Warn("authz: invalidating after a Consent change; retrying in the background", "tenant", tenant, "err", err)
	}
}
