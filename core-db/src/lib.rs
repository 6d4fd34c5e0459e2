//! Rustforge's data layer: the cache, the database handle and migrations, storage and attachments,
//! and the message bus.
//!
//! The handles an application holds are re-exported here, at the crate root: [`Cache`],
//! [`Database`], [`Storage`] (built by [`storage::from_config`]), the [`Bus`] and the
//! [`Attachment`] an upload returns. Each lives in a module of its own ([`cache`], [`db`],
//! [`storage`], [`bus`], [`attachments`]) with the rest of its API; [`Error`] is the one error of
//! the crate.
//!
//! ## Cache
//!
//! [`Cache`] is one cheap, cloneable handle over three drivers that behave the same: memory
//! (moka, for one process and for `cargo run` with nothing installed), Redis (shared by every
//! process) and tiered (a memory L1 in front of Redis, kept coherent across processes over
//! pub/sub). [`Cache::from_url`] picks one from configuration ([`CacheDriver`] says which it
//! is). Missing values are computed once however many callers miss together
//! ([`Cache::remember`], or the [`cached`] attribute); [`Cache::lock`] hands out owner-checked
//! [`Lock`]s. The [`cache`] module has the driver options and the key layout.
//!
//! ```
//! use core_db::{Cache, cached};
//!
//! struct AppState {
//!     cache: Cache,
//! }
//!
//! #[cached(cache = state.cache, key = "user:{id}:name", ttl = 300, tags = ["users"])]
//! async fn user_name(state: &AppState, id: i64) -> core_db::Result<String> {
//!     // Runs only on a miss; an `Err` is returned and not cached.
//!     Ok(format!("user {id}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! let state = AppState { cache: Cache::memory("app") };
//! assert_eq!(user_name(&state, 7).await?, "user 7");
//! assert_eq!(state.cache.get_json::<String>("user:7:name").await?.as_deref(), Some("user 7"));
//! state.cache.invalidate_tag("users").await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Database
//!
//! [`Database`] is a cheap, cloneable handle over a connection pool. The URL picks the
//! [`Backend`]: `sqlite:` is the embedded default (the file and its directory are created when
//! missing, the journal is WAL, writers wait for each other instead of failing), and
//! `postgres://` / `postgresql://` select PostgreSQL. [`Database::connect_with`] takes
//! [`DatabaseOptions`] for the pool. Both backends are reached through the same methods, and
//! [`Database::as_postgres`] / [`Database::as_sqlite`] hand out the sqlx pool for queries of
//! your own.
//!
//! - **Migrations** are embedded at compile time from `migrations/postgres` and
//!   `migrations/sqlite`; [`Database::migrate`] applies those not yet run, so a binary migrates
//!   its database without the source tree.
//! - **Transactions**: [`Database::begin`] returns a [`Tx`]; pass `&mut Tx` to whatever must
//!   write inside it, then [`Tx::commit`]. A `Tx` dropped without a commit rolls back.
//! - **Row counts**: [`Database::row_count`] counts a table exactly, in O(1) on PostgreSQL for
//!   tables registered with [`Database::track_row_count`] (see [`db::row_count`]).
//! - [`Database::ping`] is the readiness check, bounded by a timeout.
//!
//! ```
//! use core_db::{Backend, Database};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite:{}", dir.path().join("app.db").display());
//! let db = Database::connect(&url).await?;
//! assert_eq!(db.backend(), Backend::Sqlite);
//! db.migrate().await?; // the embedded migrations
//!
//! db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").await?;
//! let mut tx = db.begin().await?;
//! tx.execute("INSERT INTO notes (body) VALUES ('first'), ('second')").await?;
//! tx.commit().await?;
//! assert_eq!(db.row_count("notes").await?, 2);
//!
//! // Queries of your own go through the sqlx pool of the backend.
//! let pool = db.as_sqlite().expect("a sqlite: URL");
//! let first: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = 1")
//!     .fetch_one(pool)
//!     .await?;
//! assert_eq!(first, "first");
//! # Ok(())
//! # }
//! ```
//!
//! ## Storage and attachments
//!
//! [`Storage`] is one object-safe trait (`Arc<dyn Storage>`) over a local directory
//! ([`LocalStorage`], the embedded default) and S3 or any S3-compatible server ([`S3Storage`]):
//! [`storage::from_config`] picks the driver from a [`StorageConfig`]. Keys are validated on
//! every driver, large bodies stream (multipart on S3), and `url`, `presign_get` and
//! `presign_put` hand out links. The [`attachments`] module builds uploads on it: rules
//! ([`AttachmentRules`]), type checks from the bytes, size limits while streaming, and an
//! [`Attachment`] value a model stores. Its failures are [`UploadError`]s, which name no HTTP
//! status: core-web turns them into its JSON errors when a handler uses `?`.
//!
//! ## Bus
//!
//! [`Bus`] is publish/subscribe between processes (memory or Redis): a worker publishes "job 42
//! has a new event", and whichever process streams that job to a client wakes up. The database
//! stays the source of truth; the bus promises to say when a subscriber *may* have missed
//! messages ([`bus::Message::Gap`]: a cut or stalled connection, a subscriber too far behind),
//! so it can read again. See the [`bus`] module.
//!
//! ## Redis connection
//!
//! [`SharedConnection`] is the one shared Redis connection of a component (the Redis cache, the
//! bus's publishing side, the job queue), replaced after a call on it times out; an application
//! can use it too.

pub mod error;
pub mod infra;
pub mod platform;
pub mod settings;
pub mod shutdown;

pub use error::{Error, Result};

/// The message bus between processes; the handle itself is [`Bus`].
pub use infra::bus;
pub use infra::bus::Bus;

/// The cache handle and its drivers' options; the handle itself is [`Cache`].
pub use infra::cache;
pub use infra::cache::{Cache, CacheConfig, CacheDriver, Expiry, Lock};

/// The database handle, transactions and row counts; the handle itself is [`Database`].
pub use infra::db;
pub use infra::db::{Backend, Database, DatabaseConfig, DatabaseOptions, Tx};

/// Object storage: the [`Storage`] trait, its drivers and [`storage::from_config`].
pub use infra::storage;
pub use infra::storage::{LocalStorage, S3Storage, Storage, StorageConfig, StorageDriver};

pub use infra::redis_connection::SharedConnection;

/// File attachments: upload rules, the upload helpers and the [`Attachment`] a model stores.
pub use platform::attachments;
pub use platform::attachments::{Attachment, AttachmentRules, UploadError};

/// Caches an `async fn`'s `Ok` value in a [`Cache`]; see the [crate docs](crate#cache).
///
/// `#[cached(cache = <expr>, key = "user:{id}", ttl = <secs>, tags = ["users"])]` on an `async fn`
/// returning `Result<T, E>`, where `T: Serialize + DeserializeOwned` and `E: From<core_db::Error>`.
/// The body runs only on a miss and through the same single-flight path as
/// [`Cache::remember`]; only `Ok` values are stored. `cache` and `key` are required; without
/// `ttl` the value does not expire; `key` and `tags` are format strings over the arguments.
/// Misuse (a non-async fn, a non-`Result` return, an unknown or missing option) is a compile
/// error.
pub use core_db_macros::cached;
