//! [`RedisClaimer`]: one worker's claims from one queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::scripts::{self, LuaCall};
use super::{BATCH, Keys, RELEASE_HEARTBEAT, RedisDriver, ms};
use crate::error::Result;
use crate::queue::Claimer;

/// How many unanswered claims in a row a claimer remembers (the oldest is forgotten: its jobs,
/// if any, come back when their leases expire).
const MAX_UNCONFIRMED: usize = 8;

/// How much longer than its wait a blocking claim may take to answer before its connection is
/// given up for lost (and the claim's job, if it moved one, is adopted by the next claim).
const BLOCK_MARGIN: Duration = Duration::from_secs(2);

/// Claims from one queue for one worker: scripts on the shared connection while jobs are
/// ready; a blocking `BLMOVE` on its own dedicated connection while none are.
///
/// Every claim first leases whatever this worker's processing list holds, so a job that a
/// `BLMOVE` moved there but whose reply was lost (the blocking connection timed out after its
/// wait plus [`BLOCK_MARGIN`]) is run by the next claim instead of sitting there while the
/// worker's heartbeat keeps it from recovery.
pub(super) struct RedisClaimer {
    driver: RedisDriver,
    keys: Arc<Keys>,
    processing: String,
    /// `claimed:{worker}`: the token and envelopes of this worker's last claim.
    claimed: String,
    /// The tokens of the claims since the last answered one (their replies did not come: an
    /// error or a cancelled call). The one among them that ran last holds `claimed`; its jobs
    /// are leased but were never started, so the next claim takes them over.
    unconfirmed: Vec<String>,
    /// The blocking connection and the longest wait its response timeout allows for.
    blocking: Option<(MultiplexedConnection, Duration)>,
    worker: String,
    queue: String,
}

impl RedisClaimer {
    pub(super) fn new(driver: RedisDriver, keys: Arc<Keys>, queue: &str, worker: &str) -> Self {
        Self {
            processing: format!("{}{worker}", keys.processing_prefix),
            claimed: format!("{}{worker}", keys.claimed_prefix),
            driver,
            keys,
            unconfirmed: Vec::new(),
            blocking: None,
            worker: worker.to_owned(),
            queue: queue.to_owned(),
        }
    }

    /// Leases up to `max` jobs: this worker's processing list first, then ready jobs. Returns
    /// how many came from the processing list, and the leased envelopes.
    async fn lease_batch(&mut self, max: usize, lease: Duration) -> Result<(usize, Vec<Arc<str>>)> {
        let mut conn = self.driver.conn();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let claim = scripts::Claim {
            processing: &self.processing,
            ready: &self.keys.ready,
            leases: &self.keys.leases,
            claimed: &self.claimed,
            max,
            lease_ms: ms(lease),
            token: &token,
            lost_tokens: &self.unconfirmed,
        }
        .invocation();
        // Until its reply comes, this claim may have leased jobs that nobody runs.
        if self.unconfirmed.len() >= MAX_UNCONFIRMED {
            self.unconfirmed.remove(0);
        }
        self.unconfirmed.push(token);
        let reply = claim.invoke_async::<(usize, Vec<String>)>(&mut conn).await;
        let (adopted, items) = conn.checked(reply)?;
        self.unconfirmed.clear();
        Ok((adopted, items.into_iter().map(Arc::from).collect()))
    }

    fn warn_adopted(&self, jobs: usize) {
        tracing::warn!(
            queue = %self.queue,
            worker = %self.worker,
            jobs,
            "leasing jobs left in this worker's processing list by a claim whose reply was lost"
        );
    }

    /// The dedicated blocking connection, (re)connected so that its response timeout covers
    /// `wait` plus [`BLOCK_MARGIN`].
    async fn blocking(&mut self, wait: Duration) -> Result<&mut MultiplexedConnection> {
        if self.blocking.as_ref().is_none_or(|(_, w)| *w < wait) {
            self.blocking = None;
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(Some(wait + BLOCK_MARGIN))
                .set_connection_timeout(Some(Duration::from_secs(5)));
            let conn = self
                .driver
                .inner
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.blocking = Some((conn, wait));
        }
        Ok(&mut self.blocking.as_mut().expect("just connected").0)
    }
}

#[async_trait]
impl Claimer for RedisClaimer {
    async fn claim(
        &mut self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let max = max.clamp(1, BATCH);
        let (adopted, items) = self.lease_batch(max, lease).await?;
        if adopted > 0 {
            self.warn_adopted(adopted);
        }
        if !items.is_empty() || wait.is_zero() {
            return Ok(items);
        }
        let ready = self.keys.ready.clone();
        let processing = self.processing.clone();
        let conn = self.blocking(wait).await?;
        let secs = wait.as_secs_f64().max(0.01);
        let moved: redis::RedisResult<Option<String>> = redis::cmd("BLMOVE")
            .arg(&ready)
            .arg(&processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await;
        match moved {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(_)) => {
                let (adopted, items) = self.lease_batch(max, lease).await?;
                if adopted > 1 {
                    self.warn_adopted(adopted - 1);
                }
                Ok(items)
            }
            Err(e) => {
                // A timeout means the reply is lost, not late: the connection cannot be used
                // again. Whatever the BLMOVE moved is leased by the next claim.
                self.blocking = None;
                if e.is_timeout() {
                    tracing::warn!(
                        queue = %self.queue,
                        worker = %self.worker,
                        "a blocking claim got no reply within its wait; reconnecting"
                    );
                }
                Err(e.into())
            }
        }
    }

    /// Puts back anything left in this worker's processing list, and the jobs still leased by
    /// whichever of its unanswered claims ran last (called at shutdown).
    async fn release(&mut self) -> Result<()> {
        self.blocking = None;
        let lost = std::mem::take(&mut self.unconfirmed);
        let mut conn = self.driver.conn();
        scripts::Release {
            processing: &self.processing,
            ready: &self.keys.ready,
            workers: &self.keys.workers,
            claimed: &self.claimed,
            leases: &self.keys.leases,
            worker: &self.worker,
            heartbeat_ms: ms(RELEASE_HEARTBEAT),
            lost_tokens: &lost,
        }
        .run(&mut conn)
        .await?;
        Ok(())
    }
}
