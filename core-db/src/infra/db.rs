//! The database handle: one [`Database`](crate::infra::db::Database) over PostgreSQL or the embedded SQLite default.
//!
//! The backend follows the URL: `postgres://` / `postgresql://` select PostgreSQL, `sqlite:`
//! selects SQLite (the file and its directory are created when missing, the journal is WAL and
//! writers wait instead of failing with `SQLITE_BUSY`). Migrations are embedded at compile time
//! from `migrations/postgres` and `migrations/sqlite` at the workspace root, so a binary migrates
//! its database without the source tree.
//!
//! [`Database::row_count`](crate::infra::db::Database::row_count) counts a table's rows exactly,
//! in O(1) on PostgreSQL for tables tracked with
//! [`Database::track_row_count`](crate::infra::db::Database::track_row_count) (see
//! [`row_count`](crate::infra::db::row_count)).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor as _, PgPool, Postgres, Sqlite, SqlitePool};

use crate::error::{Error, Result};

mod like;
pub mod row_count;
pub mod timestamp;

pub use like::like_pattern;
pub use row_count::{quote_ident, quote_table};
pub use timestamp::Timestamp;

/// PostgreSQL migrations, embedded from `migrations/postgres`.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
/// SQLite migrations, embedded from `migrations/sqlite`.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// One set of migrations for both engines, embedded at compile time with `sqlx::migrate!`:
/// the framework's ([`Migrations::FRAMEWORK`]) or an application's own, applied with
/// [`Database::migrate_with`].
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The PostgreSQL migrations.
    pub postgres: &'static sqlx::migrate::Migrator,
    /// The SQLite migrations.
    pub sqlite: &'static sqlx::migrate::Migrator,
}

impl Migrations {
    /// The framework's migrations: `migrations/postgres` and `migrations/sqlite` at the
    /// workspace root.
    pub const FRAMEWORK: Self = Self {
        postgres: &POSTGRES_MIGRATOR,
        sqlite: &SQLITE_MIGRATOR,
    };
}

/// `migrator` over the same files, ignoring applied versions it does not know: several sets
/// share `_sqlx_migrations`.
fn tolerant(migrator: &'static sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Borrowed(&migrator.migrations),
        ignore_missing: true,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
    }
}

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (`postgres://`).
    Postgres,
    /// SQLite (`sqlite:`), the embedded default.
    Sqlite,
}

impl Backend {
    /// The backend a URL selects, or a [`Error::Config`] naming the URL's scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "sqlite" => Ok(Self::Sqlite),
            _ => Err(Error::Config(format!(
                "unsupported database URL scheme {scheme:?}: expected postgres://, postgresql:// or sqlite:"
            ))),
        }
    }

    /// A short lowercase name (`postgres`, `sqlite`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Pool settings for [`Database::connect_with`].
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// Largest number of open connections (default 10; SQLite uses at most this many readers).
    pub max_connections: u32,
    /// How long to wait for a connection from the pool before failing (default 5 s).
    pub acquire_timeout: Duration,
    /// How long a SQLite writer waits for the lock before failing (default 5 s).
    pub sqlite_busy_timeout: Duration,
    /// A pooled connection idle for at least this long is pinged before it is handed out
    /// (default 1 s); one used more recently is not, since the pool pings every connection as
    /// it comes back. sqlx's default pings on every acquire: one more round trip per query.
    pub ping_if_idle_for: Duration,
    /// PostgreSQL: a connection coming back to the pool must answer a ping within this long, or
    /// it is closed (default 5 s; `None` leaves the check to sqlx alone).
    ///
    /// sqlx pings every connection as it comes back, with no time limit. A connection whose
    /// server went silent while its socket stayed open (a flow dropped by a NAT or a firewall,
    /// a query abandoned by a timeout whose reply never comes) would wait for that reply for
    /// ever and keep its pool slot; `max_connections` of them and every acquire fails until the
    /// process restarts. This check, bounded, runs first: one more round trip per release, off
    /// the caller's path (the caller already has its result).
    pub release_check_within: Option<Duration>,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            ping_if_idle_for: Duration::from_secs(1),
            release_check_within: Some(Duration::from_secs(5)),
        }
    }
}

/// The database settings an application loads (`DATABASE_URL`, `MIGRATE_ON_START`), taken by
/// [`Database::from_config`].
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://…` / `postgresql://…` for PostgreSQL, `sqlite://PATH` (or `sqlite::memory:`)
    /// for SQLite.
    pub url: String,
    /// Apply pending migrations when connecting through [`Database::from_config`].
    pub migrate_on_start: bool,
    /// The pool's largest number of open connections (default 10, at least 1). On PostgreSQL
    /// concurrent commits share disk flushes, so a busy server wants more connections than
    /// cores; SQLite uses at most this many readers.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    /// SQLite at `data/app.sqlite3`, migrated on start.
    fn default() -> Self {
        Self {
            url: "sqlite://data/app.sqlite3".to_owned(),
            migrate_on_start: true,
            max_connections: DatabaseOptions::default().max_connections,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::settings::redact_url(&self.url))
            .field("migrate_on_start", &self.migrate_on_start)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseConfig {
    /// Checks the URL without connecting: its scheme must select a backend; and the pool must
    /// allow at least one connection.
    ///
    /// # Errors
    /// [`Invalid`](crate::settings::Invalid) naming `database.url` or
    /// `database.max_connections`.
    pub fn check(&self) -> std::result::Result<(), crate::settings::Invalid> {
        if self.max_connections == 0 {
            return Err(crate::settings::Invalid::new(
                "database.max_connections",
                "must be at least 1".to_owned(),
            ));
        }
        Backend::from_url(&self.url)
            .map(drop)
            .map_err(|e| crate::settings::Invalid::new("database.url", e.to_string()))
    }
}

/// The pool's check before it hands out `conn`: a ping when it has been idle for `idle` or
/// more (a server restart or a dropped socket while it sat in the pool); a connection that
/// fails it is replaced.
async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
    idle: Duration,
) -> std::result::Result<bool, sqlx::Error> {
    if meta.idle_for >= idle {
        conn.ping().await?;
    }
    Ok(true)
}

/// Runs `work` on one connection of `pool` for at most `limit`, waiting for the connection
/// included; past it [`Error::Timeout`] named `operation` is returned.
///
/// A connection whose work ran out of time is closed rather than returned to the pool. The
/// reply it waits for may never come (a server or a middlebox gone silent while the socket
/// stays open), and sqlx checks a returned connection with a ping of its own that has no time
/// limit: such a connection would hold its pool slot for ever, and enough of them exhaust the
/// pool. Wrapping a query in `tokio::time::timeout` alone has that effect; this does not.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_db::Result<()> {
/// use std::time::Duration;
/// use core_db::{Database, db};
///
/// let Database::Sqlite(pool) = Database::connect("sqlite::memory:").await? else { unreachable!() };
/// let one: i64 = db::within(&pool, "reading one", Duration::from_secs(2), |conn| {
///     Box::pin(async move { sqlx::query_scalar("SELECT 1").fetch_one(&mut **conn).await })
/// })
/// .await?;
/// assert_eq!(one, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The pool or the work failed, or [`Error::Timeout`].
pub async fn within<DB, T, F>(
    pool: &sqlx::Pool<DB>,
    operation: &'static str,
    limit: Duration,
    work: F,
) -> Result<T>
where
    DB: sqlx::Database,
    F: for<'c> FnOnce(
        &'c mut sqlx::pool::PoolConnection<DB>,
    ) -> futures_util::future::BoxFuture<'c, sqlx::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let timed_out = || Error::Timeout {
        operation,
        after: limit,
    };
    let mut conn = tokio::time::timeout_at(deadline, pool.acquire())
        .await
        .map_err(|_| timed_out())??;
    match tokio::time::timeout_at(deadline, work(&mut conn)).await {
        Ok(done) => Ok(done?),
        Err(_) => {
            conn.close_on_drop();
            Err(timed_out())
        }
    }
}

/// Whether `conn` answers a ping within `limit` (a connection that does not is closed by the
/// pool instead of being pinged again without a limit; see
/// [`DatabaseOptions::release_check_within`]).
async fn answers_within<C: sqlx::Connection>(conn: &mut C, limit: Duration) -> bool {
    match tokio::time::timeout(limit, conn.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a connection coming back to the pool failed its ping; closing it");
            false
        }
        Err(_) => {
            tracing::warn!(
                after_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "a connection coming back to the pool did not answer its ping; closing it"
            );
            false
        }
    }
}

/// A cheap, cloneable handle over a connection pool to PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub enum Database {
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A SQLite pool.
    Sqlite(SqlitePool),
}

impl Database {
    /// Connects to the configured database and, when `migrate_on_start` is set, applies the
    /// pending migrations.
    ///
    /// # Errors
    /// An invalid URL, the database unreachable, or a migration that fails.
    pub async fn from_config(config: &DatabaseConfig) -> Result<Self> {
        let options = DatabaseOptions {
            max_connections: config.max_connections.max(1),
            ..DatabaseOptions::default()
        };
        let db = Self::connect_with(&config.url, &options).await?;
        if config.migrate_on_start {
            db.migrate().await?;
        }
        Ok(db)
    }

    /// Connects to `url` with [`DatabaseOptions::default`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &DatabaseOptions::default()).await
    }

    /// Connects to `url`. For SQLite the file and its parent directory are created when missing.
    pub async fn connect_with(url: &str, options: &DatabaseOptions) -> Result<Self> {
        match Backend::from_url(url)? {
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(url)
                    .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?;
                let idle = options.ping_if_idle_for;
                let mut pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .before_acquire(move |conn, meta| {
                        Box::pin(async move { ping_if_idle(conn, meta, idle).await })
                    });
                if let Some(limit) = options.release_check_within {
                    pool = pool.after_release(move |conn, _| {
                        Box::pin(async move { Ok(answers_within(conn, limit).await) })
                    });
                }
                let pool = pool.connect_with(connect).await?;
                Ok(Self::Postgres(pool))
            }
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(|e| Error::Config(format!("invalid SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(options.sqlite_busy_timeout);
                let file = connect.get_filename();
                if file != Path::new(":memory:")
                    && let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
                {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let idle = options.ping_if_idle_for;
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .before_acquire(move |conn, meta| {
                        Box::pin(async move { ping_if_idle(conn, meta, idle).await })
                    })
                    .connect_with(connect)
                    .await?;
                Ok(Self::Sqlite(pool))
            }
        }
    }

    /// Which engine this handle talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Round-trips `SELECT 1`, bounded by `timeout` ([`within`]: a connection that does not
    /// answer in time is closed); used by readiness checks.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        const OPERATION: &str = "database ping";
        match self {
            Self::Postgres(pool) => within(pool, OPERATION, timeout, |c| {
                Box::pin(async move { sqlx::query("SELECT 1").execute(&mut **c).await })
            })
            .await
            .map(drop),
            Self::Sqlite(pool) => within(pool, OPERATION, timeout, |c| {
                Box::pin(async move { sqlx::query("SELECT 1").execute(&mut **c).await })
            })
            .await
            .map(drop),
        }
    }

    /// Applies the framework's embedded migrations ([`Migrations::FRAMEWORK`]: the tables of
    /// core-jobs and the row counters) that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_with(&Migrations::FRAMEWORK).await
    }

    /// Applies the migrations of `set` for this backend that have not run yet: an
    /// application's own tables, next to the framework's.
    ///
    /// Every set records what it applied in the one `_sqlx_migrations` table, so a set ignores
    /// the versions it does not know (another set's); give each set's files distinct versions
    /// (timestamps in the file names do that).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::Database;
    /// use core_db::db::Migrations;
    ///
    /// // In an application: `sqlx::migrate!("migrations/postgres")` and `…/sqlite`.
    /// static APP: Migrations = Migrations::FRAMEWORK;
    ///
    /// let db = Database::connect("sqlite::memory:").await?;
    /// db.migrate().await?;
    /// db.migrate_with(&APP).await?; // nothing left to apply, nothing reported missing
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate_with(&self, set: &Migrations) -> Result<()> {
        match self {
            Self::Postgres(pool) => tolerant(set.postgres).run(pool).await?,
            Self::Sqlite(pool) => tolerant(set.sqlite).run(pool).await?,
        }
        Ok(())
    }

    /// The PostgreSQL pool, if this is PostgreSQL.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            Self::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if this is SQLite.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(pool) => Some(pool),
            Self::Postgres(_) => None,
        }
    }

    /// Starts a transaction. Pass `&mut Tx` to whatever must write inside it (for example a
    /// job buffer), then [`Tx::commit`]; a `Tx` dropped without commit rolls back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::Database;
    /// let db = Database::connect("sqlite::memory:").await?;
    /// let mut tx = db.begin().await?;
    /// tx.execute("CREATE TABLE t (x INTEGER)").await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    /// Runs one statement without parameters (DDL, maintenance) and returns the rows affected.
    pub async fn execute(&self, sql: &str) -> Result<u64> {
        Ok(match self {
            Self::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await?.rows_affected(),
            Self::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await?.rows_affected(),
        })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A transaction on either backend, from [`Database::begin`].
///
/// Code that writes inside the caller's transaction takes `&mut Tx` and matches on the backend
/// (or uses [`Tx::as_postgres`] / [`Tx::as_sqlite`]) to run its queries. Dropping a `Tx` without
/// [`commit`](Tx::commit) rolls it back.
#[derive(Debug)]
pub enum Tx {
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
    /// A SQLite transaction.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    /// Which engine the transaction runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Makes the transaction's writes visible to everyone.
    pub async fn commit(self) -> Result<()> {
        match self {
            Self::Postgres(tx) => tx.commit().await?,
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Discards the transaction's writes.
    pub async fn rollback(self) -> Result<()> {
        match self {
            Self::Postgres(tx) => tx.rollback().await?,
            Self::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Runs one statement without parameters inside the transaction.
    pub async fn execute(&mut self, sql: &str) -> Result<u64> {
        // `&str` as the query runs it unprepared, like `raw_sql`, whose future over a `&mut`
        // connection is not `Send` for every lifetime: callers could not spawn it.
        Ok(match self {
            Self::Postgres(tx) => (&mut **tx).execute(sql).await?.rows_affected(),
            Self::Sqlite(tx) => (&mut **tx).execute(sql).await?.rows_affected(),
        })
    }

    /// The PostgreSQL connection, if this is PostgreSQL (`&mut **tx` style, for sqlx queries).
    pub fn as_postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            Self::Postgres(tx) => Some(&mut **tx),
            Self::Sqlite(_) => None,
        }
    }

    /// The SQLite connection, if this is SQLite.
    pub fn as_sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            Self::Sqlite(tx) => Some(&mut **tx),
            Self::Postgres(_) => None,
        }
    }
}

/// Runs the same sqlx code on whichever pool a [`Database`] holds.
///
/// The body is written once and compiled twice, once with `$pool` bound to the `&PgPool` and
/// once to the `&SqlitePool`, so a query whose SQL reads the same on both engines (`$1`
/// placeholders work on both) needs no `match`. Rows decode with `#[derive(sqlx::FromRow)]`
/// types whose fields both engines can decode (`String`, integers, `bool`,
/// `chrono::DateTime<Utc>`, `Option` of these). Both expansions must have one type: map an
/// engine-specific result (`PgQueryResult`, `SqliteQueryResult`) to what you need, such as
/// `rows_affected()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_db::Result<()> {
/// use core_db::{Database, on_db};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.execute("CREATE TABLE t (id INTEGER, name TEXT)").await?;
/// on_db!(&db, pool => {
///     sqlx::query("INSERT INTO t (id, name) VALUES ($1, $2)")
///         .bind(1_i64)
///         .bind("one")
///         .execute(pool)
///         .await
///         .map(|done| done.rows_affected())
/// })?;
/// let name: String = on_db!(&db, pool => {
///     sqlx::query_scalar("SELECT name FROM t WHERE id = $1").bind(1_i64).fetch_one(pool).await
/// })?;
/// assert_eq!(name, "one");
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Database::Postgres($pool) => $body,
            $crate::Database::Sqlite($pool) => $body,
        }
    };
}

/// [`on_db!`] for a transaction: the body runs with `$conn` bound to the transaction's
/// `&mut PgConnection` or `&mut SqliteConnection`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_db::Result<()> {
/// use core_db::{Database, on_tx};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.execute("CREATE TABLE t (id INTEGER)").await?;
/// let mut tx = db.begin().await?;
/// let inserted = on_tx!(&mut tx, conn => {
///     sqlx::query("INSERT INTO t (id) VALUES ($1)")
///         .bind(7_i64)
///         .execute(conn)
///         .await
///         .map(|done| done.rows_affected())
/// })?;
/// assert_eq!(inserted, 1);
/// tx.commit().await?;
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::Tx::Postgres(tx) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **tx;
                $body
            }
            $crate::Tx::Sqlite(tx) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **tx;
                $body
            }
        }
    };
}
