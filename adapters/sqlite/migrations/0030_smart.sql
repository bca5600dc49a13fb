-- 0030_smart: the SMART authorization server's durable records
-- (server/smart/registry): registered clients, login users and token signing
-- keys (same layout as adapters/postgres migration 0030). Times are INTEGER
-- microseconds (UTC).

-- Registered SMART clients. redirect_uris and scopes are JSON arrays of
-- strings; secret_hash is the hex SHA-256 of a confidential-symmetric
-- client's secret; jwks / jwks_url hold a confidential-asymmetric client's
-- public keys.
CREATE TABLE smart_clients (
    tenant        TEXT NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    jwks          BLOB,
    jwks_url      TEXT NOT NULL,
    created       INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- People who sign in on the login page (bcrypt password hashes).
CREATE TABLE smart_users (
    tenant        TEXT NOT NULL,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    fhir_user     TEXT NOT NULL,
    name          TEXT NOT NULL,
    created       INTEGER NOT NULL,
    PRIMARY KEY (tenant, username)
);

-- Token signing keys (PKCS #8 DER); the newest signs.
CREATE TABLE smart_signing_keys (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    alg         TEXT NOT NULL,
    private_key BLOB NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX smart_signing_keys_created ON smart_signing_keys (tenant, created DESC, id DESC);
