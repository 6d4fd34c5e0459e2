//! The active-job limits (`MAX_ACTIVE_JOBS_PER_CLIENT`, `MAX_QUEUE_DEPTH`), counted without a
//! query per submission.
//!
//! Counting a client's active jobs, and every active job, for each submission costs two index
//! scans that grow with the backlog, exactly when the queue is busiest. [`ActiveCounts`] counts
//! each scope (a client, or every client) in the database at most once per [`REFRESH`] per
//! process and adds the submissions this process has committed since. So:
//!
//! - a process sees its own submissions at once: N submissions in a row by one process meet a
//!   limit of N exactly;
//! - submissions by other processes count from the next refresh, and a job that becomes final
//!   frees its place from the next refresh (within [`REFRESH`]);
//! - as before, submissions checked at the same moment may together pass a limit by the number
//!   in flight: the limits protect capacity, they are not a quota ledger.
//!
//! Only one caller refreshes a scope at a time; the others use the count they have meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use core_db::Database;

use super::store;

/// How stale a count may be before it is taken from the database again.
pub const REFRESH: Duration = Duration::from_millis(250);

/// A refresh that has not finished after this long (its request was dropped) is taken over.
const REFRESH_STALLED: Duration = Duration::from_secs(5);

/// Scopes kept at most; past it the counts start over (they are only a cache of the database).
const MAX_SCOPES: usize = 10_000;

/// Active-job counts per scope, shared by the clones of one process's context.
#[derive(Debug, Clone, Default)]
pub struct ActiveCounts {
    scopes: Arc<Mutex<HashMap<Option<String>, Count>>>,
}

#[derive(Debug)]
struct Count {
    /// What the database said.
    counted: u64,
    /// When it was asked.
    at: Instant,
    /// Submissions this process committed since.
    since: u64,
    /// A refresh under way, since when.
    refreshing: Option<Instant>,
}

impl ActiveCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, Count>> {
        self.scopes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The active jobs of `client_id`, or of every client when `None`.
    ///
    /// # Errors
    /// The database failed (when a count had to be taken).
    pub async fn get(&self, db: &Database, client_id: Option<&str>) -> anyhow::Result<u64> {
        let scope = client_id.map(str::to_owned);
        let now = Instant::now();
        {
            let mut scopes = self.lock();
            if let Some(count) = scopes.get_mut(&scope) {
                let fresh = now.duration_since(count.at) < REFRESH;
                let taken = count
                    .refreshing
                    .is_some_and(|since| now.duration_since(since) < REFRESH_STALLED);
                if fresh || taken {
                    return Ok(count.counted + count.since);
                }
                count.refreshing = Some(now);
            }
        }
        let counted = store::active(db, client_id).await;
        let mut scopes = self.lock();
        let counted = match counted {
            Ok(n) => n,
            Err(e) => {
                if let Some(count) = scopes.get_mut(&scope) {
                    count.refreshing = None;
                }
                return Err(e);
            }
        };
        if scopes.len() >= MAX_SCOPES && !scopes.contains_key(&scope) {
            scopes.clear();
        }
        scopes.insert(
            scope,
            Count {
                counted,
                at: now,
                since: 0,
                refreshing: None,
            },
        );
        Ok(counted)
    }

    /// Counts a submission of `client_id` that has committed.
    pub fn added(&self, client_id: &str) {
        let mut scopes = self.lock();
        for scope in [None, Some(client_id.to_owned())] {
            if let Some(count) = scopes.get_mut(&scope) {
                count.since += 1;
            }
        }
    }
}
