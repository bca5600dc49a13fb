-- AuditEvent's patient search parameter is derived from agent and entity
-- (server/fhir/derived.go) and no longer indexed itself: drop the rows
-- written for it before, as 0003 did for Observation's.
DELETE FROM idx_ref WHERE type = 'AuditEvent' AND param = 'patient';
