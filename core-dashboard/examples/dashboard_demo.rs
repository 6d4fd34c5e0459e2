//! The jobs dashboard on a real port, with its page, for trying it out and for the page's
//! browser tests (core-dashboard/frontend/e2e/run.mjs): the in-process queue with a few jobs
//! waiting, and failures on a fresh SQLite file seeded with five failed jobs.
//!
//! ```sh
//! (cd core-dashboard/frontend && npm install && npm run build)
//! DASHBOARD_TOKEN=let-me-in PORT=3999 cargo run -p core-dashboard --example dashboard_demo
//! # then open http://127.0.0.1:3999/admin/jobs/ and sign in with the token
//! ```
//!
//! `DASHBOARD_TOKEN` is the admin token (required); `PORT` the port on 127.0.0.1 (0, the default,
//! picks a free one). It prints `listening on http://127.0.0.1:PORT/admin/jobs/` once it serves.
//!
//! With `DEMO_TRAFFIC=1` it also runs a worker in the process and keeps dispatching jobs to
//! `default` and `mail`, about one in five failing (some after a retry), and samples the
//! throughput every second over a ten-minute window, so the charts move while you watch. It
//! also shows a third queue, `reports`, where a `report` job that runs for three seconds is
//! dispatched every six, so that one job can be followed from the running jobs to the recent
//! ones; and it keeps the last 1000 finished jobs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use chrono::Utc;
use core_dashboard::Dashboard;
use core_db::Database;
use core_jobs::{
    DispatchOptions, FailedJobs, FailureRecord, Job, JobContext, Queue, ScheduledJob, Worker,
};
use serde::{Deserialize, Serialize};

/// A job for the counts: only queued (run by the worker of `DEMO_TRAFFIC=1`).
#[derive(Debug, Serialize, Deserialize)]
struct SendMail {
    to: String,
}

#[core_jobs::async_trait]
impl Job for SendMail {
    const NAME: &'static str = "mail";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A job of the demo's traffic: succeeds, or fails `fails` times (one retry allowed).
#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: u64,
    fails: u32,
}

#[core_jobs::async_trait]
impl Job for Work {
    const NAME: &'static str = "work";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(20 + self.n % 40)).await;
        if ctx.attempt() <= self.fails {
            anyhow::bail!("work {} failed on attempt {}", self.n, ctx.attempt());
        }
        Ok(())
    }

    fn max_retries(&self) -> u32 {
        1
    }

    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_millis(300)
    }
}

/// A slow job of the demo's traffic: runs for `ms` milliseconds, then succeeds.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    ms: u64,
}

#[core_jobs::async_trait]
impl Job for Report {
    const NAME: &'static str = "report";
    const QUEUE: &'static str = "reports";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

/// Dispatches a three-second [`Report`] every six seconds, the first at once.
async fn reports(queue: Queue) {
    loop {
        if let Err(err) = queue.dispatch(&Report { ms: 3000 }).await {
            eprintln!("demo reports: {err}");
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
}

/// Keeps dispatching [`Work`] to `default` and `mail`, a few jobs every 100 ms.
async fn traffic(queue: Queue) {
    let mut n: u64 = 0;
    loop {
        for _ in 0..(1 + n % 3) {
            n += 1;
            // One in five fails for good, one in ten fails once and succeeds on its retry.
            let fails = match n % 10 {
                3 | 7 => 2,
                5 => 1,
                _ => 0,
            };
            let on = if n.is_multiple_of(3) {
                "mail"
            } else {
                "default"
            };
            let dispatched = queue
                .dispatch_with(&Work { n, fails }, DispatchOptions::new().on_queue(on))
                .await;
            if let Err(err) = dispatched {
                eprintln!("demo traffic: {err}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The failures the demo starts with: job name, queue, error, minutes ago, payload.
const FAILURES: [(&str, &str, &str, i64, &str); 5] = [
    (
        "mail",
        "default",
        "SMTP timed out after 30s",
        50,
        r#"{"to":"ada@example.com","template":"welcome"}"#,
    ),
    (
        "mail",
        "mail",
        "connection refused (smtp.example.com:587)",
        40,
        r#"{"to":"grace@example.com","template":"reset"}"#,
    ),
    (
        "resize",
        "default",
        "image 100% too large: 9000x9000",
        30,
        r#"{"path":"uploads/cat.png","width":9000}"#,
    ),
    (
        "mail",
        "default",
        "SMTP timed out after 30s",
        20,
        r#"{"to":"linus@example.com","template":"digest"}"#,
    ),
    (
        "report",
        "mail",
        "disk full",
        10,
        r#"{"month":"2026-11","format":"pdf"}"#,
    ),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let token = std::env::var("DASHBOARD_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("set DASHBOARD_TOKEN to the admin token")?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .filter(|p| !p.is_empty())
        .map_or(Ok(0), |p| p.parse())
        .context("PORT must be a port number")?;

    // A fresh SQLite file with the framework's migrations, removed when the demo ends.
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    for (name, queue, error, minutes_ago, payload) in FAILURES {
        let mut record =
            FailureRecord::new(format!("{name}-{minutes_ago}"), name, queue, payload, error);
        record.attempts = 3;
        record.failed_at = Utc::now() - chrono::Duration::minutes(minutes_ago);
        failed.record(&record).await?;
    }

    let queue = Queue::memory();
    for to in ["a@example.com", "b@example.com"] {
        queue.dispatch(&SendMail { to: to.into() }).await?;
    }
    queue
        .dispatch_with(
            &SendMail {
                to: "c@example.com".into(),
            },
            DispatchOptions::new().on_queue("mail"),
        )
        .await?;
    queue
        .dispatch_in(
            &SendMail {
                to: "later@example.com".into(),
            },
            Duration::from_secs(3600),
        )
        .await?;

    let busy = std::env::var("DEMO_TRAFFIC").is_ok_and(|v| v == "1");
    // What a scheduler would run; the dashboard lists it (nothing here dispatches it).
    let schedule = [
        ScheduledJob::new("0 0 7 * * mon-fri", || SendMail {
            to: "team@example.com".to_owned(),
        })?
        .name("morning-digest"),
        ScheduledJob::new("0 */15 * * * *", || Work { n: 0, fails: 0 })?.without_overlapping(),
    ];
    let mut builder = Dashboard::builder(queue.clone(), failed.clone())
        .queue_names(["default", "mail"])
        .schedule(schedule)
        .token_login(token);
    let mut worker = None;
    if busy {
        builder = builder
            .queue_name("reports")
            .sample_interval(Duration::from_secs(1))
            .throughput_window(Duration::from_secs(600))
            .recent_jobs(1000);
        worker = Some(
            Worker::new(queue.clone(), JobContext::new(queue.clone()))
                .register::<Work>()
                .register::<SendMail>()
                .register::<Report>()
                .queue("mail")
                .queue("reports")
                .failed_store(failed)
                .spawn()?,
        );
        tokio::spawn(reports(queue.clone()));
        tokio::spawn(traffic(queue));
    }
    let dashboard = builder.build()?;
    let app = Router::new().nest_service("/admin/jobs", dashboard.router());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}/admin/jobs/");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    drop(sqlite);
    Ok(())
}
