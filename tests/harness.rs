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

/// charon reaches a PostgreSQL that requires TLS: with `sslmode=require` the
/// session is encrypted where the server offers TLS, and refused where it
/// does not (never silently in clear text).
#[tokio::test]
async fn tls_is_used_when_the_url_requires_it() {
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&common::server_url())
        .await
        .unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let url = common::server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let tls_url = format!("{url}{sep}sslmode=require");
    let conn = <sqlx::PgConnection as sqlx::Connection>::connect(&tls_url).await;
    if ssl == "on" {
        let mut conn = conn.unwrap();
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(
            encrypted,
            "sslmode=require but the session is not encrypted"
        );
    } else {
        assert!(
            conn.is_err(),
            "sslmode=require connected to a server without TLS"
        );
    }
}
