//! Restore tests against a real PostgreSQL: a seeded Pluto database is
//! dumped with `pg_dump -Fc` into a temporary `dir` source, then restore-
//! tested as it is and with failures injected. Every test checks that no
//! scratch database is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use charon::core::restore::{
    self, Backup, DirSource, Ledger, RestoreOptions, Source, Verdict, run_restore_test,
};
use charon::pluto::{SeedOptions, seed};
use common::{TestDb, server_url};

async fn seeded(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    seed(
        &db.pool,
        &SeedOptions {
            tenants: 3,
            seed: 8,
        },
        &|_| {},
    )
    .await
    .unwrap();
    db
}

/// `pg_dump -Fc` of `db` into `dir/NAME`, with `NAME.sha256` beside it.
fn dump(db: &TestDb, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    common::pg_dump_with_sha256(db.url.expose(), &path);
    path
}

fn opts() -> RestoreOptions {
    RestoreOptions {
        rpo: Duration::from_secs(3600),
        rto: Duration::from_secs(3600),
        jobs: 2,
        ..RestoreOptions::default()
    }
}

async fn only_backup(source: &Source) -> Backup {
    let list = source.list().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    list.into_iter().next().unwrap()
}

/// A console database with the migrations (for the erasure ledger).
async fn console_db() -> TestDb {
    let console = TestDb::new("rs_console").await;
    charon::core::db::migrate_console(&console.pool)
        .await
        .unwrap();
    console
}

const LEDGER_KEY: [u8; 32] = *b"restore-test-erasure-key-0123456";

fn with_ledger(opts: &RestoreOptions, console: &TestDb) -> RestoreOptions {
    RestoreOptions {
        ledger: Some(Ledger {
            console: console.pool.clone(),
            key: LEDGER_KEY,
        }),
        ..opts.clone()
    }
}

async fn run(source: &Source, backup: &Backup, live: &TestDb, opts: &RestoreOptions) -> Verdict {
    let console = console_db().await;
    let opts = with_ledger(opts, &console);
    run_restore_test(source, backup, &live.pool, &server_url(), &opts, &|_| {}).await
}

async fn exists(live: &TestDb, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&live.pool)
        .await
        .unwrap()
}

/// Nothing is left behind: the scratch database (if one was made) is gone.
async fn assert_clean(live: &TestDb, v: &Verdict) {
    if let Some(name) = &v.scratch_db {
        assert!(name.starts_with(restore::SCRATCH_PREFIX));
        assert!(
            !exists(live, name).await,
            "scratch database {name} left behind"
        );
        let cleanup = v.check("cleanup").unwrap();
        assert!(cleanup.passed, "{}", cleanup.reason);
    }
}

fn check<'a>(v: &'a Verdict, name: &str) -> &'a restore::Check {
    v.check(name)
        .unwrap_or_else(|| panic!("no check {name} in {:#?}", v.checks))
}

#[tokio::test]
async fn good_archive_passes_every_check_and_is_recorded() {
    let live = seeded("rs_good").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto-good.dump");
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    assert_eq!(backup.id, "pluto-good.dump");
    assert!(backup.sha256_expected.is_some());
    let taken = backup
        .taken_at
        .expect("creation time from the archive header");
    let age = chrono::Utc::now() - taken;
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 120, "{taken}");

    let steps = std::sync::Mutex::new(Vec::new());
    let console = console_db().await;
    let v = run_restore_test(
        &source,
        &backup,
        &live.pool,
        &server_url(),
        &with_ledger(&opts(), &console),
        &|p| steps.lock().unwrap().push(p.step),
    )
    .await;
    assert!(v.passed, "{}", v.to_markdown());
    let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, restore::CHECKS.to_vec());
    for c in &v.checks {
        assert!(c.passed, "{}: {}", c.name, c.reason);
    }
    assert!(check(&v, "schema").reason.starts_with("identical"));
    assert!(check(&v, "row counts").reason.contains("all equal"));
    assert!(check(&v, "foreign keys").reason.contains("no orphan rows"));
    assert!(
        check(&v, "erasure ledger")
            .reason
            .starts_with("no erasure executed since"),
        "{}",
        check(&v, "erasure ledger").reason
    );
    let rpo = check(&v, "measured rpo");
    assert!(rpo.reason.contains("quiet"), "{}", rpo.reason);
    let objects = check(&v, "receipt objects");
    assert!(objects.skipped, "{}", objects.reason);
    assert!(
        objects.reason.contains("object_store_url"),
        "{}",
        objects.reason
    );
    assert!(v.restore_ms.is_some());
    assert!(steps.lock().unwrap().contains(&"restore"));
    assert_clean(&live, &v).await;

    let md = v.to_markdown();
    assert!(md.starts_with("# Restore test: PASS"), "{md}");
    assert!(md.contains("| checksum | pass |"), "{md}");
    let json = v.to_json();
    assert_eq!(json["passed"], true);
    assert_eq!(json["backup"]["id"], "pluto-good.dump");

    // The history keeps it.
    let id = restore::record(&console.pool, &v).await.unwrap();
    let rows = restore::history(&console.pool, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, id);
    assert!(rows[0].passed);
    assert_eq!(rows[0].failed_check, None);
    assert_eq!(rows[0].backup_id, "pluto-good.dump");
}

#[tokio::test]
async fn flipped_byte_fails_the_checksum_and_restores_nothing() {
    let live = seeded("rs_flip").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dump(&live, dir.path(), "pluto.dump");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let v = run(&source, &backup, &live, &opts()).await;
    assert!(!v.passed);
    let c = check(&v, "checksum");
    assert!(
        !c.passed && c.reason.contains("sha256 mismatch"),
        "{}",
        c.reason
    );
    assert_eq!(v.first_failure().unwrap().name, "checksum");
    let r = check(&v, "restore");
    assert!(
        r.skipped && r.reason.contains("integrity check failed"),
        "{}",
        r.reason
    );
    assert_eq!(v.scratch_db, None, "nothing restored");
    assert!(v.to_markdown().starts_with("# Restore test: FAIL"));
}

#[tokio::test]
async fn wrong_or_missing_sha256_fails() {
    let live = seeded("rs_sum").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dump(&live, dir.path(), "pluto.dump");
    std::fs::write(
        common::sha256_path(&path),
        format!("{}  pluto.dump\n", "0".repeat(64)),
    )
    .unwrap();
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let v = run(&source, &backup, &live, &opts()).await;
    assert!(!v.passed);
    let c = check(&v, "checksum");
    assert!(
        !c.passed && c.reason.contains("the .sha256 file says 0000"),
        "{}",
        c.reason
    );
    assert_eq!(v.scratch_db, None);

    std::fs::remove_file(common::sha256_path(&path)).unwrap();
    let backup = only_backup(&source).await;
    assert_eq!(backup.sha256_expected, None);
    let v = run(&source, &backup, &live, &opts()).await;
    let c = check(&v, "checksum");
    assert!(
        !c.passed && c.reason.contains("no valid SHA-256"),
        "{}",
        c.reason
    );
    assert_eq!(v.scratch_db, None);
}

#[tokio::test]
async fn truncated_archive_fails_the_restore_and_leaves_nothing() {
    let live = seeded("rs_trunc").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dump(&live, dir.path(), "pluto.dump");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // The checksum was taken after the truncation (a dump cut short): it
    // matches, so only the restore can tell.
    common::write_sha256(&path);

    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let v = run(&source, &backup, &live, &opts()).await;
    assert!(!v.passed);
    assert!(check(&v, "checksum").passed);
    let r = check(&v, "restore");
    assert!(!r.passed && !r.skipped, "{}", r.reason);
    assert!(r.reason.starts_with("pg_restore failed"), "{}", r.reason);
    assert!(r.reason.contains("end of file"), "{}", r.reason);
    assert!(check(&v, "schema").skipped);
    assert!(v.scratch_db.is_some());
    assert_clean(&live, &v).await;
}

#[tokio::test]
async fn archive_of_another_schema_fails_the_schema_check() {
    let live = seeded("rs_schema").await;
    sqlx::raw_sql("CREATE TABLE stray_table (id int PRIMARY KEY, note text)")
        .execute(&live.pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    sqlx::raw_sql("DROP TABLE stray_table")
        .execute(&live.pool)
        .await
        .unwrap();

    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let v = run(&source, &backup, &live, &opts()).await;
    assert!(!v.passed);
    assert!(check(&v, "restore").passed);
    let s = check(&v, "schema");
    assert!(!s.passed, "{}", s.reason);
    assert!(
        s.reason.contains("only in the restore: table stray_table"),
        "{}",
        s.reason
    );
    assert!(
        s.reason
            .contains("only in the restore: column stray_table.note text"),
        "{}",
        s.reason
    );
    assert_clean(&live, &v).await;
}

#[tokio::test]
async fn backup_older_than_the_rpo_fails_the_age_check() {
    let live = seeded("rs_rpo").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let opts = RestoreOptions {
        rpo: Duration::from_secs(1),
        ..opts()
    };
    let v = run(&source, &backup, &live, &opts).await;
    assert!(!v.passed);
    let a = check(&v, "age");
    assert!(
        !a.passed && a.reason.contains("older than the RPO of 1.0s"),
        "{}",
        a.reason
    );
    assert!(v.backup_age_secs.unwrap() >= 2);
    // The rest still ran and passed: an old backup is still tested.
    assert_eq!(
        v.checks.iter().filter(|c| !c.passed).count(),
        1,
        "{}",
        v.to_markdown()
    );
    assert_clean(&live, &v).await;
}

#[tokio::test]
async fn refuses_a_scratch_target_equal_to_the_live_database() {
    let live = seeded("rs_refuse").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&live.pool)
        .await
        .unwrap();

    let opts = RestoreOptions {
        scratch_name: Some(live.name.clone()),
        ..opts()
    };
    let v = run(&source, &backup, &live, &opts).await;
    assert!(!v.passed);
    let t = check(&v, "scratch target");
    assert!(
        !t.passed && t.reason.contains("is the live database"),
        "{}",
        t.reason
    );
    assert!(check(&v, "restore").skipped);
    assert_eq!(v.scratch_db, None);
    // The live database is untouched and still there.
    assert!(exists(&live, &live.name).await);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&live.pool)
        .await
        .unwrap();
    assert_eq!(before, after);

    // Names outside charon_restore_* are refused too.
    let opts = RestoreOptions {
        scratch_name: Some("postgres".into()),
        ..opts
    };
    let v = run(&source, &backup, &live, &opts).await;
    let t = check(&v, "scratch target");
    assert!(!t.passed && t.reason.contains("refused"), "{}", t.reason);
}

#[tokio::test]
async fn cancelled_mid_test_drops_the_scratch_database() {
    let live = seeded("rs_cancel").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let name = format!(
        "{}cancel_{}",
        restore::SCRATCH_PREFIX,
        uuid::Uuid::new_v4().simple()
    );
    let opts = RestoreOptions {
        scratch_name: Some(name.clone()),
        ..opts()
    };
    let console = console_db().await;
    let opts = with_ledger(&opts, &console);
    let server = server_url();
    // Like Ctrl-C: the test's future is dropped once its scratch database
    // exists and is being checked (the progress callback says so; no timing).
    let checking = tokio::sync::Notify::new();
    let progress = |p: restore::RestoreProgress| {
        if p.step == "schema" {
            checking.notify_one();
        }
    };
    let run = run_restore_test(&source, &backup, &live.pool, &server, &opts, &progress);
    tokio::select! {
        v = run => panic!("finished before it could be cancelled: {}", v.to_markdown()),
        () = checking.notified() => {}
    }
    assert!(
        !exists(&live, &name).await,
        "{name} left behind after cancel"
    );
}

#[tokio::test]
async fn dir_source_lists_by_the_time_in_the_archive() {
    let live = seeded("rs_list").await;
    let dir = tempfile::tempdir().unwrap();
    // The file names sort the other way round from the dump times.
    dump(&live, dir.path(), "b-first.dump");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dump(&live, dir.path(), "a-second.dump");
    std::fs::write(dir.path().join("garbage.dump"), b"not an archive").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();

    let source = Source::from(DirSource::new("local", dir.path()));
    let list = source.list().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["garbage.dump", "b-first.dump", "a-second.dump"]);
    assert!(list[1].taken_at < list[2].taken_at);
    let garbage = &list[0];
    assert_eq!(garbage.taken_at, None);
    assert!(garbage.header_error.is_some());
    assert_eq!(garbage.sha256_expected, None);
    assert_eq!(source.latest().await.unwrap().unwrap().id, "a-second.dump");
    assert_eq!(source.get("b-first.dump").await.unwrap().id, "b-first.dump");
    assert!(source.get("nope.dump").await.is_err());

    // An unreadable header fails the age check with the reason.
    common::write_sha256(&garbage.path);
    let garbage = source.get("garbage.dump").await.unwrap();
    let v = run(&source, &garbage, &live, &opts()).await;
    let a = check(&v, "age");
    assert!(
        !a.passed && a.reason.starts_with("archive header unreadable"),
        "{}",
        a.reason
    );
    assert!(!check(&v, "restore").passed);
    assert_clean(&live, &v).await;
}

const SUBJECT_EMAIL: &str = "r.lazarus@example.test";
const SUBJECT_PHONE: &str = "+1 555-010-4242";

/// A data subject with a user row, a membership, a receipt, and an invoice
/// that reaches them only by e-mail.
async fn add_subject(live: &TestDb) -> uuid::Uuid {
    let p = &live.pool;
    let business: uuid::Uuid = sqlx::query_scalar("SELECT id FROM businesses ORDER BY id LIMIT 1")
        .fetch_one(p)
        .await
        .unwrap();
    let user = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, 'R.Lazarus@Example.test', 'Rita Lazarus-Testperson', $2, '2025-06-01')")
        .bind(user).bind(SUBJECT_PHONE).execute(p).await.unwrap();
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'employee', '2025-06-01')")
        .bind(business)
        .bind(user)
        .execute(p)
        .await
        .unwrap();
    sqlx::query("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at) VALUES (9100000001, $1, $2, 'receipts/lazarus-1.jpg', 'Cafe', 450, '2025-06-02', 'THANK YOU', NULL, '2025-06-02')")
        .bind(business).bind(user).execute(p).await.unwrap();
    sqlx::query("INSERT INTO invoices VALUES (9100000001, $1, 'INV-LAZ-1', 'Rita Lazarus-Testperson', 'r.lazarus@EXAMPLE.test', '1 Test Street', 12000, '2025-06-01', '2025-06-30', 'sent', '2025-06-01')")
        .bind(business).execute(p).await.unwrap();
    user
}

/// Where the subject is in a database: `table: rows` for every hit.
async fn subject_rows(pool: &sqlx::PgPool, user: uuid::Uuid) -> Vec<String> {
    let mut hits = Vec::new();
    for (what, sql) in [
        (
            "users by email",
            "SELECT count(*) FROM users WHERE lower(email) = lower($1::text) OR $2::uuid IS NULL",
        ),
        (
            "users by id",
            "SELECT count(*) FROM users WHERE id = $2 AND lower(email) = lower($1::text)",
        ),
        (
            "memberships",
            "SELECT count(*) FROM memberships WHERE user_id = $2 OR $1::text IS NULL",
        ),
        (
            "receipts",
            "SELECT count(*) FROM receipts WHERE uploaded_by = $2 OR $1::text IS NULL",
        ),
        (
            "invoices",
            "SELECT count(*) FROM invoices WHERE lower(customer_email) = lower($1::text) OR $2::uuid IS NULL",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(SUBJECT_EMAIL)
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap();
        if n > 0 {
            hits.push(format!("{what}: {n}"));
        }
    }
    hits
}

#[tokio::test]
async fn erasures_after_the_backup_are_replayed_and_proven_absent() {
    use charon::core::datamap::{Catalog, DataMap};
    use charon::core::erasure::{
        ExecuteOutcome, NewRequest, Regime, Subject, approve, create_request, discover, plan,
        store_plan,
    };
    let live = seeded("rs_ledger").await;
    let user = add_subject(&live).await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    // The backup has the subject.
    assert_eq!(subject_rows(&live.pool, user).await.len(), 5);

    // After the backup, compliance erases them (through the erasure core).
    let console = console_db().await;
    let subject = Subject {
        emails: vec![SUBJECT_EMAIL.to_uppercase()],
        phones: vec![SUBJECT_PHONE.into()],
        user_ids: vec![],
    };
    let map = DataMap::bundled().unwrap();
    let catalog = Catalog::load(&live.pool).await.unwrap();
    let id = create_request(
        &console.pool,
        &LEDGER_KEY,
        &NewRequest {
            id: uuid::Uuid::new_v4(),
            kind: charon::core::erasure::store::RequestKind::Erasure,
            subject: &subject,
            ticket: "ZD-9".into(),
            regime: Regime::Gdpr,
            note: String::new(),
            received_at: chrono::Utc::now(),
            created_by: "alice".into(),
        },
    )
    .await
    .unwrap();
    let p = plan(
        &discover(&live.pool, &map, &catalog, &subject)
            .await
            .unwrap(),
    )
    .unwrap();
    store_plan(&console.pool, id, &p, "alice").await.unwrap();
    approve(&console.pool, id, "bob", &p.sha256).await.unwrap();
    let seal = charon::core::secrets::MasterKey::new([7; 32]);
    let systems = charon::core::erasure::Systems::default();
    let out = charon::core::erasure::Executor {
        pluto: &live.pool,
        console: &console.pool,
        map: &map,
        catalog: &catalog,
        key: &LEDGER_KEY,
        seal: &seal,
        systems: &systems,
        export_dir: Path::new("/nonexistent"),
    }
    .execute(id, &subject, "carol", &mut |_| {})
    .await
    .unwrap();
    assert!(matches!(out, ExecuteOutcome::Done(_)), "{out:?}");
    assert!(subject_rows(&live.pool, user).await.is_empty());

    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let name = format!(
        "{}ledger_{}",
        restore::SCRATCH_PREFIX,
        uuid::Uuid::new_v4().simple()
    );
    let opts = RestoreOptions {
        scratch_name: Some(name.clone()),
        ..with_ledger(&opts(), &console)
    };
    // Right after the replay (the "schema" step), look into the restore
    // from outside, independently of the check's own proof.
    let seen = std::sync::Mutex::new(None);
    let scratch_url = charon::core::config::with_database(&server_url(), &name);
    let v = run_restore_test(&source, &backup, &live.pool, &server_url(), &opts, &|p| {
        if p.step == "schema" {
            let url = scratch_url.clone();
            let hits = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    let hits = subject_rows(&pool, user).await;
                    pool.close().await;
                    hits
                })
            })
            .join()
            .unwrap();
            *seen.lock().unwrap() = Some(hits);
        }
    })
    .await;
    assert!(v.passed, "{}", v.to_markdown());
    let l = check(&v, "erasure ledger");
    assert!(
        l.reason.starts_with("1 erasure(s) executed since") && l.reason.contains("none of their"),
        "{}",
        l.reason
    );
    assert_eq!(seen.lock().unwrap().clone(), Some(Vec::new()));
    // After the replay the restore matches the live database again.
    assert!(check(&v, "row counts").reason.contains("all equal"));
    assert!(!l.reason.contains("lazarus"), "no identifier in a reason");
    assert!(!v.to_markdown().to_lowercase().contains("lazarus"));
    assert_clean(&live, &v).await;

    // Without the ledger the test fails closed.
    let v = run_restore_test(
        &source,
        &backup,
        &live.pool,
        &server_url(),
        &RestoreOptions {
            ledger: None,
            ..self::opts()
        },
        &|_| {},
    )
    .await;
    assert!(!v.passed);
    let l = check(&v, "erasure ledger");
    assert!(
        !l.passed && l.reason.contains("no erasure ledger"),
        "{}",
        l.reason
    );
    // … and the restore still holds the erased rows, which the row counts show.
    assert!(!check(&v, "row counts").reason.contains("all equal"));
    assert_clean(&live, &v).await;

    // The proof itself can fail: a copy that still holds the subject (by
    // e-mail and phone only; a different user id) is caught.
    let copy = seeded("rs_ledger_copy").await;
    add_subject(&copy).await;
    let pending = restore::replay::pending(&console.pool, None).await.unwrap();
    assert_eq!(pending.entries, 1);
    let copy_catalog = Catalog::load(&copy.pool).await.unwrap();
    let left = restore::replay::remaining(&copy.pool, &map, &copy_catalog, &LEDGER_KEY, &pending)
        .await
        .unwrap();
    assert!(
        left.iter().any(|l| l.starts_with("users.email"))
            && left
                .iter()
                .any(|l| l.starts_with("invoices.customer_email")),
        "{left:?}"
    );
    assert!(!format!("{left:?}").to_lowercase().contains("lazarus"));
}

#[tokio::test]
async fn every_receipt_object_must_exist_in_object_storage() {
    let live = seeded("rs_objects").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    let store = tempfile::tempdir().unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT s3_key FROM receipts ORDER BY id")
        .fetch_all(&live.pool)
        .await
        .unwrap();
    assert!(keys.len() > 3);
    for k in &keys {
        let p = store.path().join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"jpeg").unwrap();
    }
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let opts = RestoreOptions {
        object_store_url: Some(format!("file://{}", store.path().display())),
        ..opts()
    };
    let v = run(&source, &backup, &live, &opts).await;
    let c = check(&v, "receipt objects");
    assert!(c.passed && !c.skipped, "{}", c.reason);
    assert_eq!(
        c.reason,
        format!("all {} receipt objects exist", keys.len())
    );

    // One object gone from the bucket: the check fails and names its key.
    std::fs::remove_file(store.path().join(&keys[1])).unwrap();
    let v = run(&source, &backup, &live, &opts).await;
    assert!(!v.passed);
    let c = check(&v, "receipt objects");
    assert!(
        !c.passed
            && c.reason
                .starts_with(&format!("1 of {} receipt objects missing", keys.len())),
        "{}",
        c.reason
    );
    assert!(c.reason.contains(&keys[1]), "{}", c.reason);
    assert_clean(&live, &v).await;
}

#[tokio::test]
async fn measured_rpo_fails_when_the_backup_misses_rows_written_before_it() {
    let live = seeded("rs_mrpo").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let start = backup.taken_at.unwrap();
    // A receipt the live database says was written ten minutes before the
    // backup started, yet the backup does not have it.
    sqlx::query(
        "INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, created_at)
         SELECT 9200000001, business_id, uploaded_by, 'receipts/late.jpg', 'Late', 100, '2026-01-01', '', $1
           FROM receipts ORDER BY id LIMIT 1",
    )
    .bind(start - chrono::TimeDelta::minutes(10))
    .execute(&live.pool)
    .await
    .unwrap();
    let opts = RestoreOptions {
        rpo: Duration::from_secs(300),
        ..opts()
    };
    let v = run(&source, &backup, &live, &opts).await;
    let c = check(&v, "measured rpo");
    assert!(!c.passed, "{}", c.reason);
    assert!(
        c.reason.contains("receipts: newest row")
            && c.reason
                .contains("1 live row(s) written in that gap are missing from the backup"),
        "{}",
        c.reason
    );
    assert_clean(&live, &v).await;
}

#[tokio::test]
async fn cancelled_while_the_scratch_database_is_being_created_leaves_nothing() {
    let live = seeded("rs_cancel2").await;
    let dir = tempfile::tempdir().unwrap();
    dump(&live, dir.path(), "pluto.dump");
    let source = Source::from(DirSource::new("local", dir.path()));
    let backup = only_backup(&source).await;
    let console = console_db().await;
    let server = server_url();
    // Several times: the cancel lands while connecting, while CREATE
    // DATABASE is in flight, or just after it committed.
    for _ in 0..5 {
        let name = format!(
            "{}cancel_{}",
            restore::SCRATCH_PREFIX,
            uuid::Uuid::new_v4().simple()
        );
        let opts = with_ledger(
            &RestoreOptions {
                scratch_name: Some(name.clone()),
                ..opts()
            },
            &console,
        );
        let creating = tokio::sync::Notify::new();
        let progress = |p: restore::RestoreProgress| {
            if p.step == "restore" {
                creating.notify_one();
            }
        };
        let run = run_restore_test(&source, &backup, &live.pool, &server, &opts, &progress);
        tokio::select! {
            v = run => panic!("finished before it could be cancelled: {}", v.to_markdown()),
            () = creating.notified() => {}
        }
        assert!(
            !exists(&live, &name).await,
            "{name} left behind after a cancel during its creation"
        );
    }
}
