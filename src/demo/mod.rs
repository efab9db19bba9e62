//! The throwaway PostgreSQL cluster behind `charon demo`.

pub mod cluster;

pub use cluster::{Cluster, cleanup_all};
