//! A default locale other than `en`, configured through `init`.
//!
//! This binary's store is initialized once with default locale `zh`
//! (spelled `ZH`), shared by every test here.

use std::sync::LazyLock;

use core_i18n::{
    Error, I18nConfig, available_locales, current_locale, default_locale, init, resolve_locale, t,
    t_in,
};
use tempfile::TempDir;

static CATALOGS: LazyLock<TempDir> = LazyLock::new(|| {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("zh.json"),
        r#"{"dl": {"a": "甲", "b": "乙"}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("en.json"), r#"{"dl": {"a": "A"}}"#).unwrap();
    init(I18nConfig {
        dirs: vec![dir.path().to_path_buf()],
        default_locale: "ZH".into(),
    })
    .unwrap();
    dir
});

fn setup() {
    LazyLock::force(&CATALOGS);
}

#[test]
fn default_locale_is_canonical() {
    setup();
    assert_eq!(default_locale(), "zh");
    assert_eq!(current_locale(), "zh");
    assert_eq!(available_locales(), ["en", "zh"]);
}

#[test]
fn lookups_fall_back_to_the_configured_default() {
    setup();
    assert_eq!(t("dl.a"), "甲");
    assert_eq!(t_in("en", "dl.a"), "A");
    assert_eq!(t_in("en-GB", "dl.b"), "乙");
    assert_eq!(t_in("fr", "dl.a"), "甲");
    assert_eq!(t_in("fr", "dl.c"), "dl.c");
}

#[test]
fn negotiation_uses_the_configured_default() {
    setup();
    assert_eq!(resolve_locale(None, None), "zh");
    assert_eq!(resolve_locale(None, Some("*")), "zh");
    assert_eq!(resolve_locale(None, Some("de")), "zh");
    assert_eq!(resolve_locale(None, Some("zh;q=0, *")), "en");
    assert_eq!(resolve_locale(None, Some("en-US")), "en");
}

#[test]
fn invalid_default_locale_is_rejected_without_changes() {
    setup();
    let err = init(I18nConfig {
        dirs: vec![],
        default_locale: "zh CN".into(),
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidLocale { locale } if locale == "zh CN"),
        "{err:?}"
    );
    assert!(err.to_string().contains("zh CN"));
    assert_eq!(default_locale(), "zh");
}
