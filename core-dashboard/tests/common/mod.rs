//! What the dashboard's route tests share.
#![allow(dead_code)]

use core_jobs::{Job, JobContext};
use serde::{Deserialize, Serialize};

/// A job that does nothing: something to dispatch, count and schedule.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping;

#[core_jobs::async_trait]
impl Job for Ping {
    const NAME: &'static str = "ping";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}
