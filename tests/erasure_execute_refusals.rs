//! Execution refused before anything runs: a request another session holds
//! (also when recovering interrupted requests), and a request that is done
//! already.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::Error;
use charon::core::datamap::{Catalog, DataMap};
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{
    Executor, NewRequest, Recovered, Regime, Subject, Systems, create_request,
};
use charon::core::secrets::MasterKey;
use common::TestDb;
use sqlx::Connection;
use uuid::Uuid;

const KEY: &[u8] = b"erasure-exec-test-hash-key-01234";

fn subject() -> Subject {
    Subject {
        emails: vec!["exec.subject@example.test".into()],
        phones: vec![],
        user_ids: vec![],
    }
}

struct Env {
    pluto: TestDb,
    console: TestDb,
    map: DataMap,
    catalog: Catalog,
    seal: MasterKey,
    systems: Systems,
}

async fn env() -> Env {
    let pluto = TestDb::pluto("erex_p").await;
    let console = TestDb::new("erex_c").await;
    charon::core::db::migrate_console(&console.pool)
        .await
        .unwrap();
    let catalog = Catalog::load(&pluto.pool).await.unwrap();
    Env {
        pluto,
        console,
        map: DataMap::bundled().unwrap(),
        catalog,
        seal: MasterKey::new([7; 32]),
        systems: Systems::default(),
    }
}

impl Env {
    fn executor(&self) -> Executor<'_> {
        Executor {
            pluto: &self.pluto.pool,
            console: &self.console.pool,
            map: &self.map,
            catalog: &self.catalog,
            key: KEY,
            seal: &self.seal,
            systems: &self.systems,
            export_dir: std::path::Path::new("/nonexistent"),
        }
    }

    async fn request(&self, state: &str) -> Uuid {
        let s = subject();
        let id = create_request(
            &self.console.pool,
            KEY,
            &NewRequest {
                id: Uuid::new_v4(),
                kind: RequestKind::Erasure,
                subject: &s,
                ticket: "TICKET-E".into(),
                regime: Regime::Gdpr,
                note: String::new(),
                received_at: chrono::Utc::now(),
                created_by: "alice".into(),
            },
        )
        .await
        .unwrap();
        // Approved by a second officer (the table requires it past
        // `planned`); a done request holds a certificate.
        sqlx::query(
            "UPDATE erasure_requests
                SET state = $2, approved_by = 'bob', approved_at = now(),
                    certificate = CASE WHEN $2 = 'done' THEN '{}'::jsonb END,
                    certificate_sha256 = CASE WHEN $2 = 'done' THEN repeat('0', 64) END
              WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .execute(&self.console.pool)
        .await
        .unwrap();
        id
    }

    async fn state(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM erasure_requests WHERE id = $1")
            .bind(id)
            .fetch_one(&self.console.pool)
            .await
            .unwrap()
    }
}

/// Holds the request's execution lock on a connection of its own, as a
/// session executing it would.
async fn hold_lock(db: &TestDb, id: Uuid) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect_with(&db.pool.connect_options())
        .await
        .unwrap();
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('charon-erasure:' || $1::text))")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(got);
    conn
}

#[tokio::test]
async fn a_request_another_session_holds_is_refused_and_left_alone() {
    let env = env().await;
    let id = env.request("executing").await;
    let holder = hold_lock(&env.console, id).await;

    match env
        .executor()
        .execute(id, &subject(), "carol", &mut |_| {})
        .await
    {
        Err(Error::Conflict(m)) => {
            assert_eq!(m, "another session is executing this request right now")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let recovered = env.executor().recover().await.unwrap();
    assert_eq!(recovered, vec![(id, Recovered::Running)]);
    assert_eq!(env.state(id).await, "executing", "left to its session");
    holder.close().await.unwrap();

    // Released: recovery settles it (nothing was committed on Pluto).
    let recovered = env.executor().recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_ne!(recovered[0].1, Recovered::Running);
}

#[tokio::test]
async fn a_done_request_is_not_executed_again() {
    let env = env().await;
    let id = env.request("done").await;
    match env
        .executor()
        .execute(id, &subject(), "carol", &mut |_| {})
        .await
    {
        Err(Error::Conflict(m)) => {
            assert_eq!(m, "the request is done already (see its certificate)")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(env.state(id).await, "done");
}

/// Deletion order comes from the live foreign keys, children before the
/// tables they point at — not from the names (here the child sorts last
/// and a grandchild first), with self-references ignored.
#[tokio::test]
async fn tables_are_deleted_children_first_whatever_their_names() {
    let db = common::TestDb::new("erdo").await;
    sqlx::raw_sql(
        "CREATE TABLE alpha_parent (id int PRIMARY KEY);
         CREATE TABLE zeta_child (id int PRIMARY KEY, parent int REFERENCES alpha_parent,
                                  boss int REFERENCES zeta_child);
         CREATE TABLE aardvark_grandchild (id int PRIMARY KEY, child int REFERENCES zeta_child);
         CREATE TABLE loner (id int PRIMARY KEY);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let order = charon::core::erasure::execute::delete_order(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        order,
        vec!["aardvark_grandchild", "zeta_child", "alpha_parent"],
        "tables without foreign keys are not listed"
    );
}
