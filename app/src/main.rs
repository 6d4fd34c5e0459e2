//! The example application's binary: reads configuration and serves, or migrates.
//!
//! ```text
//! app            # serve (the default)
//! app serve      # serve on HOST:PORT (127.0.0.1:3000 by default)
//! app migrate    # apply pending migrations and exit
//! ```

use std::process::ExitCode;

use core_web::config::Settings;

const USAGE: &str = "usage: app [serve|migrate]";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if !matches!(command.as_str(), "serve" | "migrate") {
        eprintln!("error: unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    // Configuration errors are reported before anything else starts.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if let Err(e) = core_web::telemetry::init(&settings.log) {
        eprintln!("error: {e}");
        return ExitCode::from(78);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &str, settings: Settings) -> anyhow::Result<()> {
    app::init_i18n(&settings)?;
    if command == "migrate" {
        let db = core_db::infra::db::Database::connect(&settings.database_url).await?;
        db.migrate().await?;
        tracing::info!(database = %app::redact(&settings.database_url), "migrations applied");
        db.close().await;
        return Ok(());
    }
    let addr = settings.addr();
    let grace = settings.http.shutdown_grace;
    let state = app::AppState::connect(settings).await?;
    let db = state.db.clone();
    core_web::server::run(app::router(state), addr, grace).await?;
    db.close().await;
    Ok(())
}
