mod common;

#[tokio::test]
async fn each_test_db_is_fresh_and_dropped() {
    let name;
    {
        let db = common::TestDb::pluto("harness").await;
        name = db.name.clone();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM businesses")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&common::server_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "test database {name} was not dropped");
}
