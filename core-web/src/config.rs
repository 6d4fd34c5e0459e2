//! Typed settings, read in one place from environment variables, a `.env` file and an optional
//! TOML file.
//!
//! Precedence, highest first: the process environment, `.env` (which never overrides a variable
//! already set), then the TOML file named by `RUSTFORGE_CONFIG` (or `rustforge.toml` in the working
//! directory when it exists), whose keys are the variables' names in lower case. Every setting has
//! a default that selects the embedded drivers, so an empty environment runs the app with no
//! services. An invalid value stops start-up with an error naming the variable and what it
//! accepts. [`SETTINGS`] lists every variable; the README's table is checked against it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// One documented setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Environment variable (and, in lower case, TOML key).
    pub name: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// What it controls and what it accepts.
    pub description: &'static str,
}

/// Every setting Rustforge reads.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        name: "APP_NAME",
        default: "rustforge",
        description: "Application name; the Redis key prefix `{app}`.",
    },
    SettingDoc {
        name: "HOST",
        default: "127.0.0.1",
        description: "IP address the HTTP server binds.",
    },
    SettingDoc {
        name: "PORT",
        default: "3000",
        description: "TCP port the HTTP server binds (0 picks a free one).",
    },
    SettingDoc {
        name: "DATABASE_URL",
        default: "sqlite://data/app.sqlite3",
        description: "`postgres://…` or `sqlite://PATH` (created when missing).",
    },
    SettingDoc {
        name: "MIGRATE_ON_START",
        default: "true",
        description: "Apply pending migrations when the app starts.",
    },
    SettingDoc {
        name: "REDIS_URL",
        default: "(unset)",
        description: "`redis://` or `rediss://`; when set, the default for the cache and the queue.",
    },
    SettingDoc {
        name: "CACHE_URL",
        default: "REDIS_URL, else memory://",
        description: "Cache driver: `memory://`, `redis://…`, `rediss://…`.",
    },
    SettingDoc {
        name: "QUEUE_URL",
        default: "REDIS_URL, else memory://",
        description: "Queue driver: `memory://`, `redis://…`, `rediss://…`.",
    },
    SettingDoc {
        name: "STORAGE_DRIVER",
        default: "local",
        description: "`local` or `s3`.",
    },
    SettingDoc {
        name: "STORAGE_ROOT",
        default: "data/storage",
        description: "Directory of the local storage driver.",
    },
    SettingDoc {
        name: "STORAGE_PUBLIC_URL",
        default: "/storage",
        description: "Base URL under which stored files are served.",
    },
    SettingDoc {
        name: "S3_BUCKET",
        default: "(unset)",
        description: "Bucket of the S3 driver (required when STORAGE_DRIVER=s3).",
    },
    SettingDoc {
        name: "S3_REGION",
        default: "us-east-1",
        description: "Region of the S3 driver.",
    },
    SettingDoc {
        name: "S3_ENDPOINT",
        default: "(unset)",
        description: "Endpoint URL for S3-compatible servers.",
    },
    SettingDoc {
        name: "S3_ACCESS_KEY_ID",
        default: "(unset)",
        description: "S3 access key id.",
    },
    SettingDoc {
        name: "S3_SECRET_ACCESS_KEY",
        default: "(unset)",
        description: "S3 secret access key.",
    },
    SettingDoc {
        name: "S3_FORCE_PATH_STYLE",
        default: "false",
        description: "Path-style bucket addressing (most S3-compatible servers need it).",
    },
    SettingDoc {
        name: "REQUEST_TIMEOUT_MS",
        default: "30000",
        description: "Per-request timeout; past it the client gets 408.",
    },
    SettingDoc {
        name: "BODY_LIMIT_BYTES",
        default: "2097152",
        description: "Largest accepted request body; past it the client gets 413.",
    },
    SettingDoc {
        name: "CORS_ALLOWED_ORIGINS",
        default: "(none)",
        description: "Comma-separated origins allowed by CORS, or `*`.",
    },
    SettingDoc {
        name: "SHUTDOWN_GRACE_SECS",
        default: "30",
        description: "How long in-flight requests may finish after SIGINT/SIGTERM.",
    },
    SettingDoc {
        name: "LOG_FORMAT",
        default: "pretty",
        description: "`pretty` (human-readable) or `json`.",
    },
    SettingDoc {
        name: "LOG_LEVEL",
        default: "info",
        description: "A tracing filter such as `info` or `core_web=debug,info` (RUST_LOG wins when set).",
    },
    SettingDoc {
        name: "DEFAULT_LOCALE",
        default: "en",
        description: "Locale used when a request names none that is available.",
    },
    SettingDoc {
        name: "I18N_DIRS",
        default: "(none)",
        description: "Comma-separated directories of extra `{locale}.json` catalogs.",
    },
    SettingDoc {
        name: "RUSTFORGE_CONFIG",
        default: "rustforge.toml",
        description: "Path of the optional TOML settings file.",
    },
];

/// All settings of a Rustforge application.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `APP_NAME`.
    pub app_name: String,
    /// `HOST`.
    pub host: IpAddr,
    /// `PORT`.
    pub port: u16,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `MIGRATE_ON_START`.
    pub migrate_on_start: bool,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `CACHE_URL`.
    pub cache_url: String,
    /// `QUEUE_URL`.
    pub queue_url: String,
    /// Storage settings.
    pub storage: StorageConfig,
    /// HTTP server and middleware settings.
    pub http: HttpConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Translation settings.
    pub i18n: I18nConfig,
}

/// Which storage driver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDriver {
    /// Files under a local directory (the embedded default).
    Local,
    /// An S3 or S3-compatible bucket.
    S3,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// `STORAGE_DRIVER`.
    pub driver: StorageDriver,
    /// `STORAGE_ROOT`.
    pub root: PathBuf,
    /// `STORAGE_PUBLIC_URL`.
    pub public_url: String,
    /// `S3_BUCKET`.
    pub s3_bucket: Option<String>,
    /// `S3_REGION`.
    pub s3_region: String,
    /// `S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
    /// `S3_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// `S3_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<String>,
    /// `S3_FORCE_PATH_STYLE`.
    pub s3_force_path_style: bool,
}

/// HTTP server and middleware settings.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines with span context.
    Pretty,
    /// One JSON object per line, span fields included.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `LOG_FORMAT`.
    pub format: LogFormat,
    /// `RUST_LOG`, else `LOG_LEVEL`.
    pub filter: String,
}

/// Translation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I18nConfig {
    /// `DEFAULT_LOCALE`.
    pub default_locale: String,
    /// `I18N_DIRS`.
    pub dirs: Vec<PathBuf>,
}

impl Settings {
    /// Reads `.env`, the TOML file and the environment.
    ///
    /// # Errors
    /// A malformed `.env` or TOML file, a `RUSTFORGE_CONFIG` that does not exist, or any invalid
    /// value, named with the variable and what it accepts.
    pub fn load() -> Result<Self> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::Config(format!(".env: {e}"))),
        }
        let explicit = std::env::var("RUSTFORGE_CONFIG")
            .ok()
            .filter(|s| !s.is_empty());
        let file = match &explicit {
            Some(path) => Some(read_toml(Path::new(path))?),
            None if Path::new("rustforge.toml").exists() => {
                Some(read_toml(Path::new("rustforge.toml"))?)
            }
            None => None,
        };
        let file = file.unwrap_or_default();
        Self::from_lookup(|name| {
            std::env::var(name)
                .ok()
                .or_else(|| file.get(&name.to_ascii_lowercase()).cloned())
        })
    }

    /// Builds settings from a lookup function (variable name → value); `load` uses the
    /// environment and files, tests pass a map.
    ///
    /// # Errors
    /// Any invalid value, named with the variable and what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let redis_url = get("REDIS_URL")
            .map(|v| {
                check_scheme(
                    "REDIS_URL",
                    v,
                    &["redis://", "rediss://"],
                    "a redis:// or rediss:// URL",
                )
            })
            .transpose()?;
        let driver_default = redis_url.clone().unwrap_or_else(|| "memory://".to_owned());
        let driver_url = |name: &'static str| {
            let value = get(name).unwrap_or_else(|| driver_default.clone());
            check_scheme(
                name,
                value,
                &["memory://", "redis://", "rediss://"],
                "memory://, redis://… or rediss://…",
            )
        };
        let storage_driver = match get("STORAGE_DRIVER")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("local") => StorageDriver::Local,
            Some("s3") => StorageDriver::S3,
            Some(other) => return Err(invalid("STORAGE_DRIVER", other, "`local` or `s3`")),
        };
        let s3_bucket = get("S3_BUCKET");
        if storage_driver == StorageDriver::S3 && s3_bucket.is_none() {
            return Err(invalid(
                "S3_BUCKET",
                "",
                "a bucket name (required when STORAGE_DRIVER=s3)",
            ));
        }
        let log_format = match get("LOG_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "`pretty` or `json`")),
        };
        let default_locale = get("DEFAULT_LOCALE").unwrap_or_else(|| "en".to_owned());
        if !default_locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "DEFAULT_LOCALE",
                &default_locale,
                "a locale tag such as `en` or `zh-CN`",
            ));
        }
        Ok(Settings {
            app_name: {
                let name = get("APP_NAME").unwrap_or_else(|| "rustforge".to_owned());
                if name.contains(|c: char| c.is_whitespace() || c == ':' || c.is_control()) {
                    return Err(invalid("APP_NAME", &name, "a name without spaces or `:`"));
                }
                name
            },
            host: parse(
                &get,
                "HOST",
                "127.0.0.1",
                "an IP address such as 127.0.0.1 or 0.0.0.0",
            )?,
            port: parse(&get, "PORT", "3000", "a port number 0–65535")?,
            database_url: check_scheme(
                "DATABASE_URL",
                get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/app.sqlite3".to_owned()),
                &["postgres://", "postgresql://", "sqlite:"],
                "a postgres://… or sqlite://… URL",
            )?,
            migrate_on_start: parse_bool(&get, "MIGRATE_ON_START", true)?,
            cache_url: driver_url("CACHE_URL")?,
            queue_url: driver_url("QUEUE_URL")?,
            redis_url,
            storage: StorageConfig {
                driver: storage_driver,
                root: PathBuf::from(
                    get("STORAGE_ROOT").unwrap_or_else(|| "data/storage".to_owned()),
                ),
                public_url: get("STORAGE_PUBLIC_URL").unwrap_or_else(|| "/storage".to_owned()),
                s3_bucket,
                s3_region: get("S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
                s3_endpoint: get("S3_ENDPOINT"),
                s3_access_key_id: get("S3_ACCESS_KEY_ID"),
                s3_secret_access_key: get("S3_SECRET_ACCESS_KEY"),
                s3_force_path_style: parse_bool(&get, "S3_FORCE_PATH_STYLE", false)?,
            },
            http: HttpConfig {
                request_timeout: Duration::from_millis(positive(
                    &get,
                    "REQUEST_TIMEOUT_MS",
                    30_000,
                )?),
                body_limit: usize::try_from(positive(&get, "BODY_LIMIT_BYTES", 2 * 1024 * 1024)?)
                    .map_err(|_| {
                    invalid("BODY_LIMIT_BYTES", "", "a size that fits in memory")
                })?,
                cors_allowed_origins: list(get("CORS_ALLOWED_ORIGINS")),
                shutdown_grace: Duration::from_secs(parse(
                    &get,
                    "SHUTDOWN_GRACE_SECS",
                    "30",
                    "a whole number of seconds",
                )?),
            },
            log: LogConfig {
                format: log_format,
                filter: lookup("RUST_LOG")
                    .filter(|v| !v.trim().is_empty())
                    .or_else(|| get("LOG_LEVEL"))
                    .unwrap_or_else(|| "info".to_owned()),
            },
            i18n: I18nConfig {
                default_locale,
                dirs: list(get("I18N_DIRS"))
                    .into_iter()
                    .map(PathBuf::from)
                    .collect(),
            },
        })
    }

    /// The socket address the server binds.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// The error for a rejected value. The value is shown as the message must show it: a secret
/// setting's value never (`***`), any other with URL passwords redacted ([`redact_url`]).
fn invalid(variable: &'static str, value: &str, expected: &'static str) -> Error {
    Error::InvalidSetting {
        variable,
        value: shown_value(variable, value),
        expected,
    }
}

/// Whether `variable` holds a secret whose value no message may print.
fn is_secret(variable: &str) -> bool {
    let name = variable.to_ascii_uppercase();
    [
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "PRIVATE",
        "CREDENTIAL",
    ]
    .iter()
    .any(|word| name.contains(word))
        || name.ends_with("_KEY")
}

/// `value` as an error message may show it for `variable`.
fn shown_value(variable: &str, value: &str) -> String {
    if is_secret(variable) && !value.is_empty() {
        "***".to_owned()
    } else {
        redact_url(value)
    }
}

/// `url` with the password of its user information replaced by `***`, for messages and logs.
///
/// The user information is everything between the scheme's `://` and the last `@`, so a
/// password is hidden whole even when it holds characters a URL should have percent-encoded
/// (`/`, `@`, `:`, `#`, `?`); the user name is what precedes its first `:`. Text without a
/// password comes back unchanged. Without `://`, the scheme ends at the first `:`.
///
/// ```
/// use core_web::config::redact_url;
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

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    expected: &'static str,
) -> Result<T> {
    let value = get(name).unwrap_or_else(|| default.to_owned());
    value.parse().map_err(|_| invalid(name, &value, expected))
}

fn positive(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(name, &v, "a whole number greater than 0")),
        },
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool> {
    match get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(invalid(name, &v, "true or false")),
        },
    }
}

fn check_scheme(
    name: &'static str,
    value: String,
    schemes: &[&str],
    expected: &'static str,
) -> Result<String> {
    if schemes.iter().any(|s| value.starts_with(s)) {
        Ok(value)
    } else {
        Err(invalid(name, &value, expected))
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a flat TOML table into lowercase-name → text. Arrays become comma-separated lists.
fn read_toml(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(Error::Config(format!(
                    "{}: `{key}` must be a string, number, boolean or list, not {}",
                    path.display(),
                    other.type_str()
                )));
            }
        };
        out.insert(key.to_ascii_lowercase(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.port, 3000);
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert_eq!(s.database_url, "sqlite://data/app.sqlite3");
        assert_eq!(s.cache_url, "memory://");
        assert_eq!(s.queue_url, "memory://");
        assert_eq!(s.storage.driver, StorageDriver::Local);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(s.http, HttpConfig::default());
    }

    #[test]
    fn redis_url_becomes_the_cache_and_queue_default() {
        let s = settings(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("QUEUE_URL", "memory://"),
        ])
        .expect("valid");
        assert_eq!(s.cache_url, "redis://127.0.0.1:6379");
        assert_eq!(s.queue_url, "memory://");
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
            let err = invalid(name, "hunter2", "something else").to_string();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("***"), "{err}");
        }
        let err = invalid("PORT", "hunter2", "a port number").to_string();
        assert!(err.contains("hunter2"), "not secret: {err}");
        let err = invalid("DATABASE_URL", "mysql://u:hunter2@h/db", "a URL").to_string();
        assert!(
            !err.contains("hunter2") && err.contains("mysql://u:***@h/db"),
            "{err}"
        );
    }

    #[test]
    fn toml_file_keys_are_lowercase_variable_names() {
        let dir = std::env::temp_dir().join(format!("rf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("rustforge.toml");
        std::fs::write(&path, "port = 8080\ncors_allowed_origins = [\"https://a.test\", \"https://b.test\"]\nmigrate_on_start = false\n").expect("write");
        let file = read_toml(&path).expect("valid toml");
        let s = Settings::from_lookup(|name| file.get(&name.to_ascii_lowercase()).cloned())
            .expect("valid");
        assert_eq!(s.port, 8080);
        assert_eq!(
            s.http.cors_allowed_origins,
            vec!["https://a.test", "https://b.test"]
        );
        assert!(!s.migrate_on_start);
        std::fs::write(&path, "port = { nested = 1 }\n").expect("write");
        assert!(
            read_toml(&path)
                .expect_err("tables rejected")
                .to_string()
                .contains("port")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn readme_lists_every_setting() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md at the workspace root");
        for setting in SETTINGS {
            assert!(
                readme.contains(&format!("`{}`", setting.name)),
                "README lists {}",
                setting.name
            );
        }
    }
}
