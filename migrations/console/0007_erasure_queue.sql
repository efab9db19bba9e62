-- Erasure, second part (docs/erasure.md): access requests, crash-safe
-- execution, the external queue's retries, and the stored certificate.

-- 'access' requests run the same discovery and export what was found.
ALTER TABLE erasure_requests
    ADD COLUMN kind text NOT NULL DEFAULT 'erasure' CHECK (kind IN ('erasure', 'access')),
    ADD COLUMN planned_by text,
    ADD COLUMN planned_at timestamptz,
    -- The Pluto transaction that applies the plan, written (before that
    -- transaction commits) in the same console transaction as the queue and
    -- the ledger; after a crash, pg_xact_status() on Pluto says whether it
    -- committed.
    ADD COLUMN pluto_xid text CHECK (pluto_xid ~ '^[0-9]+$'),
    ADD COLUMN pluto_committed_at timestamptz,
    -- Rows and objects, as the execution counted them (JSON object).
    ADD COLUMN result jsonb,
    -- The certificate, fixed once the request is done, and its SHA-256.
    ADD COLUMN certificate jsonb,
    ADD COLUMN certificate_sha256 text CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT erasure_done_has_certificate
        CHECK (state <> 'done' OR certificate IS NOT NULL);

-- Retries with a back-off; a sealed secret (e.g. a Plaid access token,
-- AES-GCM with the master key) that the step needs, wiped once it is done.
ALTER TABLE erasure_external_queue
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN payload bytea,
    ADD COLUMN done_at timestamptz,
    -- What the external system said (e.g. "already deleted"), never a secret.
    ADD COLUMN outcome text;

-- Access requests export; they leave no ledger entry (nothing is erased).
