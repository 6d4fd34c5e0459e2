//! The framework's own messages, translated through `core-i18n`.
//!
//! Rustforge ships catalogs for its error and validation messages (`core-web/i18n/*.json`); they
//! are registered as defaults, so an application's catalogs override any key.

use std::sync::Once;

static LOADED: Once = Once::new();

/// Registers the built-in catalogs (once per process; later calls do nothing).
pub fn ensure_loaded() {
    LOADED.call_once(|| {
        for (locale, json) in [
            ("en", include_str!("../i18n/en.json")),
            ("zh", include_str!("../i18n/zh.json")),
        ] {
            if let Err(err) = core_i18n::add_catalog_defaults(locale, json) {
                tracing::error!(locale, error = %err, "built-in catalog is invalid");
            }
        }
    });
}

/// Translates a framework message key in the current locale.
pub fn text(key: &str) -> String {
    ensure_loaded();
    core_i18n::t(key)
}

/// Translates a framework message key with `:name` arguments.
pub fn text_args(key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    ensure_loaded();
    core_i18n::t_args(key, args)
}

/// Whether the current locale chain has a translation for `key`.
pub fn has(key: &str) -> bool {
    ensure_loaded();
    core_i18n::lookup_in(&core_i18n::current_locale(), key).is_some()
}
