-- 0002_ref_date: "the newest resources that reference X, with code C" (the
-- latest-vitals search: subject + code, _sort=-date) read off one index in
-- order, instead of probing every resource of the patient for its date and
-- its code.
--
-- Each idx_ref row carries copies of two values of its resource (see
-- storesql.RefDateParam and storesql.RefCodeParam):
--   date_hi  the MAX(hi) of its "date" parameter, NULL when it has none;
--   codes    its "code" tokens as system || E'\t' || code (neither a uri
--            nor a code may hold a tab), NULL when it has none.
-- idx_ref_value orders a target's rows by date_hi and includes codes, so the
-- search walks the patient's rows newest first, filtering by code inside the
-- index, until its page is full. The store writes at most one idx_ref row
-- per resource, parameter and target, so the walk meets each resource once;
-- duplicates written before this migration are removed.
--
-- The backfill must see every tenant's rows: row-level security is
-- suspended for the table owner inside this transaction only (superusers
-- bypass it anyway).
ALTER TABLE idx_ref NO FORCE ROW LEVEL SECURITY;

ALTER TABLE idx_ref ADD COLUMN date_hi BIGINT, ADD COLUMN codes TEXT[] COLLATE "C";

DELETE FROM idx_ref a USING idx_ref b
WHERE a.ctid > b.ctid AND a.tenant = b.tenant AND a.type = b.type AND a.id = b.id
  AND a.param = b.param AND a.ref_type = b.ref_type AND a.ref_id = b.ref_id;

UPDATE idx_ref x SET date_hi = v.hi, codes = v.codes
FROM (SELECT tenant, type, id, d.hi, c.codes
      FROM (SELECT tenant, type, id, MAX(hi) AS hi FROM idx_date WHERE param = 'date' GROUP BY tenant, type, id) d
      FULL JOIN (SELECT tenant, type, id, array_agg(system || E'\t' || code ORDER BY system, code) AS codes
                 FROM idx_token WHERE param = 'code' GROUP BY tenant, type, id) c USING (tenant, type, id)) v
WHERE v.tenant = x.tenant AND v.type = x.type AND v.id = x.id;

DROP INDEX idx_ref_value;
CREATE INDEX idx_ref_value ON idx_ref (tenant, type, param, ref_id, ref_type, date_hi DESC NULLS LAST, id) INCLUDE (codes);

ALTER TABLE idx_ref FORCE ROW LEVEL SECURITY;
