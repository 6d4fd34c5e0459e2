//! Panels: the application's own lists and records, mounted by the dashboard behind its
//! sign-in, listed by `GET api/panels`, their live streams ending after a finished record.
//! Driven through the router (mounted at `/admin/jobs`) without a port.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{TimeZone, Utc};
use core_dashboard::panel::{self, Cell, Panel, PanelColumn, PanelFilter, Record, Section};
use core_dashboard::{Dashboard, Error};
use core_db::Database;
use core_jobs::{FailedJobs, Queue};
use core_web::{ApiResponse, ApiResult, AppError};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "panels-admin-token-for-tests";
const PREFIX: &str = "/admin/jobs";
const HOST: &str = "dashboard.test";

/// The rows handler: echoes the query it was given as its one row.
async fn rows(RawQuery(query): RawQuery) -> ApiResult<Vec<Value>> {
    Ok(ApiResponse::success(
        vec![json!({"id": "d1", "query": query.unwrap_or_default()})],
        "",
    ))
}

fn deploy(id: &str, state: &str, steps: i64) -> Record {
    let at = |s: i64| Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap();
    let mut record = Record::new(id, format!("Deploy {id}"))
        .status(state)
        .finished(state == "DONE")
        .field_as("Target", "production", Cell::Code);
    for step in 0..steps {
        record = record.event(at(step * 3), format!("STEP{step}"), None);
    }
    record.section(Section::json("Plan", json!({"steps": steps})))
}

async fn record(Path(id): Path<String>) -> ApiResult<Record> {
    if id != "d1" {
        return Err(AppError::NotFound(format!("No deploy {id}")));
    }
    Ok(ApiResponse::success(deploy(&id, "RUNNING", 2), ""))
}

/// The live handler: two running versions, an error, the finished one, and one more that must
/// never be sent.
async fn live(Path(id): Path<String>) -> Response {
    let items = vec![
        Ok(deploy(&id, "RUNNING", 1)),
        Ok(deploy(&id, "RUNNING", 2)),
        Err(AppError::ServiceUnavailable("The store hiccuped".into())),
        Ok(deploy(&id, "DONE", 3)),
        Ok(deploy(&id, "AFTER", 4)),
    ];
    panel::live(futures_util::stream::iter(items))
}

fn deploys() -> Panel {
    Panel::new("deploys", "Deploys")
        .description("Every deploy")
        .filter(PanelFilter::select(
            "filter[state]",
            "State",
            ["RUNNING", "DONE"],
        ))
        .filter(PanelFilter::date("from", "From"))
        .column(PanelColumn::new("id", "Deploy", Cell::Code))
        .rows(get(rows))
        .record(get(record))
        .live(get(live))
}

async fn app() -> Router {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let dashboard = Dashboard::builder(Queue::memory(), FailedJobs::new(db))
        .token_login(SECRET)
        .panel(deploys())
        .panel(Panel::new("plain", "Plain").rows(get(rows)))
        .build()
        .expect("valid dashboard");
    Router::new().nest_service(PREFIX, dashboard.router())
}

async fn session(app: &Router) -> String {
    common::sign_in(app, PREFIX, HOST, SECRET).await
}

/// `GET {path}`: status, content type and body (read to its end within five seconds).
async fn get_raw(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
    let mut builder = Request::get(format!("{PREFIX}/{path}")).header("host", HOST);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    let response = app
        .clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the body ends")
        .unwrap()
        .to_bytes();
    (status, kind, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = get_raw(app, path, cookie).await;
    (status, serde_json::from_str(&body).expect("a JSON body"))
}

#[tokio::test]
async fn panels_are_listed_and_answered_behind_the_sign_in() {
    let app = app().await;
    for path in [
        "api/panels",
        "api/panels/deploys/rows",
        "api/panels/deploys/records/d1",
    ] {
        let (status, body) = get_json(&app, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(body["error_code"].is_string(), "{path}: {body}");
    }
    let cookie = session(&app).await;
    let cookie = Some(cookie.as_str());

    let (status, body) = get_json(&app, "api/panels", cookie).await;
    assert_eq!(status, StatusCode::OK);
    let panels = body["data"].as_array().unwrap();
    assert_eq!(panels.len(), 2);
    assert_eq!(panels[0]["id"], "deploys");
    assert_eq!(panels[0]["title"], "Deploys");
    assert_eq!(panels[0]["description"], "Every deploy");
    assert_eq!(panels[0]["key"], "id");
    assert_eq!(panels[0]["record"], true);
    assert_eq!(panels[0]["live"], true);
    assert_eq!(
        panels[0]["filters"][0],
        json!({"param": "filter[state]", "label": "State", "kind": "select", "options": ["RUNNING", "DONE"]})
    );
    assert_eq!(panels[0]["filters"][1]["kind"], "date");
    assert_eq!(
        panels[0]["columns"][0],
        json!({"key": "id", "label": "Deploy", "cell": "code"})
    );
    assert_eq!(panels[1]["id"], "plain");
    assert_eq!(panels[1]["record"], false);

    // The rows handler gets the query as the page sent it.
    let (status, body) = get_json(
        &app,
        "api/panels/deploys/rows?filter%5Bstate%5D=DONE&page=2",
        cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["query"], "filter%5Bstate%5D=DONE&page=2");

    let (status, body) = get_json(&app, "api/panels/deploys/records/d1", cookie).await;
    assert_eq!(status, StatusCode::OK);
    let record = &body["data"];
    assert_eq!(record["status"], "RUNNING");
    assert_eq!(record["finished"], false);
    assert_eq!(
        record["fields"][0],
        json!({"label": "Target", "value": "production", "cell": "code"})
    );
    assert_eq!(record["timeline"][0]["since_previous_ms"], Value::Null);
    assert_eq!(record["timeline"][1]["since_previous_ms"], 3000);
    assert_eq!(
        record["sections"][0],
        json!({"kind": "json", "title": "Plan", "value": {"steps": 2}})
    );

    // The application's errors are passed on as they are.
    let (status, body) = get_json(&app, "api/panels/deploys/records/nope", cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "No deploy nope");

    // A panel without records, an unknown panel: the dashboard's JSON 404.
    for path in ["api/panels/plain/records/d1", "api/panels/nope/rows"] {
        let (status, body) = get_json(&app, path, cookie).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error_code"], "NOT_FOUND", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_live_record_ends_after_its_finished_version() {
    let app = app().await;
    let cookie = session(&app).await;
    let (status, kind, body) =
        get_raw(&app, "api/panels/deploys/records/d1/live", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["record", "record", "error", "record"], "{body}");
    assert_eq!(events[1].1["data"]["timeline"].as_array().unwrap().len(), 2);
    assert_eq!(events[2].1["error_code"], "SERVICE_UNAVAILABLE");
    assert_eq!(events[3].1["data"]["status"], "DONE");
    assert_eq!(events[3].1["data"]["finished"], true);
    assert!(
        !body.contains("AFTER"),
        "nothing is sent after the finished record"
    );
}

#[tokio::test]
async fn bad_panels_are_refused_when_the_dashboard_is_built() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let build = |panels: Vec<Panel>| {
        panels
            .into_iter()
            .fold(
                Dashboard::builder(Queue::memory(), FailedJobs::new(db.clone())),
                |b, p| b.panel(p),
            )
            .token_login(SECRET)
            .build()
    };
    let plain = |id: &str| Panel::new(id, "x").rows(get(rows));
    assert!(build(vec![plain("a"), plain("b-2")]).is_ok());
    for (panels, says) in [
        (vec![plain("a"), plain("a")], "used twice"),
        (vec![plain("Bad")], "lowercase"),
        (vec![plain("a/b")], "lowercase"),
        (vec![Panel::new("a", "no rows")], "no rows handler"),
    ] {
        match build(panels) {
            Err(err @ Error::InvalidPanel(_)) => assert!(err.to_string().contains(says), "{err}"),
            other => panic!("expected InvalidPanel ({says}), got {other:?}"),
        }
    }
}
