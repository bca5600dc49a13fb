-- 0110: an Observation's categories on its typed row
-- (storesql.TypedTable.CodeParams). The latest search for a category
-- ("a patient's latest vital signs", the GraphQL patient view) walked the
-- patient's typed rows newest first and probed idx_token for each row's
-- category: a descent of an index far larger than the buffer cache per
-- candidate. The codes column (which search_observation_subject includes)
-- now also holds each category token twice, with its system
-- (storesql.ParamCode: 'category', a newline, system, a tab, code) and
-- without (storesql.ParamAnyCode: 'category', a newline, code), so the walk
-- filters on the index tuple. The idx_token rows stay, for every other
-- search.
--
-- Cost: every Observation with a category is rewritten once, index
-- entries included (codes is in search_observation_subject), and the old
-- versions wait for a VACUUM: about a minute and a half for 1M
-- Observations on a 2-core machine.

SELECT pulsewire_force_rls(ARRAY['search_observation', 'idx_token'], false);

UPDATE search_observation o SET codes = coalesce(o.codes, '{}') || c.extra
FROM (SELECT t.tenant, t.id, array_agg(DISTINCT f.code) AS extra
      FROM idx_token t,
           LATERAL (VALUES ('category' || E'\n' || t.system || E'\t' || t.code), ('category' || E'\n' || t.code)) AS f(code)
      WHERE t.type = 'Observation' AND t.param = 'category' AND t.code <> ''
      GROUP BY t.tenant, t.id) c
WHERE o.tenant = c.tenant AND o.id = c.id;

SELECT pulsewire_force_rls(ARRAY['search_observation', 'idx_token'], true);

ANALYZE search_observation;
