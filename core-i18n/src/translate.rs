//! Translating keys: [`t`], [`t_args`] and their explicit-locale variants.
//!
//! Lookup walks a fallback chain and never fails: the requested locale
//! (`zh-CN`), its language (`zh`), the default locale, and finally the key
//! itself. Placeholders are written `:name` and replaced by [`t_args`] /
//! [`t_args_in`] (see [`interpolate`] for the exact rules) — also when the
//! key itself is returned because no catalog has it.

use std::fmt::{Display, Write as _};

use crate::catalog;
use crate::locale::{normalize_locale, with_current};

/// Placeholder arguments: `(name, value)` pairs, e.g.
/// `&[("name", &"Ada"), ("count", &3)]`.
pub type Args<'a> = [(&'a str, &'a dyn Display)];

/// Translates `key` in the [`current_locale`](crate::current_locale).
///
/// Falls back to the locale's language, then the default locale, then
/// returns `key` itself.
///
/// ```
/// core_i18n::add_catalog("en", r#"{"docs": {"t": "Hello"}}"#)?;
/// assert_eq!(core_i18n::t("docs.t"), "Hello");
/// assert_eq!(core_i18n::t("docs.no_such_key"), "docs.no_such_key");
/// # Ok::<(), core_i18n::Error>(())
/// ```
pub fn t(key: &str) -> String {
    with_current(|locale| lookup_canonical(locale, key)).unwrap_or_else(|| key.to_owned())
}

/// Translates `key` in the current locale and replaces `:name`
/// placeholders with `args` (see [`interpolate`]).
///
/// ```
/// core_i18n::add_catalog("en", r#"{"docs.t_args": ":count files for :name"}"#)?;
/// assert_eq!(
///     core_i18n::t_args("docs.t_args", &[("name", &"Ada"), ("count", &3)]),
///     "3 files for Ada"
/// );
/// // A missing key still gets its placeholders replaced.
/// assert_eq!(core_i18n::t_args("Hi :name", &[("name", &"Ada")]), "Hi Ada");
/// # Ok::<(), core_i18n::Error>(())
/// ```
pub fn t_args(key: &str, args: &Args<'_>) -> String {
    let template = with_current(|locale| lookup_canonical(locale, key));
    interpolate(template.as_deref().unwrap_or(key), args)
}

/// Translates `key` in the explicit `locale` (any case, `_` or `-`); an
/// invalid locale tag behaves like the default locale.
///
/// ```
/// core_i18n::add_catalog("zh", r#"{"docs.t_in": "你好"}"#)?;
/// assert_eq!(core_i18n::t_in("zh_CN", "docs.t_in"), "你好");
/// # Ok::<(), core_i18n::Error>(())
/// ```
pub fn t_in(locale: &str, key: &str) -> String {
    lookup_canonical(normalize_locale(locale).as_deref(), key).unwrap_or_else(|| key.to_owned())
}

/// [`t_args`] in the explicit `locale`.
pub fn t_args_in(locale: &str, key: &str, args: &Args<'_>) -> String {
    let template = lookup_canonical(normalize_locale(locale).as_deref(), key);
    interpolate(template.as_deref().unwrap_or(key), args)
}

/// The translation of `key` in `locale` (or its language, or the default
/// locale), or `None` if no catalog defines it — unlike [`t_in`], which
/// falls back to the key.
///
/// ```
/// assert_eq!(core_i18n::lookup_in("en", "docs.lookup_in.missing"), None);
/// ```
pub fn lookup_in(locale: &str, key: &str) -> Option<String> {
    lookup_canonical(normalize_locale(locale).as_deref(), key)
}

/// `locale` must be canonical (or `None` for "just the default locale").
///
/// The message is copied out so that the store is not borrowed afterwards:
/// argument `Display` impls may themselves call [`t`] while [`interpolate`] runs.
fn lookup_canonical(locale: Option<&str>, key: &str) -> Option<String> {
    let found = catalog::with_store(|store| store.lookup(locale, key).map(str::to_owned));
    if found.is_none() {
        tracing::trace!(key, locale, "no translation, falling back to the key");
    }
    found
}

/// Replaces `:name` placeholders in `template` with the matching `args`.
///
/// - At each `:`, the *longest* argument name that follows wins, so with
///   arguments `name` and `names`, `:names` uses `names` and `:name` uses
///   `name`. Names match by prefix (`:names` with only a `name` argument
///   becomes the value of `name` followed by `s`).
/// - Placeholders without an argument are left exactly as written.
/// - Replacement is a single pass: text inserted from a value is never
///   scanned for placeholders again.
/// - A leading `:` in an argument name is ignored (`(":name", ..)` is the
///   same as `("name", ..)`); empty names are ignored.
///
/// ```
/// use core_i18n::interpolate;
///
/// let args: &[(&str, &dyn std::fmt::Display)] = &[("name", &"Ada"), ("names", &"Ada, Bob")];
/// assert_eq!(interpolate(":names and :name (:missing)", args), "Ada, Bob and Ada (:missing)");
/// ```
pub fn interpolate(template: &str, args: &Args<'_>) -> String {
    if args.is_empty() || !template.contains(':') {
        return template.to_owned();
    }
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(colon) = rest.find(':') {
        out.push_str(&rest[..colon]);
        let after = &rest[colon + 1..];
        let best = args
            .iter()
            .map(|(name, value)| (name.strip_prefix(':').unwrap_or(name), value))
            .filter(|(name, _)| !name.is_empty() && after.starts_with(name))
            .fold(
                None::<(&str, &&dyn Display)>,
                |best, candidate| match best {
                    Some((name, _)) if name.len() >= candidate.0.len() => best,
                    _ => Some(candidate),
                },
            );
        match best {
            Some((name, value)) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{value}");
                rest = &after[name.len()..];
            }
            None => {
                out.push(':');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
