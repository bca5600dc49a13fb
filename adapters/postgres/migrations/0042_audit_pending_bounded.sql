-- 0042_audit_pending_bounded: the seal reads only its own transaction's
-- part of the audit_pending queue.
--
-- 0041 read the queue through (tenant, ord) from the tenant's first entry,
-- on the belief that dead entries, once marked, cost nothing. They cost a
-- page read each group of a few hundred: without a vacuum every event ever
-- queued leaves a dead entry to the left of the live ones, and on a server
-- with 700,000 writes behind it each of the seal's three scans read ~3,000
-- index pages (5-40 ms of database CPU per audited transaction, growing
-- with every write).
--
-- The queue's ord is an identity: a transaction's rows get increasing ords,
-- and its deferred seal trigger fires first for the row it inserted first,
-- whose ord is therefore the smallest of the transaction's live rows. Every
-- read of the seal now starts there, on the primary key: it passes only the
-- rows of transactions that began queueing since (a handful, bounded by
-- concurrency), whatever the history. The (tenant, ord) index is then
-- unused, and dropped: one index entry less per event.

CREATE FUNCTION pulsewire_audit_chain_from(p_tenant TEXT, p_from BIGINT) RETURNS VOID LANGUAGE plpgsql
    SET enable_bitmapscan = off SET enable_seqscan = off AS $$
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
    FOR r IN SELECT id, lu, prefix, suffix FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant ORDER BY ord LOOP
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
    DELETE FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
END $$;

-- The first firing (its row still queued) chains every waiting event of
-- the transaction, tenant by tenant in name order (two group commits
-- holding the same tenants lock their heads in the same order); the other
-- firings find their row gone.
CREATE OR REPLACE FUNCTION pulsewire_audit_seal() RETURNS trigger LANGUAGE plpgsql
    SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
    caller TEXT := current_setting('pulsewire.tenant', true);
    t      TEXT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_pending WHERE ord = NEW.ord) THEN
        RETURN NULL;
    END IF;
    FOR t IN SELECT DISTINCT p.tenant FROM audit_pending p WHERE p.ord >= NEW.ord ORDER BY p.tenant LOOP
        PERFORM set_config('pulsewire.tenant', t, true);
        PERFORM pulsewire_audit_chain_from(t, NEW.ord);
    END LOOP;
    PERFORM set_config('pulsewire.tenant', coalesce(caller, ''), true);
    RETURN NULL;
END $$;

DROP FUNCTION pulsewire_audit_chain(TEXT);
DROP INDEX audit_pending_tenant;
