//! The settings loader: figment over the defaults, the TOML file, `.env` and the environment,
//! each source mapped from variable names to the configuration's keys and checked against the
//! settings' [`Kind`]s before anything is deserialized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_db::settings::{Invalid, Kind, Setting, redact_url};
use figment::value::{Dict, Map, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider, providers::Serialized};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The variable naming the TOML file.
pub const CONFIG_FILE_VARIABLE: &str = "RUSTFORGE_CONFIG";
/// The TOML file read when [`CONFIG_FILE_VARIABLE`] is unset, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "rustforge.toml";

/// Loads an application's settings: figment layers the configuration's `Default` values, the
/// optional TOML file, `.env` and the environment (each higher layer wins), for every variable
/// of the tables it is given.
///
/// Values are checked against each setting's [`Kind`] as they are read, so a bad value is
/// reported by its variable name and what it accepts, and a secret's value is never shown.
/// After deserializing, [`Loader::check`] turns a driver's [`Invalid`] into the same error.
///
/// ```
/// use core_web::config::{Loader, Settings, SETTINGS};
///
/// let loader = Loader::from_lookup(&[SETTINGS, core_db::settings::SETTINGS], |name| {
///     (name == "PORT").then(|| "8080".to_owned())
/// })?;
/// let settings: Settings = loader.extract()?;
/// assert_eq!(settings.port, 8080);
/// # Ok::<(), core_web::Error>(())
/// ```
pub struct Loader {
    tables: Vec<&'static [Setting]>,
    layers: Vec<Layer>,
}

/// One source's values, by variable name, already checked and converted.
#[derive(Clone)]
struct Layer {
    name: String,
    values: BTreeMap<&'static str, (Setting, Value)>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (setting, value) in self.values.values() {
            insert(&mut dict, setting.key, value.clone());
        }
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

/// Puts `value` at the dotted `key` of `dict`.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Loader {
    /// Reads the process environment, `.env` in the working directory (without changing the
    /// environment) and the TOML file named by `RUSTFORGE_CONFIG` (or `rustforge.toml` when it
    /// exists).
    ///
    /// # Errors
    /// A malformed `.env` or TOML file (reported by line, never with its text), a
    /// `RUSTFORGE_CONFIG` that does not exist, or an invalid value.
    pub fn from_env(tables: &[&'static [Setting]]) -> Result<Self> {
        Self::from_dir(tables, Path::new("."), |name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with `dir` as the working directory (where `.env`,
    /// `rustforge.toml` and a relative `RUSTFORGE_CONFIG` are found) and `env` as the
    /// environment: for tests of the files' precedence.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_dir(
        tables: &[&'static [Setting]],
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let dotenv = read_dotenv(&dir.join(".env"))?;
        let file = env(CONFIG_FILE_VARIABLE)
            .or_else(|| dotenv.get(CONFIG_FILE_VARIABLE).cloned())
            .filter(|s| !s.trim().is_empty());
        let toml = match file {
            Some(path) => read_toml(&dir.join(path.trim()))?,
            None if dir.join(DEFAULT_CONFIG_FILE).exists() => {
                read_toml(&dir.join(DEFAULT_CONFIG_FILE))?
            }
            None => BTreeMap::new(),
        };
        let mut loader = Self {
            tables: tables.to_vec(),
            layers: Vec::new(),
        };
        loader.push("TOML file", |name| {
            toml.get(&name.to_ascii_lowercase()).cloned()
        })?;
        loader.push(".env", |name| dotenv.get(name).cloned())?;
        loader.push("environment", env)?;
        Ok(loader)
    }

    /// Reads the values `lookup` gives (variable name → value) as if they were the environment,
    /// with no files: for tests.
    ///
    /// # Errors
    /// An invalid value, named with its variable and what it accepts.
    pub fn from_lookup(
        tables: &[&'static [Setting]],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut loader = Self {
            tables: tables.to_vec(),
            layers: Vec::new(),
        };
        loader.push("environment", lookup)?;
        Ok(loader)
    }

    /// Adds a layer over the previous ones, from the values `lookup` gives.
    fn push(&mut self, name: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        let mut values = BTreeMap::new();
        for setting in self.settings() {
            let Some(raw) = lookup(setting.name) else {
                continue;
            };
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let value = convert(setting, raw).ok_or_else(|| invalid(setting, raw))?;
            values.insert(setting.name, (*setting, value));
        }
        self.layers.push(Layer {
            name: name.to_owned(),
            values,
        });
        Ok(())
    }

    fn settings(&self) -> impl Iterator<Item = &'static Setting> + '_ {
        self.tables.iter().flat_map(|table| table.iter())
    }

    /// The value a source gave `name`, from the highest layer that has one.
    fn given(&self, name: &str) -> Option<&Value> {
        self.layers
            .iter()
            .rev()
            .find_map(|layer| layer.values.get(name).map(|(_, value)| value))
    }

    /// Deserializes the settings: `T::default()`, then the layers, then each unset setting
    /// that has a fallback takes its fallback's value (`CACHE_URL` ← `REDIS_URL`).
    ///
    /// # Errors
    /// [`Error::Config`] when the values do not fit `T` (a table naming a key `T` lacks).
    pub fn extract<T: DeserializeOwned + Serialize + Default>(&self) -> Result<T> {
        let mut figment = Figment::from(Serialized::defaults(T::default()));
        for layer in &self.layers {
            figment = figment.merge(layer.clone());
        }
        let mut fallbacks = Layer {
            name: "fallbacks".to_owned(),
            values: BTreeMap::new(),
        };
        for setting in self.settings() {
            if let Some(other) = setting.fallback
                && self.given(setting.name).is_none()
                && let Some(value) = self.given(other)
            {
                fallbacks
                    .values
                    .insert(setting.name, (*setting, value.clone()));
            }
        }
        figment.merge(fallbacks).extract().map_err(|e| {
            Error::Config(format!("settings do not fit the configuration: {}", e.kind))
        })
    }

    /// Turns a driver's verdict on a loaded configuration into the error naming the variable.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for the setting whose key `verdict` names.
    pub fn check(&self, verdict: std::result::Result<(), Invalid>) -> Result<()> {
        let Err(rejected) = verdict else {
            return Ok(());
        };
        let Some(setting) = self.settings().find(|s| s.key == rejected.key) else {
            return Err(Error::Config(rejected.to_string()));
        };
        let shown = self
            .given(setting.name)
            .or_else(|| setting.fallback.and_then(|other| self.given(other)))
            .map(text_of)
            .unwrap_or_default();
        Err(invalid(setting, &shown))
    }
}

/// `value` as text, for an error message.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(_, s) => s.clone(),
        Value::Array(_, items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        other => other
            .to_num()
            .map(|n| format!("{n:?}"))
            .or_else(|| other.to_bool().map(|b| b.to_string()))
            .unwrap_or_default(),
    }
}

/// `raw` as the value `setting` takes, or `None` when its kind does not accept it.
fn convert(setting: &Setting, raw: &str) -> Option<Value> {
    let duration = |secs: u64, nanos: u32| {
        let mut dict = Dict::new();
        dict.insert("secs".to_owned(), Value::from(secs));
        dict.insert("nanos".to_owned(), Value::from(nanos));
        Value::Dict(Tag::Default, dict)
    };
    Some(match setting.kind {
        Kind::Bool => Value::from(match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return None,
        }),
        Kind::Int { min, max } => {
            let n: u64 = raw.parse().ok()?;
            if n < min || n > max {
                return None;
            }
            Value::from(n)
        }
        Kind::Millis => {
            let ms: u64 = raw.parse().ok().filter(|ms| *ms > 0)?;
            duration(ms / 1000, u32::try_from(ms % 1000).ok()? * 1_000_000)
        }
        Kind::Secs => duration(raw.parse().ok()?, 0),
        Kind::Duration => {
            let d = match raw.trim().parse::<u64>() {
                Ok(secs) => std::time::Duration::from_secs(secs),
                Err(_) => humantime::parse_duration(raw.trim()).ok()?,
            };
            duration(d.as_secs(), d.subsec_nanos())
        }
        Kind::Decimal => {
            let n: f64 = raw
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
            Value::from(n)
        }
        Kind::List => Value::from(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_owned()))
                .collect::<Vec<_>>(),
        ),
        Kind::Ip => Value::from(raw.parse::<std::net::IpAddr>().ok()?.to_string()),
        Kind::Choice(words) => {
            let word = raw.to_ascii_lowercase();
            if !words.contains(&word.as_str()) {
                return None;
            }
            Value::from(word)
        }
        Kind::Text | Kind::Secret => Value::from(raw.to_owned()),
        _ => Value::from(raw.to_owned()),
    })
}

/// The error for a rejected value, shown as [`shown_value`] allows.
fn invalid(setting: &Setting, raw: &str) -> Error {
    Error::InvalidSetting {
        variable: setting.name,
        value: shown_value(setting, raw),
        expected: setting.expected,
    }
}

/// Whether a setting's value must never be printed: a [`Kind::Secret`], or a name that says so.
pub(crate) fn is_secret(setting: &Setting) -> bool {
    let name = setting.name.to_ascii_uppercase();
    setting.kind == Kind::Secret
        || [
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

/// `value` as an error message may show it: a secret never (`***`), anything else with URL
/// passwords redacted.
pub(crate) fn shown_value(setting: &Setting, value: &str) -> String {
    if is_secret(setting) && !value.is_empty() {
        "***".to_owned()
    } else {
        redact_url(value)
    }
}

/// `.env` as variable → value; a missing file is empty. A malformed line is reported by its
/// number only, since it may hold a secret.
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::Config(format!("{}: {}", path.display(), e))),
    };
    let mut out = BTreeMap::new();
    for item in iter {
        match item {
            Ok((key, value)) => {
                out.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(_, index)) => {
                let line = std::fs::read_to_string(path)
                    .map(|text| text[..index.min(text.len())].lines().count().max(1))
                    .unwrap_or(0);
                return Err(Error::Config(format!(
                    "{}: line {line} is not `NAME=value`",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::Config(format!("{}: {}", path.display(), e))),
        }
    }
    Ok(out)
}

/// A flat TOML table as lower-case key → text, arrays joined with commas. A syntax error is
/// reported by line and reason, without the text of the line.
fn read_toml(path: &Path) -> Result<BTreeMap<String, String>> {
    let shown = PathBuf::from(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", shown.display())))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        Error::Config(match line {
            Some(line) => format!("{}: line {line}: {}", shown.display(), e.message()),
            None => format!("{}: {}", shown.display(), e.message()),
        })
    })?;
    let mut out = BTreeMap::new();
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
                    shown.display(),
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

    #[test]
    fn durations_and_decimals_are_read() {
        let span = Setting::new("SPAN", "span", Kind::Duration, "a duration", "");
        let secs = |raw: &str| {
            convert(&span, raw).map(|v| {
                let d: std::time::Duration = v.deserialize().expect("a Duration");
                d.as_secs()
            })
        };
        assert_eq!(secs("90"), Some(90));
        assert_eq!(secs("15m"), Some(900));
        assert_eq!(secs("1h 30m"), Some(5400));
        assert_eq!(secs("30d"), Some(30 * 86_400));
        assert_eq!(secs("soon"), None);
        assert_eq!(secs("-5"), None);

        let scale = Setting::new("SCALE", "scale", Kind::Decimal, "a number", "");
        let number = |raw: &str| convert(&scale, raw).and_then(|v| v.to_num()?.to_f64());
        assert_eq!(number("0.001"), Some(0.001));
        assert_eq!(number("2"), Some(2.0));
        assert_eq!(number("-1"), None);
        assert_eq!(number("NaN"), None);
        assert_eq!(number("inf"), None);
    }

    #[test]
    fn toml_syntax_errors_name_the_line_not_its_text() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rustforge.toml");
        std::fs::write(&path, "port = 8080\ns3_secret_access_key = \"hunter2\n").expect("write");
        let err = read_toml(&path)
            .expect_err("unterminated string")
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn dotenv_syntax_errors_name_the_line_not_its_text() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(".env");
        std::fs::write(&path, "PORT=8080\nS3_SECRET_ACCESS_KEY='hunter2\n").expect("write");
        let err = read_dotenv(&path)
            .expect_err("unterminated quote")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains(".env"), "{err}");
    }
}
