//! Configuration: typed settings from the environment, `.env` and `rustforge.toml`.

use core_jobs::{QueueConfig, WorkerConfig};
use core_web::config::{Loader, Setting, Settings};
use serde::{Deserialize, Serialize};

// region: compose
/// An application's settings: the framework's, plus the sections of the crates it adds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// Server, HTTP, logs, translations, database, cache and storage.
    #[serde(flatten)]
    pub base: Settings,
    /// `QUEUE_URL`.
    pub queue: QueueConfig,
    /// `WORKER_CONCURRENCY`, `WORKER_LEASE_SECS`.
    pub worker: WorkerConfig,
}

/// The variables it reads: each crate publishes the table of its own.
pub const TABLES: &[&[Setting]] = &[
    core_web::config::SETTINGS,
    core_db::settings::SETTINGS,
    core_jobs::config::SETTINGS,
];
// endregion: compose

// region: load
fn load_settings() -> core_web::Result<AppSettings> {
    // The environment wins over `.env`, which wins over `rustforge.toml`, over the defaults.
    let loader = Loader::from_env(TABLES)?;
    let settings: AppSettings = loader.extract()?;
    // Each driver checks its own URL; an error names the variable.
    loader.check(settings.base.check())?;
    loader.check(settings.queue.check())?;
    // `Debug` shows `***` for secrets and URL passwords.
    tracing::info!(?settings, "settings loaded");
    Ok(settings)
}
// endregion: load

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_a_map() -> core_web::Result<()> {
        // region: from-lookup
        // In tests, build settings from a map instead of the process environment.
        let settings = Settings::from_lookup(|name| match name {
            "PORT" => Some("8080".to_owned()),
            "REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
            _ => None,
        })?;
        assert_eq!(settings.port, 8080);
        assert_eq!(settings.cache.url, "redis://127.0.0.1:6379"); // REDIS_URL is the default
        assert_eq!(settings.database.url, "sqlite://data/app.sqlite3");
        // endregion: from-lookup
        Ok(())
    }

    #[test]
    fn an_invalid_value_names_the_variable() {
        // region: invalid
        let error = Settings::from_lookup(|name| (name == "PORT").then(|| "eighty".to_owned()))
            .expect_err("not a port");
        assert_eq!(
            error.to_string(),
            r#"invalid setting PORT="eighty": expected a port number 0–65535"#
        );
        // endregion: invalid
    }

    /// `load_settings` in the test's own environment (`core-docs/` has no `rustforge.toml`):
    /// the settings the environment gives, composed with the queue's.
    #[test]
    fn load_reads_the_environment() -> core_web::Result<()> {
        let settings = load_settings()?;
        let loader = Loader::from_lookup(TABLES, |name| std::env::var(name).ok())?;
        let expected: AppSettings = loader.extract()?;
        assert_eq!(settings.base, expected.base);
        assert_eq!(settings.queue, expected.queue);
        assert_eq!(
            settings.base.port,
            std::env::var("PORT").map_or(3000, |p| p.parse().expect("PORT"))
        );
        Ok(())
    }
}
