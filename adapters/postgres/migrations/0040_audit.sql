-- 0040_audit: the audit chain of server/audit/chain (same layout as
-- adapters/sqlite migration 0040), with the row-level security of 0001.
-- AuditEvents themselves are ordinary rows of resources and
-- resource_versions; these tables order them per tenant.

-- One row per tenant: the last event's sequence number and body hash.
-- Appends lock it (SELECT ... FOR UPDATE), which orders a tenant's
-- appenders one after the other.
CREATE TABLE audit_heads (
    tenant TEXT COLLATE "C" PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   BYTEA NOT NULL
);

-- seq -> AuditEvent id, so that Verify walks a chain in order.
CREATE TABLE audit_chain (
    tenant TEXT COLLATE "C" NOT NULL,
    seq    BIGINT NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, seq)
);

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_heads', 'audit_chain'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

-- Append-only for the application role: the chain is only ever inserted
-- into, the head only moved forward by pulsewire_audit_chain.
GRANT SELECT, INSERT, UPDATE ON audit_heads TO pulsewire_app;
GRANT SELECT, INSERT ON audit_chain TO pulsewire_app;

-- AuditEvent rows are never updated or deleted. server/audit's write hook
-- refuses such writes through the store first; this trigger also stops
-- anything else running as the application role (the owner can disable
-- it, which Verify then catches through the chain).
CREATE FUNCTION pulsewire_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'AuditEvent resources are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_immutable BEFORE UPDATE OR DELETE ON resources
    FOR EACH ROW WHEN (OLD.type = 'AuditEvent') EXECUTE FUNCTION pulsewire_audit_immutable();
CREATE TRIGGER audit_immutable BEFORE UPDATE OR DELETE ON resource_versions
    FOR EACH ROW WHEN (OLD.type = 'AuditEvent') EXECUTE FUNCTION pulsewire_audit_immutable();

-- Appending. A transaction's AuditEvents wait in audit_pending until its
-- COMMIT, where a deferred constraint trigger chains them: so the tenant's
-- chain head, which orders appenders, is the last lock every transaction
-- takes, held only while it commits. (Locked when the event is queued, the
-- head would be held across the transaction's later statements, and two
-- transactions writing overlapping resources in another order could
-- deadlock on it.) UNLOGGED: rows live only inside their transaction,
-- which removes them before it commits, so they need no WAL; a crash only
-- loses uncommitted rows.
CREATE UNLOGGED TABLE audit_pending (
    ord    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    lu     BIGINT NOT NULL,
    prefix BYTEA NOT NULL,
    suffix BYTEA NOT NULL
);
-- Inserts are checked against the transaction's tenant like every table;
-- reads and deletes see all rows, which are only ever the current
-- transaction's own (uncommitted rows of others are invisible, and none is
-- ever committed): the seal below must see every tenant's rows of a group
-- commit, whose transaction carries several tenants.
ALTER TABLE audit_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_insert ON audit_pending FOR INSERT
    WITH CHECK (tenant = current_setting('pulsewire.tenant', true));
CREATE POLICY own_transaction_select ON audit_pending FOR SELECT USING (true);
CREATE POLICY own_transaction_delete ON audit_pending FOR DELETE USING (true);
GRANT SELECT, INSERT, DELETE ON audit_pending TO pulsewire_app;

-- pulsewire_audit_chain appends the waiting events of p_tenant (which must
-- be the current pulsewire.tenant: it runs as the caller, under row-level
-- security), in the order they were queued, to the tenant's chain. Event
-- i's body is prefix || link || suffix, where link is exactly what
-- chain.Link builds in Go for its sequence number and the previous body's
-- SHA-256 (audittest checks that the two agree). Index rows were written
-- when the event was queued.
CREATE FUNCTION pulsewire_audit_chain(p_tenant TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    h_seq  BIGINT;
    h_hash BYTEA;
    body   BYTEA;
    r      RECORD;
    ids    TEXT[] := '{}';
    lus    BIGINT[] := '{}';
    bodies BYTEA[] := '{}';
    seqs   BIGINT[] := '{}';
BEGIN
    INSERT INTO audit_heads (tenant, seq, hash) VALUES (p_tenant, 0, decode(repeat('00', 32), 'hex'))
        ON CONFLICT (tenant) DO NOTHING;
    SELECT seq, hash INTO h_seq, h_hash FROM audit_heads WHERE tenant = p_tenant FOR UPDATE;
    FOR r IN SELECT id, lu, prefix, suffix FROM audit_pending WHERE tenant = p_tenant ORDER BY ord LOOP
        h_seq := h_seq + 1;
        body := r.prefix
            || convert_to(format('[{"url":"sequence","valueDecimal":%s},{"url":"previous","valueBase64Binary":"%s"}]',
                                 h_seq, encode(h_hash, 'base64')), 'UTF8')
            || r.suffix;
        ids := ids || r.id;
        lus := lus || r.lu;
        bodies := bodies || body;
        seqs := seqs || h_seq;
        h_hash := sha256(body);
    END LOOP;
    INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(ids, lus, bodies) AS u(i, l, b);
    INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(ids, lus, bodies) AS u(i, l, b);
    INSERT INTO audit_chain (tenant, seq, id)
        SELECT p_tenant, u.s, u.i FROM unnest(seqs, ids) AS u(s, i);
    UPDATE audit_heads SET seq = h_seq, hash = h_hash WHERE tenant = p_tenant;
    DELETE FROM audit_pending WHERE tenant = p_tenant;
END $$;

-- The seal, at COMMIT: the first firing chains every waiting event of the
-- transaction, tenant by tenant in name order (so that two group commits
-- holding the same tenants lock their heads in the same order), switching
-- pulsewire.tenant to each in turn; the other firings find their row gone.
CREATE FUNCTION pulsewire_audit_seal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    caller TEXT := current_setting('pulsewire.tenant', true);
    t      TEXT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_pending WHERE ord = NEW.ord) THEN
        RETURN NULL;
    END IF;
    FOR t IN SELECT DISTINCT tenant FROM audit_pending ORDER BY tenant LOOP
        PERFORM set_config('pulsewire.tenant', t, true);
        PERFORM pulsewire_audit_chain(t);
    END LOOP;
    PERFORM set_config('pulsewire.tenant', coalesce(caller, ''), true);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER audit_seal AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pulsewire_audit_seal();
