//! ForgeRun's console, the `jobs` panel of the dashboard at `/admin/jobs`, on both driver sets:
//! every client's jobs with `GET /v1/jobs`'s filters and the client's, a job's timeline, report,
//! artifacts and webhook deliveries (the same figures the client API gives), and the live
//! stream of a job followed from QUEUED to its end. Through the app's whole router.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Client, Drivers, TestApp, call, get, register, start, stop, test_app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use test_support::Receiver;

const TOKEN: &str = "a-console-admin-token-for-tests";
const HOST: &str = "forgerun.test";

on_both!(
    the_console_lists_every_clients_jobs_with_their_timelines_and_deliveries,
    the_console_follows_a_job_live_until_it_ends,
);

async fn app(drivers: Drivers, test: &str) -> Option<TestApp> {
    let settings = [
        ("ADMIN_TOKEN", TOKEN),
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("WEBHOOK_TIMEOUT_MS", "600"),
        ("WEBHOOK_BACKOFF_MS", "100"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ("WORK_TIME_SCALE", "0.001"),
    ];
    test_app(drivers, test, &settings).await
}

/// Signs in to the dashboard; the session cookie.
async fn sign_in(router: &Router) -> String {
    let request = Request::post("/admin/jobs/login")
        .header("host", HOST)
        .header("origin", format!("http://{HOST}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={TOKEN}")))
        .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// `GET /admin/jobs/{path}` with `cookie`: the status and the body, read to its end.
async fn admin(router: &Router, cookie: &str, path: &str) -> (StatusCode, String) {
    let request = Request::get(format!("/admin/jobs/{path}"))
        .header("host", HOST)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the body ends within 30 s")
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn admin_json(router: &Router, cookie: &str, path: &str) -> (StatusCode, Value) {
    let (status, body) = admin(router, cookie, path).await;
    (status, serde_json::from_str(&body).expect("a JSON body"))
}

/// The job ids of a console list page.
async fn listed(router: &Router, cookie: &str, query: &str) -> Vec<String> {
    let (status, body) = admin_json(router, cookie, &format!("api/panels/jobs/rows?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["job_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn submit(t: &TestApp, c: &Client, body: Value) -> Value {
    let reply = call(&t.router, c, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    reply.json["data"].clone()
}

/// Polls `GET /v1/jobs/{id}` until the job is final; its state.
async fn wait_final(t: &TestApp, c: &Client, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = get(&t.router, c, &format!("/v1/jobs/{id}")).await;
        if reply.json["data"]["outcome"].is_string() {
            return reply.json["data"]["state"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never ended: {}",
            reply.json
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The delivery attempts of webhook `hook` for job `job`, once every event of the job has an
/// attempt that is not `retrying`: no attempt is still to come.
async fn settled_deliveries(t: &TestApp, c: &Client, hook: &str, job: &str) -> Vec<Value> {
    let report = get(&t.router, c, &format!("/v1/jobs/{job}/report"))
        .await
        .json;
    let events: Vec<String> = report["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("job.{}", e["next_state"].as_str().unwrap().to_lowercase()))
        .collect();
    assert!(!events.is_empty(), "{report}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let uri = format!("/v1/webhooks/{hook}/deliveries?sort=created_at&per_page=100");
        let rows = get(&t.router, c, &uri).await.json["data"]
            .as_array()
            .unwrap()
            .clone();
        let settled = events.iter().all(|event| {
            rows.iter()
                .any(|r| r["event_type"] == event.as_str() && r["outcome"] != "retrying")
        });
        if settled {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of {events:?} never settled: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_console_lists_every_clients_jobs_with_their_timelines_and_deliveries(
    drivers: Drivers,
    test: &str,
) {
    let Some(t) = app(drivers, test).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let (a, b) = (register(&t.router).await, register(&t.router).await);
    // A's job calls back a receiver that answers 5xx first; B's job just runs.
    let submitted = submit(
        &t,
        &a,
        json!({"work_kind": "WEBHOOK_5XX", "callback": receiver.url("/catalog")}),
    )
    .await;
    let job_a = submitted["job_id"].as_str().unwrap().to_owned();
    let hook = submitted["callback_webhook_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_b = submit(&t, &b, json!({"work_kind": "FAIL_IMMEDIATE"})).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its output is large enough to be kept in Storage as an artifact.
    let job_c = submit(&t, &b, json!({"work_kind": "LARGE_OUTPUT"})).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&t, &a, &job_a).await, "SUCCEEDED");
    assert_eq!(wait_final(&t, &b, &job_b).await, "FAILED");
    assert_eq!(wait_final(&t, &b, &job_c).await, "SUCCEEDED");
    let deliveries = settled_deliveries(&t, &a, &hook, &job_a).await;

    // Nothing without the dashboard's session.
    let (status, _) = admin(&t.router, "rf_dashboard=forged", "api/panels/jobs/rows").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let cookie = sign_in(&t.router).await;

    let (status, body) = admin_json(&t.router, &cookie, "api/panels").await;
    assert_eq!(status, StatusCode::OK);
    let panel = &body["data"][0];
    assert_eq!(panel["id"], "jobs");
    assert_eq!(panel["key"], "job_id");
    assert_eq!(
        (panel["record"].clone(), panel["live"].clone()),
        (json!(true), json!(true))
    );
    let params: Vec<&str> = panel["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["param"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"filter[client_id]") && params.contains(&"filter[state]"),
        "{params:?}"
    );

    // Every client's jobs; the filters of `GET /v1/jobs`, and the client's.
    let mut all = vec![job_a.clone(), job_b.clone(), job_c.clone()];
    all.sort();
    assert_eq!(listed(&t.router, &cookie, "").await, all);
    let q = |name: &str, value: &str| format!("filter%5B{name}%5D={value}");
    assert_eq!(
        listed(&t.router, &cookie, &q("client_id", &a.id)).await,
        [job_a.as_str()]
    );
    assert_eq!(
        listed(&t.router, &cookie, &q("state", "FAILED")).await,
        [job_b.as_str()]
    );
    assert_eq!(
        listed(&t.router, &cookie, &q("work_kind", "WEBHOOK_5XX")).await,
        [job_a.as_str()]
    );
    assert!(
        listed(&t.router, &cookie, &q("client_id", "nobody"))
            .await
            .is_empty()
    );
    let today = chrono::Utc::now().date_naive();
    let from_tomorrow = q(
        "created_at%5D%5Bgte",
        &(today + chrono::Days::new(1)).to_string(),
    );
    assert!(listed(&t.router, &cookie, &from_tomorrow).await.is_empty());
    let (status, body) = admin_json(
        &t.router,
        &cookie,
        "api/panels/jobs/rows?filter%5Bsecret%5D=1",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A's job: its timeline is its events, its sections the report, artifacts and deliveries
    // the client API gives.
    let (status, body) = admin_json(
        &t.router,
        &cookie,
        &format!("api/panels/jobs/records/{job_a}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = &body["data"];
    assert_eq!(record["status"], "SUCCEEDED");
    assert_eq!(record["finished"], true);
    let report = get(&t.router, &a, &format!("/v1/jobs/{job_a}/report"))
        .await
        .json["data"]
        .clone();
    let states: Vec<&Value> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["next_state"])
        .collect();
    let timeline = record["timeline"].as_array().unwrap();
    let labels: Vec<&Value> = timeline.iter().map(|e| &e["label"]).collect();
    assert_eq!(labels, states);
    assert_eq!(labels.last().unwrap().as_str(), Some("SUCCEEDED"));
    assert!(timeline[0]["since_previous_ms"].is_null());
    assert!(
        timeline[1..]
            .iter()
            .all(|e| e["since_previous_ms"].as_i64().is_some_and(|ms| ms >= 0))
    );
    let section = |title: &str| {
        record["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["title"] == title)
            .unwrap_or_else(|| panic!("no {title} section: {record}"))
            .clone()
    };
    assert_eq!(section("Artifacts")["links"], json!([]));
    let delivered = section("Webhook deliveries");
    let codes: Vec<Value> = delivered["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status_code"].clone())
        .collect();
    let expected: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            d["status_code"]
                .as_i64()
                .map_or(Value::Null, |c| json!(c.to_string()))
        })
        .collect();
    assert_eq!(codes, expected, "{delivered}");
    assert!(
        codes
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.starts_with('5'))),
        "{codes:?}"
    );
    let report_section = section("Report");
    assert_eq!(report_section["value"]["events"], report["events"]);

    // C's artifacts: the report's, each a link to its file.
    let (status, body) = admin_json(
        &t.router,
        &cookie,
        &format!("api/panels/jobs/records/{job_c}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let links = body["data"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "Artifacts")
        .unwrap()["links"]
        .as_array()
        .unwrap()
        .clone();
    let report = get(&t.router, &b, &format!("/v1/jobs/{job_c}/report"))
        .await
        .json["data"]
        .clone();
    let names: Vec<&Value> = links.iter().map(|l| &l["label"]).collect();
    let reported: Vec<&Value> = report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["name"])
        .collect();
    assert!(!names.is_empty(), "{report}");
    assert_eq!(names, reported);
    for link in &links {
        let href = link["href"].as_str().unwrap();
        let path = href
            .split_once("://")
            .map_or(href, |(_, rest)| &rest[rest.find('/').unwrap()..]);
        let response = tower::ServiceExt::oneshot(
            t.router.clone(),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{href}");
    }

    // No such job: the framework's JSON 404.
    let (status, body) =
        admin_json(&t.router, &cookie, "api/panels/jobs/records/no-such-job").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], "NOT_FOUND");
    stop(shutdown, background).await;
}

async fn the_console_follows_a_job_live_until_it_ends(drivers: Drivers, test: &str) {
    let Some(t) = app(drivers, test).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let c = register(&t.router).await;
    let cookie = sign_in(&t.router).await;
    // Due two to three seconds from now: the stream opens while the job waits.
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let at = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let job = submit(
        &t,
        &c,
        json!({"work_kind": "SUCCESS_FAST", "execution_at": at}),
    )
    .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin(
        &t.router,
        &cookie,
        &format!("api/panels/jobs/records/{job}/live"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let records: Vec<Value> = body
        .split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: record"))
        .map(|block| {
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            serde_json::from_str::<Value>(data).unwrap()["data"].clone()
        })
        .collect();
    assert!(records.len() >= 2, "{body}");
    let first = &records[0];
    assert_eq!(first["status"], "QUEUED", "{first}");
    assert_eq!(first["finished"], false);
    let last = records.last().unwrap();
    assert_eq!(last["status"], "SUCCEEDED", "{last}");
    assert_eq!(last["finished"], true);
    assert!(
        records[..records.len() - 1]
            .iter()
            .all(|r| r["finished"] == false)
    );
    let labels: Vec<&str> = last["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"RUNNING") && labels.ends_with(&["SUCCEEDED"]),
        "{labels:?}"
    );
    stop(shutdown, background).await;
}
