//! The jobs dashboard at `/admin/jobs`: disabled without `ADMIN_TOKEN`; with it, the sign-in
//! page, a session, and the dashboard's API behind the session and its CSRF token, through the
//! app's whole router and middleware stack.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::app;
use http_body_util::BodyExt;
use serde_json::{Value, json};

const TOKEN: &str = "an-admin-token-for-the-tests";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        assert!(
            self.header("content-type").starts_with("application/json"),
            "{}: {}",
            self.status,
            self.body
        );
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!body.contains(TOKEN), "the token in a response: {body}");
    Reply {
        status,
        headers,
        body,
    }
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri).header("host", "forgerun.test");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder.body(Body::empty()).unwrap()
}

fn sign_in(token: &str) -> Request<Body> {
    Request::post("/admin/jobs/login")
        .header("host", "forgerun.test")
        .header("origin", "http://forgerun.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap()
}

#[tokio::test]
async fn without_admin_token_the_dashboard_is_disabled_and_says_so() {
    let (router, _ctx, _dir) = app(&[]).await;
    let reply = send(&router, get("/admin/jobs/api/queues", None)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = reply.json();
    assert_eq!(body["error_code"], "DASHBOARD_DISABLED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ADMIN_TOKEN is not set")
    );
    assert!(
        body["request_id"].is_string(),
        "inside the middleware stack"
    );
    for uri in ["/admin/jobs", "/admin/jobs/", "/admin/jobs/login"] {
        let reply = send(&router, get(uri, None)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{uri}"
        );
        assert!(reply.body.contains("ADMIN_TOKEN is not set"), "{uri}");
    }
    let reply = send(&router, sign_in(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn with_admin_token_a_sign_in_opens_the_dashboard() {
    let (router, _ctx, _dir) = app(&[("ADMIN_TOKEN", TOKEN)]).await;

    // Nothing without a session.
    let reply = send(&router, get("/admin/jobs/api/queues", None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error_code"], "UNAUTHORIZED");
    for uri in ["/admin/jobs", "/admin/jobs/"] {
        let reply = send(&router, get(uri, None)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(reply.header("location"), "/admin/jobs/login");
    }

    let reply = send(&router, get("/admin/jobs/login", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("action=\"/admin/jobs/login\""));

    // A wrong token: the form again, as HTML, through the JSON-errors layer.
    let reply = send(&router, sign_in("not-the-admin-token")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("content-type").starts_with("text/html"));
    assert!(reply.body.contains("That is not the admin token"));
    assert!(reply.headers.get("set-cookie").is_none());

    let reply = send(&router, sign_in(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), "/admin/jobs/");
    let set_cookie = reply.header("set-cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/jobs"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let reply = send(&router, get("/admin/jobs/api/queues", Some(&cookie))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    let queues: Vec<&str> = body["data"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["default", "webhooks"]);
    let reply = send(&router, get("/admin/jobs/", Some(&cookie))).await;
    assert_eq!(reply.status, StatusCode::OK);

    // A change needs the session's CSRF token.
    let csrf = send(&router, get("/admin/jobs/api/session", Some(&cookie)))
        .await
        .json()["data"]["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let preview = |csrf: Option<&str>| {
        let mut builder = Request::post("/admin/jobs/api/failed/bulk/preview")
            .header("host", "forgerun.test")
            .header("cookie", &cookie)
            .header("content-type", "application/json");
        if let Some(csrf) = csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        builder
            .body(Body::from(
                json!({"action": "forget", "filter": {}}).to_string(),
            ))
            .unwrap()
    };
    let reply = send(&router, preview(None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error_code"], "CSRF_TOKEN_INVALID");
    let reply = send(&router, preview(Some(&csrf))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["data"]["count"], 0);
}

#[tokio::test]
async fn the_dashboard_is_not_in_the_openapi_document() {
    let (router, _ctx, _dir) = app(&[("ADMIN_TOKEN", TOKEN)]).await;
    let doc = send(&router, get("/openapi.json", None)).await.json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/admin")), "{paths:?}");
}

#[test]
fn a_short_admin_token_is_refused() {
    let err =
        app::Settings::from_lookup(|name| (name == "ADMIN_TOKEN").then(|| "short".to_owned()))
            .unwrap_err()
            .to_string();
    assert!(err.contains("ADMIN_TOKEN"), "{err}");
    assert!(!err.contains("short\""), "{err}");
}
