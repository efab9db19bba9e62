//! A throwaway PostgreSQL cluster in a temporary directory: `initdb` and
//! `pg_ctl` from the installed server binaries, listening on a Unix socket
//! only. When charon runs as root (initdb refuses to), the cluster runs as
//! the unprivileged `postgres` account. The cluster is stopped and its
//! directory deleted when the [`Cluster`] is dropped, and by
//! [`cleanup_all`], which the panic hook and the signal handlers call.

use std::ffi::OsStr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::core::{Error, Result};

/// Clusters started by this process and not yet stopped.
static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    dir: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    running: Running,
    /// `dir()/charon.lock`, locked (flock) for as long as this process
    /// lives: a directory whose lock is free was left by a process that was
    /// killed before it could clean up ([`sweep_leftovers`]).
    _lock: std::fs::File,
}

/// The lock file in every cluster directory; it holds the owner's pid,
/// written once the lock is held.
const LOCK_FILE: &str = "charon.lock";

impl Cluster {
    /// Creates and starts a cluster in a new directory under `$TMPDIR`.
    pub fn start() -> Result<Cluster> {
        let cluster = Cluster::empty("charon-demo-")?;
        cluster.init_and_start()?;
        Ok(cluster)
    }

    /// A new, empty directory (mode 0700, owned by the account the server
    /// runs as), registered for cleanup; nothing runs yet. Restore tests
    /// fill `data_dir()` (pgBackRest) and then [`Cluster::start_server`].
    pub fn empty(prefix: &str) -> Result<Cluster> {
        let bin = find_bindir()?;
        let user = unprivileged_user()?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?.keep();
        let running = Running { dir, bin, user };
        // Registered before anything can fail, so every exit path removes it.
        register(running.clone());
        let lock = match hold_lock(&running.dir) {
            Ok(l) => l,
            Err(e) => {
                stop(&running);
                unregister(&running);
                return Err(e);
            }
        };
        let cluster = Cluster {
            running,
            _lock: lock,
        };
        cluster.own(&cluster.running.dir)?;
        std::fs::set_permissions(&cluster.running.dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(cluster)
    }

    /// Gives `path` to the account the server runs as (when running as root).
    pub fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.running.user {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| Error::Io(std::io::Error::from(e)))?;
        }
        Ok(())
    }

    /// The (uid, gid) the server and its tools run as, when not this process's.
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.running.user
    }

    /// The server binaries used.
    pub fn bin_dir(&self) -> &Path {
        &self.running.bin
    }

    /// `dir()/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.running.dir.join("data")
    }

    fn init_and_start(&self) -> Result<()> {
        self.initdb()?;
        self.start_server("")
    }

    /// `initdb` into `data_dir()`.
    pub fn initdb(&self) -> Result<()> {
        let r = &self.running;
        let data = r.dir.join("data");
        run(
            r,
            "initdb",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-A"),
                OsStr::new("trust"),
                OsStr::new("-U"),
                OsStr::new("postgres"),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C"),
                OsStr::new("--no-sync"),
            ],
        )
    }

    /// Starts the server on `data_dir()` (socket only, in `dir()`), with
    /// `extra` server options (`-c name=value ...`) after charon's own.
    pub fn start_server(&self, extra: &str) -> Result<()> {
        let r = &self.running;
        let data = r.dir.join("data");
        let options = format!(
            "-c listen_addresses='' -k '{}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off {extra}",
            r.dir.display()
        );
        let log = r.dir.join("postgres.log");
        run(
            r,
            "pg_ctl",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("600"),
                OsStr::new("start"),
            ],
        )
        .map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            Error::Config(format!(
                "{e}; server log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        })?;
        Ok(())
    }

    /// Stops the server (fast shutdown: open sessions are ended) and keeps
    /// its data; [`Cluster::start_server`] starts it again. The fault tests
    /// stop a database in the middle of a console session with it.
    pub fn stop_server(&self) -> Result<()> {
        let r = &self.running;
        let data = r.dir.join("data");
        run(
            r,
            "pg_ctl",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-m"),
                OsStr::new("fast"),
                OsStr::new("-w"),
                OsStr::new("stop"),
            ],
        )
    }

    /// The directory holding the data and the socket.
    pub fn dir(&self) -> &Path {
        &self.running.dir
    }

    /// A connection URL for `database` over the cluster's Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.running.dir.display()
        )
    }

    /// Stops the server and deletes the directory. Idempotent.
    pub fn stop(&mut self) {
        stop(&self.running);
        unregister(&self.running);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops every cluster this process started. Safe to call from a panic hook
/// or a signal handler task; idempotent.
pub fn cleanup_all() {
    let all: Vec<Running> = match RUNNING.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for r in &all {
        stop(r);
    }
}

/// Creates `dir/charon.lock`, locks it for the life of this process and
/// writes this process's id into it (so a lock file with content is one
/// whose owner held the lock).
fn hold_lock(dir: &Path) -> Result<std::fs::File> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    f.try_lock().map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "cannot lock {}: {e}",
            dir.join(LOCK_FILE).display()
        )))
    })?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

/// Stops and deletes the throwaway clusters named `prefix*` under `$TMPDIR`
/// that were left by a process killed before it could clean up (SIGKILL, a
/// lost machine): those whose lock no live process holds. Returns their
/// directories. Only directories this account created are considered —
/// owned by the account the servers run as, mode 0700, with a lock file
/// owned by this process's user and holding an owner's pid — so that
/// another local user cannot make it stop a server or delete anything.
/// Directories still being set up (no pid yet) and those of live runs are
/// left alone.
pub fn sweep_leftovers(prefix: &str) -> Vec<PathBuf> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let (Ok(bin), Ok(user)) = (find_bindir(), unprivileged_user()) else {
        return Vec::new();
    };
    let me = nix::unistd::geteuid().as_raw();
    let dir_owner = user.map(|(uid, _)| uid).unwrap_or(me);
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = entry.path();
        // symlink_metadata: a symlink named like a cluster is not followed.
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != dir_owner || meta.mode() & 0o777 != 0o700 {
            continue;
        }
        let lock_path = dir.join(LOCK_FILE);
        match std::fs::symlink_metadata(&lock_path) {
            Ok(m) if m.is_file() && m.uid() == me => {}
            _ => continue,
        }
        let Ok(mut lock) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock_path)
        else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // a live process holds it
        }
        let mut owner = String::new();
        if lock.read_to_string(&mut owner).is_err() || owner.trim().is_empty() {
            continue; // being set up right now
        }
        // Held while stopping and deleting, so two sweeps cannot race.
        stop(&Running {
            dir: dir.clone(),
            bin: bin.clone(),
            user,
        });
        drop(lock);
        if !dir.exists() {
            swept.push(dir);
        }
    }
    swept
}

fn register(r: Running) {
    match RUNNING.lock() {
        Ok(mut v) => v.push(r),
        Err(poisoned) => poisoned.into_inner().push(r),
    }
}

fn unregister(r: &Running) {
    match RUNNING.lock() {
        Ok(mut v) => v.retain(|x| x != r),
        Err(poisoned) => poisoned.into_inner().retain(|x| x != r),
    }
}

fn stop(r: &Running) {
    let data = r.dir.join("data");
    if data.join("postmaster.pid").exists() {
        let _ = command(r, "pg_ctl")
            .args([
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-m"),
                OsStr::new("immediate"),
                OsStr::new("-w"),
                OsStr::new("stop"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(&r.dir);
}

fn command(r: &Running, program: &str) -> Command {
    let mut c = Command::new(r.bin.join(program));
    c.current_dir(&r.dir).env_remove("PGDATA");
    if let Some((uid, gid)) = r.user {
        c.uid(uid).gid(gid);
    }
    c
}

fn run<I, S>(r: &Running, program: &str, args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = command(r, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Config(format!("cannot run {}: {e}", r.bin.join(program).display())))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(Error::Config(format!(
            "{program} failed ({}): {}",
            out.status,
            stderr.trim()
        )))
    }
}

/// The PostgreSQL server binaries: `CHARON_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `initdb` on the PATH.
pub fn find_bindir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CHARON_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(Error::Config(format!(
            "CHARON_PG_BINDIR={} has no initdb",
            dir.display()
        )));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.ok_or_else(|| {
        Error::Config(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install the `postgresql` package, set CHARON_PG_BINDIR, or set DATABASE_URL to use an existing server".into(),
        )
    })
}

/// When running as root, the (uid, gid) of the account the cluster runs as.
fn unprivileged_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let name = std::env::var("CHARON_DEMO_PG_USER").unwrap_or_else(|_| "postgres".into());
    match nix::unistd::User::from_name(&name) {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        _ => Err(Error::Config(format!(
            "running as root, and there is no `{name}` account to run the demo cluster as (initdb refuses root); create it or set CHARON_DEMO_PG_USER"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A directory under `$TMPDIR` named `prefix + name`, owned as
    /// [`Cluster::empty`] leaves it, with `mode`, and a lock file holding
    /// `pid` (empty: none written yet).
    fn fake(prefix: &str, name: &str, mode: u32, pid: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{prefix}{name}"));
        std::fs::create_dir(&dir).unwrap();
        let mut f = std::fs::File::create(dir.join(LOCK_FILE)).unwrap();
        f.write_all(pid.as_bytes()).unwrap();
        if let Some((uid, gid)) = unprivileged_user().unwrap() {
            nix::unistd::chown(
                &dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn only_unlocked_directories_of_ours_with_an_owner_are_swept() {
        if find_bindir().is_err() {
            // The sweep needs the server binaries (pg_ctl) to stop a server.
            panic!("PostgreSQL server binaries not found (apt-get install postgresql)");
        }
        let prefix = format!("charon-sweeptest-{}-", std::process::id());
        let dead = fake(&prefix, "dead", 0o700, "12345\n");
        let open_mode = fake(&prefix, "mode", 0o755, "12345\n");
        let new = fake(&prefix, "new", 0o700, "");
        let live = fake(&prefix, "live", 0o700, "12345\n");
        let held = std::fs::OpenOptions::new()
            .write(true)
            .open(live.join(LOCK_FILE))
            .unwrap();
        held.try_lock().unwrap();
        // A symlink named like a cluster, to a leftover-looking directory
        // elsewhere: not followed.
        let target = fake(&format!("other-{prefix}"), "target", 0o700, "1\n");
        let link = std::env::temp_dir().join(format!("{prefix}link"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // A real cluster directory of this process: locked, so left alone.
        let mut mine = Cluster::empty(&prefix).unwrap();

        let swept = sweep_leftovers(&prefix);

        assert_eq!(swept, vec![dead.clone()]);
        assert!(!dead.exists());
        for kept in [&open_mode, &new, &live, &target, &link, &mine.running.dir] {
            assert!(
                std::fs::symlink_metadata(kept).is_ok(),
                "{} was swept",
                kept.display()
            );
        }
        drop(held);
        mine.stop();
        for d in [&open_mode, &new, &live, &target] {
            std::fs::remove_dir_all(d).unwrap();
        }
        std::fs::remove_file(&link).unwrap();
    }
}
