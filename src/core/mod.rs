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
