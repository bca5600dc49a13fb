-- 0020_outbox: the transactional outbox of server/delivery/outbox (same
-- layout as adapters/sqlite migration 0020), with the row-level security of
-- 0001. Times are BIGINT microseconds (UTC); lease_until 0 means "not leased".
--
-- The delivery worker needs no cross-tenant access: destinations are
-- configured per tenant, so the worker already knows every tenant that can
-- have entries, and runs each destination's claims through the ordinary
-- policy with pulsewire.tenant set to that tenant. No SECURITY DEFINER
-- function or BYPASSRLS role is needed (with FORCE ROW LEVEL SECURITY such a
-- function would also have to be owned by a superuser to see anything).

-- id is unique in the database and never reused: MSH-10 is derived from it.
-- seq orders a destination's entries; a replay takes a new one.
CREATE SEQUENCE outbox_id;
CREATE SEQUENCE outbox_seq;

CREATE TABLE outbox (
    tenant       TEXT COLLATE "C" NOT NULL,
    id           BIGINT NOT NULL DEFAULT nextval('outbox_id'),
    seq          BIGINT NOT NULL DEFAULT nextval('outbox_seq'),
    destination  TEXT COLLATE "C" NOT NULL,
    patient      TEXT COLLATE "C" NOT NULL,
    res_type     TEXT COLLATE "C" NOT NULL,
    res_id       TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    event        TEXT COLLATE "C" NOT NULL,
    state        SMALLINT NOT NULL DEFAULT 0, -- 0 pending, 1 done, 2 dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    replays      INTEGER NOT NULL DEFAULT 0,
    created      BIGINT NOT NULL,
    updated      BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE outbox_id OWNED BY outbox.id;
ALTER SEQUENCE outbox_seq OWNED BY outbox.seq;

-- Claim walks a destination's pending entries in seq order and probes each
-- patient's oldest pending entry; partial indexes keep done rows out of both.
CREATE INDEX outbox_queue ON outbox (tenant, destination, seq) WHERE state = 0;
CREATE INDEX outbox_patient ON outbox (tenant, destination, patient, seq) WHERE state = 0;
CREATE INDEX outbox_dead ON outbox (tenant, destination, id) WHERE state = 2;
CREATE INDEX outbox_done ON outbox (tenant, updated) WHERE state = 1;

-- Per-destination settings an operator changes at run time.
CREATE TABLE outbox_destinations (
    tenant      TEXT COLLATE "C" NOT NULL,
    destination TEXT COLLATE "C" NOT NULL,
    paused      SMALLINT NOT NULL DEFAULT 0,
    updated     BIGINT NOT NULL,
    PRIMARY KEY (tenant, destination)
);

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['outbox', 'outbox_destinations'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, outbox_destinations TO pulsewire_app;
GRANT USAGE ON SEQUENCE outbox_id, outbox_seq TO pulsewire_app;
