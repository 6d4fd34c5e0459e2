//! Locale negotiation: `X-Locale`, `Accept-Language` and normalization.
//!
//! Every test calls `setup()`, which loads the same catalogs once, so the
//! supported set is always: `en` (default), `fr`, `pt-BR`, `zh`.

use std::sync::Once;

use core_i18n::{add_catalog, available_locales, normalize_locale, resolve_locale};

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for locale in ["en", "fr", "pt_BR", "zh"] {
            add_catalog(locale, r#"{"neg": {"x": "x"}}"#).unwrap();
        }
    });
}

fn accept(header: &str) -> String {
    setup();
    resolve_locale(None, Some(header))
}

#[test]
fn supported_set() {
    setup();
    assert_eq!(available_locales(), ["en", "fr", "pt-BR", "zh"]);
}

#[test]
fn normalization() {
    assert_eq!(normalize_locale("zh_cn").as_deref(), Some("zh-CN"));
    assert_eq!(normalize_locale("zh-CN").as_deref(), Some("zh-CN"));
    assert_eq!(normalize_locale("ZH_CN").as_deref(), Some("zh-CN"));
    assert_eq!(normalize_locale(" En-gB ").as_deref(), Some("en-GB"));
    assert_eq!(normalize_locale("es-419").as_deref(), Some("es-419"));
    assert_eq!(
        normalize_locale("sr_latn_rs").as_deref(),
        Some("sr-Latn-RS")
    );
    assert_eq!(
        normalize_locale("de-CH-1996").as_deref(),
        Some("de-CH-1996")
    );
    assert_eq!(
        normalize_locale("en-US-x-TWAIN").as_deref(),
        Some("en-US-x-twain")
    );
    for bad in [
        "",
        " ",
        "*",
        "-",
        "en-",
        "-en",
        "en--us",
        "e n",
        "中文",
        "en-ĉ",
        "12",
        "en-toolongsubtag",
        "en.US",
        "en;q=1",
    ] {
        assert_eq!(normalize_locale(bad), None, "{bad:?}");
    }
    assert_eq!(normalize_locale(&"a".repeat(100_000)), None);
}

#[test]
fn nothing_usable_means_default() {
    setup();
    assert_eq!(resolve_locale(None, None), "en");
    assert_eq!(accept(""), "en");
    assert_eq!(accept("de, ja;q=0.5"), "en");
}

#[test]
fn x_locale_has_priority() {
    setup();
    assert_eq!(resolve_locale(Some("zh"), Some("fr")), "zh");
    assert_eq!(resolve_locale(Some("FR"), Some("zh")), "fr");
    // By language, and canonicalized.
    assert_eq!(resolve_locale(Some("zh_cn"), Some("fr")), "zh");
    assert_eq!(resolve_locale(Some("pt_br"), None), "pt-BR");
    assert_eq!(resolve_locale(Some("pt-br-x-custom"), None), "pt-BR");
}

#[test]
fn unsupported_or_invalid_x_locale_falls_through() {
    setup();
    assert_eq!(resolve_locale(Some("ja"), Some("fr")), "fr");
    // `pt` is not covered by `pt-BR`: only truncation counts.
    assert_eq!(resolve_locale(Some("pt"), Some("zh")), "zh");
    assert_eq!(resolve_locale(Some(""), Some("fr")), "fr");
    assert_eq!(resolve_locale(Some("!!"), Some("fr")), "fr");
    assert_eq!(resolve_locale(Some("中文"), Some("fr")), "fr");
    assert_eq!(resolve_locale(Some("*"), Some("fr")), "fr");
    assert_eq!(resolve_locale(Some("ja"), None), "en");
}

#[test]
fn exact_and_language_matches() {
    assert_eq!(accept("fr-CH, fr;q=0.9, en;q=0.8"), "fr");
    assert_eq!(accept("zh-CN,zh;q=0.9,en;q=0.8"), "zh");
    assert_eq!(accept("zh-Hant-TW"), "zh");
    assert_eq!(accept("pt-BR"), "pt-BR");
    assert_eq!(accept("PT_br"), "pt-BR");
    assert_eq!(accept("pt-BR-x-test"), "pt-BR");
    assert_eq!(accept("pt"), "en");
}

#[test]
fn ordered_by_q_with_stable_ties() {
    assert_eq!(accept("en;q=0.5, zh;q=0.9, fr;q=0.7"), "zh");
    assert_eq!(accept("fr;q=0.8, zh;q=0.8"), "fr");
    assert_eq!(accept("zh;q=0.8, fr;q=0.8"), "zh");
    assert_eq!(accept("en;q=0.9, zh"), "zh"); // no q means 1
    assert_eq!(accept("de, en;q=0.001"), "en");
    assert_eq!(accept("de, ja, zh;q=0.1, fr;q=0.2"), "fr");
    assert_eq!(accept("fr;q=1.000, zh;q=0.999"), "fr");
    assert_eq!(accept("zh;q=0.999, fr;q=1.0"), "fr");
}

#[test]
fn star_means_default() {
    assert_eq!(accept("*"), "en");
    assert_eq!(accept("de, *;q=0.5"), "en");
    assert_eq!(accept("*;q=0.5, fr"), "fr");
    assert_eq!(accept("*;q=0.9, fr;q=0.5"), "en");
}

#[test]
fn q_zero_means_not_acceptable() {
    assert_eq!(accept("fr;q=0"), "en");
    assert_eq!(accept("zh;q=0, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=0.0, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=0.000, fr;q=0.1"), "fr");
    // The default is refused, so `*` picks the first other supported locale.
    assert_eq!(accept("en;q=0, *;q=0.5"), "fr");
    assert_eq!(accept("en;q=0, fr;q=0, *;q=0.5"), "pt-BR");
    // Everything refused: the default locale is still the answer.
    assert_eq!(accept("*;q=0"), "en");
    assert_eq!(accept("en;q=0, *;q=0"), "en");
    assert_eq!(accept("en;q=0, fr;q=0, pt;q=0, zh;q=0, *"), "en");
    // A refused language is not reached through a more specific tag...
    assert_eq!(accept("fr-CH, fr;q=0"), "en");
    assert_eq!(accept("zh-TW;q=0.9, zh;q=0, fr;q=0.1"), "fr");
    // ...but a more specific positive entry beats a broader refusal.
    assert_eq!(accept("pt;q=0, pt-BR;q=0.5"), "pt-BR");
    assert_eq!(accept("pt-BR;q=0, pt;q=0.5"), "en");
}

#[test]
fn garbage_entries_are_ignored() {
    assert_eq!(accept("zh;q=abc, fr;q=0.5"), "fr");
    assert_eq!(accept("zh;q=2, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=1.5, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=-1, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=0.1234, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;q=0.5;q=0.9, fr;q=0.1"), "fr");
    assert_eq!(accept("zh;garbage, fr;q=0.1"), "fr");
    assert_eq!(accept(",,, ;;; , ;q=1, fr"), "fr");
    assert_eq!(accept("中文, zh;q=0.3"), "zh");
    assert_eq!(accept("zh-ĉ, fr;q=0.1"), "fr");
    assert_eq!(accept("zh-😀-CN, fr;q=0.1"), "fr");
    assert_eq!(accept("q=abc"), "en");
    assert_eq!(accept(";;;;"), "en");
    assert_eq!(accept("\t zh \t; q = 0.5 \t"), "zh");
    // Unknown parameters do not invalidate an entry.
    assert_eq!(accept("zh;level=1"), "zh");
}

#[test]
fn very_long_headers_are_ignored() {
    let long = format!("zh, {}", "x-".repeat(10_000));
    assert_eq!(accept(&long), "en");
    let long_tag = "a".repeat(1_000_000);
    assert_eq!(accept(&long_tag), "en");
    assert_eq!(resolve_locale(Some(&long_tag), Some("fr")), "fr");
    // Multi-byte characters right at the size limit do not split badly.
    let multibyte = "é".repeat(5_000);
    assert_eq!(accept(&multibyte), "en");
    // Only the first well-formed entries count.
    let many = format!("{}zh", "de, ".repeat(40));
    assert_eq!(accept(&many), "en");
    let few = format!("{}zh", "de, ".repeat(10));
    assert_eq!(accept(&few), "zh");
}

#[test]
fn fuzzed_headers_never_panic_and_stay_supported() {
    setup();
    let supported = available_locales();
    let alphabet: Vec<char> = "enzhfrpt-BR_*;q=0.15,  \t\u{e9}\u{4e2d}".chars().collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5_000 {
        let len = (next() % 40) as usize;
        let header: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let chosen = resolve_locale(Some(&header), Some(&header));
        assert!(supported.contains(&chosen), "{header:?} → {chosen:?}");
    }
}
