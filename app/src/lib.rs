//! The Rustforge example application.
//!
//! It shows the framework's pieces working together and grows, issue by issue, into a
//! job-execution service. Today it serves:
//!
//! - `GET /health`: liveness; answers as long as the process serves requests;
//! - `GET /ready`: readiness; checks the database and the cache, 503 when one does not answer;
//! - `GET /storage/{*key}`: files of the configured storage driver: those under
//!   `STORAGE_PUBLIC_PREFIXES` to anyone, the others through presigned links
//!   ([`routes::files`]);
//! - `/docs/`: the documentation site (when built);
//! - `/api/v1/notes`: a small demo resource showing [`core_web::ApiResponse`],
//!   [`core_web::AppError`] and [`core_web::ValidatedJson`] in English and Chinese
//!   (`X-Locale: zh` or `Accept-Language: zh-CN`); creating a note dispatches the
//!   [`jobs::NoteCreated`] background job.
//!
//! Background jobs go through [`AppState::queue`] (`QUEUE_URL`: in-process by default, Redis
//! when shared between processes) and run on the [`Worker`](core_jobs::Worker) that
//! [`worker`] builds.
//!
//! `main.rs` only reads configuration and starts the server, the worker or a command; everything
//! else is here so that tests drive the same router and worker the binary runs.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use core_db::infra::cache::Cache;
use core_db::infra::db::Database;
use core_db::infra::storage::{self, Storage, StorageConfig, StorageDriver};
use core_jobs::Queue;
use core_web::config::Settings;

pub mod jobs;
pub mod routes;

pub use jobs::worker;

/// The application's English catalog, compiled in.
const EN: &str = include_str!("../i18n/en.json");
/// The application's Chinese catalog, compiled in.
const ZH: &str = include_str!("../i18n/zh.json");

/// Everything a handler can reach. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// The database (SQLite by default, PostgreSQL when `DATABASE_URL` says so).
    pub db: Database,
    /// The cache (memory by default, Redis when `CACHE_URL` or `REDIS_URL` says so).
    pub cache: Cache,
    /// The job queue (in-process by default, Redis when `QUEUE_URL` or `REDIS_URL` says so).
    pub queue: Queue,
    /// Object storage (a local directory by default, S3 when `STORAGE_DRIVER=s3`).
    pub storage: Arc<dyn Storage>,
    /// Key prefixes whose objects `GET /storage/{*key}` serves without a signature
    /// (`STORAGE_PUBLIC_PREFIXES`; see [`storage_public_prefixes`]). Empty: every object needs a
    /// presigned link.
    pub storage_public_prefixes: Arc<[String]>,
    /// The demo notes store.
    pub notes: routes::notes::NoteStore,
}

impl AppState {
    /// Connects every backend the settings name and, when `MIGRATE_ON_START` is on, migrates
    /// the database.
    ///
    /// # Errors
    /// A backend that cannot be reached or a migration that fails, with the setting involved.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_database(&settings).await?;
        let queue = connect_queue(&settings).await?;
        let cache = Cache::from_url(&settings.cache_url, settings.app_name.clone())
            .await
            .with_context(|| {
                format!("connecting to CACHE_URL ({})", redact(&settings.cache_url))
            })?;
        let storage = storage::from_config(&storage_config(&settings.storage))
            .context("configuring storage (STORAGE_DRIVER / S3_*)")?;
        Ok(Self {
            settings: Arc::new(settings),
            db,
            cache,
            queue,
            storage,
            storage_public_prefixes: storage_public_prefixes(
                std::env::var("STORAGE_PUBLIC_PREFIXES").ok().as_deref(),
            )
            .into(),
            notes: routes::notes::NoteStore::default(),
        })
    }
}

/// Connects to `DATABASE_URL` and, when `MIGRATE_ON_START` is on, migrates it.
///
/// # Errors
/// The database cannot be reached or a migration fails, with the setting involved.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<Database> {
    let db = Database::connect(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to DATABASE_URL ({})",
                redact(&settings.database_url)
            )
        })?;
    if settings.migrate_on_start {
        db.migrate()
            .await
            .context("applying migrations (MIGRATE_ON_START=true)")?;
    }
    Ok(db)
}

/// Connects to the `QUEUE_URL` queue, its Redis keys under `APP_NAME` like the cache's.
///
/// # Errors
/// An unsupported URL or Redis unreachable, naming `QUEUE_URL` (password redacted).
pub async fn connect_queue(settings: &Settings) -> anyhow::Result<Queue> {
    Queue::from_url(&settings.queue_url, settings.app_name.clone())
        .await
        .with_context(|| format!("connecting to QUEUE_URL ({})", redact(&settings.queue_url)))
}

/// Loads the application's translations: the built-in `en` and `zh` catalogs, then any
/// `I18N_DIRS` from the settings (whose keys override the built-in ones).
///
/// # Errors
/// An invalid default locale or a directory or catalog that cannot be read.
pub fn init_i18n(settings: &Settings) -> anyhow::Result<()> {
    core_i18n::init(core_i18n::I18nConfig {
        dirs: settings.i18n.dirs.clone(),
        default_locale: settings.i18n.default_locale.clone(),
    })
    .context("loading I18N_DIRS")?;
    core_i18n::add_catalog_defaults("en", EN).context("built-in en catalog")?;
    core_i18n::add_catalog_defaults("zh", ZH).context("built-in zh catalog")?;
    Ok(())
}

/// The whole application: routes, the documentation site under `/docs`, and the middleware stack
/// configured from the settings.
pub fn router(state: AppState) -> Router {
    let http = state.settings.http.clone();
    let routes = routes::routes()
        .nest_service("/docs", core_docs::router())
        .with_state(state);
    core_web::middleware::stack(routes, &http)
}

/// The public prefixes of `GET /storage/{*key}` from the value of `STORAGE_PUBLIC_PREFIXES`: a
/// comma-separated list of key prefixes, each matching whole segments (`avatars` covers
/// `avatars/42.png`, not `avatars-old/1.png`), or `*` for every key. Unset or empty: none, so
/// every object needs a presigned link. [`AppState::connect`] reads it from the environment
/// (or `.env`).
///
/// ```
/// assert_eq!(
///     app::storage_public_prefixes(Some(" avatars/, notes ,")),
///     vec!["avatars".to_owned(), "notes".to_owned()]
/// );
/// assert!(app::storage_public_prefixes(None).is_empty());
/// ```
pub fn storage_public_prefixes(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// core-db's storage configuration from the application's settings.
fn storage_config(settings: &core_web::config::StorageConfig) -> StorageConfig {
    StorageConfig {
        driver: match settings.driver {
            core_web::config::StorageDriver::Local => StorageDriver::Local,
            core_web::config::StorageDriver::S3 => StorageDriver::S3,
        },
        root: settings.root.clone(),
        public_url: settings.public_url.clone(),
        bucket: settings.s3_bucket.clone(),
        region: settings.s3_region.clone(),
        endpoint: settings.s3_endpoint.clone(),
        access_key_id: settings.s3_access_key_id.clone(),
        secret_access_key: settings.s3_secret_access_key.clone(),
        force_path_style: settings.s3_force_path_style,
        signing_key: None,
    }
}

/// `url` with any password replaced by `***`, for messages and logs; see
/// [`core_web::config::redact_url`].
pub fn redact(url: &str) -> String {
    core_web::config::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("redis://:pw@localhost"), "redis://:***@localhost");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("sqlite://data/app.sqlite3"),
            "sqlite://data/app.sqlite3"
        );
        assert_eq!(redact("memory://"), "memory://");
        for password in ["a/b", "a@b", "a:b", "a#b", "a?b", "/@:#?"] {
            assert_eq!(
                redact(&format!("postgres://u:{password}@h:5432/db")),
                "postgres://u:***@h:5432/db",
                "{password}"
            );
        }
    }
}
