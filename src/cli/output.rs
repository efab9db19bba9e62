//! Printing for scripts: text through the terminal sanitiser, JSON with
//! unsafe characters escaped.

use serde::Serialize;

use crate::core::sanitize::{json_safe, sanitize};

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{}", json_safe(&text));
    Ok(())
}

/// One line of text from database values, made inert for the terminal.
pub fn line(text: &str) {
    println!("{}", sanitize(text));
}
