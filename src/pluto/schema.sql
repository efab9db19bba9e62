-- The synthetic Pluto schema: what charon's demo, tests and benchmarks run on.
-- charon does not own the real Pluto schema; this one mirrors its shape.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE businesses (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    plan        text NOT NULL CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    country     text NOT NULL,            -- ISO 3166-1 alpha-2
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    phone       text,                      -- as typed, e.g. +1 415-555-0134
    phone_digits text GENERATED ALWAYS AS (regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')) STORED,
    created_at  timestamptz NOT NULL
);

CREATE TABLE memberships (
    business_id uuid NOT NULL REFERENCES businesses(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    role        text NOT NULL CHECK (role IN ('employee', 'accountant', 'manager', 'owner', 'admin')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (business_id, user_id)
);

CREATE TABLE bank_connections (
    id            uuid PRIMARY KEY,
    business_id   uuid NOT NULL REFERENCES businesses(id),
    created_by    uuid NOT NULL REFERENCES users(id),
    institution   text NOT NULL,
    plaid_item_id text NOT NULL,           -- synthetic, never a real Plaid item
    status        text NOT NULL CHECK (status IN ('active', 'login_required', 'revoked')),
    created_at    timestamptz NOT NULL,
    plaid_access_token text                -- the credential /item/remove needs (synthetic)
);

CREATE TABLE bank_accounts (
    id            uuid PRIMARY KEY,
    business_id   uuid NOT NULL REFERENCES businesses(id),
    connection_id uuid NOT NULL REFERENCES bank_connections(id),
    name          text NOT NULL,
    account_mask  text NOT NULL,           -- last 4 digits, as Plaid gives them
    kind          text NOT NULL
);

CREATE TABLE transactions (
    id           bigint PRIMARY KEY,
    business_id  uuid NOT NULL REFERENCES businesses(id),
    account_id   uuid NOT NULL REFERENCES bank_accounts(id),
    posted_at    timestamptz NOT NULL,
    amount_cents bigint NOT NULL,
    merchant     text NOT NULL,
    description  text NOT NULL,
    category     text NOT NULL
);

CREATE TABLE receipts (
    id           bigint PRIMARY KEY,
    business_id  uuid NOT NULL REFERENCES businesses(id),
    uploaded_by  uuid NOT NULL REFERENCES users(id),
    s3_key       text NOT NULL,
    merchant     text NOT NULL,
    amount_cents bigint NOT NULL,
    receipt_date date NOT NULL,
    ocr_text     text NOT NULL,
    notes        text,
    created_at   timestamptz NOT NULL
);

CREATE TABLE invoices (
    id               bigint PRIMARY KEY,
    business_id      uuid NOT NULL REFERENCES businesses(id),
    number           text NOT NULL,
    customer_name    text NOT NULL,
    customer_email   text NOT NULL,
    customer_address text NOT NULL,
    amount_cents     bigint NOT NULL,
    issued_on        date NOT NULL,
    due_on           date NOT NULL,
    status           text NOT NULL CHECK (status IN ('draft', 'sent', 'paid', 'overdue', 'void')),
    created_at       timestamptz NOT NULL
);

CREATE TABLE trips (
    id          bigint PRIMARY KEY,
    business_id uuid NOT NULL REFERENCES businesses(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    distance_m  integer NOT NULL,
    purpose     text
);

CREATE TABLE trip_points (
    trip_id     bigint NOT NULL REFERENCES trips(id),
    seq         integer NOT NULL,
    business_id uuid NOT NULL REFERENCES businesses(id),
    recorded_at timestamptz NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    PRIMARY KEY (trip_id, seq)
);

CREATE TABLE shifts (
    id          bigint PRIMARY KEY,
    business_id uuid NOT NULL REFERENCES businesses(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    notes       text
);

CREATE TABLE payroll_entries (
    id             bigint PRIMARY KEY,
    business_id    uuid NOT NULL REFERENCES businesses(id),
    user_id        uuid NOT NULL REFERENCES users(id),
    period_start   date NOT NULL,
    period_end     date NOT NULL,
    gross_cents    bigint NOT NULL,
    net_cents      bigint NOT NULL,
    tax_id         text NOT NULL,          -- government id (synthetic SSN-shaped)
    bank_account   text NOT NULL,          -- account number the pay goes to
    paid_at        timestamptz NOT NULL
);
