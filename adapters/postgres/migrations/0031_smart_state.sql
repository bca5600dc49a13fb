-- 0031_smart_state: the SMART authorization server's short-lived state
-- (server/smart/registry.State), kept here rather than in Redis so that it
-- survives restarts and is shared by every replica of one database: pending
-- authorization requests, codes, refresh tokens and their families,
-- used-code and used-refresh markers, the jti replay set and launch
-- contexts (smart_state), and revoked access token ids with a per-tenant
-- change feed (smart_revocations, numbered by smart_revocation_seq). Same
-- layout as adapters/sqlite migration 0031, with the row-level security of
-- 0001. Times are BIGINT microseconds (UTC).
--
-- Autovacuum may be off on the cluster: expired rows are deleted in small
-- batches found by the (tenant, expires) indexes (PurgeState), and every
-- lookup is by primary key or index.

-- Entries: key is kind:id, never a usable token (tokens are hashed first).
CREATE TABLE smart_state (
    tenant  TEXT COLLATE "C" NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    value   BYTEA NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX smart_state_expires ON smart_state (tenant, expires);

-- Revoked access tokens (id: a hash of issuer and jti) until they expire.
-- seq orders the change feed replicas follow (seq > the last one seen).
CREATE TABLE smart_revocations (
    tenant  TEXT COLLATE "C" NOT NULL,
    id      TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX smart_revocations_seq ON smart_revocations (tenant, seq);
CREATE INDEX smart_revocations_expires ON smart_revocations (tenant, expires);

-- The last revocation number of each tenant. Revoke increments it in the
-- revocation's transaction; its row lock makes numbers commit in order.
CREATE TABLE smart_revocation_seq (
    tenant TEXT COLLATE "C" PRIMARY KEY,
    seq    BIGINT NOT NULL
);

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['smart_state', 'smart_revocations', 'smart_revocation_seq'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON smart_state, smart_revocations, smart_revocation_seq TO pulsewire_app;
