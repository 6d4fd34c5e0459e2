//! The `jobs failed …` commands, ready for an application's command line.
//!
//! [`failed_command`] takes the words after `jobs failed` and returns the text to print:
//!
//! ```text
//! list [LIMIT]        newest failures first (default 50)
//! show ID             one failure with its payload and full error
//! retry ID|all        re-dispatch with attempts reset, and delete the row(s)
//! forget ID           delete one failure
//! prune AGE           delete failures older than AGE (e.g. 30s, 15m, 24h, 7d)
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use core_db::infra::db::Database;
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

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::failed::FailedJobs;
use crate::queue::Queue;

/// Usage text of [`failed_command`].
pub const FAILED_USAGE: &str = "usage: jobs failed list [LIMIT] | show ID | retry ID|all | forget ID | prune AGE (30s, 15m, 24h, 7d)";

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

/// Runs one `jobs failed` command (`args` are the words after `failed`) and returns the text
/// to print.
///
/// # Errors
/// Bad usage (a [`UsageError`], saying how to use it), an unknown id, or the database or queue failed.
pub async fn failed_command<S: AsRef<str>>(
    args: &[S],
    store: &FailedJobs,
    queue: &Queue,
) -> anyhow::Result<String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    match args.as_slice() {
        ["list"] | [] => list(store, 50).await,
        ["list", limit] => {
            let limit = limit
                .parse()
                .map_err(|_| usage(format!("bad LIMIT {limit:?}")))?;
            list(store, limit).await
        }
        ["show", id] => {
            let id = parse_id(id)?;
            let job = store
                .get(id)
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
        ["retry", "all"] => {
            let n = store.retry_all(queue).await?;
            Ok(format!("re-dispatched {n} failed job(s)"))
        }
        ["retry", id] => {
            let id = parse_id(id)?;
            let job_id = store.retry(id, queue).await?;
            Ok(format!("re-dispatched failed job {id} as job {job_id}"))
        }
        ["forget", id] => {
            let id = parse_id(id)?;
            if store.forget(id).await? {
                Ok(format!("forgot failed job {id}"))
            } else {
                bail!("no failed job with id {id}")
            }
        }
        ["prune", age] => {
            let d = parse_age(age)?;
            let n = store.prune(d).await?;
            Ok(format!("pruned {n} failed job(s) older than {age}"))
        }
        _ => Err(usage(format!("unknown arguments {:?}", args.join(" ")))),
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

fn parse_id(id: &str) -> anyhow::Result<i64> {
    id.parse().map_err(|_| usage(format!("bad ID {id:?}")))
}

/// The largest age [`parse_age`] accepts: 100 years (36 500 days). Older than that reaches
/// back before any job could have failed, and much older cannot be subtracted from now.
pub const MAX_AGE: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses `30s`, `15m`, `24h`, `7d` (or a bare number of seconds), up to [`MAX_AGE`].
///
/// # Errors
/// A [`UsageError`] for anything else, including ages over [`MAX_AGE`].
pub fn parse_age(age: &str) -> anyhow::Result<Duration> {
    let bad = || usage(format!("bad AGE {age:?}"));
    let (num, unit) = age.split_at(age.find(|c: char| !c.is_ascii_digit()).unwrap_or(age.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    if secs > MAX_AGE.as_secs() {
        return Err(usage(format!(
            "AGE {age:?} is over the maximum of {}d",
            MAX_AGE.as_secs() / 86_400
        )));
    }
    Ok(Duration::from_secs(secs))
}
