-- charon's PostgreSQL roles, step 3a of 3: the console database.
--
-- Run in the console database after `charon migrate`, as the owner role
-- (it owns the tables) or a superuser; again after every upgrade whose
-- CHANGELOG says the grants changed:
--
--   psql -v ON_ERROR_STOP=1 -d charon_console -f deploy/grants-console.sql
--
-- What each grant is for is read from the code (src/core/**): charon_app
-- gets exactly these and nothing else. Variables as in roles.sql.

\set ON_ERROR_STOP on
\if :{?app}
\else
  \set app charon_app
\endif

-- Nothing for anybody by default (PUBLIC gets no table rights).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;

-- Every connection checks that the applied migrations are this binary's
-- (src/core/db.rs, check_console_schema).
GRANT SELECT ON _sqlx_migrations TO :"app";

-- One row per opened console (src/core/console.rs).
GRANT INSERT ON console_sessions TO :"app";

-- The audit log: append and read, never UPDATE, DELETE or TRUNCATE (the
-- triggers refuse those too, even for a role granted them by mistake). The
-- chain head moves on each append (src/core/audit/mod.rs).
GRANT SELECT, INSERT ON audit_log TO :"app";
GRANT SELECT, UPDATE ON audit_head TO :"app";

-- Operators and their keys (src/core/operators.rs, keys.rs, admin.rs, auth.rs).
-- UPDATE: roles, lock/unlock, failure counts, replay counters, revocation;
-- `LOCK TABLE operators IN EXCLUSIVE MODE` (bootstrap) needs it too.
-- DELETE on operators only undoes a bootstrap whose key enrolment failed
-- (rows created by 'bootstrap'); removed operators and revoked keys stay.
GRANT SELECT, INSERT, UPDATE, DELETE ON operators TO :"app";
GRANT SELECT, INSERT, UPDATE ON operator_keys TO :"app";

-- Redactions: a pending row, then applied or failed (src/core/records/redact.rs).
GRANT SELECT, INSERT, UPDATE ON redactions TO :"app";

-- Erasure (src/core/erasure): requests move through their states; the
-- external queue is claimed and retried; a crash before the Pluto commit
-- removes that attempt's queue rows and ledger entry again.
GRANT SELECT, INSERT, UPDATE ON erasure_requests TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON erasure_external_queue TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON erasure_ledger TO :"app";
GRANT USAGE ON SEQUENCE erasure_external_queue_id_seq, erasure_ledger_id_seq TO :"app";

-- Restore-test history (src/core/restore; docs/restore.md).
GRANT SELECT, INSERT ON restore_tests TO :"app";
