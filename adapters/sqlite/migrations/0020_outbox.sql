-- 0020_outbox: the transactional outbox of server/delivery/outbox (same
-- layout as adapters/postgres migration 0020). Times are INTEGER
-- microseconds (UTC); lease_until 0 means "not leased".

-- id is unique in the database and never reused (AUTOINCREMENT): MSH-10 is
-- derived from it. seq orders a destination's entries; a replay takes a new
-- one (MAX(seq) + 1: the store has one writer).
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    destination  TEXT NOT NULL,
    patient      TEXT NOT NULL,
    res_type     TEXT NOT NULL,
    res_id       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    event        TEXT NOT NULL,
    state        INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 done, 2 dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    replays      INTEGER NOT NULL DEFAULT 0,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL
);
CREATE INDEX outbox_seq ON outbox (seq);
CREATE INDEX outbox_queue ON outbox (tenant, destination, seq) WHERE state = 0;
CREATE INDEX outbox_patient ON outbox (tenant, destination, patient, seq) WHERE state = 0;
CREATE INDEX outbox_dead ON outbox (tenant, destination, id) WHERE state = 2;
CREATE INDEX outbox_done ON outbox (tenant, updated) WHERE state = 1;

-- Per-destination settings an operator changes at run time.
CREATE TABLE outbox_destinations (
    tenant      TEXT NOT NULL,
    destination TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (tenant, destination)
);
