//! Logging: human-readable lines by default, JSON when configured; the request id is on every
//! line logged inside a request (it is a field of the request's span).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};
use crate::error::{Error, Result};

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
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true),
            )
            .try_init(),
    };
    result.map_err(|e| Error::Telemetry(e.to_string()))
}
