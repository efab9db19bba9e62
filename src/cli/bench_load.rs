//! `charon bench load`: many console sessions at once, each through the one
//! dispatch point (authorised, audited, then run), doing what a support
//! engineer does: search tenants, open one, page its records, view a record.
//! Every action appends an audit entry, so this is also the audit log's
//! concurrent-append test.
//!
//! [`run_load`] is what both the benchmark and `tests/load.rs` call. Its
//! [`LoadReport`] holds the latency per action kind and the checks:
//! - no lost entry: per session, the audit log holds exactly the entries its
//!   actions should have written, and the log has no gap in `seq`;
//! - no forked entry: no two entries share a `prev_hash`, and
//!   [`audit::verify`] finds the chain intact;
//! - no deadlock: every session finishes within [`LoadOptions::grace`] after
//!   the run's end.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;
use uuid::Uuid;

use super::bench_table::{self, Figure, ms, pct};
use crate::core::Error;
use crate::core::action::{Action, GateInput, Reply};
use crate::core::audit::{self, AuditKey, Verdict};
use crate::core::config::{Config, DbUrl};
use crate::core::console::Console;
use crate::core::db;
use crate::core::records;
use crate::core::session::{Role, Session};

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent sessions (one console each, as many operators would have).
    pub sessions: usize,
    /// How long the sessions keep starting new actions.
    pub duration: Duration,
    /// Connections of the shared Pluto pool and of the shared console pool.
    pub pool_size: u32,
    /// Pause between two actions of one session (0: as fast as possible).
    pub think: Duration,
    /// After `duration`, how long the sessions may take to finish the
    /// action they are in before the run counts as deadlocked.
    pub grace: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            sessions: 50,
            duration: Duration::from_secs(180),
            pool_size: 20,
            think: Duration::ZERO,
            grace: Duration::from_secs(60),
        }
    }
}

/// The action kinds of the workload, in the order of a session's round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Search,
    OpenTenant,
    RecordsPage,
    RecordView,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Search, Op::OpenTenant, Op::RecordsPage, Op::RecordView];

    pub fn label(self) -> &'static str {
        match self {
            Op::Search => "tenant search",
            Op::OpenTenant => "tenant overview",
            Op::RecordsPage => "records page",
            Op::RecordView => "record view",
        }
    }
}

/// Latency of one action kind.
#[derive(Debug, Clone)]
pub struct OpStats {
    pub op: Op,
    pub ok: u64,
    pub failed: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
}

/// What one session did.
#[derive(Debug, Default)]
struct SessionLog {
    session_id: Uuid,
    times: HashMap<Op, Vec<Duration>>,
    failed: HashMap<Op, u64>,
    /// Audit entries its actions must have written.
    expected_entries: i64,
    /// Actions whose entry count cannot be known (the audit append itself
    /// failed, or the failure entry after a failed run may be missing).
    uncertain: u64,
    /// The first few error messages (never a value: core errors carry none).
    errors: Vec<String>,
}

/// The result of a load run: figures and checks.
#[derive(Debug)]
pub struct LoadReport {
    pub sessions: usize,
    /// From the first action to the last session's end.
    pub elapsed: Duration,
    pub stats: Vec<OpStats>,
    pub succeeded: u64,
    pub failed: u64,
    /// Distinct error messages seen (at most 10).
    pub errors: Vec<String>,
    /// Sessions still running `grace` after the end (deadlock).
    pub stuck_sessions: usize,
    /// Audit entries written during the run, and how many the actions
    /// account for.
    pub audit_entries: i64,
    pub expected_entries: i64,
    /// Actions whose entry count is uncertain (see [`SessionLog`]); 0 in a clean run.
    pub uncertain: u64,
    /// Sessions whose entries in the log differ from their actions.
    pub sessions_mismatched: Vec<String>,
    /// `seq` values missing between the first and last entry of the run.
    pub seq_gaps: i64,
    /// Entries sharing a `prev_hash` with another (a fork).
    pub forked: i64,
    pub verdict: Verdict,
}

impl LoadReport {
    /// Everything that makes the run a failure, in plain words; empty when
    /// the run is clean.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.stuck_sessions > 0 {
            p.push(format!(
                "{} sessions did not finish in time (deadlock or hang)",
                self.stuck_sessions
            ));
        }
        if self.failed > 0 {
            p.push(format!(
                "{} actions failed: {}",
                self.failed,
                self.errors.join("; ")
            ));
        }
        if self.audit_entries != self.expected_entries || self.uncertain > 0 {
            p.push(format!(
                "audit entries written during the run: {}, accounted for by the actions: {} ({} uncertain)",
                self.audit_entries, self.expected_entries, self.uncertain
            ));
        }
        if !self.sessions_mismatched.is_empty() {
            p.push(format!(
                "sessions whose entries do not match their actions: {}",
                self.sessions_mismatched.join(", ")
            ));
        }
        if self.seq_gaps != 0 {
            p.push(format!(
                "{} seq values missing in the audit log",
                self.seq_gaps
            ));
        }
        if self.forked != 0 {
            p.push(format!(
                "{} audit entries share their prev_hash with another (fork)",
                self.forked
            ));
        }
        if !self.verdict.is_intact() {
            p.push(format!("audit verify: {}", self.verdict));
        }
        if self.succeeded == 0 {
            p.push("no action succeeded".into());
        }
        p
    }

    /// The Markdown table: p50/p95/max per action kind, throughput, checks.
    pub fn table(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nload: {} sessions through Console::dispatch, {:.0} s\n",
            self.sessions, secs
        );
        let _ = writeln!(
            s,
            "| action | done | failed | p50 | p95 | max | per second |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
        for st in &self.stats {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} |",
                st.op.label(),
                st.ok,
                st.failed,
                ms(st.p50),
                ms(st.p95),
                ms(st.max),
                st.ok as f64 / secs
            );
        }
        let _ = writeln!(
            s,
            "| all | {} | {} | | | | {:.0} |",
            self.succeeded,
            self.failed,
            self.succeeded as f64 / secs
        );
        let _ = writeln!(
            s,
            "\naudit: {} entries written during the run, {} accounted for by the actions; \
             seq gaps {}, forks {}; verify: {}; sessions stuck: {}",
            self.audit_entries,
            self.expected_entries,
            self.seq_gaps,
            self.forked,
            self.verdict,
            self.stuck_sessions
        );
        s
    }
}

/// What the sessions pick from: queries as an operator types them and
/// tenant ids, drawn from the seeded data.
struct Work {
    queries: Vec<String>,
    tenants: Vec<Uuid>,
}

async fn work(pluto: &PgPool) -> anyhow::Result<Work> {
    let queries: Vec<String> = super::bench::sample_queries(pluto, 200)
        .await?
        .into_iter()
        .flat_map(|(_, qs)| qs)
        .collect();
    let tenants: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM businesses ORDER BY random() LIMIT 500")
            .fetch_all(pluto)
            .await?;
    if queries.is_empty() || tenants.is_empty() {
        anyhow::bail!("the Pluto database has no tenants: seed it first (`charon seed`)");
    }
    Ok(Work { queries, tenants })
}

/// Runs the load on `config`'s two databases (the Pluto one seeded, the
/// console one migrated) and checks the audit log afterwards.
pub async fn run_load(config: &Config, opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let key = config.audit.load_key()?;
    let pluto = db::connect_sized(
        &config.pluto_read_url,
        db::PLUTO,
        &config.timeouts,
        opts.pool_size,
    )
    .await?;
    let console_pool = db::connect_sized(
        &config.console_url,
        db::CONSOLE,
        &config.timeouts,
        opts.pool_size,
    )
    .await?;
    db::check_console_schema(&console_pool).await?;
    let work = std::sync::Arc::new(work(&pluto).await?);

    // One console per session over the shared pools and one audit key (the
    // deployment's). Each passes the gate with its own demo software key;
    // one after the other, as the demo operator is created on first use.
    let mut consoles = Vec::with_capacity(opts.sessions);
    for _ in 0..opts.sessions {
        let c = Console::from_pools(
            config,
            Session::demo(Role::Support),
            pluto.clone(),
            console_pool.clone(),
            key.clone(),
        )?;
        c.dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
            .await?;
        consoles.push(c);
    }
    let before: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_log")
        .fetch_one(&console_pool)
        .await?;

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, console) in consoles.into_iter().enumerate() {
        let work = std::sync::Arc::clone(&work);
        let think = opts.think;
        tasks.spawn(session(console, work, i as u64, deadline, think));
    }
    let mut logs = Vec::new();
    let bound = deadline + opts.grace;
    loop {
        match tokio::time::timeout_at(bound, tasks.join_next()).await {
            Ok(Some(Ok(log))) => logs.push(log),
            Ok(Some(Err(e))) => anyhow::bail!("a session task panicked: {e}"),
            Ok(None) => break,
            Err(_) => break,
        }
    }
    let stuck_sessions = tasks.len();
    tasks.abort_all();
    let elapsed = started.elapsed();

    let mut report = summarise(opts.sessions, elapsed, stuck_sessions, &logs);
    check_audit(&mut report, &console_pool, &key, before, &logs).await?;
    pluto.close().await;
    console_pool.close().await;
    Ok(report)
}

/// One session: rounds of search, tenant overview, a records page and one
/// record of it, until the deadline.
async fn session(
    console: Console,
    work: std::sync::Arc<Work>,
    seed: u64,
    deadline: tokio::time::Instant,
    think: Duration,
) -> SessionLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut log = SessionLog {
        session_id: console.session().id,
        ..SessionLog::default()
    };
    while tokio::time::Instant::now() < deadline {
        let query = work.queries[rng.gen_range(0..work.queries.len())].clone();
        let tenant = work.tenants[rng.gen_range(0..work.tenants.len())];
        let kind = records::Kind::ALL[rng.gen_range(0..records::Kind::ALL.len())];
        timed(
            &console,
            &mut log,
            Op::Search,
            Action::SearchTenants { query },
        )
        .await;
        timed(
            &console,
            &mut log,
            Op::OpenTenant,
            Action::OpenTenant {
                business_id: tenant,
            },
        )
        .await;
        let page = timed(
            &console,
            &mut log,
            Op::RecordsPage,
            Action::RecordsList {
                tenant,
                kind,
                query: records::Query::default(),
            },
        )
        .await;
        if let Some(Reply::Records(page)) = page
            && !page.rows.is_empty()
        {
            let row = &page.rows[rng.gen_range(0..page.rows.len())];
            timed(
                &console,
                &mut log,
                Op::RecordView,
                Action::RecordShow {
                    tenant,
                    kind,
                    id: row.id,
                },
            )
            .await;
        }
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
    }
    log
}

/// Dispatches one action, timing it and counting the audit entries it
/// must have written: 1 when it ran (the `allowed` entry) or was refused
/// (the `denied` entry); 2 when it failed while running (`allowed`, then
/// `failed`).
async fn timed(console: &Console, log: &mut SessionLog, op: Op, action: Action) -> Option<Reply> {
    let t = Instant::now();
    let result = console.dispatch(action).await;
    let took = t.elapsed();
    match result {
        Ok(reply) => {
            log.times.entry(op).or_default().push(took);
            log.expected_entries += 1;
            Some(reply)
        }
        Err(e) => {
            *log.failed.entry(op).or_default() += 1;
            match &e {
                Error::AuditUnavailable(_) => log.uncertain += 1,
                Error::Forbidden(_) | Error::MfaRequired(_) => log.expected_entries += 1,
                _ => {
                    // The failure entry is best effort: count it uncertain
                    // only if the log disagrees (checked afterwards).
                    log.expected_entries += 2;
                }
            }
            if log.errors.len() < 3 {
                log.errors.push(format!("{}: {e}", op.label()));
            }
            None
        }
    }
}

fn summarise(
    sessions: usize,
    elapsed: Duration,
    stuck_sessions: usize,
    logs: &[SessionLog],
) -> LoadReport {
    let mut all: BTreeMap<Op, (Vec<Duration>, u64)> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    for l in logs {
        for (op, t) in &l.times {
            all.entry(*op).or_default().0.extend(t);
        }
        for (op, n) in &l.failed {
            all.entry(*op).or_default().1 += n;
        }
        for e in &l.errors {
            if errors.len() < 10 && !errors.contains(e) {
                errors.push(e.clone());
            }
        }
    }
    let stats: Vec<OpStats> = Op::ALL
        .into_iter()
        .map(|op| {
            let (mut t, failed) = all.remove(&op).unwrap_or_default();
            OpStats {
                op,
                ok: t.len() as u64,
                failed,
                p50: pct(&mut t, 50),
                p95: pct(&mut t, 95),
                max: t.last().copied().unwrap_or_default(),
            }
        })
        .collect();
    LoadReport {
        sessions,
        elapsed,
        succeeded: stats.iter().map(|s| s.ok).sum(),
        failed: stats.iter().map(|s| s.failed).sum(),
        stats,
        errors,
        stuck_sessions,
        audit_entries: 0,
        expected_entries: logs.iter().map(|l| l.expected_entries).sum(),
        uncertain: logs.iter().map(|l| l.uncertain).sum(),
        sessions_mismatched: Vec::new(),
        seq_gaps: 0,
        forked: 0,
        verdict: Verdict::Intact {
            from: 0,
            to: 0,
            entries: 0,
        },
    }
}

/// Counts, per session, the entries written after `before`; looks for gaps
/// and forks; verifies the whole chain.
async fn check_audit(
    report: &mut LoadReport,
    pool: &PgPool,
    key: &AuditKey,
    before: i64,
    logs: &[SessionLog],
) -> anyhow::Result<()> {
    let (count, first, last): (i64, Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT count(*), min(seq), max(seq) FROM audit_log WHERE seq > $1")
            .bind(before)
            .fetch_one(pool)
            .await?;
    report.audit_entries = count;
    report.seq_gaps = match (first, last) {
        (Some(f), Some(l)) => (l - f + 1) - count + (f - before - 1),
        _ => 0,
    };
    report.forked = sqlx::query_scalar(
        "SELECT coalesce(sum(n), 0)::bigint FROM (
             SELECT count(*) AS n FROM audit_log GROUP BY prev_hash HAVING count(*) > 1
         ) f",
    )
    .fetch_one(pool)
    .await?;
    let per_session: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT session_id, count(*) FROM audit_log WHERE seq > $1 GROUP BY session_id",
    )
    .bind(before)
    .fetch_all(pool)
    .await?;
    let per_session: HashMap<Uuid, i64> = per_session.into_iter().collect();
    for l in logs {
        let found = per_session.get(&l.session_id).copied().unwrap_or(0);
        if found != l.expected_entries && l.uncertain == 0 {
            report.sessions_mismatched.push(format!(
                "{} ({} entries, {} expected)",
                l.session_id, found, l.expected_entries
            ));
        }
    }
    report.verdict = audit::verify(pool, key, None, None, |_| {}).await?;
    Ok(())
}

/// `charon bench load`: a throwaway cluster (or the server in
/// `DATABASE_URL`), seeded, then [`run_load`]; prints the table and exits 1
/// when a check failed.
pub(super) async fn run(tenants: u32, seed: u64, opts: LoadOptions) -> anyhow::Result<i32> {
    let server = super::demo::start_server().await?;
    let (pluto, console) = server.urls();
    let pluto = DbUrl::parse(&pluto).map_err(anyhow::Error::msg)?;
    let console = DbUrl::parse(&console).map_err(anyhow::Error::msg)?;
    super::demo::seed_into(&pluto, tenants, seed).await?;
    let config = Config::demo(pluto, console);
    super::demo::migrate_console_at(&config).await?;
    eprintln!(
        "charon bench load: {} sessions for {} s…",
        opts.sessions,
        opts.duration.as_secs()
    );
    let report = run_load(&config, &opts).await?;
    drop(server);
    println!("{}", report.table());
    let problems = report.problems();
    for p in &problems {
        eprintln!("charon bench load: FAILED: {p}");
    }
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let mut figures: Vec<Figure> = report
        .stats
        .iter()
        .map(|st| {
            Figure::new(
                format!(
                    "load, {} sessions for {secs:.0} s: {} p95",
                    report.sessions,
                    st.op.label()
                ),
                "recorded (no target)",
                ms(st.p95),
                format!("p50 {}, {:.0} /s", ms(st.p50), st.ok as f64 / secs),
                None,
            )
        })
        .collect();
    figures.push(Figure::new(
        format!(
            "load, {} sessions: audit entries lost or forked, sessions stuck, actions failed",
            report.sessions
        ),
        "none; verify passes, count matches",
        if problems.is_empty() {
            format!(
                "none: {} entries, all accounted for, verify intact",
                report.audit_entries
            )
        } else {
            problems.join("; ")
        },
        format!("{:.0} actions/s in all", report.succeeded as f64 / secs),
        Some(problems.is_empty()),
    ));
    bench_table::record(&figures)?;
    Ok(if problems.is_empty() { 0 } else { 1 })
}
