-- History of restore tests (src/core/restore): one row per run, pass or
-- fail, with every check. Evidence for audits (RPO / RTO drills).
CREATE TABLE restore_tests (
    id              uuid PRIMARY KEY,
    -- The backup source's name in the configuration, and the backup's id
    -- there (a file name for a `dir` source).
    source          text NOT NULL,
    backup_id       text NOT NULL,
    -- When the backup was taken, from the archive itself (NULL: unreadable).
    backup_taken_at timestamptz,
    backup_size     bigint NOT NULL CHECK (backup_size >= 0),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    verdict         text NOT NULL CHECK (verdict IN ('pass', 'fail')),
    -- [{"name", "passed", "skipped", "reason"}, ...] in the order run.
    checks          jsonb NOT NULL CHECK (jsonb_typeof(checks) = 'array'),
    -- How long pg_restore took (NULL: not reached), and the whole test.
    restore_ms      bigint CHECK (restore_ms >= 0),
    total_ms        bigint NOT NULL CHECK (total_ms >= 0),
    -- Age of the backup when the test started.
    backup_age_s    bigint,
    scratch_db      text,
    -- The full report as written (JSON form).
    report          jsonb NOT NULL,
    CHECK (finished_at >= started_at)
);

CREATE INDEX restore_tests_started ON restore_tests (started_at DESC);
CREATE INDEX restore_tests_source ON restore_tests (source, started_at DESC);
