-- 0080: Observation ids of device readings become time-ordered (see
-- ingest.ObservationID and adapters/postgres migration 0080, whose comment
-- says why). This one-row table records the reading time before which
-- readings keep the hash-only id of the first releases ("obs-" and 20 hex
-- digits): later than every reading stored, deleted or held with one, and
-- not earlier than now, when there are any; NULL when there are none.
CREATE TABLE observation_ids (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    legacy_before INTEGER -- µs since the epoch; NULL: no hash-only ids
);

INSERT INTO observation_ids (one, legacy_before)
SELECT 1, CASE WHEN max(t) IS NULL THEN NULL
               -- now, in whole milliseconds (julianday's double is off by tens of µs)
               ELSE max(max(t) + 1, (CAST(strftime('%s', 'now') AS INTEGER) * 1000
                                     + CAST(substr(strftime('%f', 'now'), 4, 3) AS INTEGER)) * 1000) END
FROM (
    -- Stored: the end of the effective time's range.
    SELECT max(hi) AS t FROM idx_date
     WHERE type = 'Observation' AND param = 'date' AND id LIKE 'obs-%' AND length(id) = 24
    UNION ALL
    SELECT max(reading_time) FROM held_readings
     WHERE id LIKE 'obs-%' AND length(id) = 24
    UNION ALL
    -- Deleted: the effective time of the version before the delete (an
    -- ingested reading's is always a full instant); a second later covers
    -- its fraction.
    SELECT max((CAST(strftime('%s', e) AS INTEGER) + 1) * 1000000)
      FROM (SELECT json_extract(CAST(v.body AS TEXT), '$.effectiveDateTime') AS e
              FROM resources r
              JOIN resource_versions v ON v.tenant = r.tenant AND v.type = r.type AND v.id = r.id AND v.version = r.version - 1
             WHERE r.type = 'Observation' AND r.deleted = 1 AND r.id LIKE 'obs-%' AND length(r.id) = 24
               AND v.body IS NOT NULL)
     WHERE e GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'
) AS legacy;
