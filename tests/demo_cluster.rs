//! The demo's throwaway cluster: started from the installed server binaries,
//! reachable over its socket only, and gone without a trace afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use charon::demo::Cluster;
use sqlx::Connection;

/// Processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[tokio::test]
async fn cluster_starts_on_a_socket_and_leaves_nothing_behind() {
    let mut cluster = Cluster::start().unwrap();
    let dir = cluster.dir().to_path_buf();
    assert!(
        dir.join(".s.PGSQL.5432").exists(),
        "no socket in {}",
        dir.display()
    );
    assert!(!processes_mentioning(&dir).is_empty(), "no server running");

    let mut conn = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    let (one, listen): (i32, String) =
        sqlx::query_as("SELECT 1, current_setting('listen_addresses')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(one, 1);
    assert_eq!(listen, "", "the demo cluster must not listen on TCP");
    conn.close().await.unwrap();

    cluster.stop();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        processes_mentioning(&dir).is_empty(),
        "server still running"
    );

    // cleanup_all stops every registered cluster of the process, so this part
    // runs in the same test, not beside another one.
    let cluster = Cluster::start().unwrap();
    let dir = cluster.dir().to_path_buf();
    // What the panic hook and the signal handlers do:
    charon::demo::cleanup_all();
    assert!(!dir.exists());
    assert!(processes_mentioning(&dir).is_empty());
    drop(cluster); // idempotent
}
