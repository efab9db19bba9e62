-- charon's PostgreSQL roles, step 3b of 3: the Pluto database.
--
-- Run in the Pluto database (on the primary: a replica gets the grants by
-- replication) as the owner of Pluto's tables or a superuser:
--
--   psql -v ON_ERROR_STOP=1 -d pluto -f deploy/grants-pluto.sql
--
-- The tables and columns are those of the data map (datamap/pluto.toml);
-- when an app migration adds a table or a personal column, the data map and
-- this file change together (`charon datamap check` names what the map does
-- not cover). Pluto's own roles and PUBLIC's rights are left alone.
-- Variables as in roles.sql, plus pluto_db (default: pluto).

\set ON_ERROR_STOP on
\if :{?pluto_read}
\else
  \set pluto_read charon_pluto_read
\endif
\if :{?pluto_write}
\else
  \set pluto_write charon_pluto_write
\endif
\if :{?pluto_db}
\else
  \set pluto_db pluto
\endif

GRANT CONNECT ON DATABASE :"pluto_db" TO :"pluto_read", :"pluto_write";
GRANT USAGE ON SCHEMA public TO :"pluto_read", :"pluto_write";

-- Reading: tenant search, records, reveal, erasure discovery and access
-- exports, the data-map check's row counts, restore comparisons. Every
-- table of the data map, nothing else. (pluto_write inherits this.)
GRANT SELECT ON
    businesses, users, memberships, bank_connections, bank_accounts, transactions,
    receipts, invoices, trips, trip_points, shifts, payroll_entries
TO :"pluto_read";

-- Writing, column by column: redaction (any personal column that is not an
-- identifier) and erasure's pseudonymise / null / redact actions. Not
-- granted: identifiers and keys, the generated users.phone_digits, external
-- references (receipts.s3_key, bank_connections.plaid_item_id: erasure
-- deletes the object or revokes the item instead) and credentials
-- (bank_connections.plaid_access_token: read only, to revoke the item).
-- UPDATE also lets redaction and erasure lock the rows they change
-- (SELECT ... FOR UPDATE).
GRANT UPDATE (email, full_name, phone) ON users TO :"pluto_write";
GRANT UPDATE (account_mask) ON bank_accounts TO :"pluto_write";
GRANT UPDATE (merchant, description) ON transactions TO :"pluto_write";
GRANT UPDATE (ocr_text, notes) ON receipts TO :"pluto_write";
GRANT UPDATE (customer_name, customer_email, customer_address) ON invoices TO :"pluto_write";
GRANT UPDATE (purpose) ON trips TO :"pluto_write";
GRANT UPDATE (lat, lon) ON trip_points TO :"pluto_write";
GRANT UPDATE (notes) ON shifts TO :"pluto_write";
GRANT UPDATE (tax_id, bank_account) ON payroll_entries TO :"pluto_write";

-- Deleting: erasure's `rows = "delete"` tables (real deletion, not a soft
-- delete). Tables retained under a legal hold get no DELETE.
GRANT DELETE ON users, memberships, receipts, trips, trip_points, shifts TO :"pluto_write";
