-- charon's own database: console sessions. Later migrations add operators,
-- keys, the audit log, redactions, erasure requests and restore-test history.
CREATE TABLE console_sessions (
    id          uuid PRIMARY KEY,
    operator    text NOT NULL,
    role        text NOT NULL,
    demo        boolean NOT NULL,
    environment text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
