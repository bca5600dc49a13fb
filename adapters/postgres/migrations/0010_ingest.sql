-- 0010_ingest: the ingestion tables of server/ingest/tables (same layout as
-- adapters/sqlite migration 0010), with the row-level security of 0001.
-- Times are BIGINT microseconds (UTC).

-- Readings whose device had no patient association at their time.
CREATE TABLE held_readings (
    tenant       TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    device       TEXT COLLATE "C" NOT NULL,
    reading_time BIGINT NOT NULL,
    measurement  BYTEA NOT NULL,
    source       TEXT COLLATE "C" NOT NULL,
    received     BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX held_readings_device ON held_readings (tenant, device, reading_time, id);

-- Payloads that could not be mapped.
CREATE TABLE dead_letters (
    tenant      TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    source      TEXT COLLATE "C" NOT NULL,
    reason      TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    received    BIGINT NOT NULL,
    replayed_at BIGINT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX dead_letters_received ON dead_letters (tenant, received, id);

-- Device and gateway credentials: only the SHA-256 of a key is kept.
CREATE TABLE device_keys (
    tenant  TEXT COLLATE "C" NOT NULL,
    id      TEXT COLLATE "C" NOT NULL,
    hash    TEXT COLLATE "C" NOT NULL,
    devices TEXT NOT NULL, -- JSON array of device identifier values, ["*"] for a gateway
    created BIGINT NOT NULL,
    revoked BIGINT,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX device_keys_hash ON device_keys (tenant, hash);

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['held_readings', 'dead_letters', 'device_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON held_readings, dead_letters, device_keys TO pulsewire_app;
