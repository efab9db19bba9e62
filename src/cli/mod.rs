//! The command-line front end (clap).

pub mod audit;
