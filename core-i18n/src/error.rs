//! The crate's error type.
//!
//! Every fallible operation in `core-i18n` is about loading catalogs or
//! configuring the store; translating (`t`, `t_args`, ...) never fails, it
//! falls back to the key instead.

use std::path::PathBuf;

/// Errors raised while configuring the store or loading catalogs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured catalog directory does not exist or is not a directory.
    #[error("i18n catalog directory `{}` does not exist or is not a directory", path.display())]
    MissingDir {
        /// The directory that was configured.
        path: PathBuf,
    },

    /// Reading a catalog directory or file failed.
    #[error("i18n: cannot read `{}`: {source}", path.display())]
    Io {
        /// The directory or file being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A catalog file name (its stem) is not a valid locale tag, e.g. `en us.json`.
    #[error("i18n catalog file `{}`: file name is not a valid locale tag", path.display())]
    InvalidCatalogName {
        /// The offending file.
        path: PathBuf,
    },

    /// A locale given to [`add_catalog`](crate::add_catalog) or as the default
    /// locale is not a valid locale tag.
    #[error("invalid locale tag `{locale}`")]
    InvalidLocale {
        /// The locale exactly as it was given.
        locale: String,
    },

    /// A catalog is not valid JSON.
    #[error("i18n catalog {origin}: invalid JSON: {source}")]
    Parse {
        /// Where the catalog came from: a file path, or `add_catalog(<locale>)`.
        origin: String,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A catalog's top-level JSON value is not an object.
    #[error("i18n catalog {origin}: the top-level value must be a JSON object")]
    NotAnObject {
        /// Where the catalog came from: a file path, or `add_catalog(<locale>)`.
        origin: String,
    },

    /// A catalog leaf is not a string (number, boolean, null or array).
    #[error("i18n catalog {origin}: key `{key}` must be a string or an object, found {found}")]
    NonStringValue {
        /// Where the catalog came from: a file path, or `add_catalog(<locale>)`.
        origin: String,
        /// The flattened (dotted) key of the offending value.
        key: String,
        /// The JSON type that was found instead (`"number"`, `"array"`, ...).
        found: &'static str,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
