//! Logging: human-readable lines by default, JSON when configured; the request id is on every
//! line logged inside a request (it is a field of the request's span).
//!
//! A JSON line holds `timestamp` (RFC 3339, UTC, microseconds), `level`, the event's fields
//! (`message` among them) at the top level, `target`, and under `span` the fields of the span
//! the event happened in with the span's `name`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};
use crate::error::{Error, Result};

mod json;

/// Installs the global tracing subscriber.
///
/// # Errors
/// An invalid filter, or a subscriber already installed.
pub fn init(config: &LogConfig) -> Result<()> {
    let filter = EnvFilter::try_new(&config.filter).map_err(|e| {
        Error::Telemetry(format!(
            "invalid LOG_LEVEL/RUST_LOG {:?}: {e}",
            config.filter
        ))
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(json::JsonLayer::new(std::io::stdout))
            .try_init(),
    };
    result.map_err(|e| Error::Telemetry(e.to_string()))
}
