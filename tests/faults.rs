//! PostgreSQL stopped in the middle of a session. Pluto and the console
//! database each live in a PRIVATE cluster started here (the demo's
//! throwaway cluster: initdb into a temporary directory, Unix socket only,
//! run as `postgres` when we are root), so that stopping one never touches
//! the machine's shared server.
//!
//! Through the real binary in tmux: when the Pluto cluster stops, the TUI
//! says the database is unreachable, shows no data, runs nothing unaudited,
//! does not crash, and works again once the server is back. The same for
//! the console database (the audit log unreachable: every action refused).
//! And the CLI: a command against a stopped database exits non-zero with a
//! clear message, quickly, without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use charon::core::audit::{self, AuditKey};
use charon::core::config::DbUrl;
use charon::core::operators;
use charon::core::session::Role;
use charon::demo::Cluster;
use charon::pluto::seed::{SeedOptions, seed};
use common::cli::{Binary, TestOtpKey};
use common::tmux::{Tmux, charon_bin, sh_quote, tmux};
use sqlx::{Connection, PgConnection, PgPool};

/// The hex audit key `Binary` gives the binary (`CHARON_AUDIT_KEY`).
const AUDIT_KEY_HEX: &str = "abababababababababababababababababababababababababababababababab";
const MASTER: [u8; 32] = [9u8; 32];

/// How long a stopped database may take to be reported (the default
/// `connect_secs` is 5; the console database is asked at most twice per
/// action). Far below sqlx's own 30 s default.
const REPORTED_WITHIN: Duration = Duration::from_secs(15);

/// One private cluster holding one database.
struct Db {
    cluster: Cluster,
    url: DbUrl,
}

impl Db {
    async fn start(name: &str) -> Db {
        let cluster = tokio::task::spawn_blocking(Cluster::start)
            .await
            .unwrap()
            .expect("a private PostgreSQL cluster (postgresql installed)");
        let mut admin = PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let url = DbUrl::parse(&cluster.url(name)).unwrap();
        Db { cluster, url }
    }

    async fn pool(&self) -> PgPool {
        PgPool::connect(self.url.expose()).await.unwrap()
    }

    fn stop(&self) {
        self.cluster.stop_server().unwrap();
    }

    fn start_again(&self) {
        self.cluster.start_server("").unwrap();
    }
}

/// Pluto (seeded) and the console database (migrated, with a support
/// operator for this OS account and its OTP key), each in its own cluster.
struct Setup {
    pluto: Db,
    console: Db,
    key: TestOtpKey,
    bin: Binary,
    /// A tenant name that a search finds.
    tenant: String,
}

async fn setup() -> Setup {
    let (pluto, console) = tokio::join!(Db::start("pluto"), Db::start("console"));
    let p = pluto.pool().await;
    seed(
        &p,
        &SeedOptions {
            tenants: 30,
            seed: 11,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let tenant: String = sqlx::query_scalar("SELECT name FROM businesses ORDER BY name LIMIT 1")
        .fetch_one(&p)
        .await
        .unwrap();
    p.close().await;
    let c = console.pool().await;
    charon::core::db::migrate_console(&c).await.unwrap();
    let login = operators::os_account().unwrap();
    operators::add(&c, "test", &login, "CI Support", Role::Support)
        .await
        .unwrap();
    let key = TestOtpKey {
        public_id: "cccccbhkevbl",
        aes: [0x21; 16],
        private_id: [6, 5, 4, 3, 2, 1],
    };
    key.enroll(&c, MASTER, &login).await;
    c.close().await;
    let bin = Binary::new(&pluto.url, &console.url, MASTER);
    Setup {
        pluto,
        console,
        key,
        bin,
        tenant,
    }
}

impl Setup {
    /// The audit log is intact, and its last entries (newest last).
    async fn audit_tail(&self, n: i64) -> Vec<(String, String, Option<String>)> {
        let c = self.console.pool().await;
        let key = AuditKey::from_hex(AUDIT_KEY_HEX).unwrap();
        let verdict = audit::verify(&c, &key, None, None, |_| {}).await.unwrap();
        assert!(verdict.is_intact(), "{verdict}");
        let mut rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT action, outcome::text, error FROM audit_log ORDER BY seq DESC LIMIT $1",
        )
        .bind(n)
        .fetch_all(&c)
        .await
        .unwrap();
        c.close().await;
        rows.reverse();
        rows
    }

    /// `tenants search` through the CLI with `db` stopped (`which` names
    /// it), the `n`-th OTP on stdin: a non-zero exit within the bound, a
    /// message naming the database and why, no result, no panic. Starts
    /// the database again afterwards.
    fn search_with_stopped(&self, db: &Db, which: &str, n: u8) {
        db.stop();
        let t = Instant::now();
        let (code, out, err) = self.bin.run(
            &["tenants", "search", &query_for(&self.tenant)],
            &format!("{}\n", self.key.otp(n)),
        );
        let took = t.elapsed();
        println!("cli, {which} stopped: {took:?}\n{err}");
        assert!(matches!(code, Some(c) if c != 0), "{code:?} {out} {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(which)
                && err.contains("unavailable")
                && err.contains("no server is listening"),
            "{err}"
        );
        assert!(!out.contains(&self.tenant), "{out}");
        assert!(took < REPORTED_WITHIN, "{took:?}");
        db.start_again();
    }
}

/// The TUI in tmux (tests/common/tmux.rs), with this setup's keys and
/// configuration.
struct Term(Tmux);

impl std::ops::Deref for Term {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.0
    }
}

impl Term {
    fn start(name: &str, bin: &Binary, args: &str) -> Term {
        let cmd = format!(
            "exec env CHARON_AUDIT_KEY={AUDIT_KEY_HEX} CHARON_MASTER_KEY={} {} --config {} {args}",
            hex::encode(bin.master),
            sh_quote(&charon_bin().to_string_lossy()),
            sh_quote(&bin.cfg.to_string_lossy()),
        );
        Term(Tmux::start(&format!("faults-{name}"), &cmd, 140, 40))
    }

    fn alive(&self) -> bool {
        !self.dead()
    }

    /// Replaces the search input's text (the input has focus).
    fn search(&self, query: &str) {
        for _ in 0..40 {
            tmux(&["send-keys", "-t", &self.session, "BSpace"]);
        }
        self.type_text(query);
    }

    /// Past the gate with the key's `n`th OTP, on the search screen.
    fn pass_gate(&self, key: &TestOtpKey, n: u8) {
        self.wait_for("OTP", Duration::from_secs(30));
        self.type_text(&key.otp(n));
        self.keys(&["Enter"]);
        self.wait_for("Find a tenant", Duration::from_secs(30));
    }
}

/// A word of the tenant's name that a search finds it by.
fn query_for(name: &str) -> String {
    name.split_whitespace().next().unwrap_or(name).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn tui_pluto_stopped_mid_session_says_unreachable_refuses_and_resumes() {
    let s = setup().await;
    let term = Term::start("pluto", &s.bin, "tui");
    term.pass_gate(&s.key, 1);
    let q = query_for(&s.tenant);
    term.search(&q);
    term.wait_for(&s.tenant, Duration::from_secs(15));

    s.pluto.stop();
    let stopped = Instant::now();
    term.search(&format!("{q} "));
    let screen = term.wait_for("unreachable", REPORTED_WITHIN);
    println!(
        "pluto stopped: reported after {:.1} s\n{screen}",
        stopped.elapsed().as_secs_f64()
    );
    assert!(
        screen.contains("database unreachable — pluto:"),
        "names the database:\n{screen}"
    );
    assert!(
        !screen.contains(&s.tenant),
        "fail closed: no tenant shown while Pluto is down:\n{screen}"
    );
    assert!(term.alive(), "charon exited:\n{screen}");
    // Audited before it ran, and its failure audited too.
    let tail = s.audit_tail(2).await;
    assert_eq!(tail[0].0, "tenant.search", "{tail:?}");
    assert_eq!(tail[0].1, "allowed", "{tail:?}");
    assert_eq!(tail[1].1, "failed", "{tail:?}");
    assert_eq!(tail[1].2.as_deref(), Some("unavailable"), "{tail:?}");

    // Back: the same session carries on, no new gate.
    s.pluto.start_again();
    term.search(&q);
    let screen = term.wait_for(&s.tenant, Duration::from_secs(15));
    assert!(!screen.contains("unreachable"), "{screen}");
    assert!(term.alive());
    let tail = s.audit_tail(1).await;
    assert_eq!(
        (tail[0].0.as_str(), tail[0].1.as_str()),
        ("tenant.search", "allowed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tui_console_database_stopped_refuses_every_action_and_resumes() {
    let s = setup().await;
    let term = Term::start("console", &s.bin, "tui");
    term.pass_gate(&s.key, 1);
    let q = query_for(&s.tenant);
    term.search(&q);
    term.wait_for(&s.tenant, Duration::from_secs(15));
    let before = s.audit_tail(1000).await.len();

    s.console.stop();
    let stopped = Instant::now();
    term.search(&format!("{q} "));
    let screen = term.wait_for("audit log unavailable", REPORTED_WITHIN);
    println!(
        "console stopped: reported after {:.1} s\n{screen}",
        stopped.elapsed().as_secs_f64()
    );
    assert!(
        screen.contains("action refused (console:"),
        "names the database:\n{screen}"
    );
    assert!(
        !screen.contains(&s.tenant),
        "fail closed: nothing shown without an audit entry:\n{screen}"
    );
    assert!(term.alive(), "charon exited:\n{screen}");
    // Another action (open the records of nothing: a different search) is
    // refused the same way.
    term.search("zz");
    term.wait_for("audit log unavailable", REPORTED_WITHIN);
    assert!(term.alive());

    s.console.start_again();
    term.search(&q);
    let screen = term.wait_for(&s.tenant, Duration::from_secs(15));
    assert!(term.alive(), "{screen}");
    // Nothing ran while the log was down; the entries since are the search
    // that worked again, and the chain is intact across the outage.
    let tail = s.audit_tail(1000).await;
    let new: Vec<_> = tail[before..].to_vec();
    assert!(
        new.iter()
            .all(|(a, o, _)| a == "tenant.search" && o == "allowed"),
        "{new:?}"
    );
    assert!(!new.is_empty(), "{new:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_against_a_stopped_database_exits_non_zero_with_a_clear_message() {
    let s = setup().await;
    let (code, out, err) = s.bin.run(
        &["tenants", "search", &query_for(&s.tenant)],
        &format!("{}\n", s.key.otp(1)),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&s.tenant), "{out}");

    // Pluto stopped: the console opens (it is reached first for the gate
    // only when Pluto is there too), so the command fails at connect.
    s.search_with_stopped(&s.pluto, "pluto", 2);
    // The console database stopped.
    s.search_with_stopped(&s.console, "console", 3);

    // Both back: the same command works again.
    let (code, out, err) = s.bin.run(
        &["tenants", "search", &query_for(&s.tenant)],
        &format!("{}\n", s.key.otp(4)),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&s.tenant), "{out}");
}

/// SIGSTOPs a cluster's postmaster and every backend (a server that hangs
/// rather than closes its connections, as a frozen VM or a network
/// partition does); SIGCONT again when dropped, whatever the test did.
struct Frozen(Vec<nix::unistd::Pid>);

impl Frozen {
    fn freeze(cluster: &Cluster) -> Frozen {
        use nix::sys::signal::{Signal, kill};
        let pidfile = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
        let postmaster: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![nix::unistd::Pid::from_raw(postmaster)];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so after ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(nix::unistd::Pid::from_raw(pid));
            }
        }
        for p in &pids {
            kill(*p, Signal::SIGSTOP).unwrap();
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGCONT);
        }
    }
}

/// A server that stops answering (SIGSTOP) instead of closing: the action
/// is refused with a clear message within the configured timeouts, not
/// left hanging, and the session carries on once the server answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_server_is_reported_within_the_timeouts_not_hung() {
    use charon::core::action::{Action, GateInput, Reply};
    use charon::core::console::Console;
    use charon::core::session::Session;

    let s = setup().await;
    let config = charon::core::config::Config::demo(s.pluto.url.clone(), s.console.url.clone());
    let console = Console::connect(&config, Session::demo(Role::Support))
        .await
        .unwrap();
    console
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    let search = || Action::SearchTenants {
        query: query_for(&s.tenant),
    };
    assert!(matches!(
        console.dispatch(search()).await.unwrap(),
        Reply::Tenants(_)
    ));
    let bound = config.timeouts.connect + config.timeouts.statement + Duration::from_secs(5);

    for (which, db) in [("pluto", &s.pluto), ("console", &s.console)] {
        let frozen = Frozen::freeze(&db.cluster);
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(60), console.dispatch(search())).await;
        let took = t.elapsed();
        drop(frozen);
        println!("{which} frozen: {took:?} {r:?}");
        let e = r
            .unwrap_or_else(|_| panic!("{which} frozen: the action hung for 60 s"))
            .unwrap_err();
        assert!(took < bound, "{which} frozen: {took:?}, bound {bound:?}");
        let msg = e.to_string();
        assert!(msg.contains(which), "{msg}");
        // Back: the same console carries on.
        let mut back = None;
        for _ in 0..50 {
            match console.dispatch(search()).await {
                Ok(r) => {
                    back = Some(r);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        assert!(
            matches!(back, Some(Reply::Tenants(ref hits)) if !hits.is_empty()),
            "{which}: {back:?}"
        );
    }
    let c = s.console.pool().await;
    let verdict = audit::verify(&c, &config.audit.load_key().unwrap(), None, None, |_| {}).await;
    // The demo configuration's key is random per load: only check it runs.
    assert!(verdict.is_ok(), "{verdict:?}");
}

/// The server freezes while a query is in flight (here: the search waits
/// on a lock another session holds, then the server stops answering, so
/// its statement timeout can never fire): the action still ends within a
/// bound, with the database named, and the session carries on.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_frozen_mid_query_does_not_hang_the_action() {
    use charon::core::action::{Action, GateInput, Reply};
    use charon::core::console::Console;
    use charon::core::session::Session;

    let s = setup().await;
    let config = charon::core::config::Config::demo(s.pluto.url.clone(), s.console.url.clone());
    let console = Console::connect(&config, Session::demo(Role::Support))
        .await
        .unwrap();
    console
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    let search = || Action::SearchTenants {
        query: query_for(&s.tenant),
    };
    console.dispatch(search()).await.unwrap();

    let mut locker = PgConnection::connect(s.pluto.url.expose()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE businesses IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let c2 = console.clone();
    let q = search();
    let t = Instant::now();
    let task = tokio::spawn(async move { c2.dispatch(q).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen = Frozen::freeze(&s.pluto.cluster);
    let r = tokio::time::timeout(Duration::from_secs(60), task).await;
    let took = t.elapsed();
    drop(frozen);
    drop(locker);
    println!("frozen mid-query: {took:?} {r:?}");
    let e = r
        .expect("the action hung for 60 s on a frozen server")
        .unwrap()
        .unwrap_err();
    let bound = config.timeouts.connect + 2 * config.timeouts.statement + Duration::from_secs(5);
    assert!(took < bound, "{took:?}, bound {bound:?}");
    assert!(e.to_string().contains("pluto"), "{e}");
    let mut back = None;
    for _ in 0..50 {
        match console.dispatch(search()).await {
            Ok(r) => {
                back = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(matches!(back, Some(Reply::Tenants(_))), "{back:?}");
}

/// A `BEGIN` cut off by a timeout while the server was frozen (sqlx 0.9.0
/// then leaves the connection inside that transaction: sqlx issue #4393)
/// must never give the next borrower a connection inside a transaction:
/// its autocommit statements (an audit entry, a redaction record) would
/// run in the stale transaction, never commit, and be lost. charon's pools
/// close such a connection when it comes back (`db::connect_sized`).
#[tokio::test(flavor = "multi_thread")]
async fn a_begin_cut_off_by_a_timeout_never_leaves_a_pooled_connection_in_a_transaction() {
    use charon::core::config::Timeouts;
    use charon::core::db;

    let d = Db::start("cutoff").await;
    // One connection, so the next statement must get the same one back
    // (or a new one, if the pool closed it).
    let pool = db::connect_sized(&d.url, db::CONSOLE, &Timeouts::default(), 1)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE entries (n int)")
        .execute(&pool)
        .await
        .unwrap();

    // The connection is taken from the pool while the server answers (the
    // pool's check of an idle connection is a round trip), then the server
    // freezes with the BEGIN in flight, as in `pool.begin()` on a server
    // that stops answering between the two.
    let mut conn = pool.acquire().await.unwrap();
    let frozen = Frozen::freeze(&d.cluster);
    let cut = tokio::time::timeout(Duration::from_millis(500), conn.begin())
        .await
        .is_err();
    assert!(cut, "BEGIN cannot have been answered by a frozen server");
    drop(conn);
    drop(frozen);

    // The next borrower: one autocommit statement, as the audit append's.
    sqlx::query("INSERT INTO entries VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    // Committed: another session sees it.
    let mut other = PgConnection::connect(d.url.expose()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM entries")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(n, 1, "the INSERT ran inside the cut-off transaction");
    // And nothing is left idle in a transaction on the server.
    let idle: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
    )
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(idle, 0);
}
