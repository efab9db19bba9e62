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

CREATE TABLE operator_keys (
    id              uuid PRIMARY KEY,
    login           text NOT NULL REFERENCES operators(login),
    factor          text NOT NULL CHECK (factor IN ('yubico_otp', 'sk', 'piv', 'software')),
    label           text NOT NULL,
    -- Yubico OTP: the 12-character modhex public id (not secret).
    public_id       text,
    -- sk / PIV / software: the public key (OpenSSH text for sk, SPKI DER for PIV).
    public_key      bytea,
    -- Yubico OTP: AES key and private id, encrypted under the master key.
    secret_enc      bytea,
    -- Replay protection: the last accepted counters.
    last_session_counter integer,
    last_use_counter     integer,
    last_sign_counter    bigint,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

CREATE UNIQUE INDEX operator_keys_otp_public_id ON operator_keys (public_id)
    WHERE factor = 'yubico_otp' AND status = 'active';
CREATE INDEX operator_keys_login ON operator_keys (login);
