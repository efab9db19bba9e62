//! The domain core. No terminal UI imports live below this module.

pub mod action;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod datamap;
pub mod db;
pub mod detect;
pub mod erasure;
pub mod error;
pub mod input;
pub mod keys;
pub mod mask;
pub mod mfa;
pub mod operators;
pub mod records;
pub mod restore;
pub mod sanitize;
pub mod secrets;
pub mod session;
pub mod tenants;

pub use error::{Error, Result};

/// A test hook: with the environment variable `var` set to `point`, the
/// process stops there (prints `paused at <point>` on stderr and sleeps),
/// so that the crash tests can SIGKILL it exactly at that point. Unset, it
/// costs one environment lookup.
pub(crate) async fn pause_point(var: &str, point: &str) {
    if std::env::var(var).is_ok_and(|v| v == point) {
        eprintln!("paused at {point}");
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }
}
