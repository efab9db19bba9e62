//! A pgBackRest repository of a throwaway cluster, for the restore tests of
//! the `pgbackrest` source (real pgBackRest, real PostgreSQL).
use std::path::PathBuf;
use std::process::Command;

use charon::core::restore::{PgBackRestSource, Source};
use charon::pluto::{SeedOptions, seed};

pub fn runuser(cmd: &mut Command, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd.get_program());
        c.args(cmd.get_args());
        c.current_dir("/");
        c
    } else {
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        c
    }
}

/// A throwaway cluster with a seeded `pluto` database, archived to and
/// backed up (full) in a pgBackRest repository of its own (stanza `test`).
pub struct PgBackRestFixture {
    pub cluster: charon::demo::cluster::Cluster,
    pub dir: PathBuf,
    pub cfg: PathBuf,
    pub live: sqlx::PgPool,
    pub source: Source,
}

pub async fn pgbackrest_fixture() -> PgBackRestFixture {
    use charon::demo::cluster::Cluster;
    let cluster = Cluster::empty("charon-pgbr-test-").unwrap();
    cluster.initdb().unwrap();
    let dir = cluster.dir().to_path_buf();
    let as_postgres = cluster.run_as().is_some();
    let cfg = dir.join("pgbackrest.conf");
    for sub in ["repo", "log", "lock"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
        cluster.own(&dir.join(sub)).unwrap();
    }
    std::fs::write(
        &cfg,
        format!(
            "[global]\nrepo1-path={d}/repo\nlog-path={d}/log\nlock-path={d}/lock\nstart-fast=y\n\
             [test]\npg1-path={d}/data\npg1-socket-path={d}\npg1-port=5432\n",
            d = dir.display()
        ),
    )
    .unwrap();
    cluster.own(&cfg).unwrap();
    let conf = cluster.data_dir().join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "\nwal_level = replica\narchive_mode = on\narchive_command = 'pgbackrest --config={} --stanza=test archive-push %p'\nmax_wal_senders = 3\n",
        cfg.display()
    ));
    std::fs::write(&conf, text).unwrap();
    cluster.start_server("").unwrap();

    let admin = cluster.url("postgres");
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query("CREATE DATABASE pluto")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let live = sqlx::PgPool::connect(&cluster.url("pluto")).await.unwrap();
    seed(
        &live,
        &SeedOptions {
            tenants: 2,
            seed: 3,
        },
        &|_| {},
    )
    .await
    .unwrap();

    let pgbr = |args: &[&str]| {
        let mut c = Command::new("pgbackrest");
        c.arg(format!("--config={}", cfg.display()))
            .arg("--stanza=test")
            .args(args);
        let out = runuser(&mut c, as_postgres).output().unwrap();
        assert!(
            out.status.success(),
            "pgbackrest {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    pgbr(&["stanza-create"]);
    pgbr(&["backup", "--type=full"]);

    let source = Source::PgBackRest(PgBackRestSource {
        name: "wal".into(),
        stanza: "test".into(),
        config: Some(cfg.clone()),
        database: "pluto".into(),
        pg_bin_dir: None,
    });
    PgBackRestFixture {
        cluster,
        dir,
        cfg,
        live,
        source,
    }
}
