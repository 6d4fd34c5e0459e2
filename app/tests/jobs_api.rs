//! `/v1/jobs` through the router and the whole middleware stack, on both driver sets: every
//! route, validation, scoping to the caller, idempotency, limits, problem details and reads
//! racing transitions.

#[macro_use]
mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Client, Drivers, Reply, TestApp, call, register, send, start, stop, test_app};
use serde_json::{Value, json};

/// How many rows `table` holds.
async fn rows(t: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    core_db::on_db!(&t.ctx.db, pool => sqlx::query_scalar(&sql).fetch_one(pool).await).unwrap()
}

async fn submit(router: &Router, client: &Client, body: Value) -> Reply {
    call(router, client, "POST", "/v1/jobs", Some(body), &[]).await
}

/// Polls `GET /v1/jobs/{id}` until the job is in a final state.
async fn wait_final(router: &Router, client: &Client, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = call(router, client, "GET", &format!("/v1/jobs/{id}"), None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let state = reply.json["data"]["state"].as_str().unwrap().to_owned();
        if ["SUCCEEDED", "FAILED", "CANCELED"].contains(&state.as_str()) {
            return reply.json["data"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// region: on-both-list
on_both!(
    submit_read_report_and_list,
    bad_submissions_are_refused_with_field_errors,
    another_clients_jobs_are_404_everywhere,
    cancel_and_retry_through_http,
    idempotency_replays_refuses_and_waits,
    limits_refuse_without_writing,
    errors_as_problem_details,
    reads_never_go_back_in_time,
    the_rate_limit_is_per_client,
    metrics_name_jobs_and_routes,
    callbacks_reach_allowed_networks_only,
);
// endregion: on-both-list

// region: integration
async fn submit_read_report_and_list(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let c = register(&t.router).await;

    let reply = submit(&t.router, &c, json!({"work_kind": "LARGE_OUTPUT"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let job = &reply.json["data"];
    let id = job["job_id"].as_str().unwrap().to_owned();
    for field in [
        "job_id",
        "work_kind",
        "state",
        "attempt",
        "max_attempts",
        "outcome",
        "created_at",
        "updated_at",
        "execution_at",
        "callback",
    ] {
        assert!(job.get(field).is_some(), "{field} missing from {job}");
    }
    assert_eq!(job["state"], "QUEUED");
    assert_eq!(job["max_attempts"], 3);

    let done = wait_final(&t.router, &c, &id).await;
    assert_eq!(done["state"], "SUCCEEDED");
    assert_eq!(done["outcome"], "SUCCEEDED");
    assert_eq!(done["attempt"], 1);

    let reply = call(
        &t.router,
        &c,
        "GET",
        &format!("/v1/jobs/{id}/report"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let report = &reply.json["data"];
    assert_eq!(report["outcome"], "SUCCEEDED");
    assert!(report["duration_ms"].as_i64().unwrap() >= 0);
    assert!(report["queue_wait_ms"].as_i64().unwrap() >= 0);
    let names: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["next_state"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["CREATED", "QUEUED", "ASSIGNED", "RUNNING", "SUCCEEDED"]
    );
    // endregion: integration
    for event in report["events"].as_array().unwrap() {
        for field in [
            "event_id",
            "event_name",
            "prev_state",
            "next_state",
            "timestamp",
        ] {
            assert!(event.get(field).is_some(), "{field} missing from {event}");
        }
    }
    let artifacts = report["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0]["size"], 256 * 1024);
    assert!(artifacts[0]["url"].as_str().unwrap().contains("output.txt"));

    // The list: newest first, filters, pagination.
    for kind in ["SUCCESS_FAST", "FAIL_IMMEDIATE", "SUCCESS_FAST"] {
        let reply = submit(&t.router, &c, json!({"work_kind": kind})).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let reply = call(&t.router, &c, "GET", "/v1/jobs?per_page=2", None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["meta"]["total"], 4);
    assert_eq!(reply.json["meta"]["last_page"], 2);
    assert_eq!(reply.json["data"].as_array().unwrap().len(), 2);
    let reply = call(
        &t.router,
        &c,
        "GET",
        "/v1/jobs?filter[work_kind]=SUCCESS_FAST",
        None,
        &[],
    )
    .await;
    assert_eq!(reply.json["meta"]["total"], 2, "{}", reply.json);
    let reply = call(
        &t.router,
        &c,
        "GET",
        "/v1/jobs?filter[state]=SUCCEEDED&sort=created_at",
        None,
        &[],
    )
    .await;
    assert_eq!(
        reply.json["data"][0]["job_id"],
        id.as_str(),
        "{}",
        reply.json
    );
    let reply = call(
        &t.router,
        &c,
        "GET",
        "/v1/jobs?filter[created_at][lt]=2000-01-01",
        None,
        &[],
    )
    .await;
    assert_eq!(reply.json["meta"]["total"], 0);
    let reply = call(&t.router, &c, "GET", "/v1/jobs?filter[nope]=1", None, &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    stop(shutdown, background).await;
}

async fn bad_submissions_are_refused_with_field_errors(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let c = register(&t.router).await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let cases = [
        (json!({"work_kind": "NOPE"}), "work_kind"),
        (json!({"work_kind": "PAYLOAD_INVALID"}), "work_kind"),
        (json!({"work_kind": ""}), "work_kind"),
        (
            json!({"work_kind": "SUCCESS_FAST", "execution_at": past}),
            "execution_at",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "execution_at": "tomorrow"}),
            "execution_at",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "execution_at": "2099-01-01T00:00:00.5Z"}),
            "execution_at",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "execution_at": "2099-01-01T00:00:00+02:00"}),
            "execution_at",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "max_attempts": 11}),
            "max_attempts",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "ftp://x"}),
            "callback",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "not a url"}),
            "callback",
        ),
        // Callbacks that would reach the server's own network.
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "http://127.0.0.1:9/hook"}),
            "callback",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "http://169.254.169.254/latest/meta-data/"}),
            "callback",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "http://[::ffff:10.0.0.1]/"}),
            "callback",
        ),
        (
            json!({"work_kind": "SUCCESS_FAST", "callback": "https://user:pw@93.184.215.14/"}),
            "callback",
        ),
    ];
    for (body, field) in cases {
        let reply = submit(&t.router, &c, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.json
        );
        assert!(
            reply.json["errors"][field].is_array(),
            "{body}: {}",
            reply.json
        );
    }
    for body in [
        json!({"work_kind": "SUCCESS_FAST", "colour": "red"}),
        json!([1]),
        json!({}),
    ] {
        let reply = submit(&t.router, &c, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.json
        );
    }
    let count: i64 = rows(&t, "jobs").await;
    assert_eq!(count, 0, "nothing refused was written");
    let reply = call(&t.router, &c, "GET", "/v1/jobs/not-a-uuid", None, &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error_code"], "RFA_JOB_NOT_FOUND");
}

async fn another_clients_jobs_are_404_everywhere(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let (a, b) = (register(&t.router).await, register(&t.router).await);
    let reply = submit(
        &t.router,
        &a,
        json!({"work_kind": "FAIL_IMMEDIATE", "max_attempts": 1}),
    )
    .await;
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
    wait_final(&t.router, &a, &id).await;
    for (method, path) in [
        ("GET", format!("/v1/jobs/{id}")),
        ("GET", format!("/v1/jobs/{id}/report")),
        ("POST", format!("/v1/jobs/{id}/cancel")),
        ("POST", format!("/v1/jobs/{id}/retry")),
    ] {
        let reply = call(&t.router, &b, method, &path, None, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            reply.json
        );
        assert_eq!(reply.json["error_code"], "RFA_JOB_NOT_FOUND");
    }
    // No filter reaches another client's rows.
    for query in [
        "",
        "?filter[state]=FAILED",
        "?q=FAIL",
        "?filter[work_kind]=FAIL_IMMEDIATE",
    ] {
        let reply = call(&t.router, &b, "GET", &format!("/v1/jobs{query}"), None, &[]).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.json["meta"]["total"], 0, "{query}: {}", reply.json);
        }
    }
    let reply = call(&t.router, &a, "GET", "/v1/jobs", None, &[]).await;
    assert_eq!(reply.json["meta"]["total"], 1);
    let _ = &a.id;
    stop(shutdown, background).await;
}

async fn cancel_and_retry_through_http(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.1")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let c = register(&t.router).await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let reply = submit(
        &t.router,
        &c,
        json!({"work_kind": "CANCEL_BEFORE_START", "execution_at": later}),
    )
    .await;
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
    let reply = call(
        &t.router,
        &c,
        "POST",
        &format!("/v1/jobs/{id}/cancel"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"]["state"], "CANCELED");
    // Again: a no-op answering the current state.
    let reply = call(
        &t.router,
        &c,
        "POST",
        &format!("/v1/jobs/{id}/cancel"),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["data"]["state"].as_str()),
        (StatusCode::OK, Some("CANCELED"))
    );
    // Retry only from FAILED: 409 naming the state.
    let reply = call(
        &t.router,
        &c,
        "POST",
        &format!("/v1/jobs/{id}/retry"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json["error_code"], "RFA_JOB_CONFLICT");
    assert!(reply.json["message"].as_str().unwrap().contains("CANCELED"));

    // Running: 202 while it stops.
    let reply = submit(&t.router, &c, json!({"work_kind": "CANCEL_DURING_RUN"})).await;
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = call(&t.router, &c, "GET", &format!("/v1/jobs/{id}"), None, &[]).await;
        if reply.json["data"]["state"] == "RUNNING" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = call(
        &t.router,
        &c,
        "POST",
        &format!("/v1/jobs/{id}/cancel"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    assert_eq!(wait_final(&t.router, &c, &id).await["state"], "CANCELED");

    // FAILED → retry → QUEUED with one more attempt.
    let reply = submit(
        &t.router,
        &c,
        json!({"work_kind": "FAIL_IMMEDIATE", "max_attempts": 1}),
    )
    .await;
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
    assert_eq!(wait_final(&t.router, &c, &id).await["state"], "FAILED");
    let reply = call(
        &t.router,
        &c,
        "POST",
        &format!("/v1/jobs/{id}/retry"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"]["state"], "QUEUED");
    assert_eq!(reply.json["data"]["max_attempts"], 2);
    let done = wait_final(&t.router, &c, &id).await;
    assert_eq!(
        (done["state"].as_str(), done["attempt"].as_i64()),
        (Some("FAILED"), Some(2))
    );
    stop(shutdown, background).await;
}

async fn idempotency_replays_refuses_and_waits(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let c = register(&t.router).await;
    let body = json!({"work_kind": "SUCCESS_FAST", "max_attempts": 2});
    let key = [("idempotency-key", "order-42")];
    let first = call(&t.router, &c, "POST", "/v1/jobs", Some(body.clone()), &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    assert!(first.headers.get("idempotency-replayed").is_none());
    // Same key, same body (keys in another order): the original response.
    let same = json!({"max_attempts": 2, "work_kind": "SUCCESS_FAST"});
    let again = call(&t.router, &c, "POST", "/v1/jobs", Some(same), &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(again.json, first.json);
    // Same key, different body: 422.
    let other = json!({"work_kind": "SUCCESS_NORMAL"});
    let reply = call(&t.router, &c, "POST", "/v1/jobs", Some(other), &key).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["error_code"], "RFA_EXEC_IDEMPOTENCY_CONFLICT");
    // Another client's same key is its own.
    let d = register(&t.router).await;
    let reply = call(&t.router, &d, "POST", "/v1/jobs", Some(body.clone()), &key).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_ne!(reply.json["data"]["job_id"], first.json["data"]["job_id"]);
    // In flight: a claim not yet completed answers 409 with Retry-After: 1.
    let app::idempotency::Claim::Owned(held) = app::idempotency::claim(
        &t.ctx.db,
        &c.id,
        "in-flight",
        &app::routes::jobs::SubmitJob {
            work_kind: "SUCCESS_FAST".into(),
            execution_at: None,
            callback: None,
            max_attempts: None,
        },
    )
    .await
    .unwrap() else {
        panic!("a fresh key is owned");
    };
    let reply = call(
        &t.router,
        &c,
        "POST",
        "/v1/jobs",
        Some(json!({"work_kind": "SUCCESS_FAST"})),
        &[("idempotency-key", "in-flight")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.json);
    assert_eq!(reply.headers["retry-after"], "1");
    held.release(&t.ctx.db).await;
    let reply = call(
        &t.router,
        &c,
        "POST",
        "/v1/jobs",
        Some(json!({"work_kind": "SUCCESS_FAST"})),
        &[("idempotency-key", "in-flight")],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "released: the retry goes through"
    );
    // Bad keys.
    let long = "k".repeat(256);
    let reply = call(
        &t.router,
        &c,
        "POST",
        "/v1/jobs",
        Some(body),
        &[("idempotency-key", &long)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let count: i64 = rows(&t, "jobs").await;
    assert_eq!(count, 3, "one job per accepted key");
}

async fn limits_refuse_without_writing(drivers: Drivers, test: &str) {
    let Some(t) = test_app(
        drivers,
        test,
        &[
            ("MAX_ACTIVE_JOBS_PER_CLIENT", "2"),
            ("MAX_QUEUE_DEPTH", "3"),
        ],
    )
    .await
    else {
        return;
    };
    let (a, b) = (register(&t.router).await, register(&t.router).await);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let body = json!({"work_kind": "SCHEDULED_FAR_FUTURE", "execution_at": later});
    for _ in 0..2 {
        assert_eq!(
            submit(&t.router, &a, body.clone()).await.status,
            StatusCode::ACCEPTED
        );
    }
    let reply = submit(&t.router, &a, body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.json
    );
    assert_eq!(reply.json["error_code"], "RFA_EXEC_QUEUE_FULL");
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        submit(&t.router, &b, body.clone()).await.status,
        StatusCode::ACCEPTED
    );
    let reply = submit(&t.router, &b, body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "queue depth 3 reached"
    );
    let count: i64 = rows(&t, "jobs").await;
    assert_eq!(count, 3);
    let outbox: i64 = rows(&t, "job_outbox").await;
    assert!(outbox <= 3, "no dispatch was written for a refused job");

    // A job that becomes final frees its place, at the latest once the counts are refreshed.
    let listed = call(&t.router, &a, "GET", "/v1/jobs", None, &[]).await;
    let first = listed.json["data"][0]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a job in {}", listed.json))
        .to_owned();
    let path = format!("/v1/jobs/{first}/cancel");
    let canceled = call(&t.router, &a, "POST", &path, None, &[]).await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.json);
    let deadline = std::time::Instant::now() + app::jobs::limits::REFRESH * 8;
    loop {
        let reply = submit(&t.router, &a, body.clone()).await;
        if reply.status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.json
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the canceled job still counts after {:?}",
            app::jobs::limits::REFRESH * 8
        );
        tokio::time::sleep(app::jobs::limits::REFRESH / 5).await;
    }
    let reply = submit(&t.router, &a, body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the freed place is taken"
    );
}

/// `WEBHOOK_ALLOW_NETWORKS` lets a callback into a listed network and nowhere else that is not
/// public; refused submissions write nothing.
async fn callbacks_reach_allowed_networks_only(drivers: Drivers, test: &str) {
    let Some(t) = test_app(
        drivers,
        test,
        &[("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8, ::1/128")],
    )
    .await
    else {
        return;
    };
    let c = register(&t.router).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "https://93.184.215.14/in",
    ] {
        let reply = submit(
            &t.router,
            &c,
            json!({"work_kind": "SUCCESS_FAST", "callback": url}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{url}: {}", reply.json);
        assert_eq!(reply.json["data"]["callback"], url);
    }
    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/",
        "http://[fe80::1]/",
    ] {
        let reply = submit(
            &t.router,
            &c,
            json!({"work_kind": "SUCCESS_FAST", "callback": url}),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            reply.json
        );
        let message = reply.json["errors"]["callback"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("address"), "{url}: {message}");
    }
    assert_eq!(
        rows(&t, "jobs").await,
        3,
        "only the allowed callbacks were accepted"
    );
}

async fn errors_as_problem_details(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let c = register(&t.router).await;
    let id = uuid::Uuid::new_v4();
    let req = Request::get(format!("/v1/jobs/{id}"))
        .header("authorization", format!("Bearer {}", c.key))
        .header("accept", "application/problem+json")
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(t.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["code"], "RFA_JOB_NOT_FOUND");
    assert_eq!(problem["instance"], format!("/v1/jobs/{id}"));
    for field in ["type", "title", "detail"] {
        assert!(problem[field].is_string(), "{field}: {problem}");
    }
}

/// Readers polling a job while the worker moves it never see a state older than one they (or
/// anyone) saw before: each reader's observations follow the job's events in order, and once
/// the job is final every read says so.
async fn reads_never_go_back_in_time(drivers: Drivers, test: &str) {
    let Some(t) = test_app(
        drivers,
        test,
        &[
            ("WORK_TIME_SCALE", "0.005"),
            ("RATE_LIMIT_PER_MINUTE", "10000000"),
        ],
    )
    .await
    else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let c = std::sync::Arc::new(register(&t.router).await);
    for round in 0..20 {
        let kind = if round % 2 == 0 {
            "SUCCESS_FAST"
        } else {
            "RETRY_ON_FAIL"
        };
        let reply = submit(&t.router, &c, json!({"work_kind": kind})).await;
        let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (router, c, id) = (t.router.clone(), c.clone(), id.clone());
            readers.push(tokio::spawn(async move {
                let mut seen: Vec<(i64, String)> = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{id}: reads never reached a final state: {:?}",
                        seen.last()
                    );
                    let reply =
                        call(&router, &c, "GET", &format!("/v1/jobs/{id}"), None, &[]).await;
                    let data = &reply.json["data"];
                    let state = data["state"].as_str().unwrap().to_owned();
                    let stamp =
                        chrono::DateTime::parse_from_rfc3339(data["updated_at"].as_str().unwrap())
                            .unwrap()
                            .timestamp_millis();
                    seen.push((stamp, state.clone()));
                    if ["SUCCEEDED", "FAILED", "CANCELED"].contains(&state.as_str()) {
                        return seen;
                    }
                    // A read served from memory end to end never waits: yield, as a client
                    // behind a socket would, so the worker gets the runtime's threads too.
                    tokio::task::yield_now().await;
                }
            }));
        }
        for reader in readers {
            let seen = reader.await.unwrap();
            for pair in seen.windows(2) {
                assert!(
                    pair[1].0 >= pair[0].0,
                    "{id}: went back from {:?} to {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        // The database's final state is what every later read serves.
        let row = app::jobs::store::find(&t.ctx.db, &id)
            .await
            .unwrap()
            .unwrap();
        let reply = call(&t.router, &c, "GET", &format!("/v1/jobs/{id}"), None, &[]).await;
        assert_eq!(reply.json["data"]["state"], row.state.as_str());
        assert_eq!(
            reply.json["data"]["updated_at"],
            serde_json::to_value(row.updated_at).unwrap()
        );
    }
    stop(shutdown, background).await;
}

async fn the_rate_limit_is_per_client(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("RATE_LIMIT_PER_MINUTE", "5")]).await else {
        return;
    };
    let (a, b) = (register(&t.router).await, register(&t.router).await);
    // Windows are whole minutes: twelve requests reach the limit even across a boundary.
    let mut limited = None;
    for n in 0..12 {
        let reply = call(&t.router, &a, "GET", "/v1/jobs", None, &[]).await;
        assert_eq!(
            reply.headers["ratelimit-policy"], "\"default\";q=5;w=60",
            "{n}"
        );
        assert!(reply.headers.contains_key("ratelimit"), "{n}");
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    }
    let limited = limited.expect("the sixth request in a window is refused");
    assert_eq!(limited.json["error_code"], "RFA_REQUEST_RATE_LIMITED");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    // Another client has its own budget.
    let reply = call(&t.router, &b, "GET", "/v1/jobs", None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    // An unauthenticated request is refused before it is counted.
    let req = Request::get("/v1/jobs").body(Body::empty()).unwrap();
    let reply = send(&t.router, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.get("ratelimit").is_none());
}

async fn metrics_name_jobs_and_routes(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let c = register(&t.router).await;
    let reply = submit(
        &t.router,
        &c,
        json!({"work_kind": "FAIL_IMMEDIATE", "max_attempts": 1}),
    )
    .await;
    let id = reply.json["data"]["job_id"].as_str().unwrap().to_owned();
    wait_final(&t.router, &c, &id).await;
    let text = common::text_of(&t.router, "/metrics").await;
    for needle in [
        r#"jobs_submitted_total{work_kind="FAIL_IMMEDIATE"}"#,
        r#"jobs_failed_total{work_kind="FAIL_IMMEDIATE"}"#,
        r#"job_execution_seconds_bucket{work_kind="FAIL_IMMEDIATE",le="#,
        r#"job_queue_wait_seconds_bucket{work_kind="FAIL_IMMEDIATE",le="#,
        "job_queue_depth ",
        r#"route="/v1/jobs/{id}""#,
        r#"http_request_duration_seconds_bucket{"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(!text.contains(&id), "no job id in a label");
    stop(shutdown, background).await;
}
