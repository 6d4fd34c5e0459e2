//! [`Deliver`]: one event's delivery to one webhook, a core-jobs job retried with backoff.
//!
//! Each run posts the message's fixed body, signed, under the event id (`webhook-id`, the same
//! on every retry so receivers can de-duplicate), and records the attempt:
//!
//! - a 2xx within `WEBHOOK_TIMEOUT_MS`: delivered;
//! - 410 Gone: the webhook is disabled, nothing more is sent to it;
//! - an address the guard refuses at delivery time (the name now resolves somewhere
//!   forbidden): refused, not retried;
//! - anything else (another status, a redirect, which is not followed, a time-out, a connection
//!   error): retried after the backoff (`WEBHOOK_BACKOFF_MS`, doubling, up to an hour) or the
//!   receiver's `Retry-After` when longer, until `WEBHOOK_MAX_ATTEMPTS`; the last failure's
//!   `failed()` marks the message failed.
//!
//! Deliveries to one webhook run in [`LANES`] groups (by event), so a receiver that hangs
//! holds at most that many of the worker's `WEBHOOK_CONCURRENCY` slots and never delays
//! another receiver's deliveries.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use core_db::db::Timestamp;
use core_jobs::{Job, JobContext, RetryAfter};
use core_web::webhook::{Message, Outcome, Secret};
use serde::{Deserialize, Serialize};

use super::{DeliveryRow, QUEUE};
use crate::AppContext;
use crate::settings::ForgeRunConfig;

/// Groups one webhook's deliveries run in: each in order, the groups side by side.
pub const LANES: u64 = 8;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Delivers event `event_id` to webhook `webhook_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    /// The webhook.
    pub webhook_id: String,
    /// The event.
    pub event_id: String,
    /// Attempts allowed (`WEBHOOK_MAX_ATTEMPTS` when dispatched).
    pub attempts: u32,
    /// The first retry's wait in milliseconds (`WEBHOOK_BACKOFF_MS` when dispatched).
    pub backoff_ms: u64,
}

impl Deliver {
    /// The delivery of `event_id` to `webhook_id` under `settings`.
    pub fn new(webhook_id: &str, event_id: &str, settings: &ForgeRunConfig) -> Self {
        Self {
            webhook_id: webhook_id.to_owned(),
            event_id: event_id.to_owned(),
            attempts: u32::try_from(settings.webhook_max_attempts)
                .unwrap_or(u32::MAX)
                .max(1),
            backoff_ms: u64::try_from(settings.webhook_backoff.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A number from the delivery's ids and `salt`, the same wherever it is computed.
    fn hash(&self, salt: u64) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.webhook_id, &self.event_id, salt).hash(&mut hasher);
        hasher.finish()
    }

    /// The wait after failed attempt `attempt`, without the receiver's `Retry-After`:
    /// exponential, capped, with a ±20 % jitter derived from the ids, so the time the attempt
    /// records as `next_retry_at` is the time the worker waits.
    pub fn wait(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = Duration::from_millis(self.backoff_ms.saturating_mul(1 << exp)).min(MAX_BACKOFF);
        let jitter = 0.8 + 0.4 * (self.hash(u64::from(attempt)) % 1000) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

#[core_jobs::async_trait]
impl Job for Deliver {
    const NAME: &'static str = "forgerun.deliver";
    const QUEUE: &'static str = QUEUE;

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        self.attempt(app, ctx.attempt()).await
    }

    fn max_retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.wait(attempt)
    }

    fn timeout(&self) -> Duration {
        // The sender enforces WEBHOOK_TIMEOUT_MS; this bounds the database work around it.
        Duration::from_secs(3600)
    }

    // region: deliver-lanes
    fn group_id(&self) -> Option<String> {
        Some(format!(
            "webhook:{}:{}",
            self.webhook_id,
            self.hash(0) % LANES
        ))
    }
    // endregion: deliver-lanes

    // region: deliver-failed
    async fn failed(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        super::set_status(&app.db, &self.webhook_id, &self.event_id, "failed").await?;
        metrics::counter!("webhook_failures_total", "reason" => "exhausted").increment(1);
        tracing::warn!(
            webhook_id = self.webhook_id,
            event_id = self.event_id,
            error,
            "webhook delivery failed: attempts exhausted"
        );
        Ok(())
    }
    // endregion: deliver-failed
}

impl Deliver {
    /// One attempt (the `run`-th run of this job).
    async fn attempt(&self, app: &AppContext, run: u32) -> anyhow::Result<()> {
        let db = &app.db;
        // region: deliver-finished
        let Some(hook) = super::find(db, &self.webhook_id).await? else {
            return Ok(()); // deleted: nothing to deliver to
        };
        let Some(message) = super::message(db, &self.webhook_id, &self.event_id).await? else {
            return Ok(());
        };
        if message.status == "delivered" || message.status == "failed" {
            return Ok(()); // a duplicate run of a finished delivery
        }
        // endregion: deliver-finished
        if hook.disabled_at.is_some() {
            super::set_status(db, &self.webhook_id, &self.event_id, "disabled").await?;
            return Ok(());
        }
        // region: send-signed
        let secret = Secret::parse(&hook.secret)?;
        let number = message.attempts + 1;
        let sent = app
            .webhooks
            .send(
                &hook.url,
                &secret,
                &Message {
                    id: &self.event_id,
                    timestamp: chrono::Utc::now().timestamp(),
                    body: message.body.as_bytes(),
                },
            )
            .await;
        // endregion: send-signed
        let took = sent.duration;
        let last = run > self.max_retries();
        // The receiver's `Retry-After` wins over the backoff when longer (capped).
        let wait = |asked: Option<Duration>| {
            let backoff = self.wait(run);
            asked.map_or(backoff, |asked| asked.min(MAX_BACKOFF).max(backoff))
        };
        let (outcome, status, error, wait) = match &sent.outcome {
            Outcome::Delivered => ("delivered", "delivered", None, None),
            Outcome::Gone => (
                "gone",
                "disabled",
                Some("410 Gone: webhook disabled".to_owned()),
                None,
            ),
            Outcome::Refused(refused) => (
                "refused",
                "failed",
                Some(format!("refused: {refused}")),
                None,
            ),
            Outcome::Retry { retry_after, error } if !last => (
                "retrying",
                "pending",
                Some(error.clone()),
                Some(wait(*retry_after)),
            ),
            Outcome::Retry { error, .. } => ("failed", "pending", Some(error.clone()), None),
        };
        let next_retry_at = wait.and_then(|wait| {
            chrono::Duration::from_std(wait)
                .ok()
                .map(|wait| Timestamp::from(chrono::Utc::now() + wait))
        });
        let row = DeliveryRow {
            id: crate::ordered_id(),
            webhook_id: self.webhook_id.clone(),
            event_id: self.event_id.clone(),
            event_type: message.event_type.clone(),
            attempt: number,
            outcome: outcome.to_owned(),
            status_code: sent.status.map(i64::from),
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            error: error.clone(),
            next_retry_at,
            created_at: Timestamp::now(),
        };
        super::record_attempt(db, &row, status).await?;
        if outcome == "gone" {
            super::disable(db, &self.webhook_id, "the receiver answered 410 Gone").await?;
        }
        metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("webhook_delivery_seconds").record(took.as_secs_f64());
        if outcome != "delivered" {
            metrics::counter!("webhook_failures_total", "reason" => outcome).increment(1);
        }
        tracing::info!(
            webhook_id = self.webhook_id,
            event_id = self.event_id,
            event_type = message.event_type,
            attempt = number,
            outcome,
            status = sent.status,
            duration_ms = row.duration_ms,
            error = error.as_deref(),
            "webhook delivery attempt"
        );
        match (outcome, wait) {
            ("retrying", Some(wait)) => {
                Err(RetryAfter::new(wait, error.unwrap_or_default()).into())
            }
            ("failed", _) => Err(anyhow::anyhow!(error.unwrap_or_default())),
            _ => Ok(()),
        }
    }
}
