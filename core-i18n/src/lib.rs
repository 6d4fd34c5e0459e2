//! Rustforge translations: JSON catalogs per locale, `t()` / `t_args()`, and
//! the per-request locale.
//!
//! # Tour
//!
//! - [`catalog`] — loading catalogs: [`init`] reads `i18n/<locale>.json`
//!   files from the configured directories ([`I18nConfig`]),
//!   [`add_catalog`] merges one given as a string. Nested JSON objects
//!   become dotted keys (`errors.not_found`).
//! - [`translate`] — [`t`] / [`t_args`] translate in the current locale,
//!   [`t_in`] / [`t_args_in`] in an explicit one. Lookup falls back
//!   `zh-CN` → `zh` → default locale → the key itself, and `:name`
//!   placeholders are replaced by [`interpolate`].
//! - [`locale`] — [`normalize_locale`] (`zh_cn` → `zh-CN`), the task-local
//!   current locale ([`scope`], [`sync_scope`], [`current_locale`]) and
//!   header negotiation ([`resolve_locale`]).
//! - [`layer`] — [`LocaleLayer`], the tower middleware that resolves each
//!   request's locale from `X-Locale` / `Accept-Language`, scopes the
//!   request to it and sets `Content-Language`.
//! - [`error`] — [`Error`] and [`Result`].
//!
//! The store is process-wide and read on every translation; the current
//! locale is per task, so concurrent requests never interfere and no
//! environment variable is ever touched.
//!
//! # Example
//!
//! ```
//! # fn main() -> core_i18n::Result<()> {
//! use core_i18n::{add_catalog, sync_scope, t, t_args};
//!
//! // Usually `core_i18n::init(config)?` loads the `*.json` files of `config.dirs`.
//! add_catalog("en", r#"{"tour": {"greeting": "Hello, :name!", "bye": "Bye"}}"#)?;
//! add_catalog("zh", r#"{"tour": {"greeting": "你好，:name！"}}"#)?;
//!
//! assert_eq!(t_args("tour.greeting", &[("name", &"Ada")]), "Hello, Ada!");
//! sync_scope("zh-CN", || {
//!     assert_eq!(t_args("tour.greeting", &[("name", &"Ada")]), "你好，Ada！"); // zh-CN → zh
//!     assert_eq!(t("tour.bye"), "Bye"); // → default locale
//!     assert_eq!(t("tour.unknown"), "tour.unknown"); // → the key
//! });
//! # Ok(())
//! # }
//! ```

pub mod catalog;
pub mod error;
pub mod layer;
pub mod locale;
pub mod translate;

pub use catalog::{
    I18nConfig, add_catalog, add_catalog_defaults, available_locales, default_locale, init,
};
pub use error::{Error, Result};
pub use layer::LocaleLayer;
pub use locale::{current_locale, normalize_locale, resolve_locale, scope, sync_scope};
pub use translate::{interpolate, lookup_in, t, t_args, t_args_in, t_in};
