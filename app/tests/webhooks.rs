//! Webhooks end to end, with a real receiver on 127.0.0.1 (allowed through
//! `WEBHOOK_ALLOW_NETWORKS`): registration and its checks, signed deliveries verified by an
//! implementation of Standard Webhooks written here from the specification, retries with growing
//! delays, `Retry-After`, 410, time-outs, redirects, exhaustion, callbacks, a receiver that hangs
//! next to a healthy one, and an address that changes to loopback after registration.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Client, Drivers, TestApp, call, delete, get, register, start, stop, test_app};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use test_support::Receiver;
use test_support::receiver::Received;

/// Settings that make deliveries quick to observe.
const FAST: &[(&str, &str)] = &[
    ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
    ("WEBHOOK_TIMEOUT_MS", "400"),
    ("WEBHOOK_BACKOFF_MS", "150"),
    ("WEBHOOK_MAX_ATTEMPTS", "3"),
    ("WORK_TIME_SCALE", "0"),
];

const LIMIT: Duration = Duration::from_secs(20);

on_both!(
    the_webhook_work_kinds_behave_as_named,
    webhooks_are_registered_checked_and_scoped,
    deliveries_are_signed_retried_and_logged,
    a_callback_is_a_webhook_of_its_job,
    a_receiver_that_hangs_does_not_delay_another,
);

async fn create(t: &TestApp, c: &Client, url: &str, events: Value) -> common::Reply {
    let body = json!({"url": url, "events": events});
    call(&t.router, c, "POST", "/v1/webhooks", Some(body), &[]).await
}

async fn submit(t: &TestApp, c: &Client, body: Value) -> String {
    let reply = call(&t.router, c, "POST", "/v1/jobs", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    reply.json["data"]["job_id"].as_str().unwrap().to_owned()
}

async fn deliveries(t: &TestApp, c: &Client, webhook: &str) -> Vec<Value> {
    let uri = format!("/v1/webhooks/{webhook}/deliveries?sort=created_at&per_page=100");
    let reply = call(&t.router, c, "GET", &uri, None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["data"].as_array().unwrap().clone()
}

/// Polls the delivery log of `webhook` until `done` holds, or panics.
async fn wait_deliveries(
    t: &TestApp,
    c: &Client,
    webhook: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let rows = deliveries(t, c, webhook).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never got there: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Standard Webhooks signature check, from the specification: the secret is the base64
/// after `whsec_`; the signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the header
/// holds space-separated `v1,<base64 HMAC-SHA-256>` signatures, one of which must match.
fn verify(secret: &str, request: &Received) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let (id, timestamp) = (
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    request
        .header("webhook-signature")
        .split(' ')
        .any(|signature| signature == expected)
}

/// The catalog's `WEBHOOK_*` kinds, each with its callback on the test receiver's `/catalog`,
/// which answers as the kind names: every job SUCCEEDS, and its deliveries behave as named.
async fn the_webhook_work_kinds_behave_as_named(drivers: Drivers, test: &str) {
    let settings = [
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("WEBHOOK_TIMEOUT_MS", "600"),
        ("WEBHOOK_BACKOFF_MS", "100"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ("WORK_TIME_SCALE", "0.001"),
    ];
    let Some(t) = test_app(drivers, test, &settings).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let c = register(&t.router).await;
    let mut hooks = Vec::new();
    for kind in [
        "WEBHOOK_SUCCESS",
        "WEBHOOK_TIMEOUT",
        "WEBHOOK_5XX",
        "WEBHOOK_RETRIES_EXHAUSTED",
        "WEBHOOK_SLOW_RECEIVER",
    ] {
        let body = json!({"work_kind": kind, "callback": receiver.url("/catalog")});
        let reply = call(&t.router, &c, "POST", "/v1/jobs", Some(body), &[]).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
        let data = &reply.json["data"];
        hooks.push((
            kind,
            data["job_id"].as_str().unwrap().to_owned(),
            data["callback_webhook_id"].as_str().unwrap().to_owned(),
        ));
    }
    // The succeeded event's delivery attempts, once each has reached its end.
    let attempts = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["event_type"] == "job.succeeded")
            .cloned()
            .collect()
    };
    for (kind, job, hook) in &hooks {
        let read = get(&t.router, &c, &format!("/v1/jobs/{job}")).await;
        let rows = wait_deliveries(&t, &c, hook, |rows| {
            let tried = attempts(rows);
            tried
                .last()
                .is_some_and(|r| r["outcome"] == "delivered" || r["outcome"] == "failed")
        })
        .await;
        let tried = attempts(&rows);
        let outcomes: Vec<&str> = tried
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        let codes: Vec<Option<i64>> = tried.iter().map(|r| r["status_code"].as_i64()).collect();
        match *kind {
            "WEBHOOK_SUCCESS" => {
                assert_eq!(outcomes, ["delivered"], "{kind}");
                assert_eq!(codes, [Some(200)]);
            }
            "WEBHOOK_TIMEOUT" => {
                assert_eq!(outcomes, ["retrying", "retrying", "failed"], "{kind}");
                assert!(
                    tried
                        .iter()
                        .all(|r| r["error"].as_str().unwrap().contains("timed out"))
                );
            }
            "WEBHOOK_5XX" => {
                assert_eq!(outcomes, ["retrying", "retrying", "delivered"], "{kind}");
                assert_eq!(codes, [Some(500), Some(500), Some(200)]);
            }
            "WEBHOOK_RETRIES_EXHAUSTED" => {
                assert_eq!(outcomes, ["retrying", "retrying", "failed"], "{kind}");
                assert_eq!(codes, [Some(500), Some(500), Some(500)]);
            }
            _ => {
                assert_eq!(outcomes, ["delivered"], "{kind}");
                let took = tried[0]["duration_ms"].as_i64().unwrap();
                assert!(took >= 290, "{kind}: a slow receiver, {took} ms");
            }
        }
        let job_state = get(&t.router, &c, &format!("/v1/jobs/{job}")).await;
        assert_eq!(
            job_state.json["data"]["state"], "SUCCEEDED",
            "{kind}: {}",
            read.json
        );
    }
    stop(shutdown, background).await;
}

async fn webhooks_are_registered_checked_and_scoped(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, FAST).await else {
        return;
    };
    let (a, b) = (register(&t.router).await, register(&t.router).await);

    let reply = create(
        &t,
        &a,
        "https://93.184.215.14/in",
        json!(["job.succeeded", "job.created"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let hook = &reply.json["data"];
    let secret = hook["secret"].as_str().unwrap();
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert_eq!(key.len(), 24, "whsec_ + base64 of 24 random bytes");
    assert_eq!(hook["events"], json!(["job.created", "job.succeeded"]));
    let id = hook["webhook_id"].as_str().unwrap().to_owned();

    let all = create(&t, &a, "http://127.0.0.1:9/all", json!(["*"])).await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.json);
    assert_eq!(all.json["data"]["events"], json!(["*"]));

    // The list shows both, oldest first, and never a secret.
    let listed = get(&t.router, &a, "/v1/webhooks").await;
    assert_eq!(listed.status, StatusCode::OK);
    let rows = listed.json["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["webhook_id"], id.as_str());
    assert!(
        !listed.json.to_string().contains("whsec_"),
        "{}",
        listed.json
    );

    // Refused: bad events, bad schemes, and every non-public address class (only 127/8 is
    // allowed here).
    for events in [json!([]), json!(["job.exploded"]), json!(["job.%"])] {
        let reply = create(&t, &a, "https://93.184.215.14/in", events.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{events}: {}",
            reply.json
        );
        assert!(reply.json["errors"]["events"].is_array(), "{}", reply.json);
    }
    for url in [
        "ftp://93.184.215.14/in",
        "http://user:pw@93.184.215.14/in",
        "http://[::1]/in",
        "http://10.1.2.3/in",
        "http://172.16.0.1/in",
        "http://192.168.1.1/in",
        "http://100.64.0.1/in",
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.1.1/in",
        "http://[fe80::1]/in",
        "http://[fd00::1]/in",
        "http://[fd00:ec2::254]/in",
        "http://224.0.0.1/in",
        "http://[ff02::1]/in",
        "http://0.0.0.0/in",
        "http://[::]/in",
        "http://[::ffff:10.0.0.1]/in",
        "http://[::ffff:169.254.169.254]/in",
        "http://255.255.255.255/in",
        "not a url",
    ] {
        let reply = create(&t, &a, url, json!(["*"])).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            reply.json
        );
        assert!(
            reply.json["errors"]["url"].is_array(),
            "{url}: {}",
            reply.json
        );
    }

    // Another client sees nothing of a's webhooks.
    for (method, uri) in [
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("GET", format!("/v1/webhooks/{id}/deliveries")),
    ] {
        let reply = call(&t.router, &b, method, &uri, None, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            reply.json
        );
        assert_eq!(reply.json["error_code"], "RFA_WEBHOOK_NOT_FOUND");
    }
    let theirs = get(&t.router, &b, "/v1/webhooks").await;
    assert_eq!(theirs.json["data"], json!([]));

    let deleted = delete(&t.router, &a, &format!("/v1/webhooks/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json);
    let again = delete(&t.router, &a, &format!("/v1/webhooks/{id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let listed = get(&t.router, &a, "/v1/webhooks").await;
    assert_eq!(listed.json["data"].as_array().unwrap().len(), 1);
}

async fn deliveries_are_signed_retried_and_logged(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, FAST).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let c = register(&t.router).await;
    let mut hooks = Vec::new();
    for path in [
        "/ok",
        "/flaky",
        "/busy",
        "/gone",
        "/down",
        "/stall",
        "/redirect",
    ] {
        let reply = create(&t, &c, &receiver.url(path), json!(["job.succeeded"])).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let data = &reply.json["data"];
        hooks.push((
            path,
            data["webhook_id"].as_str().unwrap().to_owned(),
            data["secret"].as_str().unwrap().to_owned(),
        ));
    }
    let job = submit(&t, &c, json!({"work_kind": "SUCCESS_FAST"})).await;
    let hook = |path: &str| hooks.iter().find(|h| h.0 == path).unwrap().clone();

    // /ok: one delivery, signed, the Standard Webhooks body.
    assert!(receiver.wait_for("/ok", 1, LIMIT).await);
    let (_, ok_id, ok_secret) = hook("/ok");
    let got = &receiver.requests("/ok")[0];
    assert!(verify(&ok_secret, got), "the signature verifies: {got:?}");
    assert_eq!(got.header("content-type"), "application/json");
    let now = chrono::Utc::now().timestamp();
    let sent: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!((now - sent).abs() < 60, "a current Unix timestamp");
    let body = got.json();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["job_id"], job.as_str());
    assert_eq!(body["data"]["state"], "SUCCEEDED");
    assert!(body["timestamp"].as_str().is_some());
    // The webhook-id is the event's id, as the report lists it.
    let report = get(&t.router, &c, &format!("/v1/jobs/{job}/report")).await;
    let succeeded = report.json["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_name"] == "job.succeeded")
        .unwrap()
        .clone();
    assert_eq!(
        got.header("webhook-id"),
        succeeded["event_id"].as_str().unwrap()
    );
    // A secret of another webhook does not verify it.
    assert!(!verify(&hook("/flaky").2, got));
    let rows = wait_deliveries(&t, &c, &ok_id, |r| r.len() == 1).await;
    assert_eq!(rows[0]["outcome"], "delivered");
    assert_eq!(rows[0]["status_code"], 200);
    assert_eq!(rows[0]["attempt"], 1);

    // /flaky: 500, 500, 200; the same webhook-id each time; the waits grow.
    assert!(receiver.wait_for("/flaky", 3, LIMIT).await);
    let flaky = receiver.requests("/flaky");
    assert!(
        flaky
            .iter()
            .all(|r| r.header("webhook-id") == got.header("webhook-id"))
    );
    assert!(flaky.iter().all(|r| verify(&hook("/flaky").2, r)));
    let first_wait = flaky[1].at - flaky[0].at;
    let second_wait = flaky[2].at - flaky[1].at;
    assert!(
        first_wait >= Duration::from_millis(110),
        "backoff ~150 ms, was {first_wait:?}"
    );
    assert!(
        second_wait > first_wait,
        "growing delays: {first_wait:?} then {second_wait:?}"
    );
    let rows = wait_deliveries(&t, &c, &hook("/flaky").1, |r| r.len() == 3).await;
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "delivered"]);
    let codes: Vec<i64> = rows
        .iter()
        .map(|r| r["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert!(rows[0]["next_retry_at"].is_string());
    assert!(rows[2]["next_retry_at"].is_null());

    // /busy: 503 with Retry-After: 1 → the next attempt waits a second, not the 150 ms backoff.
    assert!(receiver.wait_for("/busy", 2, LIMIT).await);
    let busy = receiver.requests("/busy");
    let waited = busy[1].at - busy[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After honoured: {waited:?}"
    );

    // /gone: 410 disables the webhook; nothing more goes to it.
    let (_, gone_id, _) = hook("/gone");
    let rows = wait_deliveries(&t, &c, &gone_id, |r| r.len() == 1).await;
    assert_eq!(rows[0]["outcome"], "gone");
    assert_eq!(rows[0]["status_code"], 410);
    let listed = get(&t.router, &c, "/v1/webhooks").await;
    let gone = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["webhook_id"] == gone_id.as_str())
        .unwrap()
        .clone();
    assert!(gone["disabled_at"].is_string(), "{gone}");

    // /down: 500 three times (WEBHOOK_MAX_ATTEMPTS), then failed() marks it failed.
    let (_, down_id, _) = hook("/down");
    let rows = wait_deliveries(&t, &c, &down_id, |r| {
        r.len() == 3 && r[2]["outcome"] == "failed"
    })
    .await;
    assert_eq!(rows[0]["outcome"], "retrying");
    assert!(rows[2]["next_retry_at"].is_null());
    assert_eq!(receiver.requests("/down").len(), 3);
    assert!(
        wait_message(&t, &down_id, "failed").await,
        "failed() recorded the message"
    );

    // /stall: every attempt times out (400 ms), and is retried.
    let (_, stall_id, _) = hook("/stall");
    let rows = wait_deliveries(&t, &c, &stall_id, |r| r.len() == 3).await;
    for row in &rows {
        assert!(row["status_code"].is_null(), "{row}");
        assert!(
            row["error"].as_str().unwrap().contains("timed out"),
            "{row}"
        );
        assert!(row["duration_ms"].as_i64().unwrap() < 2_000, "{row}");
    }

    // /redirect: a 302 is a failure, never followed.
    let (_, redirect_id, _) = hook("/redirect");
    let rows = wait_deliveries(&t, &c, &redirect_id, |r| !r.is_empty()).await;
    assert_eq!(rows[0]["status_code"], 302);
    assert_eq!(rows[0]["outcome"], "retrying");
    assert_eq!(
        receiver.requests("/ok").len(),
        1,
        "the redirect's target got nothing"
    );

    // The metrics count the attempts by outcome and the failures by reason.
    let text = common::text_of(&t.router, "/metrics").await;
    for needle in [
        r#"webhook_deliveries_total{outcome="delivered"}"#,
        r#"webhook_deliveries_total{outcome="retrying"}"#,
        r#"webhook_failures_total{reason="gone"}"#,
        r#"webhook_failures_total{reason="exhausted"}"#,
        "webhook_delivery_seconds_bucket{",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }

    // A second job: nothing more for the disabled webhook.
    let second = submit(&t, &c, json!({"work_kind": "SUCCESS_FAST"})).await;
    assert!(
        receiver.wait_for("/ok", 2, LIMIT).await,
        "{second} delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests("/gone").len(), 1);
    stop(shutdown, background).await;
}

/// Polls the message of `webhook`'s only event until its status is `status`.
async fn wait_message(t: &TestApp, webhook: &str, status: &str) -> bool {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        let sql = "SELECT status FROM webhook_messages WHERE webhook_id = $1";
        let found: Vec<String> = core_db::on_db!(&t.ctx.db, pool => sqlx::query_scalar(sql)
            .bind(webhook)
            .fetch_all(pool)
            .await)
        .unwrap();
        if found.iter().any(|s| s == status) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn a_callback_is_a_webhook_of_its_job(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, FAST).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let c = register(&t.router).await;
    let reply = call(
        &t.router,
        &c,
        "POST",
        "/v1/jobs",
        Some(json!({"work_kind": "SUCCESS_FAST", "callback": receiver.url("/cb/ok")})),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let data = &reply.json["data"];
    let job = data["job_id"].as_str().unwrap().to_owned();
    let secret = data["callback_secret"].as_str().unwrap().to_owned();
    let hook = data["callback_webhook_id"].as_str().unwrap().to_owned();
    // Another job without a callback sends it nothing.
    submit(&t, &c, json!({"work_kind": "SUCCESS_FAST"})).await;

    // Every event of its job, in order, each signed with the callback's secret.
    assert!(receiver.wait_for("/cb/ok", 5, LIMIT).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.requests("/cb/ok");
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "job.assigned",
            "job.created",
            "job.queued",
            "job.running",
            "job.succeeded"
        ]
    );
    assert!(
        got.iter()
            .all(|r| r.json()["data"]["job_id"] == job.as_str())
    );
    assert!(got.iter().all(|r| verify(&secret, r)));
    let rows = wait_deliveries(&t, &c, &hook, |r| r.len() == 5).await;
    assert!(rows.iter().all(|r| r["outcome"] == "delivered"));
    // The GET of the job shows neither the secret nor the webhook id.
    let read = get(&t.router, &c, &format!("/v1/jobs/{job}")).await;
    assert!(
        read.json["data"].get("callback_secret").is_none(),
        "{}",
        read.json
    );
    // The callback's webhook is not among the client's webhooks.
    let listed = get(&t.router, &c, "/v1/webhooks").await;
    assert_eq!(listed.json["data"], json!([]));
    stop(shutdown, background).await;
}

async fn a_receiver_that_hangs_does_not_delay_another(drivers: Drivers, test: &str) {
    let settings = [
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("WEBHOOK_TIMEOUT_MS", "10000"),
        ("WEBHOOK_MAX_ATTEMPTS", "2"),
        ("WORK_TIME_SCALE", "0"),
        ("WEBHOOK_CONCURRENCY", "16"),
        ("SHUTDOWN_GRACE_SECS", "1"),
    ];
    let Some(t) = test_app(drivers, test, &settings).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let c = register(&t.router).await;
    for path in ["/dead/stall", "/live/ok"] {
        let reply = create(&t, &c, &receiver.url(path), json!(["*"])).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    }
    // 10 jobs, 5 events each: 50 deliveries to each receiver; the hanging one holds each of
    // its lanes for 10 s.
    let started = Instant::now();
    for _ in 0..10 {
        submit(&t, &c, json!({"work_kind": "SUCCESS_FAST"})).await;
    }
    assert!(
        receiver.wait_for("/live/ok", 50, LIMIT).await,
        "the live receiver got {} of 50",
        receiver.requests("/live/ok").len()
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "all 50 reached the live receiver in {took:?}, before the hanging one's first time-out"
    );
    assert!(
        receiver.requests("/dead/stall").len() <= 8,
        "the hanging receiver holds at most its lanes at once"
    );
    stop(shutdown, background).await;
}

/// A name that resolves to a public address when the webhook is registered and to 127.0.0.1
/// when it is delivered (DNS rebinding) is refused at delivery, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rebound_to_loopback_is_refused_at_delivery() {
    use core_web::ssrf::{Guard, StaticResolver};
    let settings = [("WEBHOOK_TIMEOUT_MS", "400"), ("WORK_TIME_SCALE", "0")];
    let Some(mut t) = test_app(Drivers::Embedded, "rebinding", &settings).await else {
        return;
    };
    let resolver =
        StaticResolver::new().with("hooks.example.test", ["93.184.215.14".parse().unwrap()]);
    // The app's guard allows no private network, and asks this resolver.
    t.ctx = t.ctx.with(|ctx| {
        ctx.ssrf = Guard::new().with_resolver(resolver.clone());
        ctx.webhooks = core_web::webhook::Sender::new(ctx.ssrf.clone())
            .with_timeout(Duration::from_millis(400));
    });
    t.router = app::router(t.ctx.clone());
    let (shutdown, background) = start(&t).await;
    let receiver = Receiver::start().await;
    let c = register(&t.router).await;
    let url = format!("http://hooks.example.test:{}/ok", receiver.port());
    let reply = create(&t, &c, &url, json!(["job.succeeded"])).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a public address at registration: {}",
        reply.json
    );
    let hook = reply.json["data"]["webhook_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Now the name points at the receiver on loopback.
    resolver.set("hooks.example.test", ["127.0.0.1".parse().unwrap()]);
    submit(&t, &c, json!({"work_kind": "SUCCESS_FAST"})).await;
    let rows = wait_deliveries(&t, &c, &hook, |r| !r.is_empty()).await;
    assert_eq!(rows[0]["outcome"], "refused", "{:?}", rows[0]);
    assert!(
        rows[0]["error"].as_str().unwrap().contains("loopback"),
        "{:?}",
        rows[0]
    );
    assert!(rows[0]["status_code"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.all().is_empty(), "nothing reached the receiver");
    assert_eq!(
        deliveries(&t, &c, &hook).await.len(),
        1,
        "a refusal is not retried"
    );
    stop(shutdown, background).await;
}
