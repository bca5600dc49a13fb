-- 0040_audit: the audit chain of server/audit/chain (same layout as
-- adapters/postgres migration 0040). AuditEvents themselves are ordinary
-- rows of resources and resource_versions; these tables order them per
-- tenant. The single writer connection makes appends race-free.

-- One row per tenant: the last event's sequence number and body hash.
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   BLOB NOT NULL
);

-- seq -> AuditEvent id, so that Verify walks a chain in order.
CREATE TABLE audit_chain (
    tenant TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);

-- The chain is only ever appended to. (AuditEvent resource rows are
-- guarded by server/audit's write hook, which the store runs after its
-- row writes: a trigger on resources would pre-empt the hook's 405 with
-- an internal error. Verify catches changes made behind the store's back.)
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;
