//! The domain core. No terminal UI imports live below this module.

pub mod action;
pub mod config;
pub mod console;
pub mod datamap;
pub mod db;
pub mod detect;
pub mod error;
pub mod mask;
pub mod mfa;
pub mod sanitize;
pub mod session;
pub mod tenants;

pub use error::{Error, Result};
