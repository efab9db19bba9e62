-- Operators of the console and their enrolled hardware keys. Roles are read
-- from here on every action, never from a flag or the environment.
CREATE TABLE operators (
    login           text PRIMARY KEY CHECK (login ~ '^[a-z_][a-z0-9_.-]{0,63}$'),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role            text NOT NULL CHECK (role IN ('support', 'compliance', 'sre', 'auditor', 'admin')),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'removed')),
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text
);

-- Enrolled second factors. Secrets are sealed under the master key
-- (AES-256-GCM, bound to the row's id, login and public id); public keys are
-- stored as enrolled. Rows are never deleted: a revoked key stays for the
-- audit log, which names keys by id and fingerprint.
CREATE TABLE operator_keys (
    id              uuid PRIMARY KEY,
    login           text NOT NULL REFERENCES operators(login),
    factor          text NOT NULL CHECK (factor IN ('yubico_otp', 'sk', 'piv', 'software')),
    label           text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    -- What a step-up proof names: the OTP public id, or the SHA256:...
    -- fingerprint of an sk, PIV or software key.
    fingerprint     text NOT NULL,
    -- Yubico OTP: the 12-character modhex public id (not secret).
    public_id       text CHECK (public_id ~ '^[cbdefghijklnrtuv]{12}$'),
    -- sk: the OpenSSH public key line; PIV: SubjectPublicKeyInfo DER;
    -- software: the 32-byte Ed25519 public key.
    public_key      bytea,
    -- PIV: the enrolled certificate (PEM), kept as it was given.
    certificate     text,
    -- Yubico OTP: AES key (16) || private id (6), sealed under the master
    -- key. NULL for a key checked by the validation server.
    secret_enc      bytea,
    -- Replay protection: the last accepted counters, only ever raised by a
    -- compare-and-set UPDATE.
    last_session_counter integer CHECK (last_session_counter BETWEEN 0 AND 32767),
    last_use_counter     integer CHECK (last_use_counter BETWEEN 0 AND 255),
    last_sign_counter    bigint CHECK (last_sign_counter BETWEEN 0 AND 4294967295),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    CHECK ((last_session_counter IS NULL) = (last_use_counter IS NULL)),
    CHECK (CASE WHEN factor = 'yubico_otp'
                THEN public_id IS NOT NULL AND fingerprint = public_id AND public_key IS NULL
                ELSE public_id IS NULL AND secret_enc IS NULL AND public_key IS NOT NULL
           END),
    CHECK (factor = 'piv' OR certificate IS NULL),
    CHECK (factor = 'sk' OR last_sign_counter IS NULL),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

-- One active enrolment per key: an OTP public id or a key fingerprint
-- names exactly one operator.
CREATE UNIQUE INDEX operator_keys_active_fingerprint ON operator_keys (factor, fingerprint)
    WHERE status = 'active';
CREATE INDEX operator_keys_login ON operator_keys (login);
