//! The example application's binary: reads configuration, then serves, migrates, runs the job
//! worker or manages failed jobs.
//!
//! ```text
//! app                           # serve (the default)
//! app serve                     # serve on HOST:PORT (127.0.0.1:3000 by default); with the
//!                               # memory queue (QUEUE_URL=memory://) also run jobs in-process
//! app migrate                   # apply pending migrations and exit
//! app worker                    # run background jobs until SIGINT or SIGTERM
//! app scheduler                 # dispatch scheduled jobs (retention, report views) until SIGINT or SIGTERM
//! app jobs failed list [LIMIT]  # newest failed jobs first (default 50)
//! app jobs failed show ID       # one failed job with its payload and full error
//! app jobs failed retry ID|all  # re-dispatch onto the shared queue and delete the row(s)
//! app jobs failed forget ID     # delete one failed job
//! app jobs failed prune AGE     # delete failed jobs older than AGE (30s, 15m, 24h, 7d)
//! ```
//!
//! `app --help` and `app COMMAND --help` describe every command (parsed by clap). Exit codes:
//! 0 success, 1 failure, 2 bad usage, 78 invalid settings. `serve` and `worker` stop
//! gracefully on SIGINT or SIGTERM: requests drain and running jobs finish, each for at most
//! `SHUTDOWN_GRACE_SECS`.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a server allocates and frees small buffers on
/// every thread all the time, where glibc's malloc spends a measurable share of the CPU
/// (`cargo bench -p app --bench forgerun` uses it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use app::Settings;
use clap::{Parser, Subcommand};
use core_db::Database;
use core_db::settings::redact_url;
use core_jobs::cli::{FailedArgs, FailedCommand};
use core_jobs::{FailedJobs, Queue, QueueDriver, Shutdown};
use tokio::net::TcpListener;

/// Printed after a command-line error, with the error itself.
const USAGE: &str = "\
usage: app [serve]                    serve HTTP (and run jobs in-process on the memory queue)
       app migrate                    apply pending migrations and exit
       app worker                     run background jobs until SIGINT or SIGTERM
       app scheduler                  dispatch scheduled jobs (retention, report views) until SIGINT or SIGTERM
       app jobs failed list [LIMIT]   newest failed jobs first (default 50)
       app jobs failed show ID        one failed job with its payload and full error
       app jobs failed retry ID|all   re-dispatch failed jobs and delete their rows
       app jobs failed forget ID      delete one failed job
       app jobs failed prune AGE      delete failed jobs older than AGE (30s, 15m, 24h, 7d)
       app --help, app COMMAND --help";

/// The Rustforge example application. Settings come from the environment, `.env` and
/// `rustforge.toml` (see the README); exit status 78 means an invalid setting.
#[derive(Debug, Parser)]
#[command(name = "app", version, about)]
struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    command: Option<Command>,
}

// region: ch7-commands
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP on HOST:PORT; with the memory queue (QUEUE_URL=memory://) also run jobs
    /// in-process.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Run background jobs from QUEUE_URL until SIGINT or SIGTERM.
    Worker,
    /// Dispatch scheduled jobs (the hourly retention pass, the report views' flush) onto
    /// QUEUE_URL until SIGINT or SIGTERM; any number may run, each tick is dispatched once.
    Scheduler,
    /// Background jobs.
    Jobs {
        /// Which part of the jobs.
        #[command(subcommand)]
        command: JobsCommand,
    },
}
// endregion: ch7-commands

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Failed jobs: list, show, retry, forget, prune.
    Failed(FailedArgs),
}

fn main() -> ExitCode {
    let code = start();
    // Log lines are written out in batches: the last ones, before the process ends.
    core_web::telemetry::flush();
    code
}

fn start() -> ExitCode {
    let command = match Cli::try_parse() {
        Ok(cli) => cli.command.unwrap_or(Command::Serve),
        Err(e) if !e.use_stderr() => {
            // --help and --version: printed to stdout, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}\n{USAGE}", e.render().to_string().trim_end());
            return ExitCode::from(core_jobs::cli::USAGE_EXIT);
        }
    };
    // region: ch9-settings
    // Configuration errors are reported before anything else starts.
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    // endregion: ch9-settings
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
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("error: {e:#}");
            if e.downcast_ref::<core_jobs::cli::UsageError>().is_some() {
                eprintln!("{USAGE}");
            }
            core_jobs::cli::exit_code(&e)
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Worker => worker(settings).await,
        Command::Scheduler => scheduler(settings).await,
        Command::Jobs {
            command: JobsCommand::Failed(args),
        } => failed_jobs(args.into_command(), &settings).await,
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = &settings.base.database.url;
    let db = Database::connect(url).await?;
    app::migrate(&db).await?;
    tracing::info!(database = %redact_url(url), "migrations applied");
    db.close().await;
    Ok(())
}

/// Serves until SIGINT or SIGTERM. On the memory queue an in-process worker runs the jobs the
/// handlers dispatch (no other process can see them) and stops with the server: both watch one
/// [`Shutdown`], so one signal drains requests and running jobs together.
async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signal();
    let addr = settings.base.addr();
    let grace = settings.base.http.shutdown_grace;
    let ctx = app::AppContext::connect(settings).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| core_web::Error::Bind { addr, source })?;
    let local = listener.local_addr()?;
    let in_process = ctx.queue.driver_kind() == QueueDriver::Memory;
    let background = app::jobs::Background::start(&ctx, &shutdown, in_process).await?;
    let schedule = if in_process {
        tracing::info!("running jobs and the schedule in-process (QUEUE_URL is memory://)");
        Some(app::jobs::retention::scheduler(&ctx, &shutdown)?.spawn()?)
    } else {
        tracing::info!(
            "jobs are run by `app worker` and scheduled by `app scheduler` processes on the shared queue"
        );
        None
    };
    let db = ctx.db.clone();
    tracing::info!(address = %format!("http://{local}"), "listening");
    // region: ch9-serve
    let served =
        core_web::server::serve_with_shutdown(listener, app::router(ctx), &shutdown, grace).await;
    // On the signal, or when the server failed on its own: the worker stops too.
    shutdown.cancel();
    shutdown.wait().await;
    // endregion: ch9-serve
    drop((background, schedule));
    served?;
    tracing::info!("stopped");
    db.close().await;
    Ok(())
}

/// Runs the application's jobs until SIGINT or SIGTERM, then lets running jobs finish for at
/// most `SHUTDOWN_GRACE_SECS`.
// region: ch7-worker
async fn worker(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signal();
    let ctx = app::AppContext::connect(settings).await?;
    if ctx.queue.driver_kind() == QueueDriver::Memory {
        tracing::warn!(
            "QUEUE_URL is memory://: this worker sees only jobs dispatched in its own process; \
             point QUEUE_URL (or REDIS_URL) at the Redis queue `app serve` uses"
        );
    }
    // The worker logs its own start and stop.
    let background = app::jobs::Background::start(&ctx, &shutdown, true).await?;
    shutdown.cancelled().await;
    tracing::info!("shutting down: waiting for running jobs");
    shutdown.wait().await;
    drop(background);
    ctx.db.close().await;
    Ok(())
}
// endregion: ch7-worker

/// Dispatches the schedule onto the shared queue until SIGINT or SIGTERM.
async fn scheduler(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signal();
    let ctx = app::AppContext::connect(settings).await?;
    if ctx.queue.driver_kind() == QueueDriver::Memory {
        tracing::warn!(
            "QUEUE_URL is memory://: jobs this scheduler dispatches run only in its own process; \
             `app serve` already runs the schedule on the memory queue"
        );
    }
    let handle = app::jobs::retention::scheduler(&ctx, &shutdown)?.spawn()?;
    tracing::info!("scheduler running");
    shutdown.cancelled().await;
    shutdown.wait().await;
    drop(handle);
    ctx.db.close().await;
    Ok(())
}

/// `app jobs failed …`: prints what the command answers.
async fn failed_jobs(command: FailedCommand, settings: &Settings) -> anyhow::Result<()> {
    let db = app::connect_database(settings).await?;
    let result = async {
        let queue = app::connect_queue(settings).await?;
        failed_command(&command, &db, &queue).await
    }
    .await;
    db.close().await;
    println!("{}", result?);
    Ok(())
}

// region: ch7-failed
async fn failed_command(
    command: &FailedCommand,
    db: &Database,
    queue: &Queue,
) -> anyhow::Result<String> {
    if matches!(command, FailedCommand::Retry { .. }) && queue.driver_kind() == QueueDriver::Memory
    {
        // The job would go to a queue that dies with this process, and its row would be gone.
        bail!(
            "`jobs failed retry` needs the queue the workers use, and QUEUE_URL is memory://: \
             jobs re-dispatched there would be lost when this command exits. \
             Set QUEUE_URL (or REDIS_URL) to the Redis queue of `app worker`"
        );
    }
    command.execute(&FailedJobs::new(db.clone()), queue).await
}
// endregion: ch7-failed

#[cfg(test)]
mod tests {
    use core_jobs::cli::RetryTarget;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
    }

    /// `app jobs failed prune 9999999999d` (about 27 million years) is a usage error (exit code
    /// 2 with the usage text), not a panic inside the prune.
    #[tokio::test]
    async fn pruning_with_an_age_beyond_the_calendar_is_a_usage_error() {
        for age in ["9999999999d", "99999999999999999d", "36501d"] {
            let err = parse(&["jobs", "failed", "prune", age]).expect_err(age);
            assert_eq!(err.exit_code(), 2, "{age}: {err}");
        }
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let queue = Queue::memory();
        let Some(Command::Jobs {
            command: JobsCommand::Failed(args),
        }) = parse(&["jobs", "failed", "prune", "7d"]).unwrap().command
        else {
            panic!("a prune command");
        };
        assert_eq!(
            failed_command(&args.into_command(), &db, &queue)
                .await
                .unwrap(),
            "pruned 0 failed job(s) older than 7d"
        );
    }

    #[test]
    fn every_command_parses_and_has_help() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert!(parse(&[]).unwrap().command.is_none(), "serve by default");
        for args in [
            &["serve"][..],
            &["migrate"],
            &["worker"],
            &["jobs", "failed"],
            &["jobs", "failed", "list", "10"],
            &["jobs", "failed", "retry", "all"],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        for args in [
            &["--help"][..],
            &["serve", "--help"],
            &["jobs", "--help"],
            &["jobs", "failed", "--help"],
            &["jobs", "failed", "prune", "--help"],
        ] {
            let err = parse(args).expect_err("help is printed, not parsed");
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
        }
        let Some(Command::Jobs {
            command: JobsCommand::Failed(args),
        }) = parse(&["jobs", "failed", "retry", "42"]).unwrap().command
        else {
            panic!("a retry command");
        };
        assert!(matches!(
            args.into_command(),
            FailedCommand::Retry {
                target: RetryTarget::Id(42)
            }
        ));
    }
}
