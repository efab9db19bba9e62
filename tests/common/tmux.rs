//! A small tmux driver for end-to-end tests of the real binary: one detached
//! session per test (its own name), keys in with `send-keys`, the screen out
//! with `capture-pane`, waits that poll for text instead of sleeping, and
//! `kill-session` on drop (also when the test panics).
//!
//! Waits are generous: CI and the development machine are small and shared,
//! and a debug binary on a busy machine can take seconds to draw.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a wait for something on screen lasts by default.
pub const WAIT: Duration = Duration::from_secs(90);

/// How long a wait looks for the same screen twice before it takes a
/// changing one as it is.
const SETTLE: Duration = Duration::from_secs(3);

/// The charon binary under test: `$CHARON_E2E_BIN` when set (CI points it
/// at the release build), else the one cargo built for this test run.
pub fn charon_bin() -> PathBuf {
    match std::env::var_os("CHARON_E2E_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_charon")),
    }
}

/// Runs `tmux ARGS…` and returns its standard output.
pub fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Single-quotes a word for the shell tmux runs the pane's command with.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One detached tmux session running one command in one pane.
pub struct Tmux {
    pub session: String,
}

impl Tmux {
    /// Starts `cmd` (an `sh` command line) in a new detached session named
    /// `charon-e2e-NAME-PID`, `width`×`height` cells. The pane stays after
    /// the command exits, so its last screen can still be read.
    pub fn start(name: &str, cmd: &str, width: u16, height: u16) -> Tmux {
        let session = format!("charon-e2e-{name}-{}", std::process::id());
        let _ = tmux(&["kill-session", "-t", &session]);
        let (w, h) = (width.to_string(), height.to_string());
        // Under `sh` whatever the account's shell is; the pane's process
        // stays the same (exec) from the shell to the command.
        let gate = format!("exec sh -c {}", sh_quote(&format!("read -r _go; {cmd}")));
        // The command starts only after remain-on-exit is set: a quick
        // failure must still leave its message on screen.
        let out = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                &w,
                "-y",
                &h,
                &gate,
            ])
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Tmux { session };
        tmux(&["set-option", "-t", &t.session, "remain-on-exit", "on"]);
        tmux(&["send-keys", "-t", &t.session, "Enter"]);
        t
    }

    /// The visible screen, as text.
    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Waits until `what` is on screen; returns that screen. Fails the test
    /// with the last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        self.wait_until(&format!("`{what}`"), timeout, |s| s.contains(what))
    }

    /// Waits until one of `whats` is on screen; returns its index and the screen.
    pub fn wait_for_any(&self, whats: &[&str], timeout: Duration) -> (usize, String) {
        let s = self.wait_until(&format!("one of {whats:?}"), timeout, |s| {
            whats.iter().any(|w| s.contains(w))
        });
        let i = whats.iter().position(|w| s.contains(w)).unwrap_or(0);
        (i, s)
    }

    /// Waits until `done(screen)` holds; `what` names it in the failure.
    ///
    /// A capture can catch a frame half drawn (the new text in one corner,
    /// the old screen elsewhere), so the screen returned is a settled one:
    /// the same in two captures in a row (or, for a screen that never stops
    /// changing, the last one that still satisfies `done` a moment later).
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut previous: Option<String> = None;
        let mut first_seen: Option<Instant> = None;
        loop {
            let s = self.screen();
            if done(&s) {
                let seen = *first_seen.get_or_insert_with(Instant::now);
                if previous.as_deref() == Some(s.as_str()) || seen.elapsed() > SETTLE {
                    return s;
                }
                previous = Some(s);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            previous = None;
            first_seen = None;
            if self.dead() {
                // One last look: the final frame may have arrived with the exit.
                let s = self.screen();
                if done(&s) {
                    return s;
                }
                panic!("{what} did not appear: the program exited; screen:\n{s}");
            }
            assert!(
                start.elapsed() < timeout,
                "{what} did not appear within {timeout:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends tmux key names (`Enter`, `Escape`, `C-a`, `j`, …), one at a time.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            tmux(&["send-keys", "-t", &self.session, k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Types `text` literally (no key-name lookup), as a YubiKey or a person does.
    pub fn type_text(&self, text: &str) {
        tmux(&["send-keys", "-t", &self.session, "-l", text]);
        std::thread::sleep(Duration::from_millis(150));
    }

    /// The pid of the pane's process.
    pub fn pane_pid(&self) -> i32 {
        tmux(&["list-panes", "-t", &self.session, "-F", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("the pane has a pid")
    }

    /// True once the pane's command has exited.
    pub fn dead(&self) -> bool {
        tmux(&["list-panes", "-t", &self.session, "-F", "#{pane_dead}"]).trim() == "1"
    }

    /// A tmux format for the pane, e.g. `#{alternate_on}`.
    pub fn format(&self, fmt: &str) -> String {
        tmux(&["display-message", "-p", "-t", &self.session, fmt])
            .trim()
            .to_string()
    }

    /// Waits until the pane's command has exited.
    pub fn wait_exit(&self, timeout: Duration) {
        let start = Instant::now();
        while !self.dead() {
            assert!(
                start.elapsed() < timeout,
                "the program did not exit; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.session]);
    }
}
