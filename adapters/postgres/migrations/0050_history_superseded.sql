-- 0050_history_superseded: each version is stored once. resources holds
-- the current version of every resource, resource_versions only the
-- versions superseded since (an update or delete copies the row it
-- replaces there first); readers of versions read both. Before, every
-- write stored its version in both tables: for creates, which are most
-- writes (device readings, POSTs), twice the heap and WAL bytes and three
-- more index entries than needed.
--
-- The copies of current versions go. Most of the table is such copies (a
-- resource never updated has only its copy), so the rows to keep are
-- copied into a new table, which then replaces it, rather than the others
-- deleted: measured on 1.1 million rows of which 1 million were copies
-- (1.4 GB; a shared 2-core machine, so roughly), DELETE took 101 s and
-- left the table at 1.4 GB until a VACUUM FULL; the copy took 19 s (the
-- whole migration 26 s) and leaves 125 MB. Either way the migration holds
-- the table's exclusive lock until it commits.
-- One anti-join along the key (tenant, type, id, version): its cost grows
-- with the tables' size, not its square (no row-by-row loop, no NOT IN).
--
-- Row-level security is suspended for the table owner inside this
-- transaction only (superusers bypass it anyway): the copy must see every
-- tenant's rows.
ALTER TABLE resources NO FORCE ROW LEVEL SECURITY;
ALTER TABLE resource_versions NO FORCE ROW LEVEL SECURITY;

CREATE TABLE resource_versions_superseded (
    tenant       TEXT COLLATE "C" NOT NULL,
    type         TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA
);
INSERT INTO resource_versions_superseded (tenant, type, id, version, last_updated, deleted, body)
SELECT v.tenant, v.type, v.id, v.version, v.last_updated, v.deleted, v.body
FROM resource_versions v
WHERE NOT EXISTS (SELECT 1 FROM resources r
                  WHERE r.tenant = v.tenant AND r.type = v.type AND r.id = v.id AND r.version = v.version);

-- What 0001 and 0040 gave the table, rebuilt on the new one; the indexes
-- are built once, after the copy.
DROP TABLE resource_versions;
ALTER TABLE resource_versions_superseded RENAME TO resource_versions;
ALTER TABLE resource_versions ADD PRIMARY KEY (tenant, type, id, version);
CREATE INDEX resource_versions_tenant_lu ON resource_versions (tenant, last_updated);
CREATE INDEX resource_versions_type_lu ON resource_versions (tenant, type, last_updated);
ALTER TABLE resource_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE resource_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resource_versions
    USING (tenant = current_setting('pulsewire.tenant', true))
    WITH CHECK (tenant = current_setting('pulsewire.tenant', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON resource_versions TO pulsewire_app;
-- AuditEvents are version 1 only, so they live in resources alone (0040's
-- trigger refused updates and deletes of their copies here): an
-- AuditEvent is never superseded, and no row of one belongs here.
CREATE TRIGGER audit_immutable BEFORE INSERT ON resource_versions
    FOR EACH ROW WHEN (NEW.type = 'AuditEvent') EXECUTE FUNCTION pulsewire_audit_immutable();
ANALYZE resource_versions;

-- System history walks each table newest first; resource_versions has
-- (tenant, last_updated), resources gets it too: one more index entry per
-- create and update, against the four of the history row no longer written
-- on create.
CREATE INDEX resources_tenant_lu ON resources (tenant, last_updated);

ALTER TABLE resources FORCE ROW LEVEL SECURITY;

-- The audit seal of 0043 (lanes) without its copy of each event in
-- resource_versions.
CREATE OR REPLACE FUNCTION pulsewire_audit_chain_from(p_tenant TEXT, p_from BIGINT) RETURNS VOID LANGUAGE plpgsql
    SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
    lanes  CONSTANT INT := 8;
    h_lane SMALLINT;
    h_seq  BIGINT;
    h_hash BYTEA;
    body   BYTEA;
    r      RECORD;
    ids    TEXT[] := '{}';
    lus    BIGINT[] := '{}';
    bodies BYTEA[] := '{}';
    seqs   BIGINT[] := '{}';
BEGIN
    SELECT lane, seq, hash INTO h_lane, h_seq, h_hash FROM audit_heads
        WHERE tenant = p_tenant ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        INSERT INTO audit_heads (tenant, lane, seq, hash)
            SELECT p_tenant, l, 0, decode(repeat('00', 32), 'hex') FROM generate_series(0, lanes - 1) AS l
            ON CONFLICT (tenant, lane) DO NOTHING;
        SELECT lane, seq, hash INTO h_lane, h_seq, h_hash FROM audit_heads
            WHERE tenant = p_tenant ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
    IF NOT FOUND THEN
        SELECT lane, seq, hash INTO STRICT h_lane, h_seq, h_hash FROM audit_heads
            WHERE tenant = p_tenant AND lane = pg_backend_pid() % lanes FOR UPDATE;
    END IF;
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
    INSERT INTO audit_chain (tenant, lane, seq, id)
        SELECT p_tenant, h_lane, u.s, u.i FROM unnest(seqs, ids) AS u(s, i);
    UPDATE audit_heads SET seq = h_seq, hash = h_hash WHERE tenant = p_tenant AND lane = h_lane;
    DELETE FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
END $$;
