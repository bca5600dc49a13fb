-- 0043_audit_lanes: each tenant's audit chain runs in several lanes, so
-- that one tenant's audited commits no longer flush one after the other.
--
-- Until now a tenant had one chain head. The seal (0040-0042) locks it at
-- COMMIT and the lock is held until the commit's WAL flush is done, so a
-- tenant's audited transactions committed strictly one at a time, each
-- waiting for the flush of the one before: POST Observation ran at ~760
-- req/s with its AuditEvent against ~1,900 without. Now a tenant has up to
-- lanes heads; a committing transaction takes a head no other commit
-- holds, so concurrent commits of one tenant flush together.
--
-- Each lane is a hash chain of its own, exactly like the single chain
-- before: sequence numbers run 1, 2, ... per lane, and every event links
-- to the previous event of its lane. Moving an event to another lane
-- breaks a link just as reordering does, so the lane is not written into
-- the AuditEvent (its chain extension keeps the form and length of 0040).
--
-- The existing chain becomes lane 0, unchanged: ADD COLUMN with a constant
-- default rewrites no row; only audit_chain's primary key index is built
-- again, under this migration's lock.

ALTER TABLE audit_heads ADD COLUMN lane SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE audit_heads DROP CONSTRAINT audit_heads_pkey,
    ADD PRIMARY KEY (tenant, lane),
    ALTER COLUMN lane DROP DEFAULT;
ALTER TABLE audit_chain ADD COLUMN lane SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_pkey,
    ADD PRIMARY KEY (tenant, lane, seq),
    ALTER COLUMN lane DROP DEFAULT;

-- Append-only as in 0040, and tighter: the application role moves a head
-- forward (seq, hash) but can no longer relabel its tenant or lane.
REVOKE UPDATE ON audit_heads FROM pulsewire_app;
GRANT UPDATE (seq, hash) ON audit_heads TO pulsewire_app;

-- Which lane a commit takes. The first lane no other transaction holds,
-- lowest number first (FOR UPDATE SKIP LOCKED: a held head is passed over,
-- never waited for), so that a quiet tenant keeps using lane 0. When none
-- is free (or the tenant's lanes do not all exist yet: a new tenant, or
-- one whose chain predates this migration), the missing lanes are created
-- and, if still none is free, the transaction waits for one lane, chosen
-- by its backend so that waiters spread over the lanes.
--
-- No deadlock: a transaction takes at most one lane per tenant, only in
-- its seal (the last thing it does before committing), and the seal visits
-- a group commit's tenants in name order (0042). A transaction waiting for
-- a lane of tenant t therefore holds lanes of tenants before t only, and
-- the holder it waits for only ever waits for tenants after t. Creating
-- the lanes inserts them in lane order, so two transactions creating one
-- tenant's lanes queue on lane 0. The statements run in READ COMMITTED,
-- as every store transaction does: a lane locked after a wait is read as
-- its holder committed it.
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
    INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(ids, lus, bodies) AS u(i, l, b);
    INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(ids, lus, bodies) AS u(i, l, b);
    INSERT INTO audit_chain (tenant, lane, seq, id)
        SELECT p_tenant, h_lane, u.s, u.i FROM unnest(seqs, ids) AS u(s, i);
    UPDATE audit_heads SET seq = h_seq, hash = h_hash WHERE tenant = p_tenant AND lane = h_lane;
    DELETE FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
END $$;
