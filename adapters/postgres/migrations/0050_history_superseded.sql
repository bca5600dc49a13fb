-- 0050_history_superseded: each version is stored once. resources holds
-- the current version of every resource, resource_versions only the
-- versions superseded since (an update or delete copies the row it
-- replaces there first); readers of versions read both. Before, every
-- write stored its version in both tables: for creates, which are most
-- writes (device readings, POSTs), twice the heap and WAL bytes and three
-- more index entries than needed.
--
-- Row-level security is suspended for the table owner inside this
-- transaction only (superusers bypass it anyway): the cleanup must see
-- every tenant's rows.
ALTER TABLE resources NO FORCE ROW LEVEL SECURITY;
ALTER TABLE resource_versions NO FORCE ROW LEVEL SECURITY;

-- AuditEvents are version 1 only, so they now live in resources alone. The
-- trigger refusing updates and deletes of their copies in resource_versions
-- would refuse the cleanup; it is replaced below by one refusing any
-- AuditEvent row there at all: an AuditEvent is never superseded.
DROP TRIGGER audit_immutable ON resource_versions;

-- The copies of current versions. One set-based statement: the planner
-- joins the two tables along their primary keys (merge or hash join), so
-- its cost grows with the tables' size, not with its square, whatever their
-- size; a row-by-row loop or NOT IN would not. The freed space is reused by
-- later superseded versions once (auto)vacuum has seen the table.
DELETE FROM resource_versions v
USING resources r
WHERE r.tenant = v.tenant AND r.type = v.type AND r.id = v.id AND r.version = v.version;

CREATE TRIGGER audit_immutable BEFORE INSERT ON resource_versions
    FOR EACH ROW WHEN (NEW.type = 'AuditEvent') EXECUTE FUNCTION pulsewire_audit_immutable();

-- System history walks each table newest first; resource_versions has
-- (tenant, last_updated), resources gets it too: one more index entry per
-- create and update, against the four of the history row no longer written
-- on create.
CREATE INDEX resources_tenant_lu ON resources (tenant, last_updated);

ALTER TABLE resources FORCE ROW LEVEL SECURITY;
ALTER TABLE resource_versions FORCE ROW LEVEL SECURITY;

-- The audit seal (0042) without its copy of each event in resource_versions.
CREATE OR REPLACE FUNCTION pulsewire_audit_chain_from(p_tenant TEXT, p_from BIGINT) RETURNS VOID LANGUAGE plpgsql
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
    INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(ids, lus, bodies) AS u(i, l, b);
    INSERT INTO audit_chain (tenant, seq, id)
        SELECT p_tenant, u.s, u.i FROM unnest(seqs, ids) AS u(s, i);
    UPDATE audit_heads SET seq = h_seq, hash = h_hash WHERE tenant = p_tenant;
    DELETE FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
END $$;
