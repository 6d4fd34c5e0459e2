//! The application's settings: the framework's [`core_web::config::Settings`] (server, HTTP,
//! logging, translations, database, cache, storage) composed with core-jobs' queue and worker
//! sections and ForgeRun's own ([`ForgeRunConfig`], table [`SETTINGS`]), loaded once by figment
//! from defaults, `rustforge.toml`, `.env` and the environment.

use std::path::PathBuf;
use std::time::Duration;

use core_db::settings::{Invalid, Kind, Setting};
use core_jobs::{QueueConfig, WorkerConfig};
use serde::{Deserialize, Serialize};

/// Where the process runs: `production` refuses to start without the secrets that
/// `development` generates for itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development and tests (the default).
    #[default]
    Development,
    /// A deployment: every secret must be given.
    Production,
}

/// ForgeRun's own settings (the variables of [`SETTINGS`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForgeRunConfig {
    /// `APP_ENV`.
    pub env: Environment,
    /// `DATA_DIR`: where development-only generated files (the API key secret) are kept.
    pub data_dir: PathBuf,
    /// `API_KEY_SECRET`: the HMAC key API keys are stored under. Never serialized.
    #[serde(skip_serializing)]
    pub api_key_secret: Option<String>,
    /// `ADMIN_TOKEN`: the token that signs admins in to the jobs dashboard at `/admin/jobs`;
    /// unset, the dashboard is disabled. Never serialized.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// `API_KEY_TTL`: how long a new key works; `None`, the default, for no expiry.
    pub api_key_ttl: Option<Duration>,
    /// `API_KEY_RENEW_OVERLAP`: how long a renewed key keeps working next to its successor.
    pub api_key_renew_overlap: Duration,
    /// `WORK_TIME_SCALE`: every work kind's duration is multiplied by it.
    pub work_time_scale: f64,
    /// `MAX_RUNTIME_MS`: the execution limit of one attempt.
    pub max_runtime: Duration,
    /// `RATE_LIMIT_PER_MINUTE`: requests per client and minute, across every server process.
    pub rate_limit_per_minute: u64,
    /// `MAX_ACTIVE_JOBS_PER_CLIENT`: jobs not yet final one client may have.
    pub max_active_jobs_per_client: u64,
    /// `MAX_QUEUE_DEPTH`: jobs not yet final across all clients.
    pub max_queue_depth: u64,
    /// `JOB_RETENTION`: how long final jobs, their events and reports are kept.
    pub job_retention: Duration,
    /// `WEBHOOK_ALLOW_NETWORKS`: networks (CIDR) callbacks may reach although they are not
    /// public, such as `127.0.0.0/8` for a local test receiver. Empty by default.
    pub webhook_allow_networks: Vec<String>,
    /// `WEBHOOK_TIMEOUT_MS`: how long one delivery attempt may take, connection included.
    pub webhook_timeout: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`: attempts of one delivery before it is recorded as failed.
    pub webhook_max_attempts: u64,
    /// `WEBHOOK_BACKOFF_MS`: the wait before a delivery's first retry; it doubles with each
    /// retry (up to an hour).
    pub webhook_backoff: Duration,
    /// `WEBHOOK_CONCURRENCY`: deliveries one worker process makes at once.
    pub webhook_concurrency: u64,
}

impl Default for ForgeRunConfig {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            data_dir: PathBuf::from("data"),
            api_key_secret: None,
            admin_token: None,
            api_key_ttl: None,
            api_key_renew_overlap: Duration::from_secs(3600),
            work_time_scale: 1.0,
            max_runtime: Duration::from_secs(120),
            rate_limit_per_minute: 600,
            max_active_jobs_per_client: 1000,
            max_queue_depth: 100_000,
            job_retention: Duration::from_secs(30 * 86_400),
            webhook_allow_networks: Vec::new(),
            webhook_timeout: Duration::from_secs(15),
            webhook_max_attempts: 8,
            webhook_backoff: Duration::from_secs(5),
            webhook_concurrency: 64,
        }
    }
}

impl std::fmt::Debug for ForgeRunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeRunConfig")
            .field("env", &self.env)
            .field("data_dir", &self.data_dir)
            .field(
                "api_key_secret",
                &self.api_key_secret.as_ref().map(|_| "***"),
            )
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("api_key_ttl", &self.api_key_ttl)
            .field("api_key_renew_overlap", &self.api_key_renew_overlap)
            .field("work_time_scale", &self.work_time_scale)
            .field("max_runtime", &self.max_runtime)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field(
                "max_active_jobs_per_client",
                &self.max_active_jobs_per_client,
            )
            .field("max_queue_depth", &self.max_queue_depth)
            .field("job_retention", &self.job_retention)
            .field("webhook_allow_networks", &self.webhook_allow_networks)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_backoff", &self.webhook_backoff)
            .field("webhook_concurrency", &self.webhook_concurrency)
            .finish()
    }
}

impl ForgeRunConfig {
    /// `WEBHOOK_ALLOW_NETWORKS`, parsed.
    ///
    /// # Errors
    /// [`Invalid`] when an entry is not a CIDR network.
    pub fn allowed_networks(&self) -> Result<Vec<core_web::ssrf::IpNet>, Invalid> {
        self.webhook_allow_networks
            .iter()
            .map(|net| {
                net.trim().parse().map_err(|_| {
                    Invalid::new(
                        "forgerun.webhook_allow_networks",
                        format!(
                            "WEBHOOK_ALLOW_NETWORKS: {:?} is not a CIDR network such as 127.0.0.0/8",
                            net.trim()
                        ),
                    )
                })
            })
            .collect()
    }

    /// Checks what the variables' kinds cannot: bounds and the production rules.
    ///
    /// # Errors
    /// [`Invalid`] naming the key.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.work_time_scale.is_nan() || self.work_time_scale > 1000.0 {
            return Err(Invalid::new(
                "forgerun.work_time_scale",
                "WORK_TIME_SCALE must be a number from 0 to 1000",
            ));
        }
        if self.env == Environment::Production && self.api_key_secret.is_none() {
            return Err(Invalid::new(
                "forgerun.api_key_secret",
                "API_KEY_SECRET must be set when APP_ENV=production",
            ));
        }
        self.allowed_networks()?;
        if let Some(token) = &self.admin_token
            && token.len() < MIN_ADMIN_TOKEN
        {
            return Err(Invalid::new(
                "forgerun.admin_token",
                format!("ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters"),
            ));
        }
        if let Some(secret) = &self.api_key_secret
            && secret.len() < 32
        {
            return Err(Invalid::new(
                "forgerun.api_key_secret",
                "API_KEY_SECRET must be at least 32 characters",
            ));
        }
        Ok(())
    }
}

/// The fewest characters `ADMIN_TOKEN` may have.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// ForgeRun's variables.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "APP_ENV",
        "forgerun.env",
        Kind::Choice(&["development", "production"]),
        "development or production",
        "`production` refuses to start without `API_KEY_SECRET`; `development` generates one into `DATA_DIR`.",
    ),
    Setting::new(
        "DATA_DIR",
        "forgerun.data_dir",
        Kind::Text,
        "a directory path",
        "Where development-only generated files are kept (the API key secret).",
    ),
    Setting::new(
        "API_KEY_SECRET",
        "forgerun.api_key_secret",
        Kind::Secret,
        "at least 32 characters",
        "The HMAC-SHA-256 key API keys are stored under; changing it invalidates every key.",
    ),
    Setting::new(
        "ADMIN_TOKEN",
        "forgerun.admin_token",
        Kind::Secret,
        "at least 16 characters",
        "Signs admins in to the jobs dashboard at `/admin/jobs`; unset, the dashboard is disabled.",
    ),
    Setting::new(
        "API_KEY_TTL",
        "forgerun.api_key_ttl",
        Kind::Duration,
        "seconds or a span such as 90d",
        "How long a new API key works; unset, keys do not expire.",
    ),
    Setting::new(
        "API_KEY_RENEW_OVERLAP",
        "forgerun.api_key_renew_overlap",
        Kind::Duration,
        "seconds or a span such as 1h",
        "How long a renewed key keeps working next to its successor.",
    ),
    Setting::new(
        "WORK_TIME_SCALE",
        "forgerun.work_time_scale",
        Kind::Decimal,
        "a number from 0 to 1000",
        "Multiplies every work kind's duration (0.001 runs the catalog in milliseconds).",
    ),
    Setting::new(
        "MAX_RUNTIME_MS",
        "forgerun.max_runtime",
        Kind::Millis,
        "a whole number of milliseconds, at least 1",
        "The execution limit of one attempt; a job running longer fails with a timeout.",
    ),
    Setting::new(
        "RATE_LIMIT_PER_MINUTE",
        "forgerun.rate_limit_per_minute",
        Kind::Int {
            min: 1,
            max: 10_000_000,
        },
        "a whole number 1–10000000",
        "Requests per client and minute, counted across every server process.",
    ),
    Setting::new(
        "MAX_ACTIVE_JOBS_PER_CLIENT",
        "forgerun.max_active_jobs_per_client",
        Kind::Int {
            min: 1,
            max: 100_000_000,
        },
        "a whole number 1–100000000",
        "Jobs not yet final that one client may have; past it, submissions get 503.",
    ),
    Setting::new(
        "MAX_QUEUE_DEPTH",
        "forgerun.max_queue_depth",
        Kind::Int {
            min: 1,
            max: 1_000_000_000,
        },
        "a whole number 1–1000000000",
        "Jobs not yet final across all clients; past it, submissions get 503.",
    ),
    Setting::new(
        "JOB_RETENTION",
        "forgerun.job_retention",
        Kind::Duration,
        "seconds or a span such as 30d",
        "How long final jobs, their events and reports are kept before the retention job deletes them.",
    ),
    Setting::new(
        "WEBHOOK_ALLOW_NETWORKS",
        "forgerun.webhook_allow_networks",
        Kind::List,
        "comma-separated CIDR networks",
        "Networks webhooks and a job's `callback` may point into although they are not public (for example `127.0.0.0/8` for a local receiver); every other loopback, private, link-local or metadata address is refused.",
    ),
    Setting::new(
        "WEBHOOK_TIMEOUT_MS",
        "forgerun.webhook_timeout",
        Kind::Millis,
        "a whole number of milliseconds, at least 1",
        "How long one webhook delivery attempt may take (connecting included) before it counts as failed and is retried.",
    ),
    Setting::new(
        "WEBHOOK_MAX_ATTEMPTS",
        "forgerun.webhook_max_attempts",
        Kind::Int { min: 1, max: 100 },
        "a whole number 1–100",
        "Attempts of one webhook delivery before it is recorded as failed.",
    ),
    Setting::new(
        "WEBHOOK_BACKOFF_MS",
        "forgerun.webhook_backoff",
        Kind::Millis,
        "a whole number of milliseconds, at least 1",
        "The wait before a delivery's first retry; it doubles with each retry, up to an hour, and a receiver's longer `Retry-After` wins.",
    ),
    Setting::new(
        "WEBHOOK_CONCURRENCY",
        "forgerun.webhook_concurrency",
        Kind::Int {
            min: 1,
            max: 10_000,
        },
        "a whole number 1–10000",
        "Webhook deliveries one worker process makes at once (apart from the jobs it runs).",
    ),
];

/// Every setting of the app; see [`Settings::TABLES`] for the variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The framework's settings.
    #[serde(flatten)]
    pub base: core_web::config::Settings,
    /// `QUEUE_URL`.
    pub queue: QueueConfig,
    /// `WORKER_CONCURRENCY`, `WORKER_LEASE_SECS`.
    pub worker: WorkerConfig,
    /// ForgeRun's own settings ([`SETTINGS`]).
    pub forgerun: ForgeRunConfig,
}

impl Settings {
    /// The variables the app reads: core-web's, core-db's, core-jobs' and ForgeRun's.
    pub const TABLES: &[&[Setting]] = &[
        core_web::config::SETTINGS,
        core_db::settings::SETTINGS,
        core_jobs::config::SETTINGS,
        SETTINGS,
    ];

    /// Reads `.env`, the TOML file and the environment.
    ///
    /// # Errors
    /// A malformed file or an invalid value, named by its variable (the binary exits with
    /// status 78).
    pub fn load() -> core_web::Result<Self> {
        Self::checked(core_web::config::Loader::from_env(Self::TABLES)?)
    }

    /// As [`load`](Self::load), with `dir` as the working directory and `env` as the
    /// environment: for tests.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_from(
        dir: &std::path::Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> core_web::Result<Self> {
        Self::checked(core_web::config::Loader::from_dir(Self::TABLES, dir, env)?)
    }

    /// Builds the settings from a lookup (variable → value) instead of the environment and
    /// files: for tests.
    ///
    /// # Errors
    /// An invalid value, named by its variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> core_web::Result<Self> {
        Self::checked(core_web::config::Loader::from_lookup(Self::TABLES, lookup)?)
    }

    fn checked(loader: core_web::config::Loader) -> core_web::Result<Self> {
        let settings: Self = loader.extract()?;
        loader.check(settings.base.check())?;
        loader.check(settings.queue.check())?;
        loader.check(settings.forgerun.check())?;
        Ok(settings)
    }

    /// The settings table the README shows, from the tables and the configurations' defaults.
    pub fn documented() -> Vec<core_web::config::SettingRow> {
        let defaults = serde_json::to_value(Self::default()).unwrap_or_default();
        core_web::config::documented(Self::TABLES, &defaults)
    }
}
