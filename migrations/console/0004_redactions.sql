-- Permanent redactions of values in the Pluto database: one row per field
-- changed. What was removed is kept only as a keyed hash (HMAC-SHA256 under
-- the redaction key), never as the value. Rows are written `pending` before
-- the Pluto transaction commits and marked `applied` (or `failed`) after.
CREATE TABLE redactions (
    id             uuid PRIMARY KEY,
    -- One apply (one field, or one detector sweep across a tenant).
    batch_id       uuid NOT NULL,
    business_id    uuid NOT NULL,
    table_name     text NOT NULL,
    -- The row's primary key, column name to value as text: {"id": "42"}.
    row_key        jsonb NOT NULL CHECK (jsonb_typeof(row_key) = 'object'),
    column_name    text NOT NULL,
    method         text NOT NULL CHECK (method IN ('span', 'null')),
    detector       text CHECK (detector IN ('card', 'iban', 'email', 'phone')),
    matches        integer NOT NULL CHECK (matches >= 1),
    old_value_hmac bytea NOT NULL CHECK (octet_length(old_value_hmac) = 32),
    operator       text NOT NULL,
    reason         text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 2000),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    applied_at     timestamptz,
    CHECK ((method = 'span') = (detector IS NOT NULL)),
    CHECK ((status = 'applied') = (applied_at IS NOT NULL))
);

CREATE INDEX redactions_business ON redactions (business_id, created_at);
CREATE INDEX redactions_batch ON redactions (batch_id);
