//! Logging: human-readable lines by default, JSON when configured; the request id is on every
//! line logged inside a request (it is a field of the request's span).
//!
//! A JSON line holds `timestamp` (RFC 3339, UTC, microseconds), `level`, the event's fields
//! (`message` among them) at the top level, `target`, and under `span` the fields of the span
//! the event happened in with the span's `name`.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use crate::config::{LogConfig, LogFormat};
use crate::error::{Error, Result};

mod json;

/// Installs the global tracing subscriber.
///
/// # Errors
/// An invalid filter, or a subscriber already installed.
pub fn init(config: &LogConfig) -> Result<()> {
    let filter: Box<dyn Layer<Registry> + Send + Sync> = match filter(&config.filter)? {
        Filter::Targets(targets) => Box::new(targets),
        Filter::Env(env) => env,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(json::JsonLayer::new(std::io::stdout))
            .try_init(),
    };
    result.map_err(|e| Error::Telemetry(e.to_string()))
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
