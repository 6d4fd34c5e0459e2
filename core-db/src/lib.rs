//! Rustforge's data layer: the cache, the database handle and migrations, storage and attachments.
//!
//! ## Cache
//!
//! [`infra::cache::Cache`] is one cheap, cloneable handle over three drivers that behave the
//! same: memory (moka, for one process and for `cargo run` with nothing installed), Redis (shared
//! by every process) and tiered (a memory L1 in front of Redis, kept coherent across processes
//! over pub/sub). [`Cache::from_url`](infra::cache::Cache::from_url) picks one from configuration.
//! Missing values are computed once however many callers miss together
//! ([`remember`](infra::cache::Cache::remember), or the [`cached`] attribute):
//!
//! ```
//! use core_db::cached;
//! use core_db::infra::cache::Cache;
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
//! ## Storage and attachments
//!
//! [`infra::storage::Storage`] is one object-safe trait (`Arc<dyn Storage>`) over a local
//! directory (the embedded default) and S3 or any S3-compatible server:
//! [`storage::from_config`](infra::storage::from_config) picks the driver. Keys are validated on
//! every driver, large bodies stream (multipart on S3), and `url`, `presign_get` and
//! `presign_put` hand out links. [`platform::attachments`] builds uploads on it: rules, type
//! checks from the bytes, size limits while streaming, and an [`Attachment`](platform::attachments::Attachment)
//! value a model stores.

pub mod error;
pub mod infra;
pub mod platform;
pub mod shutdown;

pub use error::{Error, Result};

/// Caches an `async fn`'s `Ok` value in a [`Cache`](infra::cache::Cache); see the [crate docs](crate#cache).
///
/// `#[cached(cache = <expr>, key = "user:{id}", ttl = <secs>, tags = ["users"])]` on an `async fn`
/// returning `Result<T, E>`, where `T: Serialize + DeserializeOwned` and `E: From<core_db::Error>`.
/// The body runs only on a miss and through the same single-flight path as
/// [`Cache::remember`](infra::cache::Cache::remember); only `Ok` values are stored. `cache` and
/// `key` are required; without `ttl` the value does not expire; `key` and `tags` are format
/// strings over the arguments. Misuse (a non-async fn, a non-`Result` return, an unknown or
/// missing option) is a compile error.
pub use core_db_macros::cached;
