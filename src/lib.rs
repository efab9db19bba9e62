//! charon: the terminal administration console for Pluto's staff.
//!
//! Layers, outermost first:
//! - `cli` and `tui`: the two front ends. They turn what an operator types into
//!   [`core::action::Action`] values and show the replies. Neither holds SQL.
//! - `core`: the domain. Configuration, the one dispatch point
//!   ([`core::console::Console::dispatch`]), tenant lookup, terminal sanitising.
//!   Nothing in `core` imports ratatui or crossterm.
//! - `pluto`: the synthetic Pluto schema and its deterministic data generator.
//! - `demo`: the throwaway PostgreSQL cluster that `charon demo` runs on.

pub mod cli;
pub mod core;
pub mod demo;
pub mod pluto;
pub mod tui;

#[doc(hidden)]
pub mod fuzzing;
