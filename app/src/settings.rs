//! The application's settings: the framework's [`core_web::config::Settings`] (server, HTTP,
//! logging, translations, database, cache, storage) composed with core-jobs' queue and worker
//! sections, loaded once by figment from defaults, `rustforge.toml`, `.env` and the environment.

use core_db::settings::Setting;
use core_jobs::{QueueConfig, WorkerConfig};
use serde::{Deserialize, Serialize};

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
}

impl Settings {
    /// The variables the app reads: core-web's, core-db's and core-jobs'.
    pub const TABLES: &[&[Setting]] = &[
        core_web::config::SETTINGS,
        core_db::settings::SETTINGS,
        core_jobs::config::SETTINGS,
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
        Ok(settings)
    }

    /// The settings table the README shows, from the tables and the configurations' defaults.
    pub fn documented() -> Vec<core_web::config::SettingRow> {
        let defaults = serde_json::to_value(Self::default()).unwrap_or_default();
        core_web::config::documented(Self::TABLES, &defaults)
    }
}
