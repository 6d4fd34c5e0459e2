//! The testing recipe's own tests (cookbook chapter 11): a request's rules checked directly and
//! through HTTP, and a job's `handle` and `failed` called directly, without a worker.

#[macro_use]
mod common;

use app::jobs::{RunJob, State, store};
use app::routes::jobs::SubmitJob;
use axum::http::StatusCode;
use common::{Drivers, call, register, test_app};
use core_jobs::Job;
use serde_json::json;
use validator::Validate;

// region: contract-direct
/// The rules `SubmitJob` declares (`#[validate(...)]`), checked on the struct: no router, no
/// database, no runtime.
#[test]
fn submit_job_rules_hold_on_the_struct() {
    let good = SubmitJob {
        work_kind: "SUCCESS_FAST".to_owned(),
        execution_at: None,
        callback: Some("https://example.com/hook".to_owned()),
        max_attempts: Some(3),
    };
    assert!(good.validate().is_ok());

    let bad = SubmitJob {
        work_kind: String::new(),
        callback: Some("not a url".to_owned()),
        max_attempts: Some(11),
        ..good
    };
    let errors = bad.validate().unwrap_err();
    let fields = errors.field_errors();
    assert_eq!(fields["work_kind"][0].code, "length");
    assert_eq!(fields["callback"][0].code, "url");
    assert_eq!(fields["max_attempts"][0].code, "range");
    assert_eq!(fields.len(), 3, "{fields:?}");
}
// endregion: contract-direct

// region: contract-http
/// The same rules through `POST /v1/jobs`: 422 `VALIDATION_ERROR` with the messages per field,
/// and the handler's own rules (a work kind that exists, `execution_at` not in the past) answer
/// the same way. Nothing refused is written.
#[tokio::test]
async fn submit_job_rules_answer_422_with_field_errors() {
    let (router, ctx, _dir) = common::app(&[]).await;
    let client = register(&router).await;

    let body = json!({"work_kind": "SUCCESS_FAST", "max_attempts": 11});
    let reply = call(&router, &client, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.json
    );
    assert_eq!(reply.json["error_code"], "VALIDATION_ERROR");
    assert!(reply.json["errors"]["max_attempts"][0].is_string());

    let body = json!({"work_kind": "NOPE"});
    let reply = call(&router, &client, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json["errors"]["work_kind"][0],
        r#""NOPE" is not a work kind that can be submitted"#
    );

    let body = json!({"work_kind": "SUCCESS_FAST", "execution_at": "2000-01-01T00:00:00Z"});
    let reply = call(&router, &client, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json["errors"]["execution_at"][0],
        "must not be in the past"
    );

    let jobs: i64 = core_db::on_db!(&ctx.db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(pool).await
    })
    .unwrap();
    assert_eq!(jobs, 0, "nothing refused was written");
}
// endregion: contract-http

on_both!(
    run_job_handle_succeeds_without_a_worker,
    run_job_last_failure_then_failed_marks_it_failed,
);

// region: job-handle
/// `RunJob::handle` called directly on a job submitted through the API: no worker is started,
/// so this run is the only one. `AppContext::job_context` is what the worker hands every job.
async fn run_job_handle_succeeds_without_a_worker(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let client = register(&t.router).await;
    let body = json!({"work_kind": "SUCCESS_FAST"});
    let reply = call(&t.router, &client, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();

    let job = RunJob {
        job_id: id.clone(),
        attempts: 1,
        backoff_unit_ms: 1,
    };
    job.handle(&t.ctx.job_context()).await.unwrap();

    let row = store::find(&t.ctx.db, &id).await.unwrap().unwrap();
    assert_eq!(row.state(), State::Succeeded);
    assert_eq!(row.attempt, 1);
}
// endregion: job-handle

// region: job-failed
/// The last attempt of a failing job: `handle` returns the error (the worker would retry it, or
/// call `failed` after the last attempt), and `failed` marks the job FAILED with the reason.
async fn run_job_last_failure_then_failed_marks_it_failed(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let client = register(&t.router).await;
    let body = json!({"work_kind": "FAIL_IMMEDIATE", "max_attempts": 1});
    let reply = call(&t.router, &client, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();

    let ctx = t.ctx.job_context();
    let job = RunJob {
        job_id: id.clone(),
        attempts: 1,
        backoff_unit_ms: 1,
    };
    let error = job.handle(&ctx).await.unwrap_err().to_string();
    assert_eq!(error, "FAIL_IMMEDIATE failed on attempt 1");
    let row = store::find(&t.ctx.db, &id).await.unwrap().unwrap();
    assert_eq!(row.state(), State::Running, "only failed() ends the job");

    job.failed(&ctx, &error).await.unwrap();
    let row = store::find(&t.ctx.db, &id).await.unwrap().unwrap();
    assert_eq!(row.state(), State::Failed);
    assert_eq!(row.outcome.as_deref(), Some("FAILED"));
    assert_eq!(row.error.as_deref(), Some(error.as_str()));

    // A second call (a duplicate delivery of the same failure) changes nothing.
    job.failed(&ctx, &error).await.unwrap();
    let again = store::find(&t.ctx.db, &id).await.unwrap().unwrap();
    assert_eq!(again.updated_at, row.updated_at);
}
// endregion: job-failed
