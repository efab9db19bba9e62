//! The domain core. No terminal UI imports live below this module.

pub mod action;
pub mod audit;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod mask;
pub mod sanitize;
pub mod session;
pub mod tenants;

pub use error::{Error, Result};
