-- Derived search parameters (server/fhir/derived.go) are searched through
-- the parameters they derive from and no longer indexed themselves: drop the
-- rows written for them before. (Left behind, as when a non-superuser owner
-- runs this under FORCE ROW LEVEL SECURITY, they are unused, never wrong.)
DELETE FROM idx_ref WHERE type IN ('Observation', 'Encounter', 'DeviceUseStatement') AND param = 'patient';
DELETE FROM idx_token WHERE type = 'Observation' AND param = 'combo-code';
