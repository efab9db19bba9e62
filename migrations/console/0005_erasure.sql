-- Data-subject erasure requests (docs/erasure.md). The subject's e-mail and
-- phone are never stored in clear: only a masked reference for display and
-- keyed hashes (HMAC-SHA256) to check the identifiers given at execution.
CREATE TABLE erasure_requests (
    id              uuid PRIMARY KEY,
    subject_ref     text NOT NULL,
    subject_hashes  jsonb NOT NULL CHECK (jsonb_typeof(subject_hashes) = 'array'),
    ticket          text NOT NULL CHECK (length(btrim(ticket)) BETWEEN 1 AND 200),
    regime          text NOT NULL CHECK (regime IN ('gdpr', 'ccpa', 'custom')),
    note            text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'draft'
                    CHECK (state IN ('draft', 'planned', 'approved', 'executing', 'done', 'failed')),
    created_by      text NOT NULL,
    approved_by     text,
    approved_at     timestamptz,
    executed_by     text,
    plan            jsonb,
    plan_sha256     text CHECK (plan_sha256 ~ '^[0-9a-f]{64}$'),
    executed_at     timestamptz,
    failure         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (approved_by IS NULL OR approved_by <> created_by),
    CHECK (due_at >= received_at),
    CHECK (state NOT IN ('approved', 'executing', 'done') OR approved_by IS NOT NULL),
    CHECK ((plan IS NULL) = (plan_sha256 IS NULL))
);

CREATE INDEX erasure_requests_state ON erasure_requests (state, due_at);

-- External steps (object deletions, Plaid item removals), written in the
-- same logical step as the Pluto transaction, run later with retries.
CREATE TABLE erasure_external_queue (
    id          bigserial PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES erasure_requests(id),
    system      text NOT NULL,
    object      text NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, system, object)
);

CREATE INDEX erasure_external_queue_pending ON erasure_external_queue (state) WHERE state = 'pending';

-- What a restore must re-apply: internal user ids and keyed hashes of the
-- identifiers, never an e-mail or phone in clear.
CREATE TABLE erasure_ledger (
    id                bigserial PRIMARY KEY,
    request_id        uuid NOT NULL UNIQUE REFERENCES erasure_requests(id),
    user_ids          uuid[] NOT NULL,
    identifier_hashes jsonb NOT NULL CHECK (jsonb_typeof(identifier_hashes) = 'array'),
    executed_at       timestamptz NOT NULL
);
