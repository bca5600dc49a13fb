-- 0090: an Observation's codes by subject, for the latest search of one
-- code (storesql.TypedTable.CodeRows). The latest search walked the
-- subject's typed rows newest first (search_observation_subject) and kept
-- those of the asked code; a patient on a monitor has thousands of recent
-- readings of other codes to step over first. This table has a row per
-- code (storesql.RefCode form) of each Observation with a subject, indexed
-- by subject, code and date, so the walk reads that code's rows only.
-- Only the one index: rows are deleted through their typed row's values
-- (storesql.DeleteIndex), not by id.
CREATE TABLE search_observation_code (
    tenant       TEXT COLLATE "C" NOT NULL,
    subject_id   TEXT COLLATE "C" NOT NULL,
    subject_type TEXT COLLATE "C" NOT NULL,
    code         TEXT COLLATE "C" NOT NULL,
    date_hi      BIGINT,
    id           TEXT COLLATE "C" NOT NULL
);

-- The backfill reads every tenant's rows (row-level security suspended for
-- the owner inside this transaction only, as in 0070).
SELECT pulsewire_force_rls(ARRAY['search_observation'], false);

INSERT INTO search_observation_code (tenant, subject_id, subject_type, code, date_hi, id)
SELECT DISTINCT o.tenant, o.subject_id, o.subject_type, c.code, o.date_hi, o.id
FROM search_observation o, unnest(o.codes) AS c(code)
WHERE o.subject_id IS NOT NULL;

SELECT pulsewire_force_rls(ARRAY['search_observation'], true);

-- Built after the backfill: one sort instead of a million inserts.
CREATE INDEX search_observation_code_latest ON search_observation_code
    (tenant, subject_id, subject_type, code, date_hi DESC NULLS LAST, id);

SELECT pulsewire_isolate('search_observation_code');

GRANT SELECT, INSERT, UPDATE, DELETE ON search_observation_code TO pulsewire_app;
