-- 0021_hl7_inbound: the record of applied inbound HL7 v2 messages of
-- server/adtin/seen (same layout as adapters/postgres migration 0021). A
-- message is applied once per tenant, sender (MSH-3 and MSH-4) and control
-- id (MSH-10); the row commits with the resources it changed. Times are
-- INTEGER microseconds (UTC). No patient data: digest is a SHA-256, ack
-- holds MSH, MSA and ERR segments only.
CREATE TABLE hl7_processed (
    tenant       TEXT NOT NULL,
    sender       TEXT NOT NULL,
    control_id   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    event        TEXT NOT NULL,
    ack          BLOB NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, sender, control_id)
);
-- For retention (deleting records older than any resend window).
CREATE INDEX hl7_processed_at ON hl7_processed (tenant, processed_at);
