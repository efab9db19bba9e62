//! The command-line front end (clap).
