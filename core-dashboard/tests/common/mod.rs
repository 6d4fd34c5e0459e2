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

/// What [`Held`] jobs wait at: put it in the worker's context, add permits to let them finish.
#[derive(Debug, Clone)]
pub struct Gate(pub std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    /// Closed: no job passes until permits are added.
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

/// A job that runs until the [`Gate`] in its context lets it go, then fails when `fail` is set
/// (without retries).
#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    pub fail: bool,
}

#[core_jobs::async_trait]
impl Job for Held {
    const NAME: &'static str = "held";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let gate = ctx.ext::<Gate>().expect("a gate in the context");
        gate.0.acquire().await?.forget();
        if self.fail {
            anyhow::bail!("held and failed");
        }
        Ok(())
    }

    fn max_retries(&self) -> u32 {
        0
    }
}

/// Signs in to the dashboard mounted at `prefix` in `app` with `token`, as a page on `host`
/// does; the session cookie (`name=value`).
pub async fn sign_in(app: &axum::Router, prefix: &str, host: &str, token: &str) -> String {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let request = Request::post(format!("{prefix}/login"))
        .header("host", host)
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}
