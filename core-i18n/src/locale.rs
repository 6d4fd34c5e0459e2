//! Locales: normalization, the per-request locale, and negotiation.
//!
//! - [`normalize_locale`] turns `zh_cn`, `ZH-cn` or `zh-CN` into the
//!   canonical `zh-CN` (language lowercase, region uppercase, script
//!   titlecase). Every locale stored or compared by this crate is canonical.
//! - The *current* locale is a tokio task-local: [`scope`] (async) and
//!   [`sync_scope`] set it for the duration of a future or closure, and
//!   [`current_locale`] reads it, or returns the default locale outside any
//!   scope. Nothing process-wide changes, so concurrent requests never see
//!   each other's locale. Note that `tokio::spawn`ed tasks do not inherit
//!   task-locals: wrap them in [`scope`] with the parent's [`current_locale`].
//! - [`resolve_locale`] negotiates the locale of a request from its
//!   `X-Locale` and `Accept-Language` headers against the supported locales
//!   (see [`available_locales`](crate::available_locales)).

use std::future::Future;
use std::sync::Arc;

use crate::catalog::{self, Store, truncations};

tokio::task_local! {
    /// The canonical locale of the current request / scope.
    static CURRENT_LOCALE: Arc<str>;
}

/// Longest locale tag accepted, in bytes.
const MAX_TAG_LEN: usize = 64;
/// Longest `Accept-Language` value considered; longer ones are ignored whole.
pub(crate) const MAX_ACCEPT_LANGUAGE_LEN: usize = 4096;
/// Most `Accept-Language` entries considered.
const MAX_ACCEPT_LANGUAGE_ENTRIES: usize = 32;

/// Normalizes a locale tag to its canonical form, or `None` if it is not a
/// well-formed tag.
///
/// Case-insensitive; `_` is accepted as a separator. The language subtag is
/// lowercased, a region (`CN`, `419`) uppercased, a script (`Hant`)
/// titlecased, anything else lowercased. A tag is a 1–8 letter language
/// followed by 1–8 character ASCII alphanumeric subtags, at most 64 bytes in
/// all; surrounding whitespace is ignored.
///
/// ```
/// use core_i18n::normalize_locale;
///
/// assert_eq!(normalize_locale("zh_cn").as_deref(), Some("zh-CN"));
/// assert_eq!(normalize_locale("ZH-hant-tw").as_deref(), Some("zh-Hant-TW"));
/// assert_eq!(normalize_locale("en"), Some("en".to_owned()));
/// assert_eq!(normalize_locale("*"), None);
/// assert_eq!(normalize_locale("en--US"), None);
/// ```
pub fn normalize_locale(tag: &str) -> Option<String> {
    let tag = tag.trim();
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return None;
    }
    let mut out = String::with_capacity(tag.len());
    // After a singleton (`x-`, `u-`) subtags are extensions: keep them lowercase.
    let mut in_extension = false;
    for (i, sub) in tag.split(['-', '_']).enumerate() {
        let valid =
            !sub.is_empty() && sub.len() <= 8 && sub.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return None;
        }
        let alpha = sub.bytes().all(|b| b.is_ascii_alphabetic());
        if i == 0 {
            if !alpha {
                return None;
            }
            out.push_str(&sub.to_ascii_lowercase());
            in_extension = sub.len() == 1;
            continue;
        }
        out.push('-');
        if in_extension || sub.len() == 1 {
            in_extension = true;
            out.push_str(&sub.to_ascii_lowercase());
        } else if (sub.len() == 2 && alpha)
            || (sub.len() == 3 && sub.bytes().all(|b| b.is_ascii_digit()))
        {
            out.push_str(&sub.to_ascii_uppercase());
        } else if sub.len() == 4 && alpha {
            out.push_str(&sub[..1].to_ascii_uppercase());
            out.push_str(&sub[1..].to_ascii_lowercase());
        } else {
            out.push_str(&sub.to_ascii_lowercase());
        }
    }
    Some(out)
}

/// The locale of the current scope (see [`scope`]), or the default locale
/// outside any scope.
pub fn current_locale() -> String {
    CURRENT_LOCALE
        .try_with(|locale| locale.to_string())
        .unwrap_or_else(|_| crate::default_locale())
}

/// Runs `f` with the current scope's locale (canonical), or `None` outside
/// any scope — without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT_LOCALE.try_with(|locale| (f.take().expect("called once"))(Some(locale))) {
        Ok(result) => result,
        Err(_) => (f.take().expect("not called yet"))(None),
    }
}

/// The canonical form of `locale`, or the default locale if it is not a
/// valid tag.
fn canonical_or_default(locale: String) -> String {
    normalize_locale(&locale).unwrap_or_else(|| {
        tracing::debug!(%locale, "invalid locale for scope, using the default locale");
        crate::default_locale()
    })
}

/// Runs `fut` with `locale` as the [`current_locale`].
///
/// The locale is normalized (an invalid tag becomes the default locale). It
/// need not have a catalog: lookups then fall back to the default locale.
/// Scopes nest; the outer locale is restored when the inner scope ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let locale = core_i18n::scope("zh_cn", async { core_i18n::current_locale() }).await;
/// assert_eq!(locale, "zh-CN");
/// # }
/// ```
pub async fn scope<F: Future>(locale: impl Into<String>, fut: F) -> F::Output {
    scoped(canonical_or_default(locale.into()).into(), fut).await
}

/// The nameable future behind [`scope`], used by the layer. `locale` must be
/// canonical: [`resolve_locale`]'s answers are.
pub(crate) fn scoped<F: Future>(
    locale: Arc<str>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<str>, F> {
    CURRENT_LOCALE.scope(locale, fut)
}

/// The synchronous counterpart of [`scoped`]: `locale` must be canonical.
pub(crate) fn sync_scoped<R>(locale: Arc<str>, f: impl FnOnce() -> R) -> R {
    CURRENT_LOCALE.sync_scope(locale, f)
}

/// Runs the closure `f` with `locale` as the [`current_locale`]; the
/// synchronous counterpart of [`scope`].
///
/// ```
/// let greeting = core_i18n::sync_scope("fr", core_i18n::current_locale);
/// assert_eq!(greeting, "fr");
/// ```
pub fn sync_scope<R>(locale: impl Into<String>, f: impl FnOnce() -> R) -> R {
    sync_scoped(canonical_or_default(locale.into()).into(), f)
}

/// Picks the locale for a request from its `X-Locale` and `Accept-Language`
/// header values. Never fails and never panics: the answer is always a
/// supported locale (see [`available_locales`](crate::available_locales)),
/// the default locale when nothing else fits.
///
/// 1. `X-Locale`, if it names a supported locale exactly or by its language
///    (`zh-TW` → `zh` when there is a `zh` catalog but no `zh-TW`).
/// 2. `Accept-Language` entries by decreasing `q` (ties keep header order).
///    An entry matches a supported locale exactly or by language
///    (`fr-CH` → `fr`); `*` matches the default locale, or another supported
///    locale if the default one was refused. `q=0` means "not acceptable": it
///    is never chosen, and a locale reached only through a broader entry
///    (`fr-CH` → `fr`) is skipped when the most specific entry covering it
///    has `q=0`. Malformed entries (bad `q`, empty, non-ASCII, invalid tags)
///    are ignored; a header longer than 4 KiB is ignored whole, and only the
///    first 32 well-formed entries count.
/// 3. The default locale.
///
/// ```
/// use core_i18n::{add_catalog, resolve_locale};
///
/// add_catalog("fr", r#"{}"#)?;
/// assert_eq!(resolve_locale(None, Some("fr-CH, fr;q=0.9, en;q=0.8")), "fr");
/// assert_eq!(resolve_locale(Some("en"), Some("fr")), "en");
/// assert_eq!(resolve_locale(None, Some("q=banana")), "en");
/// # Ok::<(), core_i18n::Error>(())
/// ```
pub fn resolve_locale(x_locale: Option<&str>, accept_language: Option<&str>) -> String {
    resolve_with(x_locale, accept_language, str::to_owned)
}

/// [`resolve_locale`]'s answer, handed to `f` without copying it.
pub(crate) fn resolve_with<R>(
    x_locale: Option<&str>,
    accept_language: Option<&str>,
    f: impl FnOnce(&str) -> R,
) -> R {
    catalog::with_store(|store| {
        if let Some(wanted) = x_locale.and_then(normalize_locale)
            && let Some(found) = truncations(&wanted).find(|c| store.is_supported(c))
        {
            return f(found);
        }
        if let Some(header) = accept_language
            && let Some(found) = negotiate(store, header)
        {
            return f(found);
        }
        f(store.default_locale())
    })
}

/// A parsed `Accept-Language` language range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Range {
    /// `*`
    Any,
    /// A canonical tag.
    Tag(String),
}

/// One `Accept-Language` entry; `q` is in thousandths (0..=1000).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    range: Range,
    q: u16,
}

/// Parses an `Accept-Language` value, dropping malformed entries. Entries
/// stay in header order.
fn parse_accept_language(header: &str) -> Vec<Entry> {
    if header.len() > MAX_ACCEPT_LANGUAGE_LEN {
        tracing::debug!(
            len = header.len(),
            "Accept-Language header too long, ignored"
        );
        return Vec::new();
    }
    header
        .split(',')
        .filter_map(parse_entry)
        .take(MAX_ACCEPT_LANGUAGE_ENTRIES)
        .collect()
}

fn parse_entry(raw: &str) -> Option<Entry> {
    let mut parts = raw.split(';');
    let range = parts.next()?.trim();
    let range = match range {
        "" => return None,
        "*" => Range::Any,
        tag => Range::Tag(normalize_locale(tag)?),
    };
    let mut q = None;
    for param in parts {
        if param.trim().is_empty() {
            continue;
        }
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            if q.is_some() {
                return None; // two weights: malformed
            }
            q = Some(parse_q(value.trim())?);
        }
        // Other parameters carry no meaning for Accept-Language; ignore them.
    }
    Some(Entry {
        range,
        q: q.unwrap_or(1000),
    })
}

/// Parses an RFC 9110 weight (`0`, `0.5`, `0.123`, `1`, `1.000`) into
/// thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "0" => {
            let mut thousandths = 0u16;
            for i in 0..3 {
                let digit = frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
                thousandths = thousandths * 10 + digit;
            }
            Some(thousandths)
        }
        "1" if frac.bytes().all(|b| b == b'0') => Some(1000),
        _ => None,
    }
}

/// The weight the header gives `locale`: that of the most specific tag
/// entry equal to it or a prefix of it, or `None` if no tag entry covers it.
fn weight_of(entries: &[Entry], locale: &str) -> Option<u16> {
    let mut best: Option<(usize, u16)> = None;
    for entry in entries {
        let Range::Tag(tag) = &entry.range else {
            continue;
        };
        let covers = locale == tag
            || (locale.starts_with(tag.as_str())
                && locale.as_bytes().get(tag.len()) == Some(&b'-'));
        if covers && best.is_none_or(|(len, _)| tag.len() > len) {
            best = Some((tag.len(), entry.q));
        }
    }
    best.map(|(_, q)| q)
}

/// The best supported locale for an `Accept-Language` value, if any.
fn negotiate<'s>(store: &'s Store, header: &str) -> Option<&'s str> {
    let entries = parse_accept_language(header);
    let refused = |locale: &str| weight_of(&entries, locale) == Some(0);

    let mut ranked: Vec<&Entry> = entries.iter().filter(|e| e.q > 0).collect();
    ranked.sort_by_key(|e| std::cmp::Reverse(e.q)); // stable: ties keep header order

    let supported = store.supported_locales();
    let lookup = |candidate: &str| supported.iter().copied().find(|s| *s == candidate);
    for entry in ranked {
        match &entry.range {
            Range::Tag(tag) => {
                if let Some(found) = truncations(tag).filter_map(lookup).find(|l| !refused(l)) {
                    return Some(found);
                }
            }
            Range::Any => {
                let default = store.default_locale();
                if !refused(default) {
                    return Some(default);
                }
                if let Some(found) = supported.iter().copied().find(|l| !refused(l)) {
                    return Some(found);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1."), Some(1000));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.000"), Some(0));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0.123"), Some(123));
        for bad in [
            "", "abc", "2", "1.5", "1.001", "0.1234", "-0.5", ".5", "0.5x", "0,5", "１",
        ] {
            assert_eq!(parse_q(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn entries() {
        let parsed = parse_accept_language(
            " fr-ch ; q=0.9 ,, *;Q = 0 , en;q=abc, de;level=1, ja;q=0.1;q=0.2",
        );
        assert_eq!(
            parsed,
            [
                Entry {
                    range: Range::Tag("fr-CH".into()),
                    q: 900
                },
                Entry {
                    range: Range::Any,
                    q: 0
                },
                Entry {
                    range: Range::Tag("de".into()),
                    q: 1000
                },
            ]
        );
    }

    #[test]
    fn weight_prefers_the_most_specific_entry() {
        let entries = parse_accept_language("fr;q=0, fr-CH;q=0.5, *;q=0.2");
        assert_eq!(weight_of(&entries, "fr"), Some(0));
        assert_eq!(weight_of(&entries, "fr-CH"), Some(500));
        assert_eq!(weight_of(&entries, "fr-CA"), Some(0));
        assert_eq!(weight_of(&entries, "fry"), None);
        assert_eq!(weight_of(&entries, "en"), None);
    }
}
