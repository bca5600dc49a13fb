-- 0043_audit_lanes: the lanes of adapters/postgres migration 0043, in the
-- same layout: audit_heads has one row per tenant and lane, audit_chain
-- orders each lane on its own, and each lane is a hash chain of its own.
-- SQLite's single writer commits one transaction at a time, so nothing
-- is gained by more than one lane: appends use lane 0, and Verify walks
-- whatever lanes the tables hold, as on PostgreSQL. The existing chain
-- becomes lane 0, unchanged. SQLite cannot change a primary key in place:
-- both tables are rebuilt.

CREATE TABLE audit_heads_0043 (
    tenant TEXT NOT NULL,
    lane   INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (tenant, lane)
);
INSERT INTO audit_heads_0043 (tenant, lane, seq, hash) SELECT tenant, 0, seq, hash FROM audit_heads;
DROP TABLE audit_heads;
ALTER TABLE audit_heads_0043 RENAME TO audit_heads;

-- (tenant, lane, seq) -> AuditEvent id, so that Verify walks a lane in
-- order. Dropping the old table drops its triggers; they are made again
-- below. (DROP TABLE fires no DELETE trigger.)
CREATE TABLE audit_chain_0043 (
    tenant TEXT NOT NULL,
    lane   INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, lane, seq)
);
INSERT INTO audit_chain_0043 (tenant, lane, seq, id) SELECT tenant, 0, seq, id FROM audit_chain;
DROP TABLE audit_chain;
ALTER TABLE audit_chain_0043 RENAME TO audit_chain;

-- The chain is only ever appended to, as in 0040.
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;
