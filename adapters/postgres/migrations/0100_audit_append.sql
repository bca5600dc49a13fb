-- 0100_audit_append: a transaction's audit events go straight to the seal.
--
-- Until now the store inserted its events into audit_pending and a
-- deferred trigger (pulsewire_audit_seal, 0042) read them back at COMMIT,
-- chained them (pulsewire_audit_chain_from) and deleted them. The store now
-- sends the events to pulsewire_audit_append as arrays, as the last
-- statement before its COMMIT (in the same pipelined batch, so the lane
-- head is still the last lock a transaction takes and is held only while
-- it commits). Measured under 32 clients creating Observations, the queue
-- cost more than the chain itself: its insert, the trigger's checks per
-- row, the read back and the delete.
--
-- audit_pending and its trigger stay, for transactions of an earlier
-- release still running during a rolling upgrade: chain_from now hands
-- its queued rows to the same function, so there is one chain builder.

-- pulsewire_audit_append chains events (in array order) into a lane of
-- p_tenant's chain and stores them: each body is its prefix, the link
-- (sequence and previous hash, as 0040 defined it) and its suffix. Which
-- lane: the first one no other transaction holds (SKIP LOCKED, never
-- waited for), so that a quiet tenant keeps using lane 0. When none is
-- free (or the tenant's lanes do not all exist yet) the missing lanes are
-- created and, if still none is free, the transaction waits for one lane,
-- chosen by its backend so that waiters spread over the lanes (0043 says
-- why this cannot deadlock: callers append for their tenants in tenant
-- order, last before COMMIT).
CREATE FUNCTION pulsewire_audit_append(p_tenant TEXT, p_ids TEXT[], p_lus BIGINT[], p_prefixes BYTEA[], p_suffixes BYTEA[])
    RETURNS VOID LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
    lanes  CONSTANT INT := 8;
    n      INT := coalesce(array_length(p_ids, 1), 0);
    h_lane SMALLINT;
    h_seq  BIGINT;
    h_hash BYTEA;
    body   BYTEA;
    bodies BYTEA[] := '{}';
    seqs   BIGINT[] := '{}';
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF coalesce(array_length(p_lus, 1), 0) <> n OR coalesce(array_length(p_prefixes, 1), 0) <> n
       OR coalesce(array_length(p_suffixes, 1), 0) <> n THEN
        RAISE EXCEPTION 'pulsewire_audit_append: arrays of different lengths' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    FOR i IN 1 .. n LOOP
        h_seq := h_seq + 1;
        body := p_prefixes[i]
            || convert_to(format('[{"url":"sequence","valueDecimal":%s},{"url":"previous","valueBase64Binary":"%s"}]',
                                 h_seq, encode(h_hash, 'base64')), 'UTF8')
            || p_suffixes[i];
        bodies[i] := body;
        seqs[i] := h_seq;
        h_hash := sha256(body);
    END LOOP;
    INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body)
        SELECT p_tenant, 'AuditEvent', u.i, 1, u.l, 0, u.b FROM unnest(p_ids, p_lus, bodies) AS u(i, l, b);
    INSERT INTO audit_chain (tenant, lane, seq, id)
        SELECT p_tenant, h_lane, u.s, u.i FROM unnest(seqs, p_ids) AS u(s, i);
    UPDATE audit_heads SET seq = h_seq, hash = h_hash WHERE tenant = p_tenant AND lane = h_lane;
END $$;

-- The trigger's path: the queued rows, in queue order, through the same
-- function.
CREATE OR REPLACE FUNCTION pulsewire_audit_chain_from(p_tenant TEXT, p_from BIGINT) RETURNS VOID LANGUAGE plpgsql
    SET enable_bitmapscan = off SET enable_seqscan = off AS $$
BEGIN
    PERFORM pulsewire_audit_append(p_tenant, array_agg(id ORDER BY ord), array_agg(lu ORDER BY ord),
                                   array_agg(prefix ORDER BY ord), array_agg(suffix ORDER BY ord))
        FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
    DELETE FROM audit_pending WHERE ord >= p_from AND tenant = p_tenant;
END $$;
