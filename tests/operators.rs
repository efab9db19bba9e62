//! Operators in the console database: bootstrap, roles, lockout that survives
//! a restart, removal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::Error;
use charon::core::operators::{self, MAX_FAILED_ATTEMPTS, Status};
use charon::core::session::Role;
use common::TestDb;

async fn console_db() -> TestDb {
    let db = TestDb::new("ops").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    db
}

#[tokio::test]
async fn bootstrap_only_on_an_empty_table() {
    let db = console_db().await;
    let p = &db.pool;
    let admin = operators::bootstrap(p, "root_admin", "First Admin")
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(matches!(
        operators::bootstrap(p, "mallory", "Second").await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(operators::list(p).await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_bootstraps_create_exactly_one_admin() {
    let db = console_db().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            operators::bootstrap(&pool, &format!("admin{i}"), "A")
                .await
                .is_ok()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(operators::list(&db.pool).await.unwrap().len(), 1);
}

#[tokio::test]
async fn add_set_role_and_resolve() {
    let db = console_db().await;
    let p = &db.pool;
    operators::add(p, "root_admin", "alice", "Alice", Role::Support)
        .await
        .unwrap();
    assert!(matches!(
        operators::add(p, "root_admin", "alice", "Alice again", Role::Admin).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        operators::add(p, "root_admin", "Bad Login", "x", Role::Admin).await,
        Err(Error::InvalidInput(_))
    ));
    operators::set_role(p, "alice", Role::Compliance)
        .await
        .unwrap();
    assert_eq!(
        operators::resolve(p, "alice").await.unwrap().role,
        Role::Compliance
    );
    assert!(matches!(
        operators::set_role(p, "nobody", Role::Sre).await,
        Err(Error::NotFound(_))
    ));
    let e = operators::resolve(p, "nobody")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a charon operator"), "{e}");
}

#[tokio::test]
async fn five_failures_lock_and_the_count_survives_a_restart() {
    let db = console_db().await;
    operators::add(&db.pool, "x", "bob", "Bob", Role::Sre)
        .await
        .unwrap();
    for i in 1..MAX_FAILED_ATTEMPTS {
        let f = operators::record_failure(&db.pool, "bob").await.unwrap();
        assert_eq!(f.attempts, i);
        assert!(!f.locked);
    }
    // A new pool is a restarted charon: the count is in the database.
    let fresh = sqlx::PgPool::connect(db.url.expose()).await.unwrap();
    let f = operators::record_failure(&fresh, "bob").await.unwrap();
    assert_eq!(f.attempts, MAX_FAILED_ATTEMPTS);
    assert!(f.locked);
    let e = operators::resolve(&fresh, "bob")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("locked"), "{e}");
    // Further failures do not report a new lock.
    assert!(
        !operators::record_failure(&fresh, "bob")
            .await
            .unwrap()
            .locked
    );
    operators::unlock(&fresh, "bob").await.unwrap();
    let bob = operators::resolve(&fresh, "bob").await.unwrap();
    assert_eq!((bob.status, bob.failed_attempts), (Status::Active, 0));
}

#[tokio::test]
async fn success_resets_the_failure_count() {
    let db = console_db().await;
    operators::add(&db.pool, "x", "carol", "Carol", Role::Auditor)
        .await
        .unwrap();
    for _ in 0..4 {
        operators::record_failure(&db.pool, "carol").await.unwrap();
    }
    operators::record_success(&db.pool, "carol").await.unwrap();
    let f = operators::record_failure(&db.pool, "carol").await.unwrap();
    assert_eq!(f.attempts, 1);
}

#[tokio::test]
async fn removed_operators_cannot_sign_in_and_lock_is_manual_too() {
    let db = console_db().await;
    let p = &db.pool;
    operators::add(p, "x", "dave", "Dave", Role::Support)
        .await
        .unwrap();
    operators::lock(p, "dave").await.unwrap();
    assert!(operators::resolve(p, "dave").await.is_err());
    operators::unlock(p, "dave").await.unwrap();
    operators::remove(p, "dave").await.unwrap();
    let e = operators::resolve(p, "dave").await.unwrap_err().to_string();
    assert!(e.contains("removed"), "{e}");
    // A removed operator cannot be unlocked back to life.
    assert!(matches!(
        operators::unlock(p, "dave").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn unknown_role_in_the_database_fails_closed() {
    let db = console_db().await;
    operators::add(&db.pool, "x", "eve", "Eve", Role::Support)
        .await
        .unwrap();
    // Even if someone widened the CHECK constraint and wrote a new role,
    // charon does not guess what it may do.
    sqlx::query("ALTER TABLE operators DROP CONSTRAINT operators_role_check")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE operators SET role = 'root' WHERE login = 'eve'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        operators::resolve(&db.pool, "eve").await,
        Err(Error::Forbidden(_))
    ));
}

#[test]
fn the_os_account_comes_from_the_real_uid() {
    // SAFETY-free check: with $USER lying, the answer is still passwd's.
    let before = operators::os_account().unwrap();
    let expected = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(before, expected);
}
