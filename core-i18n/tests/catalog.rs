//! Catalog loading: fallback chain, merge order, flattening, invalid files.
//!
//! All tests share the process-wide store, so each uses its own key prefix
//! and keeps the default locale `en`.

use std::path::Path;

use core_i18n::{
    Error, I18nConfig, add_catalog, add_catalog_defaults, available_locales, init, lookup_in,
    sync_scope, t, t_in,
};
use tempfile::TempDir;

fn write(dir: &Path, file: &str, json: &str) {
    std::fs::write(dir.join(file), json).unwrap();
}

fn config(dirs: &[&Path]) -> I18nConfig {
    I18nConfig {
        dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        default_locale: "en".into(),
    }
}

#[test]
fn default_config() {
    let config = I18nConfig::default();
    assert!(
        config.dirs.is_empty(),
        "no directory is read unless configured"
    );
    assert_eq!(config.default_locale, "en");
}

#[test]
fn full_fallback_chain() {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "en.json",
        r#"{"fb": {"a": "en-a", "b": "en-b", "c": "en-c"}}"#,
    );
    write(
        dir.path(),
        "zh.json",
        r#"{"fb": {"a": "zh-a", "b": "zh-b"}}"#,
    );
    write(dir.path(), "zh-CN.json", r#"{"fb": {"a": "zhcn-a"}}"#);
    init(config(&[dir.path()])).unwrap();

    // Locale itself → language → default → key.
    assert_eq!(t_in("zh-CN", "fb.a"), "zhcn-a");
    assert_eq!(t_in("zh-CN", "fb.b"), "zh-b");
    assert_eq!(t_in("zh-CN", "fb.c"), "en-c");
    assert_eq!(t_in("zh-CN", "fb.d"), "fb.d");

    // Locale spelling does not matter.
    assert_eq!(t_in("zh_cn", "fb.a"), "zhcn-a");
    assert_eq!(t_in("ZH-cn", "fb.a"), "zhcn-a");
    // A region without its own catalog uses the language.
    assert_eq!(t_in("zh-TW", "fb.a"), "zh-a");
    assert_eq!(t_in("zh-Hant-TW", "fb.b"), "zh-b");
    // Unknown and invalid locales use the default.
    assert_eq!(t_in("fr", "fb.a"), "en-a");
    assert_eq!(t_in("not a locale!", "fb.a"), "en-a");
    assert_eq!(t_in("", "fb.a"), "en-a");

    // `t` follows the current locale.
    assert_eq!(t("fb.a"), "en-a");
    sync_scope("zh_CN", || {
        assert_eq!(t("fb.a"), "zhcn-a");
        assert_eq!(t("fb.b"), "zh-b");
        assert_eq!(t("fb.c"), "en-c");
        assert_eq!(t("fb.d"), "fb.d");
    });

    assert_eq!(lookup_in("zh-CN", "fb.b").as_deref(), Some("zh-b"));
    assert_eq!(lookup_in("zh-CN", "fb.d"), None);
}

#[test]
fn later_dirs_override_earlier_and_add_catalog_merges() {
    // Embedded defaults are added first, like core-web does.
    add_catalog("en", r#"{"mo": {"c": "embedded-c", "d": "embedded-d"}}"#).unwrap();

    let first = TempDir::new().unwrap();
    let second = TempDir::new().unwrap();
    write(
        first.path(),
        "en.json",
        r#"{"mo": {"a": "first-a", "b": "first-b"}}"#,
    );
    write(
        second.path(),
        "en.json",
        r#"{"mo": {"b": "second-b", "c": "second-c"}}"#,
    );
    write(second.path(), "fr.json", r#"{"mo": {"a": "fr-a"}}"#);
    init(config(&[first.path(), second.path()])).unwrap();

    assert_eq!(t_in("en", "mo.a"), "first-a"); // only in the first dir
    assert_eq!(t_in("en", "mo.b"), "second-b"); // second dir wins
    assert_eq!(t_in("en", "mo.c"), "second-c"); // files win over add_catalog
    assert_eq!(t_in("en", "mo.d"), "embedded-d"); // kept from add_catalog
    assert_eq!(t_in("fr", "mo.a"), "fr-a");
    assert_eq!(t_in("fr", "mo.b"), "second-b"); // fr → default

    // Reversing the directories reverses the winner.
    init(config(&[second.path(), first.path()])).unwrap();
    assert_eq!(t_in("en", "mo.b"), "first-b");

    // add_catalog after init overrides single keys and keeps the others.
    add_catalog("EN", r#"{"mo.a": "added-a"}"#).unwrap();
    assert_eq!(t_in("en", "mo.a"), "added-a");
    assert_eq!(t_in("en", "mo.b"), "first-b");
}

#[test]
fn add_catalog_defaults_never_overrides() {
    add_catalog("en", r#"{"defs": {"app": "from app"}}"#).unwrap();
    add_catalog_defaults(
        "en",
        r#"{"defs": {"app": "built-in", "other": "built-in other"}}"#,
    )
    .unwrap();
    assert_eq!(t_in("en", "defs.app"), "from app");
    assert_eq!(t_in("en", "defs.other"), "built-in other");

    // ...while add_catalog does.
    add_catalog("en", r#"{"defs": {"other": "app other"}}"#).unwrap();
    assert_eq!(t_in("en", "defs.other"), "app other");
}

#[test]
fn nested_objects_are_flattened_with_dots() {
    add_catalog(
        "en",
        r#"{
            "nest": {
                "errors": {"not_found": "Not found", "deep": {"er": {"still": "deep"}}},
                "empty": {},
                "flat.already": "dotted"
            },
            "nest.top": "top"
        }"#,
    )
    .unwrap();
    assert_eq!(t_in("en", "nest.errors.not_found"), "Not found");
    assert_eq!(t_in("en", "nest.errors.deep.er.still"), "deep");
    assert_eq!(t_in("en", "nest.flat.already"), "dotted");
    assert_eq!(t_in("en", "nest.top"), "top");
    // Intermediate objects are not messages.
    assert_eq!(t_in("en", "nest.errors"), "nest.errors");
    assert_eq!(t_in("en", "nest.empty"), "nest.empty");
}

#[test]
fn catalogs_keep_unicode_and_escapes() {
    add_catalog(
        "zh",
        r#"{"uni": {"hello": "你好，世界 \u2603 \"quoted\"\n"}}"#,
    )
    .unwrap();
    assert_eq!(t_in("zh", "uni.hello"), "你好，世界 ☃ \"quoted\"\n");
}

#[test]
fn non_string_leaf_names_file_and_key() {
    for (json, found) in [
        (r#"{"bad": {"count": 3}}"#, "a number"),
        (r#"{"bad": {"count": true}}"#, "a boolean"),
        (r#"{"bad": {"count": null}}"#, "null"),
        (r#"{"bad": {"count": ["a"]}}"#, "an array"),
    ] {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "de.json", json);
        let err = init(config(&[dir.path()])).unwrap_err();
        match &err {
            Error::NonStringValue {
                origin,
                key,
                found: actual,
            } => {
                assert!(origin.ends_with("de.json"), "{origin}");
                assert_eq!(key, "bad.count");
                assert_eq!(*actual, found);
            }
            other => panic!("unexpected error {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("de.json"), "{message}");
        assert!(message.contains("bad.count"), "{message}");
    }
}

#[test]
fn invalid_json_names_file() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "en.json", r#"{"broken": "#);
    let err = init(config(&[dir.path()])).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("en.json"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn top_level_must_be_an_object() {
    for json in [r#"["a"]"#, r#""text""#, "3", "null"] {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "en.json", json);
        let err = init(config(&[dir.path()])).unwrap_err();
        assert!(
            matches!(&err, Error::NotAnObject { origin } if origin.ends_with("en.json")),
            "{err:?}"
        );
    }
    let err = add_catalog("en", "[]").unwrap_err();
    assert!(
        matches!(&err, Error::NotAnObject { origin } if origin.contains("en")),
        "{err:?}"
    );
}

#[test]
fn missing_dir_is_named() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no-such-i18n");
    let err = init(config(&[dir.path(), &missing])).unwrap_err();
    match &err {
        Error::MissingDir { path } => assert_eq!(path, &missing),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("no-such-i18n"), "{err}");

    // A file is not a directory either.
    let file = dir.path().join("file");
    std::fs::write(&file, "{}").unwrap();
    let err = init(config(&[&file])).unwrap_err();
    assert!(matches!(err, Error::MissingDir { .. }), "{err:?}");
}

#[test]
fn invalid_file_name_is_an_error() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "not a locale.json", "{}");
    let err = init(config(&[dir.path()])).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidCatalogName { path } if path.ends_with("not a locale.json")),
        "{err:?}"
    );
}

#[test]
fn failed_init_changes_nothing() {
    let good = TempDir::new().unwrap();
    write(good.path(), "en.json", r#"{"atomic": {"x": "loaded"}}"#);
    let bad = TempDir::new().unwrap();
    write(bad.path(), "en.json", r#"{"atomic": {"y": "loaded"}}"#);
    write(bad.path(), "zz.json", r#"{"atomic": {"z": 1}}"#);

    assert!(init(config(&[good.path(), bad.path()])).is_err());
    assert_eq!(t_in("en", "atomic.x"), "atomic.x");
    assert_eq!(t_in("en", "atomic.y"), "atomic.y");

    // The same with a missing directory listed last.
    assert!(init(config(&[good.path(), &good.path().join("missing")])).is_err());
    assert_eq!(t_in("en", "atomic.x"), "atomic.x");

    // And with an invalid default locale.
    let err = init(I18nConfig {
        dirs: vec![good.path().to_path_buf()],
        default_locale: "english please".into(),
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidLocale { locale } if locale == "english please"),
        "{err:?}"
    );
    assert_eq!(t_in("en", "atomic.x"), "atomic.x");
}

#[test]
fn non_json_entries_are_ignored_and_stems_are_normalized() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "README.md", "not json");
    write(dir.path(), "en.json.bak", "not json");
    write(dir.path(), "pt_br.json", r#"{"stem": {"a": "pt-BR a"}}"#);
    write(dir.path(), "ES.JSON", r#"{"stem": {"a": "es a"}}"#);
    std::fs::create_dir(dir.path().join("sub.json")).unwrap();
    write(
        &dir.path().join("sub.json"),
        "it.json",
        r#"{"stem": {"a": "nested dirs are not read"}}"#,
    );
    init(config(&[dir.path()])).unwrap();

    assert_eq!(t_in("pt-BR", "stem.a"), "pt-BR a");
    assert_eq!(t_in("es", "stem.a"), "es a");
    assert_eq!(t_in("it", "stem.a"), "stem.a");
    let locales = available_locales();
    assert!(locales.contains(&"pt-BR".to_owned()), "{locales:?}");
    assert!(locales.contains(&"es".to_owned()), "{locales:?}");
    assert!(!locales.contains(&"it".to_owned()), "{locales:?}");
}

#[test]
fn available_locales_are_sorted_and_include_default() {
    add_catalog("ko_kr", "{}").unwrap();
    let locales = available_locales();
    assert!(locales.contains(&"ko-KR".to_owned()), "{locales:?}");
    assert!(locales.contains(&"en".to_owned()), "{locales:?}");
    let mut sorted = locales.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(locales, sorted);
}

#[test]
fn add_catalog_errors_change_nothing() {
    let err = add_catalog("not/a/locale", r#"{"ace": {"a": "x"}}"#).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidLocale { locale } if locale == "not/a/locale"),
        "{err:?}"
    );

    let err = add_catalog("en", r#"{"ace": {"a": "x", "b": 2}}"#).unwrap_err();
    assert!(
        matches!(&err, Error::NonStringValue { key, .. } if key == "ace.b"),
        "{err:?}"
    );
    assert_eq!(t_in("en", "ace.a"), "ace.a");

    let err = add_catalog("en", "{").unwrap_err();
    assert!(
        matches!(&err, Error::Parse { origin, .. } if origin.contains("add_catalog")),
        "{err:?}"
    );
}

#[test]
fn loading_is_idempotent_and_safe_under_concurrency() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "en.json", r#"{"idem": {"a": "A"}}"#);
    write(dir.path(), "zh.json", r#"{"idem": {"a": "甲"}}"#);
    let cfg = config(&[dir.path()]);

    std::thread::scope(|s| {
        for i in 0..8 {
            let cfg = cfg.clone();
            s.spawn(move || {
                for _ in 0..20 {
                    if i % 2 == 0 {
                        init(cfg.clone()).unwrap();
                    } else {
                        // Readers see either nothing yet or the full value.
                        let value = t_in("zh", "idem.a");
                        assert!(value == "甲" || value == "idem.a", "{value}");
                    }
                }
            });
        }
    });
    assert_eq!(t_in("zh", "idem.a"), "甲");
    assert_eq!(t_in("en", "idem.a"), "A");
}
