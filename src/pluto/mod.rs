//! The synthetic Pluto schema and its deterministic data generator.

pub mod copy;
pub mod fake;
pub mod generate;
pub mod names;
pub mod seed;

pub use seed::{SeedOptions, SeedPhase, SeedProgress, SeedStats, seed};

/// The schema, as SQL.
pub const SCHEMA: &str = include_str!("schema.sql");
/// Indexes, created after bulk loading.
pub const INDEXES: &str = include_str!("indexes.sql");
