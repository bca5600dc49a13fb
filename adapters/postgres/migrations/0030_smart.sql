-- 0030_smart: the SMART authorization server's durable records
-- (server/smart/registry): registered clients, login users and token signing
-- keys (same layout as adapters/sqlite migration 0030), with the row-level
-- security of 0001. Times are BIGINT microseconds (UTC).

-- Registered SMART clients. redirect_uris and scopes are JSON arrays of
-- strings; secret_hash is the hex SHA-256 of a confidential-symmetric
-- client's secret; jwks / jwks_url hold a confidential-asymmetric client's
-- public keys.
CREATE TABLE smart_clients (
    tenant        TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    name          TEXT NOT NULL,
    type          TEXT COLLATE "C" NOT NULL,
    redirect_uris TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_hash   TEXT COLLATE "C" NOT NULL,
    jwks          BYTEA,
    jwks_url      TEXT NOT NULL,
    created       BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- People who sign in on the login page (bcrypt password hashes).
CREATE TABLE smart_users (
    tenant        TEXT COLLATE "C" NOT NULL,
    username      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT COLLATE "C" NOT NULL,
    fhir_user     TEXT COLLATE "C" NOT NULL,
    name          TEXT NOT NULL,
    created       BIGINT NOT NULL,
    PRIMARY KEY (tenant, username)
);

-- Token signing keys (PKCS #8 DER); the newest signs.
CREATE TABLE smart_signing_keys (
    tenant      TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    alg         TEXT COLLATE "C" NOT NULL,
    private_key BYTEA NOT NULL,
    created     BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX smart_signing_keys_created ON smart_signing_keys (tenant, created DESC, id DESC);

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['smart_clients', 'smart_users', 'smart_signing_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON smart_clients, smart_users, smart_signing_keys TO pulsewire_app;
