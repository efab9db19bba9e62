-- The audit log: every action, written before its effect is shown or
-- committed (DESIGN.md, "Every action is audited, first").
--
-- Entries form a hash chain: `hash = HMAC-SHA256(key, canonical bytes of the
-- entry, prev_hash included)`; the canonical encoding is documented in
-- src/core/audit/canonical.rs and docs/audit.md. The HMAC key never lives in
-- this database.
--
-- Appends are serialised on the one row of `audit_head`: an append locks it
-- (`SELECT ... FOR UPDATE`), reads the previous seq and hash, inserts the
-- entry and moves the head, all in one transaction. Concurrent sessions
-- therefore queue on the lock and cannot fork the chain.
--
-- Grants for the role charon runs as (it must NOT own these tables: an owner
-- can disable triggers). Run migrations as a separate owner role, then:
--
--   REVOKE ALL ON audit_log, audit_head FROM PUBLIC;
--   GRANT SELECT, INSERT ON audit_log TO charon;        -- never UPDATE, DELETE, TRUNCATE
--   GRANT SELECT, UPDATE ON audit_head TO charon;       -- the chain head moves on append
--
-- The triggers below refuse UPDATE, DELETE and TRUNCATE on audit_log even for
-- a role that was granted them by mistake.

CREATE TABLE audit_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL CHECK (seq >= 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);

-- Genesis: seq 0, a hash of 32 zero bytes (the prev_hash of entry 1).
INSERT INTO audit_head (id, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_log (
    seq            bigint PRIMARY KEY CHECK (seq >= 1),
    at             timestamptz NOT NULL,          -- database clock, UTC, microseconds
    operator       text NOT NULL,
    role           text NOT NULL,
    key_id         text,                          -- the hardware key used, when known
    session_id     uuid NOT NULL,
    event_code     text NOT NULL,                 -- stable, e.g. CH2001I (docs/audit-events.md)
    action         text NOT NULL,                 -- ActionKind name, e.g. tenant.search
    tenant_id      uuid,
    target_table   text,
    target_pk      text,
    target_columns text[] NOT NULL DEFAULT '{}',  -- column names, never values
    reason         text,                          -- ticket or reason, when the action takes one
    outcome        text NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    error          text,                          -- short error code, never a personal value
    details        jsonb NOT NULL DEFAULT '{}',
    prev_hash      bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea NOT NULL CHECK (octet_length(hash) = 32)
);

-- For the audit screen's filters (newest first within a filter).
CREATE INDEX audit_log_operator_seq ON audit_log (operator, seq);
CREATE INDEX audit_log_tenant_seq ON audit_log (tenant_id, seq) WHERE tenant_id IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries can only be inserted; see docs/audit.md';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
