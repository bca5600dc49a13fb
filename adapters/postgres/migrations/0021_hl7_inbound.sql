-- 0021_hl7_inbound: the record of applied inbound HL7 v2 messages of
-- server/adtin/seen (same layout as adapters/sqlite migration 0021), with
-- the row-level security of 0001. A message is applied once per tenant,
-- sender (MSH-3 and MSH-4) and control id (MSH-10); the row commits with
-- the resources it changed. Times are BIGINT microseconds (UTC). No patient
-- data: digest is a SHA-256, ack holds MSH, MSA and ERR segments only.
CREATE TABLE hl7_processed (
    tenant       TEXT COLLATE "C" NOT NULL,
    sender       TEXT COLLATE "C" NOT NULL,
    control_id   TEXT COLLATE "C" NOT NULL,
    digest       TEXT COLLATE "C" NOT NULL,
    event        TEXT COLLATE "C" NOT NULL,
    ack          BYTEA NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, sender, control_id)
);
-- For retention (deleting records older than any resend window).
CREATE INDEX hl7_processed_at ON hl7_processed (tenant, processed_at);

ALTER TABLE hl7_processed ENABLE ROW LEVEL SECURITY;
ALTER TABLE hl7_processed FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hl7_processed
    USING (tenant = current_setting('pulsewire.tenant', true))
    WITH CHECK (tenant = current_setting('pulsewire.tenant', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON hl7_processed TO pulsewire_app;
