//! [`AppContext`]: the one handle on everything the application connects to.

use std::sync::Arc;

use anyhow::Context as _;
use core_db::db::Migrations;
use core_db::settings::redact_url;
use core_db::storage::{self, Storage};
use core_db::{Cache, Database};
use core_jobs::{JobBuffer, JobContext, Queue};

use crate::settings::Settings;

/// The application's English catalog, compiled in.
const EN: &str = include_str!("../i18n/en.json");
/// The application's Chinese catalog, compiled in.
const ZH: &str = include_str!("../i18n/zh.json");

/// Settings, database, cache, queue and storage in one cheap handle: a shared [`Context`]
/// (`ctx.db` reads its field), so a clone, which every request makes, is one reference count.
///
/// [`AppContext::connect`] builds it once per process; handlers get it as axum state, and jobs
/// as an extension of their [`JobContext`] ([`AppContext::of`]), so both see the same values.
/// Translations are process-wide: `connect` loads them, and `core_i18n::t` reads them.
#[derive(Clone)]
pub struct AppContext(Arc<Context>);

impl std::ops::Deref for AppContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.0
    }
}

impl From<Context> for AppContext {
    fn from(context: Context) -> Self {
        Self(Arc::new(context))
    }
}

/// What an [`AppContext`] holds.
#[derive(Clone)]
pub struct Context {
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// The database (SQLite by default, PostgreSQL when `DATABASE_URL` says so).
    pub db: Database,
    // region: cache-field
    /// The cache (memory by default, Redis or tiered when `CACHE_URL` or `REDIS_URL` says so).
    pub cache: Cache,
    // endregion: cache-field
    /// The job queue (in-process by default, Redis when `QUEUE_URL` or `REDIS_URL` says so).
    pub queue: Queue,
    /// Object storage (a local directory by default, S3 when `STORAGE_DRIVER=s3`).
    pub storage: Arc<dyn Storage>,
    /// Transactional dispatch: jobs written with a transaction, relayed after it commits.
    pub buffer: JobBuffer,
    /// The process's Prometheus recorder, rendered by `GET /metrics`.
    pub metrics: core_web::metrics::Metrics,
    /// API keys: issuing, revoking and authenticating ([`crate::auth::Caller`]).
    pub keys: crate::auth::KeyStore,
    /// Active-job counts for the submission limits ([`crate::jobs::limits`]).
    pub active: crate::jobs::limits::ActiveCounts,
    /// The address check for URLs clients give (webhooks, `callback`), with
    /// `WEBHOOK_ALLOW_NETWORKS`.
    pub ssrf: core_web::ssrf::Guard,
    /// Wakes the live event streams of every server process: Redis pub/sub when the queue or
    /// the cache is on Redis, in-process otherwise.
    pub bus: core_db::bus::Bus,
    /// Sends webhook deliveries through [`ssrf`](Self::ssrf), within `WEBHOOK_TIMEOUT_MS`.
    pub webhooks: core_web::webhook::Sender,
}

impl AppContext {
    /// Loads the translations, connects every backend the settings name and, when
    /// `MIGRATE_ON_START` is on, migrates the database. The binary and the tests both build
    /// the context here.
    ///
    /// # Errors
    /// A catalog that cannot be read, a backend that cannot be reached or a migration that
    /// fails, with the setting involved (passwords redacted).
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        init_i18n(&settings)?;
        let allowed = settings.forgerun.allowed_networks()?;
        let ssrf = core_web::ssrf::Guard::new().allow(allowed);
        let webhook_timeout = settings.forgerun.webhook_timeout;
        let keys = crate::auth::KeyStore::from_config(&settings.forgerun)
            .context("loading the API key secret (API_KEY_SECRET / DATA_DIR)")?;
        let base = &settings.base;
        let db = connect_database(&settings).await?;
        let queue = connect_queue(&settings).await?;
        // region: connect-cache
        let cache = Cache::from_config(&base.cache, base.app_name.clone())
            .await
            .with_context(|| {
                format!("connecting to CACHE_URL ({})", redact_url(&base.cache.url))
            })?;
        // endregion: connect-cache
        let storage = storage::from_config(&base.storage)
            .context("configuring storage (STORAGE_DRIVER / S3_*)")?;
        let metrics = core_web::metrics::install().context("installing the metrics recorder")?;
        let bus_url = bus_url(&settings);
        let bus = core_db::bus::Bus::from_url(&bus_url, base.app_name.clone())
            .await
            .with_context(|| format!("connecting the event bus ({})", redact_url(&bus_url)))?;
        Ok(Self::from(Context {
            settings: Arc::new(settings),
            metrics,
            buffer: JobBuffer::new(db.clone(), queue.clone()),
            db,
            cache,
            queue,
            storage,
            keys,
            active: crate::jobs::limits::ActiveCounts::default(),
            bus,
            webhooks: core_web::webhook::Sender::new(ssrf.clone()).with_timeout(webhook_timeout),
            ssrf,
        }))
    }

    /// This context with `change` made to a copy of what it holds (tests swap a backend this
    /// way); other handles keep the original.
    #[must_use]
    pub fn with(&self, change: impl FnOnce(&mut Context)) -> Self {
        let mut context = Context::clone(&self.0);
        change(&mut context);
        Self::from(context)
    }

    /// The job context the worker hands every job: this context's database, cache and queue,
    /// and the context itself as an extension ([`AppContext::of`]).
    pub fn job_context(&self) -> JobContext {
        JobContext::new(self.queue.clone())
            .with_database(self.db.clone())
            .with_cache(self.cache.clone())
            .with_extension(self.clone())
    }

    /// The application context a job runs with.
    ///
    /// # Errors
    /// The job's context was not built by [`AppContext::job_context`].
    pub fn of(ctx: &JobContext) -> anyhow::Result<&Self> {
        ctx.ext::<Self>().context(
            "the job context carries no AppContext (build it with AppContext::job_context)",
        )
    }
}

/// Where the event bus runs: the queue's Redis (`QUEUE_URL`), else the cache's, else in
/// process (`memory://`), since every process that shares jobs shares the queue.
fn bus_url(settings: &Settings) -> String {
    [&settings.queue.url, &settings.base.cache.url]
        .into_iter()
        .map(|url| url.strip_prefix("tiered+").unwrap_or(url))
        .find(|url| url.starts_with("redis://") || url.starts_with("rediss://"))
        .map_or_else(|| "memory://".to_owned(), str::to_owned)
}

/// Connects to `DATABASE_URL` and, when `MIGRATE_ON_START` is on, migrates it.
///
/// # Errors
/// The database unreachable or a migration failing, naming `DATABASE_URL` (password redacted).
pub async fn connect_database(settings: &Settings) -> anyhow::Result<Database> {
    let config = &settings.base.database;
    let db = Database::from_config(config)
        .await
        .with_context(|| format!("connecting to DATABASE_URL ({})", redact_url(&config.url)))?;
    if config.migrate_on_start {
        migrate(&db).await?;
    }
    Ok(db)
}

/// The application's own migrations (`app/migrations/{postgres,sqlite}`), applied after the
/// framework's by [`migrate`].
pub static MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Applies the framework's migrations, then the application's ([`MIGRATIONS`]).
///
/// # Errors
/// A migration that fails.
pub async fn migrate(db: &Database) -> anyhow::Result<()> {
    db.migrate()
        .await
        .context("applying the framework's migrations")?;
    db.migrate_with(&MIGRATIONS)
        .await
        .context("applying the application's migrations")
}

/// Connects to the `QUEUE_URL` queue, its Redis keys under `APP_NAME` like the cache's.
///
/// # Errors
/// Redis unreachable, naming `QUEUE_URL` (password redacted).
pub async fn connect_queue(settings: &Settings) -> anyhow::Result<Queue> {
    Queue::from_config(&settings.queue, settings.base.app_name.clone())
        .await
        .with_context(|| {
            format!(
                "connecting to QUEUE_URL ({})",
                redact_url(&settings.queue.url)
            )
        })
}

/// Loads the application's translations: the built-in `en` and `zh` catalogs, then any
/// `I18N_DIRS` (whose keys override the built-in ones).
///
/// # Errors
/// An invalid default locale or a directory or catalog that cannot be read.
pub fn init_i18n(settings: &Settings) -> anyhow::Result<()> {
    core_i18n::init(settings.base.i18n.clone()).context("loading I18N_DIRS")?;
    core_i18n::add_catalog_defaults("en", EN).context("built-in en catalog")?;
    core_i18n::add_catalog_defaults("zh", ZH).context("built-in zh catalog")?;
    Ok(())
}
