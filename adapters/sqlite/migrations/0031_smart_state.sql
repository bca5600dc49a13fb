-- 0031_smart_state: the SMART authorization server's short-lived state
-- (server/smart/registry.State), kept here rather than in process so that it
-- survives restarts and is shared by every server on this database file:
-- pending authorization requests, codes, refresh tokens and their families,
-- used-code and used-refresh markers, the jti replay set and launch contexts
-- (smart_state), and revoked access token ids with a per-tenant change feed
-- (smart_revocations, numbered by smart_revocation_seq). Same layout as
-- adapters/postgres migration 0031. Times are INTEGER microseconds (UTC).

-- Entries: key is kind:id, never a usable token (tokens are hashed first).
CREATE TABLE smart_state (
    tenant  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX smart_state_expires ON smart_state (tenant, expires);

-- Revoked access tokens (id: a hash of issuer and jti) until they expire.
-- seq orders the change feed servers follow (seq > the last one seen).
CREATE TABLE smart_revocations (
    tenant  TEXT NOT NULL,
    id      TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX smart_revocations_seq ON smart_revocations (tenant, seq);
CREATE INDEX smart_revocations_expires ON smart_revocations (tenant, expires);

-- The last revocation number of each tenant (writes are serialized, so
-- numbers commit in order).
CREATE TABLE smart_revocation_seq (
    tenant TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
);
