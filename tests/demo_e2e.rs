//! `charon demo` through a real terminal (tmux): it starts its own cluster,
//! shows the console, and leaves no process, directory or broken terminal
//! behind, whether the operator quits or the session is terminated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::tmux::{Tmux, charon_bin, sh_quote};

fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

struct Demo {
    tmux: Tmux,
    tmp: PathBuf,
}

impl Demo {
    fn start(name: &str) -> Demo {
        let tmp = std::env::temp_dir().join(format!("charon-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        // The cluster runs as `postgres` when we are root: it must reach its dir.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cmd = format!(
            "exec env -u DATABASE_URL TMPDIR={} {} demo --tenants 40 --seed 3",
            sh_quote(&tmp.to_string_lossy()),
            sh_quote(&charon_bin().to_string_lossy())
        );
        let tmux = Tmux::start(&format!("demo-{name}"), &cmd, 120, 36);
        Demo { tmux, tmp }
    }

    fn cluster_dirs(&self) -> Vec<PathBuf> {
        self.dirs("charon-demo-")
    }

    fn dirs(&self, prefix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(&self.tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect()
    }
}

impl std::ops::Deref for Demo {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.tmux
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The session goes first (the Tmux field's own drop would run after
        // this): charon cleans up its cluster, then the directory goes.
        let _ = common::tmux::tmux(&["kill-session", "-t", &self.tmux.session]);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

#[test]
fn demo_quits_cleanly_and_leaves_nothing_behind() {
    let demo = Demo::start("quit");
    // The gate comes first: nothing else is reachable before it.
    let screen = demo.wait_for("hardware-key gate", Duration::from_secs(120));
    assert!(screen.contains("DEMO"), "{screen}");
    assert!(!screen.contains("Find a tenant"), "{screen}");
    // Choose the compliance role: its demo operator signs in with a software key.
    demo.keys(&["j", "Enter"]);
    let screen = demo.wait_for("Find a tenant", Duration::from_secs(20));
    assert!(screen.contains("demo-compliance (compliance)"), "{screen}");
    demo.wait_for("recent", Duration::from_secs(10));
    let dirs = demo.cluster_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        !processes_mentioning(&dirs[0]).is_empty(),
        "the demo cluster is not running"
    );

    // The help overlay, then back, then leave the input and quit.
    demo.keys(&["Escape", "?"]);
    demo.wait_for("help", Duration::from_secs(10));
    demo.keys(&["Escape", "q"]);
    demo.wait_exit(Duration::from_secs(30));

    assert!(
        demo.cluster_dirs().is_empty(),
        "cluster directory left behind"
    );
    // The demo's object store and export directory goes with it.
    assert!(
        demo.dirs("charon-files-").is_empty(),
        "demo files left behind"
    );
    assert!(
        processes_mentioning(&dirs[0]).is_empty(),
        "cluster process left behind"
    );
    // The alternate screen is gone: the pane shows the primary screen again.
    assert!(
        !demo.screen().contains("DEMO"),
        "terminal not restored:\n{}",
        demo.screen()
    );
}

#[test]
fn demo_cleans_up_when_terminated() {
    let demo = Demo::start("term");
    demo.wait_for("hardware-key gate", Duration::from_secs(120));
    let dirs = demo.cluster_dirs();
    assert_eq!(dirs.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(demo.pane_pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    demo.wait_exit(Duration::from_secs(30));
    assert!(
        demo.cluster_dirs().is_empty(),
        "cluster directory left behind"
    );
    assert!(
        processes_mentioning(&dirs[0]).is_empty(),
        "cluster process left behind"
    );
    assert!(
        !demo.screen().contains("DEMO"),
        "terminal not restored:\n{}",
        demo.screen()
    );
}
