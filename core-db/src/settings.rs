//! What a setting is: the environment variable that sets it, where its value goes in the typed
//! configuration, and what it accepts.
//!
//! Each core crate owns the configuration of its parts (a `#[derive(Deserialize)]` struct beside
//! the constructor that takes it, such as [`DatabaseConfig`](crate::DatabaseConfig) for
//! [`Database::from_config`](crate::Database::from_config)) and publishes the variables that
//! fill it as a table of [`Setting`]s ([`SETTINGS`] here). An application composes the structs
//! and hands the tables to a loader (core-web's `config::load`), which reads the environment,
//! `.env` and TOML, checks every value against its [`Kind`], and reports a bad one by its
//! variable name. Defaults live only in the structs' `Default` implementations.

/// What values a setting accepts. The loader checks a value against its kind before the
/// configuration is deserialized, so an error names the variable and [`Setting::expected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Any text.
    Text,
    /// Any text that must never be printed: not in errors, logs or `Debug` output.
    Secret,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A whole number of at least `min`.
    Int {
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A whole number of milliseconds, at least 1, read as a `Duration`.
    Millis,
    /// A whole number of seconds, read as a `Duration`.
    Secs,
    /// A length of time: a whole number of seconds, or a humantime span such as `90s`, `15m`,
    /// `1h`, `30d` or `1h 30m`; read as a `Duration`.
    Duration,
    /// A finite decimal number of at least zero, such as `0.001` or `2.5`.
    Decimal,
    /// A comma-separated list (or a TOML array) of text.
    List,
    /// An IP address.
    Ip,
    /// One of these words (case-insensitive; the value is passed on in lower case).
    Choice(&'static [&'static str]),
}

/// One documented setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable (and, in lower case, the key in the TOML file).
    pub name: &'static str,
    /// Where the value goes in the application's settings: a dotted path such as
    /// `database.url`, by the convention that each crate's config is mounted under its section
    /// name.
    pub key: &'static str,
    /// What values it accepts.
    pub kind: Kind,
    /// How an error describes an accepted value, such as "a port number 0–65535".
    pub expected: &'static str,
    /// What it controls.
    pub description: &'static str,
    /// When unset, the value of this other setting, if that one is set (`CACHE_URL` falls back
    /// to `REDIS_URL`).
    pub fallback: Option<&'static str>,
}

impl Setting {
    /// A setting with no fallback.
    pub const fn new(
        name: &'static str,
        key: &'static str,
        kind: Kind,
        expected: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            key,
            kind,
            expected,
            description,
            fallback: None,
        }
    }

    /// The same setting, taking `other`'s value when it is unset.
    pub const fn or(mut self, other: &'static str) -> Self {
        self.fallback = Some(other);
        self
    }
}

/// The settings of core-db's parts: the database, the cache and storage.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "DATABASE_URL",
        "database.url",
        Kind::Text,
        "a postgres://… or sqlite://… URL",
        "`postgres://…` or `sqlite://PATH` (created when missing).",
    ),
    Setting::new(
        "MIGRATE_ON_START",
        "database.migrate_on_start",
        Kind::Bool,
        "true or false",
        "Apply pending migrations when the app starts.",
    ),
    Setting::new(
        "DATABASE_MAX_CONNECTIONS",
        "database.max_connections",
        Kind::Int { min: 1, max: 10_000 },
        "a whole number 1–10000",
        "Largest number of open database connections in the pool (per process).",
    ),
    Setting::new(
        "CACHE_URL",
        "cache.url",
        Kind::Text,
        "memory://, redis://…, rediss://… or tiered+redis://…",
        "Cache driver: `memory://`, `redis://…`, `rediss://…`, or `tiered+redis://…` (memory L1 in front of Redis).",
    )
    .or("REDIS_URL"),
    Setting::new(
        "STORAGE_DRIVER",
        "storage.driver",
        Kind::Choice(&["local", "s3"]),
        "`local` or `s3`",
        "`local` or `s3`.",
    ),
    Setting::new(
        "STORAGE_ROOT",
        "storage.root",
        Kind::Text,
        "a directory",
        "Directory of the local storage driver.",
    ),
    Setting::new(
        "STORAGE_PUBLIC_URL",
        "storage.public_url",
        Kind::Text,
        "a URL or path",
        "Base URL under which stored files are served.",
    ),
    Setting::new(
        "STORAGE_PUBLIC_PREFIXES",
        "storage.public_prefixes",
        Kind::List,
        "comma-separated key prefixes, or `*`",
        "Comma-separated key prefixes (whole segments, or `*` for all) that the app's `GET /storage/{*key}` serves without a signature; every other object needs a `presign_get` link.",
    ),
    Setting::new(
        "STORAGE_SIGNING_KEY",
        "storage.signing_key",
        Kind::Secret,
        "a secret of at least 32 characters",
        "Key that signs the local driver's presigned links; set the same one on every process that shares `STORAGE_ROOT`. Unset: a random key per process.",
    ),
    Setting::new(
        "S3_BUCKET",
        "storage.bucket",
        Kind::Text,
        "a bucket name (required when STORAGE_DRIVER=s3)",
        "Bucket of the S3 driver (required when STORAGE_DRIVER=s3).",
    ),
    Setting::new(
        "S3_REGION",
        "storage.region",
        Kind::Text,
        "a region such as us-east-1",
        "Region of the S3 driver.",
    ),
    Setting::new(
        "S3_ENDPOINT",
        "storage.endpoint",
        Kind::Text,
        "an http:// or https:// URL",
        "Endpoint URL for S3-compatible servers.",
    ),
    Setting::new(
        "S3_ACCESS_KEY_ID",
        "storage.access_key_id",
        Kind::Text,
        "an access key id",
        "S3 access key id.",
    ),
    Setting::new(
        "S3_SECRET_ACCESS_KEY",
        "storage.secret_access_key",
        Kind::Secret,
        "a secret access key",
        "S3 secret access key.",
    ),
    Setting::new(
        "S3_FORCE_PATH_STYLE",
        "storage.force_path_style",
        Kind::Bool,
        "true or false",
        "Path-style bucket addressing (most S3-compatible servers need it).",
    ),
];

/// A configuration value a driver rejected: the dotted [`Setting::key`] of the field, for the
/// loader to name by its variable. The reason is for logs of the application's own checks; the
/// loader shows the setting's [`Setting::expected`] text instead, so no value leaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
pub struct Invalid {
    /// The field's dotted key, such as `cache.url`.
    pub key: &'static str,
    /// Why, without the value.
    pub reason: String,
}

impl Invalid {
    /// `key` is invalid because of `reason`.
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// `url` with the password of its user information replaced by `***`, for messages, logs and
/// `Debug` output.
///
/// The user information is everything between the scheme's `://` and the last `@`, so a
/// password is hidden whole even when it holds characters a URL should have percent-encoded
/// (`/`, `@`, `:`, `#`, `?`); the user name is what precedes its first `:`. Text without a
/// password comes back unchanged. Without `://`, the scheme ends at the first `:`. (The `url`
/// crate cannot do this: it rejects, or splits differently, exactly the unencoded passwords that
/// must still be hidden.)
///
/// ```
/// use core_db::settings::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cr/t@db:5432/app"), "postgres://app:***@db:5432/app");
/// assert_eq!(redact_url("redis://:p@ss#w?rd@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
/// assert_eq!(redact_url("sqlite://data/app.sqlite3"), "sqlite://data/app.sqlite3");
/// ```
pub fn redact_url(url: &str) -> String {
    let start = match url.find("://") {
        Some(i) => i + 3,
        None => match url.find(':') {
            Some(i) => i + 1,
            None => return url.to_owned(),
        },
    };
    let rest = &url[start..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..start], &rest[at..]),
        None => url.to_owned(),
    }
}
