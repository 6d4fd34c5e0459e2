//! Catalogs: loading JSON translation files into the process-wide store.
//!
//! A catalog is a JSON object mapping keys to strings for one locale. Nested
//! objects are flattened with dots, so
//! `{"errors": {"not_found": "Not found"}}` defines the key
//! `errors.not_found`. Any other kind of leaf (number, boolean, null, array)
//! is rejected with an error naming the catalog and the key.
//!
//! Catalogs come from two places, and both *merge* into the store (later
//! sources override earlier keys, keys they do not mention are kept):
//!
//! - [`init`] loads every `*.json` file of each configured directory; the
//!   file stem is the locale (`zh_cn.json` and `zh-CN.json` are both `zh-CN`).
//!   Directories are applied in order and files within a directory in file
//!   name order, so later directories override earlier ones.
//! - [`add_catalog`] merges a catalog given as a string, typically embedded
//!   with `include_str!`. [`add_catalog_defaults`] does the same but never
//!   overrides a key that is already present, so a library can register its
//!   built-in messages at any time without clobbering the application's.
//!
//! Loading is all-or-nothing: if any file of an [`init`] call is invalid,
//! nothing from that call is applied. Loading the same catalogs twice is
//! harmless.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::locale::normalize_locale;

/// Configuration for [`init`].
///
/// ```
/// use core_i18n::I18nConfig;
///
/// let config = I18nConfig {
///     dirs: vec!["i18n".into(), "vendor/i18n".into()],
///     ..I18nConfig::default()
/// };
/// assert_eq!(config.default_locale, "en");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct I18nConfig {
    /// Directories holding `<locale>.json` catalogs, applied in order: keys
    /// from later directories override keys from earlier ones.
    pub dirs: Vec<PathBuf>,
    /// The locale used when a request expresses no usable preference, and
    /// the last locale consulted before falling back to the key itself.
    pub default_locale: String,
}

impl Default for I18nConfig {
    /// No directories (catalogs come from [`add_catalog`] until some are configured),
    /// `default_locale: "en"`.
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            default_locale: DEFAULT_LOCALE.to_owned(),
        }
    }
}

/// The default locale before [`init`] configures another one.
const DEFAULT_LOCALE: &str = "en";

/// The hasher of the catalogs' maps. Every translated message is two lookups (the locale, then
/// the key) into maps only the application's catalogs fill, so a client's `Accept-Language`
/// cannot grow a chain of colliding keys: foldhash rather than SipHash, whose resistance to
/// chosen keys is not needed here and costs several times as much.
type Hasher = foldhash::fast::RandomState;

/// One locale's flattened messages.
type Messages = HashMap<String, String, Hasher>;

/// The process-wide translation store.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Canonical default locale.
    default_locale: String,
    /// Canonical locale → flattened key → message.
    catalogs: HashMap<String, Messages, Hasher>,
}

static STORE: LazyLock<RwLock<Arc<Store>>> = LazyLock::new(|| {
    RwLock::new(Arc::new(Store {
        default_locale: DEFAULT_LOCALE.to_owned(),
        catalogs: HashMap::default(),
    }))
});

/// Bumped by every change of [`STORE`] (under its write lock).
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The store as this thread last saw it, with its generation.
    static SNAPSHOT: RefCell<Option<(u64, Arc<Store>)>> = const { RefCell::new(None) };
}

/// Runs `f` on the store.
///
/// Every request reads the store (its locale, its messages) and it changes only when catalogs
/// are loaded, so each thread keeps a snapshot and checks it against [`GENERATION`] with one
/// plain load: no lock, and no shared counter written, on the way. A poisoned lock is recovered:
/// writers never leave the store half-updated (all parsing happens before locking).
pub(crate) fn with_store<R>(f: impl FnOnce(&Store) -> R) -> R {
    let generation = GENERATION.load(Ordering::Acquire);
    let fresh = SNAPSHOT.with_borrow(|s| s.as_ref().is_some_and(|(g, _)| *g == generation));
    if !fresh {
        // Taken under the read lock, the generation matches the store it is stored with.
        let update = SNAPSHOT.try_with(|s| {
            let mut snapshot = s.try_borrow_mut().ok()?;
            let store = STORE.read().unwrap_or_else(PoisonError::into_inner);
            *snapshot = Some((GENERATION.load(Ordering::Acquire), Arc::clone(&store)));
            Some(())
        });
        if update.ok().flatten().is_none() {
            // Called from inside `f` of an outer call, or while the thread ends.
            return f(&STORE.read().unwrap_or_else(PoisonError::into_inner));
        }
    }
    SNAPSHOT.with_borrow(|s| match s {
        Some((_, store)) => f(store),
        None => f(&STORE.read().unwrap_or_else(PoisonError::into_inner)),
    })
}

/// Changes the store: readers see the change from their next [`with_store`].
fn update(f: impl FnOnce(&mut Store)) {
    let mut store = STORE.write().unwrap_or_else(PoisonError::into_inner);
    f(Arc::make_mut(&mut store));
    GENERATION.fetch_add(1, Ordering::Release);
}

/// `zh-Hant-TW`, `zh-Hant`, `zh`: the tag and its successively truncated
/// prefixes. `tag` must be canonical.
pub(crate) fn truncations(tag: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(tag), |t| t.rfind('-').map(|i| &t[..i]))
}

impl Store {
    /// The canonical default locale.
    pub(crate) fn default_locale(&self) -> &str {
        &self.default_locale
    }

    /// Whether `locale` (canonical) has a catalog or is the default locale.
    pub(crate) fn is_supported(&self, locale: &str) -> bool {
        locale == self.default_locale || self.catalogs.contains_key(locale)
    }

    /// Supported locales, sorted and deduplicated.
    pub(crate) fn supported_locales(&self) -> Vec<&str> {
        let mut locales: Vec<&str> = self.catalogs.keys().map(String::as_str).collect();
        locales.push(&self.default_locale);
        locales.sort_unstable();
        locales.dedup();
        locales
    }

    /// Looks `key` up along the fallback chain: `locale` and its truncations
    /// (`zh-CN` → `zh`), then the default locale and its truncations.
    /// `locale`, when given, must be canonical.
    pub(crate) fn lookup(&self, locale: Option<&str>, key: &str) -> Option<&str> {
        let chain = locale
            .into_iter()
            .flat_map(truncations)
            .chain(truncations(&self.default_locale));
        chain
            .filter_map(|candidate| self.catalogs.get(candidate)?.get(key))
            .map(String::as_str)
            .next()
    }

    fn merge(&mut self, locale: String, messages: Messages, overwrite: bool) {
        let target = self.catalogs.entry(locale).or_default();
        if overwrite {
            target.extend(messages);
        } else {
            for (key, message) in messages {
                target.entry(key).or_insert(message);
            }
        }
    }
}

/// Loads every `*.json` catalog in `config.dirs` and merges them into the
/// store, and sets the default locale.
///
/// Directories are applied in order (later ones override earlier keys);
/// within a directory files are applied in file-name order. Sub-directories
/// and files with other extensions are ignored. Catalogs added earlier with
/// [`add_catalog`] are kept, but their keys are overridden by the files.
///
/// Nothing is changed if any directory or file is invalid.
///
/// # Errors
///
/// - [`Error::InvalidLocale`] if `config.default_locale` is not a locale tag;
/// - [`Error::MissingDir`] naming a directory that does not exist;
/// - [`Error::Io`] if a directory or file cannot be read;
/// - [`Error::InvalidCatalogName`] if a file stem is not a locale tag;
/// - [`Error::Parse`], [`Error::NotAnObject`], [`Error::NonStringValue`]
///   for invalid catalog contents, naming the file (and the key).
pub fn init(config: I18nConfig) -> Result<()> {
    let default_locale =
        normalize_locale(&config.default_locale).ok_or_else(|| Error::InvalidLocale {
            locale: config.default_locale.clone(),
        })?;

    let mut loaded = Vec::new();
    for dir in &config.dirs {
        load_dir(dir, &mut loaded)?;
    }

    update(|store| {
        store.default_locale = default_locale;
        for (locale, messages) in loaded {
            tracing::debug!(%locale, keys = messages.len(), "i18n catalog loaded");
            store.merge(locale, messages, true);
        }
    });
    Ok(())
}

/// Parses every `*.json` file in `dir` (file-name order) into `out`.
fn load_dir(dir: &Path, out: &mut Vec<(String, Messages)>) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if is_json && path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    for path in files {
        let locale = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(normalize_locale)
            .ok_or_else(|| Error::InvalidCatalogName { path: path.clone() })?;
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let messages = parse_catalog(&path.display().to_string(), &text)?;
        out.push((locale, messages));
    }
    Ok(())
}

/// Merges a catalog given as a JSON string into `locale`, overriding keys
/// that are already present.
///
/// ```
/// core_i18n::add_catalog("en", r#"{"docs": {"add_catalog": "Merged"}}"#)?;
/// assert_eq!(core_i18n::t_in("en", "docs.add_catalog"), "Merged");
/// # Ok::<(), core_i18n::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidLocale`] if `locale` is not a locale tag;
/// [`Error::Parse`], [`Error::NotAnObject`] or [`Error::NonStringValue`] if
/// `json` is not a valid catalog. Nothing is changed on error.
pub fn add_catalog(locale: &str, json: &str) -> Result<()> {
    add(locale, json, true)
}

/// Like [`add_catalog`], but keys that are already present are kept: only
/// missing keys are added.
///
/// Meant for built-in messages shipped by a library (e.g. core-web's error
/// messages): they fill the gaps whether the application's catalogs were
/// loaded before or after.
///
/// ```
/// core_i18n::add_catalog("en", r#"{"docs.defaults.title": "App title"}"#)?;
/// core_i18n::add_catalog_defaults(
///     "en",
///     r#"{"docs.defaults.title": "Built-in title", "docs.defaults.other": "Built-in"}"#,
/// )?;
/// assert_eq!(core_i18n::t_in("en", "docs.defaults.title"), "App title");
/// assert_eq!(core_i18n::t_in("en", "docs.defaults.other"), "Built-in");
/// # Ok::<(), core_i18n::Error>(())
/// ```
///
/// # Errors
///
/// The same as [`add_catalog`].
pub fn add_catalog_defaults(locale: &str, json: &str) -> Result<()> {
    add(locale, json, false)
}

fn add(locale: &str, json: &str, overwrite: bool) -> Result<()> {
    let canonical = normalize_locale(locale).ok_or_else(|| Error::InvalidLocale {
        locale: locale.to_owned(),
    })?;
    let messages = parse_catalog(&format!("add_catalog({locale})"), json)?;
    update(|store| store.merge(canonical, messages, overwrite));
    Ok(())
}

/// Locales that can be served, sorted: every locale with a loaded catalog,
/// plus the default locale. These are the locales
/// [`resolve_locale`](crate::resolve_locale) can return.
pub fn available_locales() -> Vec<String> {
    with_store(|store| {
        store
            .supported_locales()
            .into_iter()
            .map(str::to_owned)
            .collect()
    })
}

/// The configured default locale (canonical form; `en` unless [`init`] set
/// another one).
pub fn default_locale() -> String {
    with_store(|store| store.default_locale.clone())
}

/// Parses and flattens one catalog. `origin` names it in errors.
fn parse_catalog(origin: &str, json: &str) -> Result<Messages> {
    let value: Value = serde_json::from_str(json).map_err(|source| Error::Parse {
        origin: origin.to_owned(),
        source,
    })?;
    let Value::Object(map) = value else {
        return Err(Error::NotAnObject {
            origin: origin.to_owned(),
        });
    };
    let mut out = Messages::default();
    flatten(origin, &mut String::new(), map, &mut out)?;
    Ok(out)
}

/// Flattens nested objects into dotted keys. Recursion depth is bounded by
/// serde_json's own nesting limit.
fn flatten(
    origin: &str,
    prefix: &mut String,
    map: Map<String, Value>,
    out: &mut Messages,
) -> Result<()> {
    let base_len = prefix.len();
    for (key, value) in map {
        prefix.truncate(base_len);
        if base_len > 0 {
            prefix.push('.');
        }
        prefix.push_str(&key);
        let found = match value {
            Value::String(message) => {
                out.insert(prefix.clone(), message);
                continue;
            }
            Value::Object(nested) => {
                flatten(origin, prefix, nested, out)?;
                continue;
            }
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Array(_) => "an array",
        };
        return Err(Error::NonStringValue {
            origin: origin.to_owned(),
            key: prefix.clone(),
            found,
        });
    }
    prefix.truncate(base_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_holding_a_snapshot_sees_later_catalogs() {
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel::<Option<String>>();
        let reader = std::thread::spawn(move || {
            while asked.recv().is_ok() {
                let found =
                    with_store(|s| s.lookup(Some("en"), "snapshot.test").map(str::to_owned));
                tell.send(found).unwrap();
            }
        });
        ask.send(()).unwrap();
        assert_eq!(told.recv().unwrap(), None);
        crate::add_catalog("en", r#"{"snapshot.test": "one"}"#).unwrap();
        ask.send(()).unwrap();
        assert_eq!(told.recv().unwrap().as_deref(), Some("one"));
        crate::add_catalog("en", r#"{"snapshot.test": "two"}"#).unwrap();
        ask.send(()).unwrap();
        assert_eq!(told.recv().unwrap().as_deref(), Some("two"));
        // Reading inside a read (an argument's `Display` translating) works.
        let nested = with_store(|_| {
            with_store(|s| s.lookup(Some("en"), "snapshot.test").map(str::to_owned))
        });
        assert_eq!(nested.as_deref(), Some("two"));
        drop(ask);
        reader.join().unwrap();
    }

    #[test]
    fn truncations_walk_up_the_tag() {
        let all: Vec<&str> = truncations("zh-Hant-TW").collect();
        assert_eq!(all, ["zh-Hant-TW", "zh-Hant", "zh"]);
        assert_eq!(truncations("en").collect::<Vec<_>>(), ["en"]);
    }

    #[test]
    fn flatten_nested_and_reports_full_key() {
        let messages =
            parse_catalog("t", r#"{"a": {"b": {"c": "deep"}, "d": "x"}, "e": "top"}"#).unwrap();
        assert_eq!(messages["a.b.c"], "deep");
        assert_eq!(messages["a.d"], "x");
        assert_eq!(messages["e"], "top");
        assert_eq!(messages.len(), 3);

        let err = parse_catalog("t", r#"{"a": {"b": [1]}}"#).unwrap_err();
        assert!(
            matches!(&err, Error::NonStringValue { key, found: "an array", .. } if key == "a.b"),
            "{err:?}"
        );
    }
}
