//! The `ssh` and `pgbackrest` backup sources against real parts: an sshd
//! (Debian openssh-server) on 127.0.0.1 with a throwaway host key and user
//! key, and a pgBackRest repository of a throwaway cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use charon::core::restore::{
    self, Ledger, RestoreOptions, Source, SshSource, Verdict, run_restore_test,
};
use charon::pluto::{SeedOptions, seed};
use common::pgbackrest::{PgBackRestFixture, pgbackrest_fixture};
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

async fn console_db() -> TestDb {
    let console = TestDb::new("rr_console").await;
    charon::core::db::migrate_console(&console.pool)
        .await
        .unwrap();
    console
}

fn opts(console: &TestDb) -> RestoreOptions {
    RestoreOptions {
        rpo: Duration::from_secs(3600),
        rto: Duration::from_secs(3600),
        jobs: 2,
        ledger: Some(Ledger {
            console: console.pool.clone(),
            key: [9; 32],
        }),
        ..RestoreOptions::default()
    }
}

fn check<'a>(v: &'a Verdict, name: &str) -> &'a restore::Check {
    v.check(name)
        .unwrap_or_else(|| panic!("no check {name} in {:#?}", v.checks))
}

async fn db_exists(name: &str) -> bool {
    let db = TestDb::new("rr_probe").await;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "charon-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut pubp = path.as_os_str().to_owned();
    pubp.push(".pub");
    std::fs::read_to_string(PathBuf::from(pubp)).unwrap()
}

/// A real sshd on 127.0.0.1 on a spare port, killed when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    user: String,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_pub = keygen(&d.join("host_key"));
        let user_pub = keygen(&d.join("user_key"));
        std::fs::write(d.join("authorized_keys"), user_pub).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The host key, as the source's known_hosts file holds it.
        let mut parts = host_pub.split_whitespace();
        let (ty, key) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {ty} {key}\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPidFile {}\nLogLevel ERROR\n",
                d.join("host_key").display(),
                d.join("authorized_keys").display(),
                d.join("sshd.pid").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready when the port accepts connections (a readiness wait, not a
        // timed assertion).
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name;
        Sshd {
            dir,
            port,
            child,
            user,
        }
    }

    fn backups(&self) -> PathBuf {
        let p = self.dir.path().join("backups");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn source(&self) -> SshSource {
        let d = self.dir.path();
        SshSource {
            name: "offsite".into(),
            host: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            identity_file: d.join("user_key"),
            known_hosts: d.join("known_hosts"),
            path: self.backups().display().to_string(),
            connect_timeout: Duration::from_secs(10),
            pg_bin_dir: None,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

fn fetch_dirs() -> usize {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .map(|e| e.file_name().to_string_lossy().starts_with("charon-fetch-"))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test]
async fn ssh_source_lists_and_restore_tests_over_a_real_sshd() {
    let sshd = Sshd::start();
    let live = seeded("rr_ssh").await;
    let backups = sshd.backups();
    common::pg_dump_with_sha256(live.url.expose(), &backups.join("pluto-1.dump"));
    let before = listing(&backups);
    let source = Source::Ssh(sshd.source());

    let list = source.list().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert_eq!(b.id, "pluto-1.dump");
    assert_eq!(
        b.size,
        std::fs::metadata(backups.join("pluto-1.dump"))
            .unwrap()
            .len()
    );
    assert!(b.sha256_expected.is_some());
    // The time from the archive's own header, read over the connection.
    let age = chrono::Utc::now() - b.taken_at.expect("header time");
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 300, "{age}");

    let console = console_db().await;
    let fetched_before = fetch_dirs();
    let v = run_restore_test(
        &source,
        b,
        &live.pool,
        &server_url(),
        &opts(&console),
        &|_| {},
    )
    .await;
    assert!(v.passed, "{}", v.to_markdown());
    assert!(check(&v, "checksum").reason.starts_with("sha256 "));
    assert!(!db_exists(v.scratch_db.as_ref().unwrap()).await);
    // Nothing left on the backup host, nor locally.
    assert_eq!(listing(&backups), before);
    assert!(fetch_dirs() <= fetched_before);

    // A byte flipped on the backup host: the streamed copy's hash differs.
    let path = backups.join("pluto-1.dump");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let b = source.get("pluto-1.dump").await.unwrap();
    let v = run_restore_test(
        &source,
        &b,
        &live.pool,
        &server_url(),
        &opts(&console),
        &|_| {},
    )
    .await;
    assert!(!v.passed);
    let c = check(&v, "checksum");
    assert!(c.reason.contains("sha256 mismatch"), "{}", c.reason);
    assert_eq!(v.scratch_db, None);

    // Unreachable: nothing listens on the port any more.
    let mut gone = sshd.source();
    gone.port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = Source::Ssh(gone);
    let e = gone.list().await.unwrap_err().to_string();
    assert!(e.contains("cannot connect to"), "{e}");
    let v = run_restore_test(
        &gone,
        &b,
        &live.pool,
        &server_url(),
        &opts(&console),
        &|_| {},
    )
    .await;
    assert!(!v.passed);
    let c = check(&v, "checksum");
    assert!(
        c.reason.contains("cannot connect to") && c.reason.contains("refused"),
        "{}",
        c.reason
    );
    assert_eq!(v.scratch_db, None);

    // A host key that is not the one in known_hosts: refused, no prompt.
    let mut wrong = sshd.source();
    let other = sshd.dir.path().join("other_known_hosts");
    let other_key = keygen(&sshd.dir.path().join("other_host_key"));
    let mut parts = other_key.split_whitespace();
    std::fs::write(
        &other,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();
    wrong.known_hosts = other;
    let e = Source::Ssh(wrong).list().await.unwrap_err().to_string();
    assert!(e.contains("cannot connect to"), "{e}");
}

#[tokio::test]
async fn pgbackrest_source_restores_into_a_throwaway_cluster() {
    let PgBackRestFixture {
        cluster,
        dir,
        cfg: _,
        live,
        source,
    } = pgbackrest_fixture().await;
    let list = source.list().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert!(b.id.ends_with('F'), "{}", b.id);
    assert!(b.taken_at.is_some());

    let console = console_db().await;
    let v = run_restore_test(&source, b, &live, "", &opts(&console), &|_| {}).await;
    eprintln!("{}", v.to_markdown());
    assert!(v.passed, "{}", v.to_markdown());
    assert!(
        check(&v, "checksum").reason.contains("pgbackrest verify"),
        "{}",
        check(&v, "checksum").reason
    );
    assert!(check(&v, "schema").reason.starts_with("identical"));
    let scratch = v.scratch_db.clone().unwrap();
    let restored_dir = scratch.strip_prefix("cluster ").unwrap();
    assert!(
        !Path::new(restored_dir).exists(),
        "{restored_dir} left behind"
    );
    assert!(check(&v, "cleanup").passed);

    // A backup set that does not exist: the restore fails, nothing is left.
    let mut missing = b.clone();
    missing.id = "20000101-000000F".into();
    let v = run_restore_test(&source, &missing, &live, "", &opts(&console), &|_| {}).await;
    assert!(!v.passed);
    let r = check(&v, "restore");
    assert!(
        !r.passed && r.reason.contains("pgbackrest restore failed"),
        "{}",
        r.reason
    );

    // A byte flipped in a file of the backup in the repository: pgBackRest's
    // verification fails and nothing is restored.
    let set = dir.join("repo/backup/test").join(&b.id).join("pg_data");
    let victim = walk(&set)
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 1000)
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let v = run_restore_test(&source, b, &live, "", &opts(&console), &|_| {}).await;
    assert!(!v.passed);
    let c = check(&v, "checksum");
    assert!(
        !c.passed && c.reason.starts_with("pgbackrest verify failed"),
        "{}",
        c.reason
    );
    assert_eq!(v.scratch_db, None);
    live.close().await;
    drop(cluster);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
