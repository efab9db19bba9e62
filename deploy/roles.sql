-- charon's PostgreSQL roles, step 1 of 3 (docs/deployment.md, "Roles and grants").
--
-- Run as a superuser (or a role with CREATEROLE), once per cluster, after
-- creating the console database (`createdb charon_console`):
--
--   psql -v ON_ERROR_STOP=1 -d postgres -f deploy/roles.sql
--
-- Then, step 2: `charon migrate` with console_url naming charon_owner; and
-- step 3: deploy/grants-console.sql (console database) and
-- deploy/grants-pluto.sql (Pluto database).
--
-- Every name is a psql variable with the default shown below; override with
-- -v, e.g. `-v app=charon_app_eu -v console_db=charon_console_eu`. The tests
-- (tests/deploy.rs) run these very files with per-test role names.
--
-- Passwords are not set here: use `\password charon_app` (scram-sha-256) or
-- certificate authentication in pg_hba.conf. When the Pluto database lives on
-- another cluster, create the two charon_pluto_* roles there (their CREATE
-- ROLE and GRANT lines below) and run the rest on the console's cluster.

\set ON_ERROR_STOP on
\if :{?owner}
\else
  \set owner charon_owner
\endif
\if :{?app}
\else
  \set app charon_app
\endif
\if :{?pluto_read}
\else
  \set pluto_read charon_pluto_read
\endif
\if :{?pluto_write}
\else
  \set pluto_write charon_pluto_write
\endif
\if :{?console_db}
\else
  \set console_db charon_console
\endif

-- Owns the console schema and runs `charon migrate`. Nobody runs the
-- console as this role: an owner can disable the audit log's triggers.
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- What charon connects to the console database as (console_url): only the
-- table rights in grants-console.sql, no DDL, no UPDATE/DELETE on audit_log.
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- What charon reads Pluto as (pluto_read_url; a replica is fine): SELECT on
-- the tables of the data map.
CREATE ROLE :"pluto_read" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- What charon writes Pluto as (pluto_url): the reads, plus the UPDATE and
-- DELETE that redaction and erasure need. When pluto_read_url is not set,
-- every Pluto statement goes through this role.
CREATE ROLE :"pluto_write" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT :"pluto_read" TO :"pluto_write";

-- The console database belongs to the owner role. Its public schema
-- (owned by pg_database_owner since PostgreSQL 15) then lets the owner
-- create the tables; nobody else may create anything there.
ALTER DATABASE :"console_db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"console_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"console_db" TO :"owner", :"app";

\connect :"console_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app";
