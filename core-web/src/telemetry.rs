//! Logging: human-readable lines by default, JSON when configured; the request id is on every
//! line logged inside a request (it is a field of the request's span).
//!
//! A JSON line holds `timestamp` (RFC 3339, UTC, microseconds), `level`, the event's fields
//! (`message` among them) at the top level, `target`, and under `span` the fields of the span
//! the event happened in with the span's `name`.
//!
//! Lines are written to stdout by a thread of the logger's own, in batches: logging a line
//! copies it into memory, and a request does not wait for a `write(2)`. Warnings and errors are
//! written out before the call that logs them returns. A process calls [`flush`] before it
//! exits, so the last lines are not left in memory.

use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use crate::config::{LogConfig, LogFormat};
use crate::error::{Error, Result};

mod json;
mod writer;

use writer::LogWriter;

/// The writer [`init`] installed.
static WRITER: OnceLock<LogWriter> = OnceLock::new();

/// Installs the global tracing subscriber.
///
/// # Errors
/// An invalid filter, or a subscriber already installed.
pub fn init(config: &LogConfig) -> Result<()> {
    let filter: Box<dyn Layer<Registry> + Send + Sync> = match filter(&config.filter)? {
        Filter::Targets(targets) => Box::new(targets),
        Filter::Env(env) => env,
    };
    let writer = match WRITER.get() {
        Some(writer) => writer.clone(),
        None => {
            let writer = LogWriter::spawn(std::io::stdout())
                .map_err(|e| Error::Telemetry(format!("starting the log writer: {e}")))?;
            WRITER.get_or_init(|| writer).clone()
        }
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .try_init(),
        LogFormat::Json => registry.with(json::JsonLayer::new(writer)).try_init(),
    };
    result.map_err(|e| Error::Telemetry(e.to_string()))
}

/// Writes out the log lines still waiting in memory. Call it before the process exits (after
/// the last line it logs); it returns once they are written. Does nothing before [`init`].
pub fn flush() {
    if let Some(writer) = WRITER.get() {
        writer.flush();
    }
}

/// The subscriber's filter for `spec` (`RUST_LOG` syntax).
///
/// Plain `target=level` directives (`info`, `core_web=debug,info`) need none of `EnvFilter`'s
/// span tracking, which takes a lock on every enter and exit of every span (a request's span is
/// entered on every poll of the request); they get the static [`Targets`] filter. Directives on
/// spans or fields (`[request{path=/health}]=debug`) keep `EnvFilter`.
fn filter(spec: &str) -> Result<Filter> {
    let env = EnvFilter::try_new(spec)
        .map_err(|e| Error::Telemetry(format!("invalid LOG_LEVEL/RUST_LOG {spec:?}: {e}")))?;
    Ok(match spec.parse::<Targets>() {
        Ok(targets) => Filter::Targets(targets),
        Err(_) => Filter::Env(Box::new(env)),
    })
}

/// See [`filter`].
enum Filter {
    Targets(Targets),
    Env(Box<EnvFilter>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_targets(spec: &str) -> bool {
        matches!(filter(spec).unwrap(), Filter::Targets(_))
    }

    #[test]
    fn plain_directives_get_the_static_filter_and_span_directives_keep_env_filter() {
        assert!(is_targets("info"));
        assert!(is_targets("core_web=debug,info"));
        assert!(is_targets("warn,hyper=off"));
        assert!(!is_targets("[request{path=/health}]=debug"));
        assert!(filter("core_web=loud").is_err());
    }
}
