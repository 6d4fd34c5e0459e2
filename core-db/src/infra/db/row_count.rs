//! Exact row counts that cost O(1) on PostgreSQL: [`Database::track_row_count`] and
//! [`Database::row_count`].
//!
//! `SELECT COUNT(*)` on PostgreSQL reads the whole table (about 5 ms per 100,000 rows on a small
//! machine), which dominates a paginated listing's response time. A tracked table instead has
//! three statement-level triggers (`AFTER INSERT`, `AFTER DELETE` with transition tables, and
//! `AFTER TRUNCATE`) that append the statement's change to `rustforge_row_counts`; the count is
//! the sum of the table's few rows there. It is exact and transactional: a reader sees the rows
//! committed as of its snapshot, exactly what `COUNT(*)` would return. Writers only append, so
//! they never wait on each other, and one bulk statement appends one row. Readers fold the rows
//! back into one in the background once there are more than [`COMPACT_AFTER`].
//!
//! What the triggers cannot see: rows written directly into a partition of a tracked partitioned
//! table (write through the parent), and writes made while triggers are disabled
//! (`session_replication_role = replica`, as logical replication's apply worker runs). Disabling or
//! dropping one of the triggers is noticed, and so is disabling one and enabling it again (the
//! rows written in between were never counted): the seed records the triggers' `pg_trigger` row
//! versions, which every such change replaces. [`Database::row_count`] then counts with
//! `COUNT(*)` until [`Database::track_row_count`] is called again, which re-seeds the count.
//!
//! Tracking is a SQL function of the framework migrations, so a migration of your own can track a
//! table in the same transaction that creates it: `SELECT rustforge_track_row_count('articles');`.
//! The framework migrations track `failed_jobs` this way.
//!
//! On SQLite, `COUNT(*)` walks the table's smallest b-tree and is cheap at the sizes an embedded
//! database holds, so nothing is installed and [`Database::row_count`] always counts.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;
use sqlx::postgres::types::Oid;

use super::Database;
use crate::error::{Error, Result};

/// Once a tracked table has more rows than this in `rustforge_row_counts`, the next
/// [`Database::row_count`] folds them into one in the background.
pub const COMPACT_AFTER: i64 = 64;

/// The exact count when the table is tracked and its three triggers are exactly as they were when
/// the count was seeded (same OIDs, same `pg_trigger` row versions, all enabled), otherwise
/// `COUNT(*)`; `COALESCE` only runs the second (an init plan) when the first is NULL. Also returns
/// how many rows the count is spread over, and the table's OID for compaction.
const PG_ROW_COUNT: &str = "\
SELECT COALESCE(\
    (SELECT sum(c.n) FROM rustforge_row_counts c WHERE c.relid = to_regclass($1) \
     AND EXISTS (SELECT 1 FROM rustforge_row_count_tracking k \
                 WHERE k.relid = to_regclass($1) \
                   AND k.triggers = rustforge_row_count_triggers(to_regclass($1)))), \
    (SELECT count(*) FROM {table}))::BIGINT, \
  (SELECT count(*) FROM rustforge_row_counts c WHERE c.relid = to_regclass($1)), \
  to_regclass($1)::OID";

/// The statement [`Database::row_count`] runs on PostgreSQL for the table `quoted` (an
/// identifier as [`quote_table`] returns it), which it also binds as `$1`. It replies the count,
/// how many rows of `rustforge_row_counts` the count is spread over, and the table's OID. For
/// running the same statement by hand, as the DataTable benchmark's raw side does.
pub fn tracked_count_statement(quoted: &str) -> String {
    PG_ROW_COUNT.replace("{table}", quoted)
}

/// How long [`Database::track_row_count`] waits for the table's lock.
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One compaction at a time per process; others are skipped, not queued.
static COMPACTING: AtomicBool = AtomicBool::new(false);

/// `"name"` with embedded quotes doubled: an identifier on PostgreSQL and SQLite alike.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name, `table` or `schema.table`, as a quoted SQL identifier; each part is quoted, so a
/// part may hold any character but `.` and NUL. An empty part or a NUL is an
/// [`Error::InvalidKey`].
pub fn quote_table(name: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidKey {
        key: name.to_owned(),
        reason,
    };
    if name.contains('\0') {
        return Err(invalid("a table name cannot contain NUL"));
    }
    if name.split('.').any(str::is_empty) {
        return Err(invalid(
            "a table name and each of its dotted parts must be non-empty",
        ));
    }
    Ok(name
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join("."))
}

impl Database {
    /// Keeps an exact count of `table`'s rows that [`row_count`](Self::row_count) reads in O(1)
    /// on PostgreSQL, and returns the count it starts from (see the [module docs](self)).
    ///
    /// Installs the table's triggers (those missing; a disabled one is enabled again) and seeds
    /// the count in one transaction that holds the table's `SHARE ROW EXCLUSIVE` lock: reads go
    /// on, writes wait for the seeding `COUNT(*)`. Waiting for that lock behind a long-running
    /// writer fails after 30 s (PostgreSQL's lock timeout error). Calling it again re-seeds the
    /// count and removes entries left by dropped tables, so it is safe to call at every start-up
    /// or from a migration step. Needs the framework migrations
    /// ([`migrate`](Self::migrate)). On SQLite it only checks that the table exists.
    ///
    /// `table` is `name` or `schema.name`; each part is quoted as an identifier.
    pub async fn track_row_count(&self, table: &str) -> Result<u64> {
        let quoted = quote_table(table)?;
        match self {
            Self::Postgres(pool) => track_postgres(pool, &quoted).await,
            Self::Sqlite(pool) => {
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {quoted}"))
                    .fetch_one(pool)
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }
    }

    /// Stops tracking `table`: drops its triggers and its entries in `rustforge_row_counts`.
    /// [`row_count`](Self::row_count) then counts with `COUNT(*)`. Untracking a table that is not
    /// tracked does nothing; neither does anything on SQLite.
    pub async fn untrack_row_count(&self, table: &str) -> Result<()> {
        let quoted = quote_table(table)?;
        let Self::Postgres(pool) = self else {
            return Ok(());
        };
        sqlx::query("SELECT rustforge_untrack_row_count($1::REGCLASS)")
            .bind(&quoted)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// The exact number of rows in `table`. On PostgreSQL a table tracked by
    /// [`track_row_count`](Self::track_row_count) answers from its counter in a fraction of a
    /// millisecond; any other table (and every table on SQLite) is counted with `COUNT(*)`.
    pub async fn row_count(&self, table: &str) -> Result<u64> {
        let quoted = quote_table(table)?;
        let count_all = || format!("SELECT COUNT(*) FROM {quoted}");
        let n: i64 = match self {
            Self::Postgres(pool) => match tracked_count(pool, &quoted).await {
                // Without the framework migrations (or only the older ones) no table can be
                // tracked: count.
                Err(sqlx::Error::Database(err))
                    if err.code().as_deref() == Some("42P01")
                        && err.message().contains("rustforge_row_count") =>
                {
                    sqlx::query_scalar(&count_all()).fetch_one(pool).await?
                }
                other => other?,
            },
            Self::Sqlite(pool) => sqlx::query_scalar(&count_all()).fetch_one(pool).await?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The tracked count of a table, or its `COUNT(*)` when it is not tracked; starts a compaction
/// when the count is spread over too many rows.
async fn tracked_count(pool: &PgPool, quoted: &str) -> sqlx::Result<i64> {
    let (n, parts, relid): (i64, i64, Option<Oid>) =
        sqlx::query_as(&tracked_count_statement(quoted))
            .bind(quoted)
            .fetch_one(pool)
            .await?;
    if parts > COMPACT_AFTER
        && let Some(relid) = relid
    {
        spawn_compaction(pool.clone(), relid);
    }
    Ok(n)
}

/// Runs `rustforge_track_row_count` (see the PostgreSQL migrations), its wait for the table's
/// lock bounded by [`LOCK_TIMEOUT`].
async fn track_postgres(pool: &PgPool, quoted: &str) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}s'",
        LOCK_TIMEOUT.as_secs()
    ))
    .execute(&mut *tx)
    .await?;
    let n: i64 = sqlx::query_scalar("SELECT rustforge_track_row_count($1::REGCLASS)")
        .bind(quoted)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Folds a table's counter rows into one, on a pooled connection in the background. A failure
/// (a read-only replica, a closed pool) leaves the rows as they are: the count stays exact, only
/// slower to read.
fn spawn_compaction(pool: PgPool, relid: Oid) {
    if COMPACTING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let result = sqlx::query_scalar::<_, bool>("SELECT rustforge_row_count_compact($1)")
            .bind(relid)
            .fetch_one(&pool)
            .await;
        COMPACTING.store(false, Ordering::Release);
        if let Err(err) = result {
            tracing::warn!(error = %err, relid = relid.0, "compacting a row count failed");
        }
    });
}
