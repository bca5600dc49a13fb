-- 0050_history_superseded: each version is stored once (same layout as
-- adapters/postgres migration 0050). resources holds the current version
-- of every resource, resource_versions only the versions superseded since
-- (an update or delete copies the row it replaces there first); readers of
-- versions read both. AuditEvents, version 1 only, live in resources alone.

-- The copies of current versions: one primary-key probe of resources per
-- row, so the cost grows with the table's size, not with its square. The
-- freed pages are reused by later writes (VACUUM, which cannot run inside
-- a migration's transaction, would return them to the file system).
DELETE FROM resource_versions
WHERE EXISTS (SELECT 1 FROM resources r
              WHERE r.tenant = resource_versions.tenant AND r.type = resource_versions.type
                AND r.id = resource_versions.id AND r.version = resource_versions.version);

-- System history walks each table newest first; resource_versions has
-- (tenant, last_updated), resources gets it too.
CREATE INDEX resources_tenant_lu ON resources (tenant, last_updated);
