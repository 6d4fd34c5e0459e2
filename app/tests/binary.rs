//! The `app` binary: starts with embedded defaults, serves `/health`, runs the jobs its handlers
//! dispatch, exits 0 on SIGTERM and refuses invalid settings with a message naming the variable;
//! `app worker` runs jobs from the shared queue; `app jobs failed …` manages `failed_jobs`.
//! (Draining in-flight requests on shutdown is tested in core-web's `tests/server.rs`.)

mod common;

use common::process::{Lines, app, serve, terminate};

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use core_db::Database;
use core_jobs::{Dispatch, FailedJobs, FailureRecord, Queue};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET path` on `addr`: asserts 200 and returns the JSON body.
async fn get_ok(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let reply = test_support::http_request(addr, "GET", path, &[], b"")
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// region: binary-serve
#[tokio::test]
async fn serves_health_runs_dispatched_jobs_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, addr) = serve(
        dir.path(),
        &[
            ("REQUEST_TIMEOUT_MS", "10000"),
            ("WORK_TIME_SCALE", "0.001"),
        ],
    );

    assert_eq!(get_ok(addr, "/health").await["data"]["status"], "ok");
    get_ok(addr, "/ready").await;
    assert!(
        dir.path().join("data/app.sqlite3").exists(),
        "the embedded SQLite default is created"
    );
    // endregion: binary-serve

    // The README's walk-through: a client, a job, its state, its report. The default queue is
    // in-process, so `serve` runs the job too.
    let reply = test_support::http_request(
        addr,
        "POST",
        "/v1/clients",
        &[("content-type", "application/json")],
        br#"{"name": "walk-through"}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let auth = format!(
        "Bearer {}",
        reply.json()["data"]["api_key"].as_str().unwrap()
    );
    let reply = test_support::http_request(
        addr,
        "POST",
        "/v1/jobs",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        br#"{"work_kind": "SUCCESS_FAST"}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let id = reply.json()["data"]["job_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reply = test_support::http_request(
            addr,
            "GET",
            &format!("/v1/jobs/{id}"),
            &[("authorization", &auth)],
            b"",
        )
        .await
        .unwrap();
        if reply.json()["data"]["state"] == "SUCCEEDED" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", reply.json());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reply = test_support::http_request(
        addr,
        "GET",
        &format!("/v1/jobs/{id}/report"),
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(reply.json()["data"]["outcome"], "SUCCEEDED");
    lines.wait_for(&[
        r#""message":"job transition""#,
        &id,
        r#""next_state":"SUCCEEDED""#,
    ]);

    // region: binary-sigterm
    let exit = terminate(&mut child).await;
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        test_support::http_request(addr, "GET", "/health", &[], b"")
            .await
            .is_err(),
        "no longer accepting connections"
    );
    // endregion: binary-sigterm
}

#[test]
fn invalid_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, accepts) in [
        ("PORT", "seventy", "port number"),
        ("DATABASE_URL", "mysql://x", "postgres://"),
        ("LOG_FORMAT", "xml", "json"),
        ("CACHE_URL", "memcached://x", "memory://"),
        ("QUEUE_URL", "amqp://x", "memory://"),
    ] {
        let out = app(dir.path()).env(name, value).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stderr.contains(accepts), "{name}: {stderr}");
    }
    for args in [
        &["frobnicate"][..],
        &["serve", "now"],
        &["jobs"],
        &["jobs", "failed", "bogus"],
    ] {
        let out = app(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("usage: app"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("app jobs failed retry ID|all"));
    }
}

#[test]
fn migrate_command_applies_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = app(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/app.sqlite3").exists());
}

#[test]
fn an_unreachable_database_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = app(dir.path())
        .env(
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/none",
        )
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password is not printed: {stderr}"
    );

    let out = app(dir.path())
        .env("QUEUE_URL", "redis://:hunter2@127.0.0.1:1")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("QUEUE_URL (redis://:***@127.0.0.1:1)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is not printed: {stderr}"
    );
}

/// A failure of the `forgerun.run` job for job number `note`, failed `age` ago after 4 attempts.
fn failure(note: u64, error: &str, age: Duration) -> FailureRecord {
    let mut record = FailureRecord::new(
        format!("job-{note}"),
        <app::jobs::RunJob as core_jobs::Job>::NAME,
        "default",
        format!(r#"{{"job_id":"job-{note}","attempts":4,"backoff_unit_ms":1000}}"#),
        error,
    );
    record.attempts = 4;
    record.failed_at = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap();
    record
}

/// Runs `app jobs failed {args}` on the SQLite file `url` with `env` added.
fn failed_jobs(dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    app(dir)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .args(["jobs", "failed"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn failed_jobs_commands_list_show_forget_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
    let jobs = |args: &[&str]| failed_jobs(dir.path(), &url, &[], args);

    // MIGRATE_ON_START (on by default) creates the table on first use.
    let out = jobs(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l == "no failed jobs"),
        "{}",
        stdout(&out)
    );

    let store = FailedJobs::new(Database::connect(&url).await.unwrap());
    let old = store
        .record(&failure(8, "disk full", Duration::from_secs(10 * 86_400)))
        .await
        .unwrap();
    let recent = store
        .record(&failure(7, "smtp down\nat mailer.rs:10", Duration::ZERO))
        .await
        .unwrap();

    let out = jobs(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    let rows: Vec<&str> = listed
        .lines()
        .filter(|l| l.contains("\tforgerun.run\t"))
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows[0].starts_with(&format!("{recent}\t")),
        "newest first: {listed}"
    );
    assert!(
        rows[0].ends_with("\tforgerun.run\tdefault\t4\tsmtp down…"),
        "{listed}"
    );
    assert!(rows[1].starts_with(&format!("{old}\t")), "{listed}");
    assert!(rows[1].ends_with("\tdisk full"), "{listed}");

    let out = jobs(&["list", "1"]);
    assert!(!stdout(&out).contains("disk full"), "LIMIT is honoured");

    let out = jobs(&["show", &recent.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("job id:    job-7"), "{shown}");
    assert!(
        shown.contains(r#"payload:   {"job_id":"job-7","attempts":4,"backoff_unit_ms":1000}"#),
        "{shown}"
    );
    assert!(
        shown.contains("smtp down\nat mailer.rs:10"),
        "the full error: {shown}"
    );

    let out = jobs(&["forget", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no failed job with id 999999"),
        "{}",
        stderr(&out)
    );
    assert_eq!(store.count().await.unwrap(), 2);

    // Retrying onto the in-process queue would lose the job when the command exits.
    let out = jobs(&["retry", &recent.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("QUEUE_URL is memory://"),
        "{}",
        stderr(&out)
    );
    assert!(store.get(recent).await.unwrap().is_some(), "the row stays");

    let out = jobs(&["prune", "7d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pruned 1 failed job(s) older than 7d"),
        "{}",
        stdout(&out)
    );
    assert!(store.get(old).await.unwrap().is_none());
    assert!(store.get(recent).await.unwrap().is_some());

    let out = jobs(&["forget", &recent.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("forgot failed job {recent}")));
    assert_eq!(store.count().await.unwrap(), 0);

    for (args, says) in [
        (&["bogus"][..], "unrecognized subcommand 'bogus'"),
        (&["list", "many"], "bad LIMIT \"many\""),
        (&["prune", "7w"], "bad AGE \"7w\""),
        (&["show"], "required arguments were not provided:\n  <ID>"),
    ] {
        let out = jobs(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("usage: app"), "{args:?}");
    }
}

#[tokio::test]
async fn failed_jobs_retry_re_dispatches_to_the_shared_queue() {
    let Some(redis) =
        test_support::redis("failed_jobs_retry_re_dispatches_to_the_shared_queue").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
    let env = [
        ("QUEUE_URL", redis.url.as_str()),
        ("APP_NAME", &redis.prefix),
    ];
    let jobs = |args: &[&str]| failed_jobs(dir.path(), &url, &env, args);
    assert!(jobs(&["list"]).status.success(), "migrates");

    let store = FailedJobs::new(Database::connect(&url).await.unwrap());
    let first = store
        .record(&failure(1, "boom", Duration::ZERO))
        .await
        .unwrap();
    store
        .record(&failure(2, "boom", Duration::ZERO))
        .await
        .unwrap();
    let queue = Queue::from_url(&redis.url, redis.prefix.clone())
        .await
        .unwrap();

    let out = jobs(&["retry", &first.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("re-dispatched failed job {first} as job job-1")),
        "{}",
        stdout(&out)
    );
    assert!(
        store.get(first).await.unwrap().is_none(),
        "the row is deleted"
    );
    assert_eq!(queue.stats("default").await.unwrap().ready, 1);

    let out = jobs(&["retry", "424242"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no failed job with id 424242"));

    let out = jobs(&["retry", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("re-dispatched 1 failed job(s)"));
    assert_eq!(store.count().await.unwrap(), 0);
    assert_eq!(queue.stats("default").await.unwrap().ready, 2);

    // The app's worker on the same queue runs the re-dispatched jobs.
    let (_router, state, _state_dir) = common::app(&env).await;
    let worker = app::worker(&state).spawn().unwrap();
    let started = Instant::now();
    while worker.stats().processed < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            worker.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    assert_eq!(worker.stats().failed, 0);
    let left = queue.stats("default").await.unwrap();
    assert_eq!((left.ready, left.in_flight), (0, 0));
}

#[tokio::test]
async fn worker_command_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = app(dir.path())
        .arg("worker")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    lines.wait_for(&["QUEUE_URL is memory://", "WARN"]);
    lines.wait_for(&[r#""message":"worker started""#]);
    let exit = terminate(&mut child).await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn worker_command_runs_jobs_from_the_shared_queue() {
    let Some(redis) = test_support::redis("worker_command_runs_jobs_from_the_shared_queue").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = app(dir.path())
        .arg("worker")
        .env("QUEUE_URL", &redis.url)
        .env("APP_NAME", &redis.prefix)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    lines.wait_for(&[r#""message":"worker started""#]);

    let queue = Queue::from_url(&redis.url, redis.prefix.clone())
        .await
        .unwrap();
    app::jobs::retention::Retention
        .dispatch(&queue)
        .await
        .unwrap();
    lines.wait_for(&[r#""message":"retention pass""#, r#""jobs":0"#]);

    let exit = terminate(&mut child).await;
    assert!(exit.success(), "exit status {exit:?}");
    let left = queue.stats("default").await.unwrap();
    assert_eq!((left.ready, left.in_flight), (0, 0));
}

/// `CACHE_URL=tiered+redis://…`, as the README shows it, starts the app and serves requests
/// through a tiered cache (memory L1 in front of that Redis).
#[tokio::test]
async fn a_tiered_cache_url_starts_the_app_and_serves() {
    let Some(redis) = test_support::redis("a_tiered_cache_url_starts_the_app_and_serves").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache_url = format!("tiered+{}", redis.url);
    let (mut child, _lines, addr) = serve(
        dir.path(),
        &[("CACHE_URL", &cache_url), ("APP_NAME", &redis.prefix)],
    );
    let checks = get_ok(addr, "/ready").await["data"].clone();
    let cache = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cache")
        .cloned()
        .unwrap();
    assert_eq!(cache["driver"], "tiered", "{checks}");
    let exit = terminate(&mut child).await;
    assert!(exit.success(), "exit status {exit:?}");
}

/// `--help` works on every command: printed on stdout, exit status 0, before any setting is read
/// (an invalid one does not stop it).
#[test]
fn help_is_printed_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--help"][..], "Usage: app [COMMAND]"),
        (&["serve", "--help"], "Usage: app serve"),
        (&["worker", "--help"], "Usage: app worker"),
        (
            &["jobs", "failed", "--help"],
            "Usage: app jobs failed [COMMAND]",
        ),
        (
            &["jobs", "failed", "prune", "--help"],
            "Usage: app jobs failed prune <AGE>",
        ),
    ] {
        let out = app(dir.path())
            .env("PORT", "not-a-port")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(says), "{args:?}: {help}");
    }
    let out = app(dir.path())
        .args(["jobs", "failed", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["list", "show", "retry", "forget", "prune"] {
        assert!(help.contains(command), "{help}");
    }
}
