//! `seed`: creates the synthetic Pluto schema in an empty database, bulk-loads
//! a deterministic dataset with COPY, then builds the indexes.
//!
//! One blocking thread generates tenants in batches; one loader per table
//! streams each batch into PostgreSQL with `COPY ... FROM STDIN` (text format).
//! A table's batch is loaded once the batches of the tables it references are
//! in, so the declared foreign keys hold at every step, and the tables load
//! concurrently over several pooled connections. At most a few batches are in
//! memory at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgPoolCopyExt;
use tokio::sync::{mpsc, watch};

use super::generate::{Generator, Rows, TABLES, Table};
use super::{INDEXES, SCHEMA};
use crate::core::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOptions {
    /// Number of tenants (businesses). About 100 rows each on average.
    pub tenants: u32,
    /// The same seed gives byte-identical data.
    pub seed: u64,
}

/// Where seeding is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedPhase {
    Schema,
    Loading,
    Indexes,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedProgress {
    pub phase: SeedPhase,
    /// Tenants whose rows are all loaded.
    pub tenants_done: u64,
    pub tenants_total: u64,
    /// Rows loaded so far, all tables.
    pub rows: u64,
}

impl std::fmt::Display for SeedProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.phase {
            SeedPhase::Schema => write!(f, "creating the schema"),
            SeedPhase::Loading => write!(
                f,
                "loading {}/{} tenants, {} rows",
                self.tenants_done, self.tenants_total, self.rows
            ),
            SeedPhase::Indexes => write!(f, "creating indexes ({} rows loaded)", self.rows),
            SeedPhase::Done => write!(f, "done, {} rows", self.rows),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedStats {
    pub tenants: u64,
    pub users: u64,
    /// Total rows, all tables.
    pub rows: u64,
    /// Rows per table, in load order.
    pub per_table: Vec<(&'static str, u64)>,
    pub elapsed: Duration,
}

/// Tenants generated and loaded per batch (about 100,000 rows).
const BATCH_TENANTS: u32 = 1_000;
/// Size of one COPY data message.
const CHUNK: usize = 1 << 20;
/// CREATE INDEX statements run at once.
const INDEX_PARALLELISM: usize = 2;

type Batch = (Vec<u8>, u64);

/// Creates the schema ([`SCHEMA`]) in the database behind `pool`, which must
/// not have the Pluto tables yet, bulk-loads `opts.tenants` tenants with COPY,
/// then creates [`INDEXES`] and analyses the tables. `progress` is called
/// from the calling task after each batch and at each phase.
pub async fn seed(
    pool: &PgPool,
    opts: &SeedOptions,
    progress: &(dyn Fn(SeedProgress) + Sync),
) -> Result<SeedStats> {
    let started = Instant::now();
    let total = u64::from(opts.tenants);
    let rows_loaded = AtomicU64::new(0);
    let report = |phase, tenants_done| {
        progress(SeedProgress {
            phase,
            tenants_done,
            tenants_total: total,
            rows: rows_loaded.load(Ordering::Relaxed),
        })
    };

    report(SeedPhase::Schema, 0);
    sqlx::raw_sql(SCHEMA).execute(pool).await?;

    report(SeedPhase::Loading, 0);
    let per_table = load(pool, opts, &rows_loaded, &|done| {
        report(SeedPhase::Loading, done)
    })
    .await?;

    report(SeedPhase::Indexes, total);
    create_indexes(pool).await?;

    let count = |t: Table| per_table[t.index()];
    let stats = SeedStats {
        tenants: count(Table::Businesses),
        users: count(Table::Users),
        rows: per_table.iter().sum(),
        per_table: TABLES.iter().map(|t| (t.name(), count(*t))).collect(),
        elapsed: started.elapsed(),
    };
    report(SeedPhase::Done, total);
    Ok(stats)
}

/// Generates and loads every batch; returns the rows loaded per table.
async fn load(
    pool: &PgPool,
    opts: &SeedOptions,
    rows_loaded: &AtomicU64,
    batch_done: &(dyn Fn(u64) + Sync),
) -> Result<[u64; 12]> {
    let batches = opts.tenants.div_ceil(BATCH_TENANTS);
    let mut senders = Vec::with_capacity(TABLES.len());
    let mut receivers = Vec::with_capacity(TABLES.len());
    for _ in TABLES {
        let (tx, rx) = mpsc::channel::<Batch>(2);
        senders.push(tx);
        receivers.push(rx);
    }

    // The generator: CPU work, on its own thread. It stops early when the
    // loaders are gone (a COPY failed).
    let (tenants, seed) = (opts.tenants, opts.seed);
    let generator = tokio::task::spawn_blocking(move || {
        let mut generator = Generator::new(seed);
        let mut rows = Rows::default();
        let mut left = tenants;
        while left > 0 {
            let n = left.min(BATCH_TENANTS);
            generator.tenants(n, &mut rows);
            for (tx, w) in senders.iter().zip(rows.tables.iter_mut()) {
                if tx.blocking_send(w.take()).is_err() {
                    return;
                }
            }
            left -= n;
        }
    });

    // done[t] = how many batches of table t are committed.
    let (done_tx, done_rx): (Vec<_>, Vec<_>) = TABLES.iter().map(|_| watch::channel(0u64)).unzip();

    let loaders = TABLES
        .iter()
        .zip(receivers)
        .zip(done_tx)
        .map(|((&table, rx), done)| {
            let parents: Vec<watch::Receiver<u64>> = table
                .parents()
                .iter()
                .map(|p| done_rx[p.index()].clone())
                .collect();
            load_table(pool, table, rx, parents, done, rows_loaded)
        });
    let watch_progress = async {
        let mut all: Vec<watch::Receiver<u64>> = done_rx.to_vec();
        for batch in 1..=u64::from(batches) {
            for rx in all.iter_mut() {
                // A closed channel means that loader has finished or failed;
                // the join below reports the failure.
                if rx.wait_for(|&n| n >= batch).await.is_err() {
                    return Ok(());
                }
            }
            batch_done((batch * u64::from(BATCH_TENANTS)).min(u64::from(opts.tenants)));
        }
        Ok::<(), Error>(())
    };
    let (counts, ()) = futures::try_join!(futures::future::try_join_all(loaders), watch_progress)?;
    generator
        .await
        .map_err(|e| Error::Io(std::io::Error::other(format!("data generator failed: {e}"))))?;

    let mut per_table = [0u64; 12];
    for (slot, n) in per_table.iter_mut().zip(counts) {
        *slot = n;
    }
    Ok(per_table)
}

/// Loads every batch of one table, each once its parents' batch is in.
async fn load_table(
    pool: &PgPool,
    table: Table,
    mut rx: mpsc::Receiver<Batch>,
    mut parents: Vec<watch::Receiver<u64>>,
    done: watch::Sender<u64>,
    rows_loaded: &AtomicU64,
) -> Result<u64> {
    let mut batch = 0u64;
    let mut total = 0u64;
    while let Some((buf, rows)) = rx.recv().await {
        batch += 1;
        for p in parents.iter_mut() {
            p.wait_for(|&n| n >= batch).await.map_err(|_| {
                Error::Io(std::io::Error::other(format!(
                    "loading {}: a referenced table stopped loading",
                    table.name()
                )))
            })?;
        }
        if rows > 0 {
            let mut copy = pool.copy_in_raw(table.copy_statement()).await?;
            for chunk in buf.chunks(CHUNK) {
                copy.send(chunk).await?;
            }
            let n = copy.finish().await?;
            if n != rows {
                return Err(Error::Io(std::io::Error::other(format!(
                    "loading {}: sent {rows} rows, PostgreSQL took {n}",
                    table.name()
                ))));
            }
        }
        total += rows;
        rows_loaded.fetch_add(rows, Ordering::Relaxed);
        done.send_replace(batch);
    }
    Ok(total)
}

/// The statements of [`INDEXES`]: CREATE INDEX ones (run concurrently) and
/// the rest (run afterwards, in order).
fn index_statements() -> (Vec<String>, Vec<String>) {
    let without_comments: String = INDEXES
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .partition(|s| s.to_ascii_uppercase().starts_with("CREATE INDEX"))
}

async fn create_indexes(pool: &PgPool) -> Result<()> {
    let (creates, rest) = index_statements();
    futures::stream::iter(creates)
        .map(|sql| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL maintenance_work_mem = '128MB'")
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<(), Error>(())
        })
        .buffer_unordered(INDEX_PARALLELISM)
        .try_collect::<Vec<()>>()
        .await?;
    for sql in rest {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_file_splits_into_creates_then_analyze() {
        let (creates, rest) = index_statements();
        assert!(creates.len() >= 10);
        assert!(creates.iter().all(|s| s.starts_with("CREATE INDEX")));
        assert_eq!(rest, vec!["ANALYZE".to_string()]);
    }
}
