//! The synthetic Pluto schema and its deterministic data generator.

/// The schema, as SQL.
pub const SCHEMA: &str = include_str!("schema.sql");
/// Indexes, created after bulk loading.
pub const INDEXES: &str = include_str!("indexes.sql");
