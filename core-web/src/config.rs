//! Typed settings, read in one place from environment variables, a `.env` file and an optional
//! TOML file, by [`figment`].
//!
//! Each core crate owns the configuration of its parts, beside the constructor that takes it:
//! [`DatabaseConfig`] for [`Database::from_config`](core_db::Database::from_config),
//! [`CacheConfig`] for [`Cache::from_config`](core_db::Cache::from_config), [`StorageConfig`]
//! for [`storage::from_config`](core_db::storage::from_config), core-i18n's
//! [`I18nConfig`], core-jobs' `QueueConfig` and `WorkerConfig`, and here [`HttpConfig`] and
//! [`LogConfig`]. [`Settings`] composes the ones core-web can see; an application adds its own
//! sections beside them (ForgeRun's `app::Settings` adds the queue's and the worker's).
//!
//! Each crate also publishes the variables that fill its configuration ([`SETTINGS`] here,
//! `core_db::settings::SETTINGS`, `core_jobs::config::SETTINGS`); the [`Loader`] reads them.
//! Precedence, highest first: the process environment, `.env`, then the TOML file named by
//! `RUSTFORGE_CONFIG` (or `rustforge.toml` in the working directory when it exists), whose keys
//! are the variables' names in lower case, then the configurations' `Default` values, where each
//! default is written once. An invalid value stops start-up with an error naming the variable
//! and what it accepts, and never shows a secret; `Debug` never prints one either. The README's
//! settings table and the docs site's Configuration page are checked against the tables.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use core_db::settings::Invalid;
use serde::{Deserialize, Serialize};

use crate::error::Result;

mod loader;

pub use core_db::settings::{Kind, Setting, redact_url};
pub use core_db::{CacheConfig, DatabaseConfig};
pub use core_db::{StorageConfig, StorageDriver};
pub use core_i18n::I18nConfig;
pub use loader::{CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE, Loader};

/// The settings of core-web's own parts: the application's name, the server, HTTP, logging
/// and translations.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "APP_NAME",
        "app_name",
        Kind::Text,
        "a name without spaces or `:`",
        "Application name; the Redis key prefix `{app}`.",
    ),
    Setting::new(
        "HOST",
        "host",
        Kind::Ip,
        "an IP address such as 127.0.0.1 or 0.0.0.0",
        "IP address the HTTP server binds.",
    ),
    Setting::new(
        "PORT",
        "port",
        Kind::Int { min: 0, max: 65535 },
        "a port number 0–65535",
        "TCP port the HTTP server binds (0 picks a free one).",
    ),
    Setting::new(
        "REDIS_URL",
        "redis_url",
        Kind::Text,
        "a redis:// or rediss:// URL",
        "`redis://` or `rediss://`; when set, the default for the cache and the queue.",
    ),
    Setting::new(
        "REQUEST_TIMEOUT_MS",
        "http.request_timeout",
        Kind::Millis,
        "a whole number greater than 0",
        "Per-request timeout in milliseconds; past it the client gets 408.",
    ),
    Setting::new(
        "BODY_LIMIT_BYTES",
        "http.body_limit",
        Kind::Int {
            min: 1,
            max: u32::MAX as u64,
        },
        "a whole number greater than 0",
        "Largest accepted request body; past it the client gets 413.",
    ),
    Setting::new(
        "CORS_ALLOWED_ORIGINS",
        "http.cors_allowed_origins",
        Kind::List,
        "comma-separated origins, or `*`",
        "Comma-separated origins allowed by CORS, or `*`.",
    ),
    Setting::new(
        "SHUTDOWN_GRACE_SECS",
        "http.shutdown_grace",
        Kind::Secs,
        "a whole number of seconds",
        "How long in-flight requests and running jobs may finish after SIGINT/SIGTERM.",
    ),
    Setting::new(
        "LOG_FORMAT",
        "log.format",
        Kind::Choice(&["pretty", "text", "json"]),
        "`pretty` or `json`",
        "`pretty` (human-readable) or `json`.",
    ),
    Setting::new(
        "LOG_LEVEL",
        "log.filter",
        Kind::Text,
        "a tracing filter such as `info`",
        "A tracing filter such as `info` or `core_web=debug,info`.",
    ),
    Setting::new(
        "RUST_LOG",
        "log.filter",
        Kind::Text,
        "a tracing filter such as `info`",
        "When set, overrides `LOG_LEVEL` (the usual tracing variable).",
    ),
    Setting::new(
        "DEFAULT_LOCALE",
        "i18n.default_locale",
        Kind::Text,
        "a locale tag such as `en` or `zh-CN`",
        "Locale used when a request names none that is available.",
    ),
    Setting::new(
        "I18N_DIRS",
        "i18n.dirs",
        Kind::List,
        "comma-separated directories",
        "Comma-separated directories of extra `{locale}.json` catalogs.",
    ),
    Setting::new(
        CONFIG_FILE_VARIABLE,
        "config_file",
        Kind::Text,
        "a file path",
        "Path of the optional TOML settings file.",
    ),
];

/// The framework's settings: core-web's own, the database, the cache, storage and
/// translations. An application that runs jobs composes it with core-jobs' sections (see the
/// [module docs](self)).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `APP_NAME`: the application's name, the prefix of its Redis keys.
    pub app_name: String,
    /// `HOST`.
    pub host: IpAddr,
    /// `PORT`.
    pub port: u16,
    /// `REDIS_URL`: when set, the default of `CACHE_URL` and `QUEUE_URL`.
    pub redis_url: Option<String>,
    /// `DATABASE_URL`, `MIGRATE_ON_START`.
    pub database: DatabaseConfig,
    /// `CACHE_URL`.
    pub cache: CacheConfig,
    /// `STORAGE_*`, `S3_*`.
    pub storage: StorageConfig,
    /// HTTP server and middleware settings.
    pub http: HttpConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// `DEFAULT_LOCALE`, `I18N_DIRS`.
    pub i18n: I18nConfig,
    /// `RUSTFORGE_CONFIG`: the TOML file read (when it exists).
    pub config_file: PathBuf,
}

impl Default for Settings {
    /// Everything embedded: `127.0.0.1:3000`, SQLite, the memory cache, local storage.
    fn default() -> Self {
        Self {
            app_name: "rustforge".to_owned(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 3000,
            redis_url: None,
            database: DatabaseConfig::default(),
            cache: CacheConfig::default(),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            i18n: I18nConfig::default(),
            config_file: PathBuf::from(DEFAULT_CONFIG_FILE),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("app_name", &self.app_name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("database", &self.database)
            .field("cache", &self.cache)
            .field("storage", &self.storage)
            .field("http", &self.http)
            .field("log", &self.log)
            .field("i18n", &self.i18n)
            .field("config_file", &self.config_file)
            .finish()
    }
}

/// HTTP server and middleware settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// `REQUEST_TIMEOUT_MS`.
    pub request_timeout: Duration,
    /// `BODY_LIMIT_BYTES`.
    pub body_limit: usize,
    /// `CORS_ALLOWED_ORIGINS`; empty means no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// `SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    /// 30 s timeout, 2 MiB bodies, no CORS, 30 s grace.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_limit: 2 * 1024 * 1024,
            cors_allowed_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines with span context.
    #[default]
    #[serde(alias = "text")]
    Pretty,
    /// One JSON object per line, span fields included.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `LOG_FORMAT`.
    pub format: LogFormat,
    /// `RUST_LOG`, else `LOG_LEVEL`.
    pub filter: String,
}

impl Default for LogConfig {
    /// Human-readable lines at `info`.
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".to_owned(),
        }
    }
}

impl Settings {
    /// The tables of the variables [`Settings`] reads: core-web's and core-db's.
    pub const TABLES: &[&[Setting]] = &[SETTINGS, core_db::settings::SETTINGS];

    /// Reads `.env`, the TOML file and the environment.
    ///
    /// # Errors
    /// A malformed `.env` or TOML file, a `RUSTFORGE_CONFIG` that does not exist, or any invalid
    /// value, named with the variable and what it accepts.
    pub fn load() -> Result<Self> {
        let loader = Loader::from_env(Self::TABLES)?;
        let settings: Self = loader.extract()?;
        loader.check(settings.check())?;
        Ok(settings)
    }

    /// Builds settings from a lookup function (variable name → value) instead of the
    /// environment and files: for tests.
    ///
    /// # Errors
    /// Any invalid value, named with the variable and what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let loader = Loader::from_lookup(Self::TABLES, lookup)?;
        let settings: Self = loader.extract()?;
        loader.check(settings.check())?;
        Ok(settings)
    }

    /// Checks what the types alone do not: the name, the Redis URL, the locale, and each
    /// driver's own configuration (without connecting).
    ///
    /// # Errors
    /// [`Invalid`] naming the first rejected key; [`Loader::check`] names its variable.
    pub fn check(&self) -> std::result::Result<(), Invalid> {
        if self.app_name.is_empty()
            || self
                .app_name
                .contains(|c: char| c.is_whitespace() || c == ':' || c.is_control())
        {
            return Err(Invalid::new("app_name", "spaces or `:`"));
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(Invalid::new("redis_url", "not a Redis URL"));
        }
        let locale = &self.i18n.default_locale;
        if locale.is_empty()
            || !locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Invalid::new("i18n.default_locale", "not a locale tag"));
        }
        self.database.check()?;
        self.cache.check()?;
        self.storage.check()
    }

    /// The socket address the server binds.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// One row of a settings table as the README and the docs site show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingRow {
    /// The variable.
    pub name: &'static str,
    /// The default, as text: read from the configuration's `Default`, never written twice.
    pub default: String,
    /// What it controls.
    pub description: &'static str,
}

/// The rows documenting `tables`, their defaults read from `defaults` (the serialized
/// `Default` of the configuration the tables fill).
pub fn documented(tables: &[&[Setting]], defaults: &serde_json::Value) -> Vec<SettingRow> {
    tables
        .iter()
        .flat_map(|table| table.iter())
        .enumerate()
        .map(|(index, setting)| {
            let overrides = tables
                .iter()
                .flat_map(|table| table.iter())
                .take(index)
                .any(|earlier| earlier.key == setting.key);
            let mut value = if overrides {
                &serde_json::Value::Null
            } else {
                defaults
            };
            for part in setting.key.split('.') {
                value = value.get(part).unwrap_or(&serde_json::Value::Null);
            }
            let text = match (setting.kind, value) {
                (_, serde_json::Value::Null) => "(unset)".to_owned(),
                (Kind::Millis, v) => {
                    duration_of(v).map_or_else(String::new, |d| d.as_millis().to_string())
                }
                (Kind::Secs, v) => {
                    duration_of(v).map_or_else(String::new, |d| d.as_secs().to_string())
                }
                (Kind::Duration, v) => duration_of(v)
                    .map_or_else(String::new, |d| humantime::format_duration(d).to_string()),
                (_, serde_json::Value::Array(items)) if items.is_empty() => "(none)".to_owned(),
                (_, serde_json::Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            };
            let default = match setting.fallback {
                Some(other) => format!("{other}, else {text}"),
                None => text,
            };
            SettingRow {
                name: setting.name,
                default,
                description: setting.description,
            }
        })
        .collect()
}

fn duration_of(value: &serde_json::Value) -> Option<Duration> {
    serde_json::from_value(value.clone()).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::Error;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_select_embedded_drivers() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s, Settings::default());
        assert_eq!(s.port, 3000);
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert_eq!(s.database.url, "sqlite://data/app.sqlite3");
        assert_eq!(s.cache.url, "memory://");
        assert_eq!(s.storage.driver, StorageDriver::Local);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(s.http, HttpConfig::default());
    }

    #[test]
    fn redis_url_becomes_the_cache_default() {
        let s = settings(&[("REDIS_URL", "redis://127.0.0.1:6379")]).expect("valid");
        assert_eq!(s.cache.url, "redis://127.0.0.1:6379");
        let s = settings(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("CACHE_URL", "tiered+redis://127.0.0.1:6379/1"),
        ])
        .expect("valid");
        assert_eq!(s.cache.url, "tiered+redis://127.0.0.1:6379/1");
    }

    #[test]
    fn every_kind_of_value_is_read() {
        let s = settings(&[
            ("APP_NAME", "forge"),
            ("HOST", "0.0.0.0"),
            ("PORT", "8080"),
            ("DATABASE_URL", "postgres://u@db/app"),
            ("MIGRATE_ON_START", "off"),
            ("STORAGE_DRIVER", "S3"),
            ("S3_BUCKET", "12345"),
            ("S3_FORCE_PATH_STYLE", "yes"),
            ("STORAGE_PUBLIC_PREFIXES", " avatars/, notes ,"),
            ("REQUEST_TIMEOUT_MS", "1500"),
            ("BODY_LIMIT_BYTES", "1024"),
            ("CORS_ALLOWED_ORIGINS", "https://a.test, https://b.test"),
            ("SHUTDOWN_GRACE_SECS", "0"),
            ("LOG_FORMAT", "JSON"),
            ("LOG_LEVEL", "debug"),
            ("DEFAULT_LOCALE", "zh-CN"),
            ("I18N_DIRS", "a,b"),
        ])
        .expect("valid");
        assert_eq!(s.app_name, "forge");
        assert_eq!(s.addr().to_string(), "0.0.0.0:8080");
        assert!(!s.database.migrate_on_start);
        assert_eq!(s.storage.driver, StorageDriver::S3);
        assert_eq!(
            s.storage.bucket.as_deref(),
            Some("12345"),
            "digits stay text"
        );
        assert!(s.storage.force_path_style);
        assert_eq!(s.storage.public_prefixes, ["avatars/", "notes"]);
        assert_eq!(s.http.request_timeout, Duration::from_millis(1500));
        assert_eq!(s.http.body_limit, 1024);
        assert_eq!(
            s.http.cors_allowed_origins,
            ["https://a.test", "https://b.test"]
        );
        assert_eq!(s.http.shutdown_grace, Duration::ZERO);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.log.filter, "debug");
        assert_eq!(s.i18n.default_locale, "zh-CN");
        assert_eq!(s.i18n.dirs, [PathBuf::from("a"), PathBuf::from("b")]);
        let s = settings(&[("LOG_LEVEL", "debug"), ("RUST_LOG", "trace")]).expect("valid");
        assert_eq!(s.log.filter, "trace", "RUST_LOG wins");
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_it_accepts() {
        for (pairs, variable, hint) in [
            (vec![("PORT", "abc")], "PORT", "port number"),
            (vec![("PORT", "70000")], "PORT", "port number"),
            (vec![("HOST", "localhost:1")], "HOST", "IP address"),
            (
                vec![("DATABASE_URL", "mysql://x")],
                "DATABASE_URL",
                "postgres://",
            ),
            (
                vec![("CACHE_URL", "memcached://x")],
                "CACHE_URL",
                "memory://",
            ),
            (vec![("REDIS_URL", "http://x")], "REDIS_URL", "redis://"),
            (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT", "json"),
            (
                vec![("REQUEST_TIMEOUT_MS", "0")],
                "REQUEST_TIMEOUT_MS",
                "greater than 0",
            ),
            (
                vec![("MIGRATE_ON_START", "maybe")],
                "MIGRATE_ON_START",
                "true or false",
            ),
            (vec![("STORAGE_DRIVER", "ftp")], "STORAGE_DRIVER", "s3"),
            (vec![("STORAGE_DRIVER", "s3")], "S3_BUCKET", "bucket"),
            (vec![("APP_NAME", "my app")], "APP_NAME", "without spaces"),
            (vec![("DEFAULT_LOCALE", "e n")], "DEFAULT_LOCALE", "locale"),
            (vec![("S3_ENDPOINT", "ftp://s3")], "S3_ENDPOINT", "http://"),
        ] {
            let err = settings(&pairs).expect_err("invalid").to_string();
            assert!(err.contains(variable), "{err} names {variable}");
            assert!(err.contains(hint), "{err} says what {variable} accepts");
        }
    }

    #[test]
    fn secret_settings_are_never_echoed() {
        for name in [
            "S3_SECRET_ACCESS_KEY",
            "DATABASE_PASSWORD",
            "API_TOKEN",
            "STORAGE_SIGNING_KEY",
        ] {
            let setting = Setting::new(name, "x", Kind::Text, "something else", "");
            let err = Error::InvalidSetting {
                variable: name,
                value: loader::shown_value(&setting, "hunter2"),
                expected: "something else",
            }
            .to_string();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("***"), "{err}");
        }
        let port = Setting::new("PORT", "port", Kind::Text, "", "");
        assert_eq!(loader::shown_value(&port, "hunter2"), "hunter2");
        assert_eq!(
            loader::shown_value(&port, "mysql://u:hunter2@h/db"),
            "mysql://u:***@h/db"
        );
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let s = settings(&[
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
            ("DATABASE_URL", "postgres://app:hunter2@db/app"),
            ("S3_SECRET_ACCESS_KEY", "hunter2"),
            ("STORAGE_SIGNING_KEY", "hunter2"),
        ])
        .expect("valid");
        assert_eq!(s.storage.secret_access_key.as_deref(), Some("hunter2"));
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    #[test]
    fn documented_defaults_come_from_the_configuration() {
        let defaults = serde_json::to_value(Settings::default()).expect("serializes");
        let rows = documented(Settings::TABLES, &defaults);
        let row = |name: &str| {
            rows.iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name}"))
                .default
                .clone()
        };
        assert_eq!(row("PORT"), "3000");
        assert_eq!(row("REQUEST_TIMEOUT_MS"), "30000");
        assert_eq!(row("SHUTDOWN_GRACE_SECS"), "30");
        assert_eq!(row("BODY_LIMIT_BYTES"), "2097152");
        assert_eq!(row("CACHE_URL"), "REDIS_URL, else memory://");
        assert_eq!(row("DATABASE_URL"), "sqlite://data/app.sqlite3");
        assert_eq!(row("S3_BUCKET"), "(unset)");
        assert_eq!(row("S3_SECRET_ACCESS_KEY"), "(unset)");
        assert_eq!(row("CORS_ALLOWED_ORIGINS"), "(none)");
        assert_eq!(row("LOG_LEVEL"), "info");
        assert_eq!(row("RUST_LOG"), "(unset)");
        assert_eq!(row("MIGRATE_ON_START"), "true");
        assert_eq!(row("STORAGE_DRIVER"), "local");
    }

    #[test]
    fn readme_lists_every_setting() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md at the workspace root");
        for setting in Settings::TABLES.iter().flat_map(|t| t.iter()) {
            assert!(
                readme.contains(&format!("`{}`", setting.name)),
                "README lists {}",
                setting.name
            );
        }
    }
}
