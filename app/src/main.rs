//! The example application's binary: reads configuration, then serves, migrates, runs the job
//! worker or manages failed jobs.
//!
//! ```text
//! app                           # serve (the default)
//! app serve                     # serve on HOST:PORT (127.0.0.1:3000 by default); with the
//!                               # memory queue (QUEUE_URL=memory://) also run jobs in-process
//! app migrate                   # apply pending migrations and exit
//! app worker                    # run background jobs until SIGINT or SIGTERM
//! app jobs failed list [LIMIT]  # newest failed jobs first (default 50)
//! app jobs failed show ID       # one failed job with its payload and full error
//! app jobs failed retry ID|all  # re-dispatch onto the shared queue and delete the row(s)
//! app jobs failed forget ID     # delete one failed job
//! app jobs failed prune AGE     # delete failed jobs older than AGE (30s, 15m, 24h, 7d)
//! ```
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage, 78 invalid settings. `serve` and `worker` stop
//! gracefully on SIGINT or SIGTERM: requests drain and running jobs finish, each for at most
//! `SHUTDOWN_GRACE_SECS`.

use std::fmt;
use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use app::Settings;
use core_db::Database;
use core_db::settings::redact_url;
use core_jobs::cli::UsageError;
use core_jobs::{FailedJobs, Queue, QueueDriver};
use tokio::net::TcpListener;
use tokio::sync::watch;

const USAGE: &str = "\
usage: app [serve]                    serve HTTP (and run jobs in-process on the memory queue)
       app migrate                    apply pending migrations and exit
       app worker                     run background jobs until SIGINT or SIGTERM
       app jobs failed list [LIMIT]   newest failed jobs first (default 50)
       app jobs failed show ID        one failed job with its payload and full error
       app jobs failed retry ID|all   re-dispatch failed jobs and delete their rows
       app jobs failed forget ID      delete one failed job
       app jobs failed prune AGE      delete failed jobs older than AGE (30s, 15m, 24h, 7d)";

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Serve,
    Migrate,
    Worker,
    /// `jobs failed …`, with the words after `failed`.
    FailedJobs(Vec<String>),
}

/// A command line the binary does not accept: printed with [`USAGE`], exit code 2.
#[derive(Debug)]
struct Usage(String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn parse(args: &[String]) -> Result<Command, Usage> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["migrate"] => Ok(Command::Migrate),
        ["worker"] => Ok(Command::Worker),
        ["jobs", "failed", rest @ ..] => match rest.first() {
            None | Some(&("list" | "show" | "retry" | "forget" | "prune")) => Ok(
                Command::FailedJobs(rest.iter().map(|s| (*s).to_owned()).collect()),
            ),
            Some(other) => Err(Usage(format!("unknown command `jobs failed {other}`"))),
        },
        ["jobs", ..] => Err(Usage("`app jobs` expects `failed …`".to_owned())),
        [command @ ("serve" | "migrate" | "worker"), ..] => {
            Err(Usage(format!("`app {command}` takes no arguments")))
        }
        [command, ..] => Err(Usage(format!("unknown command {command:?}"))),
    }
}

fn usage_error(usage: &Usage) -> ExitCode {
    eprintln!("error: {usage}\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(usage) => return usage_error(&usage),
    };
    // Configuration errors are reported before anything else starts.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if let Err(e) = core_web::telemetry::init(&settings.base.log) {
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
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Usage>() {
            Some(usage) => usage_error(usage),
            None => {
                tracing::error!(error = format!("{e:#}"), "exiting");
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Worker => worker(settings).await,
        Command::FailedJobs(args) => failed_jobs(&args, &settings).await,
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = &settings.base.database.url;
    let db = Database::connect(url).await?;
    db.migrate().await?;
    tracing::info!(database = %redact_url(url), "migrations applied");
    db.close().await;
    Ok(())
}

/// Serves until SIGINT or SIGTERM. On the memory queue an in-process worker runs the jobs the
/// handlers dispatch (no other process can see them) and stops with the server.
async fn serve(settings: Settings) -> anyhow::Result<()> {
    let signal = shutdown_signal().context("listening for SIGINT and SIGTERM")?;
    let addr = settings.base.addr();
    let grace = settings.base.http.shutdown_grace;
    let state = app::AppContext::connect(settings).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| core_web::Error::Bind { addr, source })?;
    let local = listener.local_addr()?;

    // One signal, two listeners: the server drains requests while the worker finishes jobs.
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let worker = if state.queue.driver_kind() == QueueDriver::Memory {
        let handle = app::worker(&state)
            .spawn()
            .context("starting the in-process worker")?;
        tracing::info!(
            worker = handle.id(),
            "running jobs in-process (QUEUE_URL is memory://)"
        );
        Some(handle)
    } else {
        tracing::info!("jobs are run by `app worker` processes on the shared queue");
        None
    };
    let db = state.db.clone();
    tracing::info!(address = %format!("http://{local}"), "listening");
    let serving = async {
        let served = core_web::server::serve(
            listener,
            app::router(state),
            stopped(stop_rx.clone()),
            grace,
        )
        .await;
        // Dropping the sender also stops the worker when the server fails on its own.
        signals.abort();
        served
    };
    let working = async {
        if let Some(worker) = &worker {
            stopped(stop_rx.clone()).await;
            worker.shutdown().await;
        }
    };
    let (served, ()) = tokio::join!(serving, working);
    served?;
    tracing::info!("stopped");
    db.close().await;
    Ok(())
}

/// Runs the application's jobs until SIGINT or SIGTERM, then lets running jobs finish for at
/// most `SHUTDOWN_GRACE_SECS`.
async fn worker(settings: Settings) -> anyhow::Result<()> {
    let signal = shutdown_signal().context("listening for SIGINT and SIGTERM")?;
    let state = app::AppContext::connect(settings).await?;
    if state.queue.driver_kind() == QueueDriver::Memory {
        tracing::warn!(
            "QUEUE_URL is memory://: this worker sees only jobs dispatched in its own process; \
             point QUEUE_URL (or REDIS_URL) at the Redis queue `app serve` uses"
        );
    }
    // The worker logs its own start and stop.
    let handle = app::worker(&state).spawn().context("starting the worker")?;
    signal.await;
    tracing::info!("shutting down: waiting for running jobs");
    handle.shutdown().await;
    state.db.close().await;
    Ok(())
}

/// `app jobs failed …`: prints what [`core_jobs::cli::failed_command`] answers.
async fn failed_jobs(args: &[String], settings: &Settings) -> anyhow::Result<()> {
    let db = Database::from_config(&settings.base.database)
        .await
        .with_context(|| {
            format!(
                "connecting to DATABASE_URL ({})",
                redact_url(&settings.base.database.url)
            )
        })?;
    let result = async {
        let queue = app::connect_queue(settings).await?;
        failed_command(args, &db, &queue).await
    }
    .await;
    db.close().await;
    println!("{}", result?);
    Ok(())
}

async fn failed_command(args: &[String], db: &Database, queue: &Queue) -> anyhow::Result<String> {
    if let [verb, target] = args
        && verb == "retry"
        && (target == "all" || target.parse::<i64>().is_ok())
        && queue.driver_kind() == QueueDriver::Memory
    {
        // The job would go to a queue that dies with this process, and its row would be gone.
        bail!(
            "`jobs failed retry` needs the queue the workers use, and QUEUE_URL is memory://: \
             jobs re-dispatched there would be lost when this command exits. \
             Set QUEUE_URL (or REDIS_URL) to the Redis queue of `app worker`"
        );
    }
    let store = FailedJobs::new(db.clone());
    core_jobs::cli::failed_command(args, &store, queue)
        .await
        .map_err(|e| match e.downcast_ref::<UsageError>() {
            Some(usage) => Usage(usage.detail.clone()).into(),
            None => e,
        })
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, so a signal
/// that arrives while the process is still starting is not lost.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(core_jobs::worker::shutdown_signal())
}

/// Completes once `stop` turns true or its sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `app jobs failed prune 9999999999d` (about 27 million years) is a usage error (exit code
    /// 2 with the usage text), not a panic inside the prune.
    #[tokio::test]
    async fn pruning_with_an_age_beyond_the_calendar_is_a_usage_error() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let queue = Queue::memory();
        for age in ["9999999999d", "99999999999999999d", "36501d"] {
            let args = vec!["prune".to_owned(), age.to_owned()];
            let err = failed_command(&args, &db, &queue).await.unwrap_err();
            assert!(err.downcast_ref::<Usage>().is_some(), "{age}: {err}");
        }
        let args = vec!["prune".to_owned(), "7d".to_owned()];
        assert_eq!(
            failed_command(&args, &db, &queue).await.unwrap(),
            "pruned 0 failed job(s) older than 7d"
        );
    }
}
