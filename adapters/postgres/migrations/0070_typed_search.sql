-- 0070_typed_search: typed search rows for Observation and AuditEvent
-- (server/storesql/typed.go). The parameters that hold at most one value
-- per resource move out of the idx_* tables into one row per resource, a
-- column group per parameter:
--   reference  <p>_id, <p>_type
--   token      <p>_code, <p>_system, <p>_text
--   date       <p>_lo, <p>_hi           (BIGINT µs, [lo, hi))
--   quantity   <p>_num, <p>_lo, <p>_hi, <p>_system, <p>_code, <p>_unit
--              (_unit: the display unit when it differs from the code,
--              the second, system-less idx_number row of the value)
-- NULL when the resource has no value. A create then writes one row where
-- it wrote five or six, each with two index entries; only the columns that
-- searches start from are indexed. search_observation.codes copies the
-- "code" tokens (system || E'\t' || code), as idx_ref.codes does (0002), so
-- the latest-vitals search filters by code while it walks a patient's rows
-- newest first off search_observation_subject.
--
-- The column names are those storesql.TypedTable.Columns gives
-- (TestTypedTablesMatchSchema compares them).

CREATE TABLE search_observation (
    tenant                TEXT COLLATE "C" NOT NULL,
    id                    TEXT COLLATE "C" NOT NULL,
    date_lo               BIGINT,
    date_hi               BIGINT,
    device_id             TEXT COLLATE "C",
    device_type           TEXT COLLATE "C",
    encounter_id          TEXT COLLATE "C",
    encounter_type        TEXT COLLATE "C",
    status_code           TEXT COLLATE "C",
    status_system         TEXT COLLATE "C",
    status_text           TEXT COLLATE "C",
    subject_id            TEXT COLLATE "C",
    subject_type          TEXT COLLATE "C",
    value_quantity_num    DOUBLE PRECISION,
    value_quantity_lo     DOUBLE PRECISION,
    value_quantity_hi     DOUBLE PRECISION,
    value_quantity_system TEXT COLLATE "C",
    value_quantity_code   TEXT COLLATE "C",
    value_quantity_unit   TEXT COLLATE "C",
    codes                 TEXT[] COLLATE "C",
    PRIMARY KEY (tenant, id)
);

CREATE TABLE search_auditevent (
    tenant         TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    action_code    TEXT COLLATE "C",
    action_system  TEXT COLLATE "C",
    action_text    TEXT COLLATE "C",
    date_lo        BIGINT,
    date_hi        BIGINT,
    outcome_code   TEXT COLLATE "C",
    outcome_system TEXT COLLATE "C",
    outcome_text   TEXT COLLATE "C",
    source_id      TEXT COLLATE "C",
    source_type    TEXT COLLATE "C",
    type_code      TEXT COLLATE "C",
    type_system    TEXT COLLATE "C",
    type_text      TEXT COLLATE "C",
    PRIMARY KEY (tenant, id)
);

-- Helpers for this and later migrations, instead of restating the same
-- blocks in each: pulsewire_force_rls turns FORCE ROW LEVEL SECURITY on or
-- off for tables; pulsewire_isolate puts a new table under the tenant
-- policy of 0001.
CREATE OR REPLACE FUNCTION pulsewire_force_rls(tables TEXT[], force BOOLEAN) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('ALTER TABLE %I %s FORCE ROW LEVEL SECURITY', t, CASE WHEN force THEN '' ELSE 'NO' END);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION pulsewire_isolate(t TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    PERFORM pulsewire_force_rls(ARRAY[t], true);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
        USING (tenant = current_setting('pulsewire.tenant', true))
        WITH CHECK (tenant = current_setting('pulsewire.tenant', true))$p$, t);
END $$;

-- The backfill reads every tenant's rows: row-level security is suspended
-- for the table owner inside this transaction only (superusers bypass it
-- anyway), as in 0002.
SELECT pulsewire_force_rls(ARRAY['resources', 'idx_token', 'idx_date', 'idx_ref', 'idx_number'], false);

-- A parameter that somehow has several rows keeps one value: the outer
-- limits of its dates (how a Timing is searched, and how search.Registry
-- now extracts one), the least of the others; a quantity keeps its coded
-- value and its display unit.
INSERT INTO search_observation (tenant, id, date_lo, date_hi, device_id, device_type, encounter_id, encounter_type,
    status_code, status_system, status_text, subject_id, subject_type,
    value_quantity_num, value_quantity_lo, value_quantity_hi, value_quantity_system, value_quantity_code, value_quantity_unit, codes)
SELECT r.tenant, r.id, dt.lo, dt.hi, dv.ref_id, dv.ref_type, en.ref_id, en.ref_type,
    st.code, st.system, st.text, sb.ref_id, sb.ref_type,
    vq.num, vq.lo, vq.hi, vq.system, vq.code, vu.unit, cs.codes
FROM resources r
LEFT JOIN LATERAL (SELECT MIN(x.lo) AS lo, MAX(x.hi) AS hi FROM idx_date x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'date') dt ON true
LEFT JOIN LATERAL (SELECT x.ref_id, x.ref_type FROM idx_ref x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'device' ORDER BY x.ref_id, x.ref_type LIMIT 1) dv ON true
LEFT JOIN LATERAL (SELECT x.ref_id, x.ref_type FROM idx_ref x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'encounter' ORDER BY x.ref_id, x.ref_type LIMIT 1) en ON true
LEFT JOIN LATERAL (SELECT x.code, x.system, x.text FROM idx_token x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'status' ORDER BY x.code, x.system LIMIT 1) st ON true
LEFT JOIN LATERAL (SELECT x.ref_id, x.ref_type FROM idx_ref x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'subject' ORDER BY x.ref_id, x.ref_type LIMIT 1) sb ON true
LEFT JOIN LATERAL (SELECT x.num, x.lo, x.hi, x.system, x.code FROM idx_number x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'value-quantity' ORDER BY x.system = '', x.code LIMIT 1) vq ON true
LEFT JOIN LATERAL (SELECT x.code AS unit FROM idx_number x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'value-quantity'
      AND x.system = '' AND x.code <> vq.code AND x.num = vq.num ORDER BY x.code LIMIT 1) vu ON true
LEFT JOIN LATERAL (SELECT array_agg(x.system || E'\t' || x.code ORDER BY x.system, x.code) AS codes FROM idx_token x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'code') cs ON true
WHERE r.type = 'Observation' AND r.deleted = 0;

INSERT INTO search_auditevent (tenant, id, action_code, action_system, action_text, date_lo, date_hi,
    outcome_code, outcome_system, outcome_text, source_id, source_type, type_code, type_system, type_text)
SELECT r.tenant, r.id, ac.code, ac.system, ac.text, dt.lo, dt.hi,
    oc.code, oc.system, oc.text, so.ref_id, so.ref_type, ty.code, ty.system, ty.text
FROM resources r
LEFT JOIN LATERAL (SELECT x.code, x.system, x.text FROM idx_token x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'action' ORDER BY x.code, x.system LIMIT 1) ac ON true
LEFT JOIN LATERAL (SELECT MIN(x.lo) AS lo, MAX(x.hi) AS hi FROM idx_date x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'date') dt ON true
LEFT JOIN LATERAL (SELECT x.code, x.system, x.text FROM idx_token x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'outcome' ORDER BY x.code, x.system LIMIT 1) oc ON true
LEFT JOIN LATERAL (SELECT x.ref_id, x.ref_type FROM idx_ref x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'source' ORDER BY x.ref_id, x.ref_type LIMIT 1) so ON true
LEFT JOIN LATERAL (SELECT x.code, x.system, x.text FROM idx_token x
    WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = 'type' ORDER BY x.code, x.system LIMIT 1) ty ON true
WHERE r.type = 'AuditEvent' AND r.deleted = 0;

DELETE FROM idx_ref WHERE type = 'Observation' AND param IN ('subject', 'device', 'encounter');
DELETE FROM idx_token WHERE type = 'Observation' AND param = 'status';
DELETE FROM idx_date WHERE type = 'Observation' AND param = 'date';
DELETE FROM idx_number WHERE type = 'Observation' AND param = 'value-quantity';
DELETE FROM idx_ref WHERE type = 'AuditEvent' AND param = 'source';
DELETE FROM idx_token WHERE type = 'AuditEvent' AND param IN ('type', 'action', 'outcome');
DELETE FROM idx_date WHERE type = 'AuditEvent' AND param = 'date';

SELECT pulsewire_force_rls(ARRAY['resources', 'idx_token', 'idx_date', 'idx_ref', 'idx_number'], true);

-- Built after the backfill: one sort instead of a million inserts.
-- References: the newest first per target (the latest search, device
-- readings), partial where most rows have none.
CREATE INDEX search_observation_subject ON search_observation (tenant, subject_id, subject_type, date_hi DESC NULLS LAST, id) INCLUDE (codes);
CREATE INDEX search_observation_device ON search_observation (tenant, device_id, device_type, date_hi DESC NULLS LAST, id)
    WHERE device_id IS NOT NULL;
CREATE INDEX search_observation_encounter ON search_observation (tenant, encounter_id, encounter_type, date_hi DESC NULLS LAST, id)
    WHERE encounter_id IS NOT NULL;
CREATE INDEX search_observation_date ON search_observation (tenant, date_lo, date_hi, id);
CREATE INDEX search_auditevent_date ON search_auditevent (tenant, date_lo, date_hi, id);

SELECT pulsewire_isolate('search_observation'), pulsewire_isolate('search_auditevent');

GRANT SELECT, INSERT, UPDATE, DELETE ON search_observation, search_auditevent TO pulsewire_app;
