-- 0001_init: the table layout shared with adapters/sqlite (see server/storesql),
-- row-level security per tenant, and the pulsewire_app role the store runs as.
--
-- Times are BIGINT microseconds since the Unix epoch (UTC), flags SMALLINT 0/1.
-- Every text column uses the "C" collation: byte order, as SQLite's BINARY, so
-- both stores sort identically, and so btree indexes serve prefix ranges.
-- Tables are created in the current schema (search_path), which lets tests run
-- each store in a schema of its own.

CREATE TABLE tenants (
    id         TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- The current version of every resource; a delete keeps the row (deleted = 1, body NULL).
CREATE TABLE resources (
    tenant       TEXT COLLATE "C" NOT NULL,
    type         TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA,
    PRIMARY KEY (tenant, type, id)
);
-- _lastUpdated search and sort.
CREATE INDEX resources_last_updated ON resources (tenant, type, last_updated);

CREATE TABLE resource_versions (
    tenant       TEXT COLLATE "C" NOT NULL,
    type         TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA,
    PRIMARY KEY (tenant, type, id, version)
);
-- System- and type-level history, newest first.
CREATE INDEX resource_versions_tenant_lu ON resource_versions (tenant, last_updated);
CREATE INDEX resource_versions_type_lu ON resource_versions (tenant, type, last_updated);

-- Index tables: rows exist only for current, non-deleted versions. Each has
-- one index for searching by value (leading with param, ending with id so a
-- match yields the resource without a heap visit) and one by resource
-- (tenant, type, id, param, ...) that serves deletes, the correlated EXISTS
-- storesql writes per parameter, and the sort subqueries (index-only).

-- Token: code before system, because "code=c" (any system) is common and
-- "sys|" (any code) rare; equality on both uses either order.
CREATE TABLE idx_token (
    tenant TEXT COLLATE "C" NOT NULL,
    type   TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    param  TEXT COLLATE "C" NOT NULL,
    system TEXT COLLATE "C" NOT NULL DEFAULT '',
    code   TEXT COLLATE "C" NOT NULL DEFAULT '',
    text   TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX idx_token_value ON idx_token (tenant, type, param, code, system, id);
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param, code, system);

-- String and uri: value is normalized, exact the original.
CREATE TABLE idx_string (
    tenant TEXT COLLATE "C" NOT NULL,
    type   TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    param  TEXT COLLATE "C" NOT NULL,
    value  TEXT COLLATE "C" NOT NULL,
    exact  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_string_value ON idx_string (tenant, type, param, value, id);
CREATE INDEX idx_string_res ON idx_string (tenant, type, id, param, value);

-- Date: the covered range [lo, hi).
CREATE TABLE idx_date (
    tenant TEXT COLLATE "C" NOT NULL,
    type   TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    param  TEXT COLLATE "C" NOT NULL,
    lo     BIGINT NOT NULL,
    hi     BIGINT NOT NULL
);
CREATE INDEX idx_date_value ON idx_date (tenant, type, param, lo, hi, id);
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param, hi, lo);

CREATE TABLE idx_ref (
    tenant   TEXT COLLATE "C" NOT NULL,
    type     TEXT COLLATE "C" NOT NULL,
    id       TEXT COLLATE "C" NOT NULL,
    param    TEXT COLLATE "C" NOT NULL,
    ref_type TEXT COLLATE "C" NOT NULL DEFAULT '',
    ref_id   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_ref_value ON idx_ref (tenant, type, param, ref_id, ref_type, id);
CREATE INDEX idx_ref_res ON idx_ref (tenant, type, id, param, ref_id, ref_type);

-- Number and quantity ([lo, hi) is the precision range; system/code the unit).
CREATE TABLE idx_number (
    tenant TEXT COLLATE "C" NOT NULL,
    type   TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    param  TEXT COLLATE "C" NOT NULL,
    num    DOUBLE PRECISION NOT NULL,
    lo     DOUBLE PRECISION NOT NULL,
    hi     DOUBLE PRECISION NOT NULL,
    system TEXT COLLATE "C" NOT NULL DEFAULT '',
    code   TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX idx_number_value ON idx_number (tenant, type, param, num, id);
CREATE INDEX idx_number_res ON idx_number (tenant, type, id, param, num);

-- Row-level security. Every table is visible and writable only for the tenant
-- named by the transaction-local setting pulsewire.tenant, which the store
-- sets as the first statement of every transaction. current_setting(..., true)
-- is NULL when unset, so a session that forgot to set it sees nothing and can
-- write nothing. FORCE makes the policy apply to the table owner too; only
-- superusers and BYPASSRLS roles escape it, which is why the store runs as
-- pulsewire_app (SET ROLE on every pooled connection).
--
-- tenants gets the same policy on its id: EnsureTenant and TenantExists set
-- pulsewire.tenant to the tenant they are asked about and then insert or read
-- that one row through the ordinary policy, so no SECURITY DEFINER function
-- (and no second, privileged connection path) is needed. The application role
-- can never list or read other tenants' rows.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['resources', 'resource_versions', 'idx_token', 'idx_string', 'idx_date', 'idx_ref', 'idx_number'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant = current_setting('pulsewire.tenant', true))
            WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
    END LOOP;
END $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = current_setting('pulsewire.tenant', true))
    WITH CHECK (id = current_setting('pulsewire.tenant', true));

-- The application role: no login of its own; a login role that is a member
-- (or a superuser, as in development) switches to it with SET ROLE.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulsewire_app') THEN
        CREATE ROLE pulsewire_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created concurrently by a migration in another schema or database
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO pulsewire_app', current_schema());
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenants, resources, resource_versions, idx_token, idx_string, idx_date, idx_ref, idx_number
    TO pulsewire_app;

-- Let the migrating login role SET ROLE pulsewire_app when it is not a
-- superuser (it needs membership). Skipped silently when it lacks the right
-- to grant; then an operator grants it.
DO $$
BEGIN
    IF NOT pg_has_role(session_user, 'pulsewire_app', 'MEMBER') THEN
        EXECUTE format('GRANT pulsewire_app TO %I', session_user);
    END IF;
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
    RAISE NOTICE 'cannot grant pulsewire_app to %; grant it manually', session_user;
END $$;
