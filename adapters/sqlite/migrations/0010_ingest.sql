-- 0010_ingest: the ingestion tables of server/ingest/tables (same layout as
-- adapters/postgres migration 0010). Times are INTEGER microseconds (UTC).

-- Readings whose device had no patient association at their time.
CREATE TABLE held_readings (
    tenant       TEXT NOT NULL,
    id           TEXT NOT NULL,
    device       TEXT NOT NULL,
    reading_time INTEGER NOT NULL,
    measurement  BLOB NOT NULL,
    source       TEXT NOT NULL,
    received     INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX held_readings_device ON held_readings (tenant, device, reading_time, id);

-- Payloads that could not be mapped.
CREATE TABLE dead_letters (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    received    INTEGER NOT NULL,
    replayed_at INTEGER,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX dead_letters_received ON dead_letters (tenant, received, id);

-- Device and gateway credentials: only the SHA-256 of a key is kept.
CREATE TABLE device_keys (
    tenant  TEXT NOT NULL,
    id      TEXT NOT NULL,
    hash    TEXT NOT NULL,
    devices TEXT NOT NULL, -- JSON array of device identifier values, ["*"] for a gateway
    created INTEGER NOT NULL,
    revoked INTEGER,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX device_keys_hash ON device_keys (tenant, hash);
