//! The `jobs failed …` commands, ready for an application's command line.
//!
//! ```text
//! list [LIMIT]        newest failures first (default 50)
//! show ID             one failure with its payload and full error
//! retry ID|all        re-dispatch with attempts reset, and delete the row(s)
//! forget ID           delete one failure
//! prune AGE           delete failures older than AGE (e.g. 30s, 15m, 24h, 7d)
//! ```
//!
//! The commands are a [`clap`] subcommand, [`FailedCommand`], for an application to embed in its
//! own command tree (through [`FailedArgs`], which also makes a bare `jobs failed` mean `list`),
//! and run with [`FailedCommand::execute`] (the text to print) or [`run`] (prints it and answers
//! the exit code):
//!
//! ```
//! use clap::Parser;
//! use core_jobs::cli::{FailedArgs, FailedCommand};
//!
//! #[derive(clap::Subcommand)]
//! enum Jobs {
//!     /// Manage the jobs that failed every attempt.
//!     Failed(FailedArgs),
//! }
//!
//! #[derive(clap::Parser)]
//! struct App {
//!     #[command(subcommand)]
//!     jobs: Jobs,
//! }
//!
//! let App { jobs: Jobs::Failed(failed) } = App::try_parse_from(["app", "failed", "prune", "7d"])?;
//! assert!(matches!(failed.into_command(), FailedCommand::Prune { .. }));
//! # Ok::<(), clap::Error>(())
//! ```
//!
//! [`failed_command`] takes the words after `jobs failed` and returns the text to print:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use core_db::Database;
//! use core_jobs::{FailedJobs, Queue, cli};
//!
//! let db = Database::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! let (store, queue) = (FailedJobs::new(db), Queue::memory());
//! let out = cli::failed_command(&["list"], &store, &queue).await?;
//! assert_eq!(out, "no failed jobs");
//! let out = cli::failed_command(&["prune", "7d"], &store, &queue).await?;
//! assert_eq!(out, "pruned 0 failed job(s) older than 7d");
//! # Ok(())
//! # }
//! ```

use std::error::Error as _;
use std::fmt::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

use crate::failed::FailedJobs;
use crate::queue::Queue;

/// Usage text of [`failed_command`].
pub const FAILED_USAGE: &str = "usage: jobs failed list [LIMIT] | show ID | retry ID|all | forget ID | prune AGE (30s, 15m, 24h, 7d)";

/// The exit status of bad usage, as clap's own errors exit with.
pub const USAGE_EXIT: u8 = 2;

/// Bad arguments to [`failed_command`]: `detail` says what is wrong, and the message ends with
/// [`FAILED_USAGE`]. A command line finds it with `error.downcast_ref::<UsageError>()` to exit
/// with its usage status instead of a failure.
#[derive(Debug, thiserror::Error)]
#[error("{detail}; {FAILED_USAGE}")]
pub struct UsageError {
    /// What is wrong with the arguments.
    pub detail: String,
}

fn usage(detail: impl Into<String>) -> anyhow::Error {
    UsageError {
        detail: detail.into(),
    }
    .into()
}

/// The `jobs failed` command line: an optional [`FailedCommand`], `list` when it is left out.
/// Embed it as a subcommand's arguments (`Failed(FailedArgs)`), or parse it on its own with
/// [`Parser::try_parse_from`] (the first word is the program name).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "failed",
    bin_name = "jobs failed",
    about = "Manage the jobs that failed every attempt (`list` when no command is given)",
    after_help = "AGE is a duration in seconds, minutes, hours or days: 30s, 15m, 24h, 7d, 1h30m."
)]
pub struct FailedArgs {
    /// What to do; `list` when left out.
    #[command(subcommand)]
    pub command: Option<FailedCommand>,
}

impl FailedArgs {
    /// The command to run: the one given, else `list` with the default limit.
    pub fn into_command(self) -> FailedCommand {
        self.command.unwrap_or_default()
    }
}

/// One `jobs failed` command, a [`clap::Subcommand`] for an application's command tree. Its
/// arguments are checked while parsing, so a bad `LIMIT`, `ID` or `AGE` is a clap usage error.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum FailedCommand {
    /// List failed jobs, newest first.
    List {
        /// How many to list.
        #[arg(default_value = "50", value_parser = parse_limit, allow_negative_numbers = true)]
        limit: u32,
    },
    /// Show one failed job with its payload and full error.
    Show {
        /// The failed job's id (the first column of `list`).
        #[arg(value_parser = parse_id_arg, allow_negative_numbers = true)]
        id: i64,
    },
    /// Re-dispatch a failed job (or all of them) with attempts reset, and delete its row.
    Retry {
        /// A failed job's id, or `all`.
        #[arg(value_name = "ID|all", value_parser = parse_target, allow_negative_numbers = true)]
        target: RetryTarget,
    },
    /// Delete one failed job.
    Forget {
        /// The failed job's id.
        #[arg(value_parser = parse_id_arg, allow_negative_numbers = true)]
        id: i64,
    },
    /// Delete the failed jobs older than AGE.
    Prune {
        /// 30s, 15m, 24h, 7d, … (at most 36500d).
        #[arg(value_parser = Age::parse)]
        age: Age,
    },
}

impl Default for FailedCommand {
    /// `list` with the default limit, 50.
    fn default() -> Self {
        Self::List { limit: 50 }
    }
}

/// What `retry` re-dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryTarget {
    /// Every failed job.
    All,
    /// The failed job with this id.
    Id(i64),
}

/// An `AGE` argument: the duration and the text it was written as (`7d`), which is how
/// [`Display`](fmt::Display) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    text: String,
    duration: Duration,
}

impl Age {
    /// Parses an age with [`parse_age`]; the error says what is wrong (`bad AGE "7w"`).
    ///
    /// # Errors
    /// The text of a [`UsageError`]'s detail.
    pub fn parse(text: &str) -> Result<Self, String> {
        let duration = parse_age_detail(text)?;
        Ok(Self {
            text: text.to_owned(),
            duration,
        })
    }

    /// The age as a duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_limit(limit: &str) -> Result<u32, String> {
    limit.parse().map_err(|_| format!("bad LIMIT {limit:?}"))
}

fn parse_id_arg(id: &str) -> Result<i64, String> {
    id.parse().map_err(|_| format!("bad ID {id:?}"))
}

fn parse_target(target: &str) -> Result<RetryTarget, String> {
    if target == "all" {
        Ok(RetryTarget::All)
    } else {
        parse_id_arg(target).map(RetryTarget::Id)
    }
}

impl FailedCommand {
    /// Runs the command and returns the text to print.
    ///
    /// # Errors
    /// An unknown id, or the database or queue failed.
    pub async fn execute(&self, store: &FailedJobs, queue: &Queue) -> anyhow::Result<String> {
        match self {
            Self::List { limit } => list(store, *limit).await,
            Self::Show { id } => {
                let job = store
                    .get(*id)
                    .await?
                    .ok_or_else(|| anyhow!("no failed job with id {id}"))?;
                Ok(format!(
                    "id:        {}\njob id:    {}\njob:       {}\nqueue:     {}\ngroup:     {}\nattempts:  {}\nfailed at: {}\nerror:     {}\npayload:   {}",
                    job.id,
                    job.job_id,
                    job.job_name,
                    job.queue,
                    job.group_id.as_deref().unwrap_or("-"),
                    job.attempts,
                    job.failed_at.to_rfc3339(),
                    job.error,
                    job.payload
                ))
            }
            Self::Retry {
                target: RetryTarget::All,
            } => {
                let n = store.retry_all(queue).await?;
                Ok(format!("re-dispatched {n} failed job(s)"))
            }
            Self::Retry {
                target: RetryTarget::Id(id),
            } => {
                let job_id = store.retry(*id, queue).await?;
                Ok(format!("re-dispatched failed job {id} as job {job_id}"))
            }
            Self::Forget { id } => {
                if store.forget(*id).await? {
                    Ok(format!("forgot failed job {id}"))
                } else {
                    bail!("no failed job with id {id}")
                }
            }
            Self::Prune { age } => {
                let n = store.prune(age.duration()).await?;
                Ok(format!("pruned {n} failed job(s) older than {age}"))
            }
        }
    }
}

/// Runs `command`, prints its text to stdout (or `error: …` to stderr) and answers the exit
/// status: success, or failure (1). Usage errors are clap's, before this runs (status
/// [`USAGE_EXIT`]).
pub async fn run(command: &FailedCommand, store: &FailedJobs, queue: &Queue) -> ExitCode {
    match command.execute(store, queue).await {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status for an error of [`failed_command`]: [`USAGE_EXIT`] for a [`UsageError`],
/// else failure (1).
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(USAGE_EXIT)
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one `jobs failed` command (`args` are the words after `failed`) and returns the text
/// to print; `--help` (on any command) answers the help text.
///
/// # Errors
/// Bad usage (a [`UsageError`], saying how to use it), an unknown id, or the database or queue failed.
pub async fn failed_command<S: AsRef<str>>(
    args: &[S],
    store: &FailedJobs,
    queue: &Queue,
) -> anyhow::Result<String> {
    let words = args.iter().map(AsRef::as_ref);
    let parsed = FailedArgs::try_parse_from(std::iter::once("failed").chain(words));
    let command = match parsed {
        Ok(parsed) => parsed.into_command(),
        Err(e) => return usage_or_help(&e, args),
    };
    command.execute(store, queue).await
}

/// A clap error as [`failed_command`] answers it: help as text, a bad value with what is wrong,
/// anything else as unknown arguments.
fn usage_or_help<S: AsRef<str>>(error: &clap::Error, args: &[S]) -> anyhow::Result<String> {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Ok(error.render().to_string().trim_end().to_owned())
        }
        ErrorKind::ValueValidation if error.source().is_some() => Err(usage(
            error.source().map(ToString::to_string).unwrap_or_default(),
        )),
        _ => {
            let words: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
            Err(usage(format!("unknown arguments {:?}", words.join(" "))))
        }
    }
}

async fn list(store: &FailedJobs, limit: u32) -> anyhow::Result<String> {
    let jobs = store.list(limit).await?;
    if jobs.is_empty() {
        return Ok("no failed jobs".to_owned());
    }
    let mut out = String::from("ID\tFAILED AT\tJOB\tQUEUE\tATTEMPTS\tERROR");
    for j in jobs {
        let mut error: String = j
            .error
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(100)
            .collect();
        if j.error.chars().count() > error.chars().count() {
            error.push('…');
        }
        let _ = write!(
            out,
            "\n{}\t{}\t{}\t{}\t{}\t{}",
            j.id,
            j.failed_at.format("%Y-%m-%d %H:%M:%S"),
            j.job_name,
            j.queue,
            j.attempts,
            error
        );
    }
    Ok(out)
}

/// The largest age [`parse_age`] accepts: 100 years (36 500 days). Older than that reaches
/// back before any job could have failed, and much older cannot be subtracted from now.
pub const MAX_AGE: Duration = Duration::from_secs(36_500 * 86_400);

/// The units an age may use: [`humantime`]'s names of seconds, minutes, hours and days. Weeks,
/// months and years are refused (humantime's months and years are averages, not calendar ones).
const AGE_UNITS: [&str; 18] = [
    "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr",
    "hrs", "hour", "hours", "d", "day", "days",
];

/// Parses `30s`, `15m`, `24h`, `7d`, `1h30m` (read by [`humantime`], in seconds, minutes, hours
/// and days) or a bare number of seconds, up to [`MAX_AGE`].
///
/// # Errors
/// A [`UsageError`] for anything else, including ages over [`MAX_AGE`].
pub fn parse_age(age: &str) -> anyhow::Result<Duration> {
    parse_age_detail(age).map_err(usage)
}

fn parse_age_detail(age: &str) -> Result<Duration, String> {
    let bad = || format!("bad AGE {age:?}");
    let duration = if !age.is_empty() && age.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(age.parse().map_err(|_| bad())?)
    } else {
        let units_known = age
            .split(|c: char| !c.is_alphabetic())
            .filter(|unit| !unit.is_empty())
            .all(|unit| AGE_UNITS.contains(&unit));
        if !units_known {
            return Err(bad());
        }
        humantime::parse_duration(age).map_err(|_| bad())?
    };
    if duration > MAX_AGE {
        return Err(format!(
            "AGE {age:?} is over the maximum of {}d",
            MAX_AGE.as_secs() / 86_400
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<FailedCommand, clap::Error> {
        FailedArgs::try_parse_from(std::iter::once("failed").chain(args.iter().copied()))
            .map(FailedArgs::into_command)
    }

    fn age(text: &str, secs: u64) -> Age {
        Age {
            text: text.to_owned(),
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn command_line_parses_every_command() {
        let retry = |target| FailedCommand::Retry { target };
        for (args, expected) in [
            (&[][..], FailedCommand::List { limit: 50 }),
            (&["list"], FailedCommand::List { limit: 50 }),
            (&["list", "7"], FailedCommand::List { limit: 7 }),
            (&["show", "3"], FailedCommand::Show { id: 3 }),
            (&["retry", "all"], retry(RetryTarget::All)),
            (&["retry", "12"], retry(RetryTarget::Id(12))),
            (&["forget", "4"], FailedCommand::Forget { id: 4 }),
            (
                &["prune", "7d"],
                FailedCommand::Prune {
                    age: age("7d", 7 * 86_400),
                },
            ),
        ] {
            assert_eq!(parse(args).unwrap(), expected, "{args:?}");
        }
    }

    #[test]
    fn ages_in_seconds_minutes_hours_and_days() {
        for (text, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("24h", 86_400),
            ("7d", 604_800),
            ("1h30m", 5_400),
            ("2days", 172_800),
            ("90", 90),
            ("36500d", MAX_AGE.as_secs()),
        ] {
            assert_eq!(Age::parse(text), Ok(age(text, secs)), "{text}");
            assert_eq!(Age::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "7w",
            "7y",
            "1M",
            "",
            "d",
            "-1d",
            "1.5x",
            "99999999999999999d",
        ] {
            assert_eq!(Age::parse(bad), Err(format!("bad AGE {bad:?}")), "{bad}");
        }
        for over in ["36501d", "9999999999d", "3153600001"] {
            let err = Age::parse(over).unwrap_err();
            assert!(err.contains("over the maximum of 36500d"), "{over}: {err}");
            let err = parse_age(over).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{over}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors_saying_what_is_wrong() {
        for (args, says) in [
            (&["list", "many"][..], r#"bad LIMIT "many""#),
            (&["list", "-1"], r#"bad LIMIT "-1""#),
            (&["show", "x"], r#"bad ID "x""#),
            (&["retry", "some"], r#"bad ID "some""#),
            (&["forget", "1.5"], r#"bad ID "1.5""#),
            (&["prune", "7w"], r#"bad AGE "7w""#),
            (&["prune", "9999999999d"], "over the maximum"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert_eq!(err.exit_code(), i32::from(USAGE_EXIT), "{args:?}");
            assert!(
                err.source().unwrap().to_string().contains(says),
                "{args:?}: {err}"
            );
            let err = usage_or_help(&err, args).unwrap_err();
            let detail = &err.downcast_ref::<UsageError>().unwrap().detail;
            assert!(detail.contains(says), "{args:?}: {detail}");
        }
        for args in [
            &["explode"][..],
            &["show"],
            &["list", "1", "2"],
            &["prune"],
            &["retry", "1", "--force"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(USAGE_EXIT), "{args:?}");
            let err = usage_or_help(&err, args).unwrap_err();
            assert_eq!(
                err.downcast_ref::<UsageError>().unwrap().detail,
                format!("unknown arguments {:?}", args.join(" "))
            );
            assert!(err.to_string().ends_with(FAILED_USAGE), "{err}");
            assert_eq!(exit_code(&err), ExitCode::from(USAGE_EXIT));
        }
        assert_eq!(exit_code(&anyhow!("no failed job")), ExitCode::FAILURE);
    }

    #[test]
    fn embeds_in_an_application_command_tree() {
        #[derive(Debug, clap::Subcommand)]
        enum Jobs {
            Failed(FailedArgs),
        }
        #[derive(Debug, Parser)]
        #[command(name = "app")]
        struct App {
            #[command(subcommand)]
            jobs: Jobs,
        }
        let help = |args: &[&str]| App::try_parse_from(args).unwrap_err().render().to_string();
        assert!(help(&["app", "--help"]).contains("failed  Manage the jobs that failed"));
        assert!(help(&["app", "failed", "--help"]).contains("Usage: app failed [COMMAND]"));
        assert!(help(&["app", "failed", "prune", "-h"]).contains("Usage: app failed prune <AGE>"));
        let App {
            jobs: Jobs::Failed(failed),
        } = App::try_parse_from(["app", "failed"]).unwrap();
        assert_eq!(failed.into_command(), FailedCommand::List { limit: 50 });
    }

    #[test]
    fn help_on_every_command() {
        <FailedArgs as clap::CommandFactory>::command().debug_assert();
        let top = parse(&["--help"]).unwrap_err();
        assert_eq!(top.kind(), ErrorKind::DisplayHelp);
        assert_eq!(top.exit_code(), 0);
        let text = top.render().to_string();
        for command in [
            "list",
            "show",
            "retry",
            "forget",
            "prune",
            "30s, 15m, 24h, 7d",
        ] {
            assert!(text.contains(command), "{command}: {text}");
        }
        for (command, says) in [
            ("list", "[LIMIT]"),
            ("show", "<ID>"),
            ("retry", "<ID|all>"),
            ("forget", "<ID>"),
            ("prune", "<AGE>"),
        ] {
            for help in ["--help", "-h"] {
                let err = parse(&[command, help]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{command}");
                let text = err.render().to_string();
                assert!(
                    text.contains(&format!("Usage: jobs failed {command} {says}")),
                    "{command}: {text}"
                );
                let answered = usage_or_help(&err, &[command, help]).unwrap();
                assert!(answered.contains(says), "{answered}");
            }
        }
    }
}
