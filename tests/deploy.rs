//! The least-privilege deployment (docs/deployment.md): fresh Pluto and
//! console databases, the roles and grants of deploy/*.sql applied with psql
//! exactly as an operator applies them, `charon migrate` run as the owner
//! role, then charon's core connected as `charon_app` (console) and
//! `charon_pluto_read` / `charon_pluto_write` (Pluto) through the main paths:
//! open console, tenant search, records, a redaction, an erasure with two
//! officers, audit verify. And what those roles must not do: UPDATE, DELETE,
//! TRUNCATE the audit log, DROP or ALTER anything.
//!
//! Roles are cluster-global, so every test run gets its own names (a random
//! suffix passed to the SQL files as psql variables) and drops them at the
//! end, also when the test panics. charon runs as the roles by connecting
//! as them (LOGIN roles; the test server trusts 127.0.0.1), not with
//! `SET ROLE`, so nothing of the superuser's session leaks into the checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use charon::core::Error;
use charon::core::action::{Action, GateInput, Reply};
use charon::core::audit::AuditKey;
use charon::core::config::{Config, DbUrl};
use charon::core::console::Console;
use charon::core::erasure::{ExecuteOutcome, Regime, Subject};
use charon::core::mfa::otp::{self, AesKey, OtpToken, PrivateId};
use charon::core::records;
use charon::core::secrets::MasterKey;
use charon::core::session::{Role, Session};
use charon::core::{keys, operators};
use common::TestDb;
use common::cli::Binary;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

const EMAIL: &str = "dora.deploy@example.test";

fn deploy_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// `url` with another user name (the test server trusts 127.0.0.1).
fn as_user(url: &str, user: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(None).unwrap();
    u.to_string()
}

/// The four roles of roles.sql under per-run names; dropped on drop.
struct Roles {
    owner: String,
    app: String,
    pluto_read: String,
    pluto_write: String,
    /// Databases the roles hold privileges in (dropped before the roles are).
    databases: Vec<String>,
}

impl Roles {
    fn new() -> Roles {
        let s = &Uuid::new_v4().simple().to_string()[..10];
        Roles {
            owner: format!("charon_owner_{s}"),
            app: format!("charon_app_{s}"),
            pluto_read: format!("charon_pluto_read_{s}"),
            pluto_write: format!("charon_pluto_write_{s}"),
            databases: Vec::new(),
        }
    }

    fn vars(&self) -> Vec<String> {
        [
            ("owner", &self.owner),
            ("app", &self.app),
            ("pluto_read", &self.pluto_read),
            ("pluto_write", &self.pluto_write),
        ]
        .into_iter()
        .flat_map(|(k, v)| ["-v".to_string(), format!("{k}={v}")])
        .collect()
    }

    /// `psql URL -v … -f deploy/FILE`, as docs/deployment.md runs it.
    fn psql(&self, url: &str, file: &str, extra: &[String]) {
        let out = Command::new("psql")
            .arg(url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(self.vars())
            .args(extra)
            .arg("-f")
            .arg(deploy_file(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {file} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let server = common::server_url();
        let names = [
            self.owner.clone(),
            self.app.clone(),
            self.pluto_read.clone(),
            self.pluto_write.clone(),
        ];
        let dbs = self.databases.clone();
        // As TestDb's drop: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let list = names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                for db in dbs {
                    let url = charon::core::config::with_database(&server, &db);
                    if let Ok(mut c) = PgConnection::connect(&url).await {
                        // Names generated above: safe to interpolate.
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "REASSIGN OWNED BY {list} TO postgres"
                        )))
                        .execute(&mut c)
                        .await;
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP OWNED BY {list}")))
                            .execute(&mut c)
                            .await;
                    }
                }
                if let Ok(mut c) = PgConnection::connect(&server).await {
                    for n in names {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP ROLE IF EXISTS \"{n}\""
                        )))
                        .execute(&mut c)
                        .await;
                    }
                }
            });
        })
        .join();
    }
}

/// A tenant with a member (the erasure subject) and a receipt holding a card
/// number (the redaction), inserted as the superuser (Pluto's own app).
async fn seed(pluto: &PgPool) -> (Uuid, Uuid) {
    let b = Uuid::new_v4();
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, 'Acme Plumbing', 'pro', 'US', now())")
        .bind(b)
        .execute(pluto)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, $2, 'Dora Deploy', '+1 999-555-0177', now())")
        .bind(user)
        .bind(EMAIL)
        .execute(pluto)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'employee', now())")
        .bind(b)
        .bind(user)
        .execute(pluto)
        .await
        .unwrap();
    let other = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, 'rita@example.org', 'Rita Receipt', NULL, now())")
        .bind(other)
        .execute(pluto)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'owner', now())")
        .bind(b)
        .bind(other)
        .execute(pluto)
        .await
        .unwrap();
    sqlx::query("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
                 VALUES (77, $1, $2, 'receipts/x.jpg', 'Shell', 4200, '2025-01-02', 'TOTAL 42.00', 'paid with 4111 1111 1111 1111 thanks', now())")
        .bind(b)
        .bind(other)
        .execute(pluto)
        .await
        .unwrap();
    (b, user)
}

/// Runs `sql` on `pool` and returns PostgreSQL's refusal.
async fn refused(pool: &PgPool, sql: &'static str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(r) => panic!("{sql} was allowed ({} rows)", r.rows_affected()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn charon_runs_under_the_least_privilege_roles_of_deploy_sql() {
    let pluto = TestDb::pluto("dep_p").await;
    let (tenant, subject_user) = seed(&pluto.pool).await;
    let console_db = TestDb::new("dep_c").await;
    // Declared after the databases: dropped first, while they still exist.
    let mut roles = Roles::new();
    roles.databases = vec![pluto.name.clone(), console_db.name.clone()];
    let server = common::server_url();

    // Step 1 (superuser): the roles, the console database given to the owner.
    roles.psql(
        &server,
        "roles.sql",
        &["-v".into(), format!("console_db={}", console_db.name)],
    );
    let console_as = |user: &str| as_user(console_db.url.expose(), user);
    let pluto_as = |user: &str| as_user(pluto.url.expose(), user);
    let app_url = DbUrl::parse(&console_as(&roles.app)).unwrap();
    let owner_url = DbUrl::parse(&console_as(&roles.owner)).unwrap();
    let read_url = DbUrl::parse(&pluto_as(&roles.pluto_read)).unwrap();
    let write_url = DbUrl::parse(&pluto_as(&roles.pluto_write)).unwrap();

    let master = [3u8; 32];
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode(master)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = Config::demo(write_url.clone(), app_url.clone());
    config.pluto_read_url = read_url.clone();
    config.mfa.master_key_file = Some(key_file);
    let key = AuditKey::generate().unwrap();

    // Before `charon migrate`: a normal connection does not migrate, it
    // refuses, and says what to run.
    let e = Console::connect_with_key(&config, Session::demo(Role::Support), key.clone())
        .await
        .err()
        .expect("connected to an unmigrated console database");
    assert!(matches!(e, Error::Schema(_)), "{e}");
    assert!(e.to_string().contains("charon migrate"), "{e}");
    // And the runtime role cannot migrate it itself.
    let app_pool = PgPool::connect(app_url.expose()).await.unwrap();
    let e = charon::core::db::migrate_console(&app_pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    // sqlx keeps its migration advisory lock on that connection after the
    // failure: close it, or `charon migrate` below waits for the lock.
    app_pool.close().await;
    let app_pool = PgPool::connect(app_url.expose()).await.unwrap();
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app_pool)
        .await
        .unwrap();
    assert_eq!(me, roles.app);

    // Step 2: `charon migrate`, the real binary, as the owner role.
    let bin = Binary::new(&write_url, &owner_url, master);
    let (code, out, err) = bin.run(&["migrate"], "");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("up to date"), "{out}");

    // Step 3: the grants, console as its owner, Pluto as Pluto's owner.
    roles.psql(owner_url.expose(), "grants-console.sql", &[]);
    roles.psql(
        pluto.url.expose(),
        "grants-pluto.sql",
        &["-v".into(), format!("pluto_db={}", pluto.name)],
    );

    // Every table of the data map is readable by the read role (the grants
    // file and the map name the same tables).
    let map = charon::core::datamap::DataMap::bundled().unwrap();
    for table in map.tables.iter().map(|t| &t.name) {
        let ok: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2, 'SELECT')")
            .bind(&roles.pluto_read)
            .bind(table)
            .fetch_one(&pluto.pool)
            .await
            .unwrap();
        assert!(ok, "{} cannot read {table}", roles.pluto_read);
    }

    // --- charon as charon_app / charon_pluto_*: the main paths ----------
    let connect = |session: Session| {
        let config = config.clone();
        let key = key.clone();
        async move {
            Console::connect_with_key(&config, session, key)
                .await
                .unwrap()
        }
    };

    // Support: open, search, open the tenant, list records.
    let support = connect(Session::demo(Role::Support)).await;
    support.dispatch(Action::OpenConsole).await.unwrap();
    support
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    let Reply::Tenants(hits) = support
        .dispatch(Action::SearchTenants {
            query: "Acme".into(),
        })
        .await
        .unwrap()
    else {
        panic!("no hits")
    };
    assert_eq!(hits.len(), 1, "{hits:?}");
    support
        .dispatch(Action::OpenTenant {
            business_id: tenant,
        })
        .await
        .unwrap();
    let Reply::Records(page) = support
        .dispatch(Action::RecordsList {
            tenant,
            kind: records::Kind::Receipts,
            query: records::Query::default(),
        })
        .await
        .unwrap()
    else {
        panic!("no page")
    };
    assert_eq!(page.rows.len(), 1);

    // Compliance: a redaction, previewed then applied with a step-up.
    let a = connect(Session::demo(Role::Compliance)).await;
    a.dispatch(Action::Authenticate(GateInput::DemoRole(Role::Compliance)))
        .await
        .unwrap();
    let Reply::RedactionPreview { token, .. } = a
        .dispatch(Action::RedactPreview {
            tenant,
            kind: records::Kind::Receipts,
            id: records::Pk::Int(77),
            field: "notes".into(),
            how: records::How::Span(charon::core::detect::Detector::Card),
        })
        .await
        .unwrap()
    else {
        panic!("no preview")
    };
    let apply = Action::RedactApply {
        preview: token,
        reason: "card typed into a note, DPO-1".into(),
    };
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(apply.clone()),
    })
    .await
    .unwrap();
    let Reply::Redacted(done) = a.dispatch(apply).await.unwrap() else {
        panic!("not redacted")
    };
    assert_eq!(done.matches, 1);
    let note: String = sqlx::query_scalar("SELECT notes FROM receipts WHERE id = 77")
        .fetch_one(&pluto.pool)
        .await
        .unwrap();
    assert_eq!(note, "paid with [REDACTED:card] thanks");

    // A second compliance officer with a YubiKey, added over the app role.
    let public_id = "cccccccrlbtd";
    let aes = AesKey::new([0x61; 16]);
    let private_id = [9, 9, 9, 1, 2, 3];
    operators::add(&app_pool, "x", "bea", "Bea", Role::Compliance)
        .await
        .unwrap();
    keys::enroll_otp(
        &app_pool,
        &MasterKey::new(master),
        "bea",
        "k",
        public_id,
        &aes,
        &PrivateId::new(private_id),
    )
    .await
    .unwrap();

    // Erasure: A creates and plans, B approves, A executes.
    let subject = || Subject {
        emails: vec![EMAIL.into()],
        phones: vec![],
        user_ids: vec![],
    };
    let Reply::ErasureCreated(id) = a
        .dispatch(Action::ErasureCreate {
            id: Uuid::new_v4(),
            kind: charon::core::erasure::store::RequestKind::Erasure,
            subject: subject(),
            ticket: "GDPR-7".into(),
            regime: Regime::Gdpr,
            note: String::new(),
        })
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let Reply::ErasurePlanned(plan) = a
        .dispatch(Action::ErasurePlan {
            request: id,
            subject: subject(),
        })
        .await
        .unwrap()
    else {
        panic!("not planned")
    };
    let b = connect(Session {
        id: Uuid::new_v4(),
        operator: "bea".into(),
        role: Role::Compliance,
        demo: false,
        key_id: None,
    })
    .await;
    let otp = otp::generate_otp(
        public_id,
        &aes,
        &OtpToken {
            private_id: PrivateId::new(private_id),
            usage_counter: 1,
            timestamp: 10,
            session_use: 1,
            random: 5,
        },
    )
    .unwrap();
    b.dispatch(Action::Authenticate(GateInput::Otp(otp)))
        .await
        .unwrap();
    b.dispatch(Action::ErasureApprove {
        request: id,
        plan_sha256: plan.sha256.clone(),
    })
    .await
    .unwrap();
    let execute = Action::ErasureExecute {
        request: id,
        subject: subject(),
    };
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(execute.clone()),
    })
    .await
    .unwrap();
    let Reply::ErasureExecuted(out) = a.dispatch(execute).await.unwrap() else {
        panic!("not executed")
    };
    let ExecuteOutcome::Done(report) = *out else {
        panic!("not done: {out:?}")
    };
    assert!(report.rows_deleted >= 2, "{report:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
        .bind(subject_user)
        .fetch_one(&pluto.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the subject is still in Pluto");
    // The queue (nothing external for this subject) runs under the app role.
    a.dispatch(Action::ErasureRunQueue {
        request: None,
        retry_failed: false,
    })
    .await
    .unwrap();

    // Auditor: the chain written by all of the above verifies.
    let auditor = connect(Session::demo(Role::Auditor)).await;
    auditor
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Auditor)))
        .await
        .unwrap();
    let Reply::AuditVerdict(v) = auditor
        .dispatch(Action::AuditVerify {
            from: None,
            checkpoint: None,
        })
        .await
        .unwrap()
    else {
        panic!("no verdict")
    };
    assert!(v.is_intact(), "{v:?}");

    // --- what the roles must not do ---------------------------------------
    for sql in [
        "UPDATE audit_log SET reason = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DELETE FROM console_sessions",
    ] {
        let e = refused(&app_pool, sql).await;
        // Refused by the grants, before any trigger gets to run.
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    for sql in [
        "DROP TABLE audit_log",
        "DROP TABLE operators CASCADE",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
        "DROP FUNCTION audit_log_refuse_change() CASCADE",
    ] {
        let e = refused(&app_pool, sql).await;
        assert!(e.contains("must be owner"), "{sql}: {e}");
    }
    let e = refused(&app_pool, "CREATE TABLE sneaky (x int)").await;
    assert!(e.contains("permission denied for schema public"), "{e}");

    let read_pool = PgPool::connect(read_url.expose()).await.unwrap();
    for sql in [
        "UPDATE receipts SET notes = 'x'",
        "DELETE FROM receipts",
        "INSERT INTO businesses (id, name, plan, country, created_at) VALUES (gen_random_uuid(), 'x', 'pro', 'US', now())",
    ] {
        let e = refused(&read_pool, sql).await;
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    let write_pool = PgPool::connect(write_url.expose()).await.unwrap();
    for sql in [
        // Retained under a legal hold: never deleted.
        "DELETE FROM payroll_entries",
        "DELETE FROM invoices",
        // Identifiers and external references are not charon's to change.
        "UPDATE users SET id = gen_random_uuid()",
        "UPDATE receipts SET s3_key = 'x'",
        "UPDATE bank_connections SET plaid_access_token = 'x'",
        "TRUNCATE trips",
    ] {
        let e = refused(&write_pool, sql).await;
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    let e = refused(&write_pool, "DROP TABLE payroll_entries").await;
    assert!(e.contains("must be owner"), "{e}");

    for p in [app_pool, read_pool, write_pool] {
        p.close().await;
    }
    drop(support);
    drop(a);
    drop(b);
    drop(auditor);
}

/// The check a normal connection makes instead of migrating: every way the
/// applied migrations can differ from the binary's is refused, by name.
#[tokio::test]
async fn the_console_schema_check_names_what_differs_and_never_migrates() {
    use charon::core::db::{check_console_schema, migrate_console};
    let db = TestDb::new("dep_schema").await;
    let msg = |e: Error| {
        assert!(matches!(e, Error::Schema(_)), "{e}");
        e.to_string()
    };
    let e = msg(check_console_schema(&db.pool).await.unwrap_err());
    assert!(e.contains("no charon migrations applied"), "{e}");
    assert!(e.contains("run `charon migrate` as the owner role"), "{e}");
    // The check created nothing.
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(tables, 0);

    migrate_console(&db.pool).await.unwrap();
    check_console_schema(&db.pool).await.unwrap();

    let last: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let exec = |sql: &'static str| {
        let pool = db.pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    // Pending.
    exec("CREATE TABLE saved AS SELECT * FROM _sqlx_migrations").await;
    exec(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .await;
    let e = msg(check_console_schema(&db.pool).await.unwrap_err());
    assert!(e.contains(&format!("migration {last} ")), "{e}");
    assert!(e.contains("not applied yet: run `charon migrate`"), "{e}");
    exec("INSERT INTO _sqlx_migrations SELECT * FROM saved WHERE version = (SELECT max(version) FROM saved)").await;
    check_console_schema(&db.pool).await.unwrap();
    // Changed after it was applied.
    exec("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 1").await;
    let e = msg(check_console_schema(&db.pool).await.unwrap_err());
    assert!(e.contains("migration 1 ") && e.contains("changed"), "{e}");
    exec("UPDATE _sqlx_migrations m SET checksum = s.checksum FROM saved s WHERE s.version = m.version").await;
    // Failed half-way.
    exec("UPDATE _sqlx_migrations SET success = false WHERE version = 2").await;
    let e = msg(check_console_schema(&db.pool).await.unwrap_err());
    assert!(
        e.contains("migration 2 ") && e.contains("did not finish"),
        "{e}"
    );
    exec("UPDATE _sqlx_migrations SET success = true").await;
    // Newer than this binary.
    exec("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999, 'future', true, '\\x00', 1)").await;
    let e = msg(check_console_schema(&db.pool).await.unwrap_err());
    assert!(e.contains("99999") && e.contains("upgrade charon"), "{e}");
}
