-- Pulsewire store schema (shared layout with adapters/postgres; see server/storesql).
-- Times are INTEGER microseconds since the Unix epoch (UTC); booleans 0/1.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE resources (
    tenant       TEXT    NOT NULL REFERENCES tenants(id),
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    PRIMARY KEY (tenant, type, id)
);
CREATE INDEX resources_lu ON resources (tenant, type, last_updated);

CREATE TABLE resource_versions (
    tenant       TEXT    NOT NULL REFERENCES tenants(id),
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    PRIMARY KEY (tenant, type, id, version)
);
CREATE INDEX resource_versions_tenant_lu ON resource_versions (tenant, last_updated);
CREATE INDEX resource_versions_type_lu ON resource_versions (tenant, type, last_updated);

CREATE TABLE idx_token (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    param  TEXT NOT NULL,
    system TEXT NOT NULL DEFAULT '',
    code   TEXT NOT NULL DEFAULT '',
    text   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_token_search ON idx_token (tenant, type, param, system, code, id);
CREATE INDEX idx_token_code ON idx_token (tenant, type, param, code, id);
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param, system, code);

CREATE TABLE idx_string (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    param  TEXT NOT NULL,
    value  TEXT NOT NULL,
    exact  TEXT NOT NULL
);
CREATE INDEX idx_string_search ON idx_string (tenant, type, param, value, id);
CREATE INDEX idx_string_exact ON idx_string (tenant, type, param, exact, id);
CREATE INDEX idx_string_res ON idx_string (tenant, type, id, param, value);

CREATE TABLE idx_date (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    lo     INTEGER NOT NULL,
    hi     INTEGER NOT NULL
);
CREATE INDEX idx_date_lo ON idx_date (tenant, type, param, lo, id);
CREATE INDEX idx_date_hi ON idx_date (tenant, type, param, hi, id);
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param, lo, hi);

CREATE TABLE idx_ref (
    tenant   TEXT NOT NULL,
    type     TEXT NOT NULL,
    id       TEXT NOT NULL,
    param    TEXT NOT NULL,
    ref_type TEXT NOT NULL DEFAULT '',
    ref_id   TEXT NOT NULL
);
CREATE INDEX idx_ref_search ON idx_ref (tenant, type, param, ref_id, ref_type, id);
CREATE INDEX idx_ref_res ON idx_ref (tenant, type, id, param, ref_type, ref_id);

CREATE TABLE idx_number (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    param  TEXT NOT NULL,
    num    REAL NOT NULL,
    lo     REAL NOT NULL,
    hi     REAL NOT NULL,
    system TEXT NOT NULL DEFAULT '',
    code   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_number_search ON idx_number (tenant, type, param, num, id);
CREATE INDEX idx_number_res ON idx_number (tenant, type, id, param, num);
