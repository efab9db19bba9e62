//! `charon datamap check [--map PATH] [--json]`: compares the data map with
//! the live Pluto catalog and names every column the map does not classify.

use std::path::Path;

use sqlx::PgPool;

use super::output;
use crate::core::datamap::{self, DataMap};

/// Loads the map (`map_path`, or the shipped Pluto map), checks it against
/// the database behind `pool` and prints the report: text through the
/// terminal sanitiser, or JSON. Returns the exit code: 0 when the map covers
/// the live schema, 1 when anything is unclassified, missing or wrong. A map
/// that does not parse is an error (its message names file, line and key).
pub async fn check(pool: &PgPool, map_path: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    let map = match map_path {
        Some(p) => DataMap::load(p)?,
        None => DataMap::bundled()?,
    };
    let report = datamap::check(pool, &map).await?;
    if json {
        output::json(&report)?;
    } else {
        for line in report.lines() {
            output::line(&line);
        }
    }
    Ok(report.exit_code())
}
