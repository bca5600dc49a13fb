-- 0080: Observation ids of device readings become time-ordered (see
-- ingest.ObservationID): "obs-", the reading's time in milliseconds as 12
-- hex digits, then the hash of before. The first releases used the hash
-- alone ("obs-" and 20 hex digits), which scatters every index keyed by id
-- (resources, search_observation, idx_token, and idx_ref through the
-- AuditEvents that name the reading); a time prefix puts the writes of
-- live readings at the right edge of each.
--
-- An id must stay what it was for a reading stored before, or a copy sent
-- again would be stored twice (or a deleted one brought back). This one-row
-- table records the reading time before which readings keep the hash-only
-- id: later than every reading stored, deleted or held with one, and not
-- earlier than now, when there are any (ingesting replicas still on the
-- old release write hash-only ids until they restart on this one, which
-- runs this migration at start, so upgrade them together); NULL when there
-- are none, as in a new database.
CREATE TABLE observation_ids (
    one           BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    legacy_before BIGINT -- µs since the epoch; NULL: no hash-only ids
);

-- Reads every tenant's rows (row-level security suspended for the owner
-- inside this transaction only, as in 0070).
SELECT pulsewire_force_rls(ARRAY['search_observation', 'held_readings', 'resources', 'resource_versions'], false);

INSERT INTO observation_ids (legacy_before)
SELECT CASE WHEN max(t) IS NULL THEN NULL
            ELSE greatest(max(t) + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) END
FROM (
    -- Stored: the end of the effective time's range.
    SELECT max(date_hi) AS t FROM search_observation
     WHERE id LIKE 'obs-%' AND length(id) = 24
    UNION ALL
    SELECT max(reading_time) FROM held_readings
     WHERE id LIKE 'obs-%' AND length(id) = 24
    UNION ALL
    -- Deleted: the effective time of the version before the delete (an
    -- ingested reading's is always a full instant); a second later covers
    -- its fraction.
    SELECT max((extract(epoch FROM (b ->> 'effectiveDateTime')::timestamptz) + 1) * 1000000)::bigint
      FROM (SELECT convert_from(v.body, 'UTF8')::jsonb AS b
              FROM resources r
              JOIN resource_versions v ON v.tenant = r.tenant AND v.type = r.type AND v.id = r.id AND v.version = r.version - 1
             WHERE r.type = 'Observation' AND r.deleted = 1 AND r.id LIKE 'obs-%' AND length(r.id) = 24
               AND v.body IS NOT NULL) d
     WHERE b ->> 'effectiveDateTime' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'
) legacy;

SELECT pulsewire_force_rls(ARRAY['search_observation', 'held_readings', 'resources', 'resource_versions'], true);

GRANT SELECT ON observation_ids TO pulsewire_app;
