//! The token login: the sign-in page, sessions in an `HttpOnly`, `SameSite=Strict` cookie, the
//! CSRF token on every change, the origin check, the limit on wrong tokens, sign-out, and the
//! disabled dashboard. Driven through the router (mounted at `/admin/jobs` with `nest_service`,
//! so that `/admin/jobs/` reaches it too) without a port.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use core_dashboard::{Dashboard, TokenLogin};
use core_db::Database;
use core_jobs::{FailedJobs, FailureRecord, Queue};
use core_web::AppError;
use http::request::Parts;
use serde_json::Value;
use test_support::{TestSqlite, TextReply, send_text};

const SECRET: &str = "s3cret-admin-token-for-tests";
const PREFIX: &str = "/admin/jobs";
const HOST: &str = "dashboard.test";

struct Harness {
    app: Router,
    failed: FailedJobs,
    queue: Queue,
    _sqlite: TestSqlite,
}

/// A response with its body as text.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{} is not JSON: {}",
            self.status,
            self.body
        );
        serde_json::from_str(&self.body).expect("JSON body")
    }

    fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    }

    /// The session cookie this response sets, as `name=value`.
    fn session_cookie(&self) -> Option<String> {
        let set = self.header("set-cookie")?;
        let pair = set.split(';').next()?.trim().to_owned();
        pair.starts_with("rustforge_dashboard=").then_some(pair)
    }
}

impl Harness {
    async fn new(login: TokenLogin) -> Self {
        let sqlite = test_support::sqlite().await;
        let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
        let queue = Queue::memory();
        let dashboard = Dashboard::builder(queue.clone(), failed.clone())
            .queue_names(["default", "mail"])
            .login(login)
            // No page built there: `{prefix}/` answers the "not built yet" stand-in.
            .frontend_dir(std::env::temp_dir().join("rustforge-dashboard-no-page"))
            .build()
            .expect("valid dashboard");
        Self {
            app: Router::new().nest_service(PREFIX, dashboard.router()),
            failed,
            queue,
            _sqlite: sqlite,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        send(&self.app, request).await
    }

    /// `POST /login` with `token`, from the dashboard's own page, from client `ip`.
    async fn sign_in_from(&self, token: &str, ip: [u8; 4]) -> Reply {
        let mut request = login_request(token);
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        self.send(request).await
    }

    /// Signs in with the right token; the cookie (`name=value`).
    async fn session(&self) -> String {
        let reply = self.send(login_request(SECRET)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        reply.session_cookie().expect("a session cookie")
    }

    /// The CSRF token of the session `cookie`.
    async fn csrf(&self, cookie: &str) -> String {
        let reply = self.send(get("/api/session", Some(cookie))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()["data"]["csrf_token"]
            .as_str()
            .expect("csrf_token")
            .to_owned()
    }

    async fn record_failure(&self) -> i64 {
        let record = FailureRecord::new("job-1", "mail", "default", r#"{"to":"a"}"#, "boom");
        self.failed.record(&record).await.expect("record a failure")
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let TextReply {
        status,
        headers,
        body,
    } = send_text(app, request).await;
    assert!(!body.contains(SECRET), "the secret in a response: {body}");
    Reply {
        status,
        headers,
        body,
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(format!("{PREFIX}{path}")).header("host", HOST);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, csrf: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("{PREFIX}{path}"))
        .header("host", HOST)
        .header("origin", format!("http://{HOST}"));
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    if let Some(csrf) = csrf {
        builder = builder.header("x-csrf-token", csrf);
    }
    builder.body(Body::empty()).unwrap()
}

fn login_request(token: &str) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    Request::post(format!("{PREFIX}/login"))
        .header("host", HOST)
        .header("origin", format!("http://{HOST}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

async fn harness() -> Harness {
    Harness::new(TokenLogin::new(SECRET)).await
}

#[tokio::test]
async fn the_login_page_renders() {
    let h = harness().await;
    let reply = h.send(get("/login", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.is_html());
    for needle in [
        "<form method=\"post\" action=\"/admin/jobs/login\">",
        "name=\"token\"",
        "type=\"password\"",
        "width=device-width",
        "prefers-color-scheme:dark",
    ] {
        assert!(
            reply.body.contains(needle),
            "{needle} missing: {}",
            reply.body
        );
    }
    // Self-contained: nothing loaded from elsewhere.
    for external in ["src=", "<link", "http://", "https://", "@import"] {
        assert!(!reply.body.contains(external), "{external} in the page");
    }
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(
        reply
            .header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert!(reply.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_wrong_token_is_401_and_sets_no_cookie() {
    let h = harness().await;
    let reply = h.send(login_request("not-the-token")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.is_html());
    assert!(
        reply.body.contains("That is not the admin token"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("name=\"token\""), "the form again");
    assert!(reply.header("set-cookie").is_none());

    // A client that asks for JSON gets the framework's error.
    let mut request = login_request("");
    request
        .headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error_code"], "UNAUTHORIZED");
    assert!(reply.header("set-cookie").is_none());
}

#[tokio::test]
async fn the_right_token_sets_a_strict_http_only_session_cookie() {
    let h = harness().await;
    let reply = h.send(login_request(SECRET)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/admin/jobs/"));
    let cookie = reply.header("set-cookie").unwrap();
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let value = attributes[0].strip_prefix("rustforge_dashboard=").unwrap();
    assert_eq!(value.len(), 64, "256 random bits in hex");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin/jobs",
        "Max-Age=43200",
    ] {
        assert!(
            attributes.contains(&attribute),
            "{attribute} missing: {cookie}"
        );
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP: {cookie}");

    // Over HTTPS (as the browser's Origin says) the cookie is Secure.
    let mut request = login_request(SECRET);
    request
        .headers_mut()
        .insert("origin", format!("https://{HOST}").parse().unwrap());
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.header("set-cookie").unwrap().ends_with("; Secure"));

    // And always, when configured so.
    let h = Harness::new(TokenLogin::new(SECRET).secure_cookie(true)).await;
    let reply = h.send(login_request(SECRET)).await;
    assert!(reply.header("set-cookie").unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn without_a_session_the_api_is_401_and_pages_redirect_to_the_login() {
    let h = harness().await;
    for path in ["/api/queues", "/api/failed", "/api/session", "/api/nope"] {
        let reply = h.send(get(path, None)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        let body = reply.json();
        assert_eq!(body["error_code"], "UNAUTHORIZED", "{path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("/admin/jobs/login")
        );
    }
    for path in ["", "/", "/anything"] {
        let reply = h.send(get(path, None)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            reply.header("location"),
            Some("/admin/jobs/login"),
            "{path}"
        );
    }
    let reply = h.send(post("/api/failed/1/retry", None, None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A made-up or stale cookie is no session.
    let forged = format!("rustforge_dashboard={}", "ab".repeat(32));
    let reply = h.send(get("/api/queues", Some(&forged))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_a_session_the_dashboard_answers() {
    let h = harness().await;
    let cookie = h.session().await;
    let reply = h.send(get("/api/queues", Some(&cookie))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["data"]["queues"][1]["queue"], "mail");

    // Other cookies next to it do not matter.
    let both = format!("theme=dark; {cookie}; other=1");
    let reply = h.send(get("/api/failed", Some(&both))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let reply = h.send(get("/api/session", Some(&cookie))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let data = &reply.json()["data"];
    let csrf = data["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    let expires: chrono::DateTime<chrono::Utc> =
        data["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::hours(11) && left <= chrono::Duration::hours(12));

    for path in ["", "/"] {
        let reply = h.send(get(path, Some(&cookie))).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.is_html());
        assert!(
            reply
                .body
                .contains(&format!("<meta name=\"csrf-token\" content=\"{csrf}\">"))
        );
        assert!(reply.body.contains("<li>mail</li>"));
        assert!(reply.body.contains("action=\"/admin/jobs/logout\""));
    }
    // The sign-in page stays reachable.
    assert_eq!(
        h.send(get("/login", Some(&cookie))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_change_needs_the_session_csrf_token() {
    let h = harness().await;
    let cookie = h.session().await;
    let csrf = h.csrf(&cookie).await;
    let id = h.record_failure().await;
    let retry = format!("/api/failed/{id}/retry");

    let reply = h.send(post(&retry, Some(&cookie), None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error_code"], "CSRF_TOKEN_INVALID");

    let wrong = "0".repeat(64);
    let reply = h.send(post(&retry, Some(&cookie), Some(&wrong))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error_code"], "CSRF_TOKEN_INVALID");

    // Another session's token is not this session's.
    let other = h.session().await;
    let other_csrf = h.csrf(&other).await;
    let reply = h.send(post(&retry, Some(&cookie), Some(&other_csrf))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.queue.stats("default").await.unwrap().ready,
        0,
        "nothing retried"
    );

    // The right token from another site is still refused.
    let mut request = post(&retry, Some(&cookie), Some(&csrf));
    request
        .headers_mut()
        .insert("origin", "http://evil.test".parse().unwrap());
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error_code"], "ORIGIN_MISMATCH");

    let reply = h.send(post(&retry, Some(&cookie), Some(&csrf))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["data"]["id"], id);
    assert_eq!(h.queue.stats("default").await.unwrap().ready, 1, "retried");

    // Every state-changing method, on any path.
    for method in ["PUT", "PATCH", "DELETE"] {
        let request = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}/api/failed/{id}"))
            .header("host", HOST)
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap();
        let reply = h.send(request).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method}");
    }
}

#[tokio::test]
async fn a_cross_origin_sign_in_is_refused() {
    let h = harness().await;
    for (name, value) in [
        ("origin", "http://evil.test"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let mut request = login_request(SECRET);
        request.headers_mut().insert(name, value.parse().unwrap());
        let reply = h.send(request).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(reply.header("set-cookie").is_none(), "{name}: {value}");
        assert!(reply.is_html());
    }
    // From the page itself it works, with or without the fetch metadata.
    let mut request = login_request(SECRET);
    request
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(h.send(request).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_sixth_wrong_token_in_a_minute_is_429_even_with_the_right_token() {
    let h = harness().await;
    let client = [10, 0, 0, 1];
    for attempt in 1..=5 {
        let reply = h.sign_in_from("wrong", client).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let reply = h.sign_in_from(SECRET, client).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.header("set-cookie").is_none());
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        reply.body.contains("Too many wrong tokens"),
        "{}",
        reply.body
    );

    let mut request = login_request(SECRET);
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((client, 1))));
    request
        .headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.json()["error_code"], "RATE_LIMITED");
    assert!(reply.header("retry-after").is_some());

    // Another address has its own budget.
    let reply = h.sign_in_from(SECRET, [10, 0, 0, 2]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_a_peer_address_every_client_shares_one_budget() {
    let h = Harness::new(TokenLogin::new(SECRET).failures_per_minute(2)).await;
    for _ in 0..2 {
        assert_eq!(
            h.send(login_request("wrong")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // X-Forwarded-For is not believed unless the app says so.
    let mut request = login_request(SECRET);
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    assert_eq!(h.send(request).await.status, StatusCode::TOO_MANY_REQUESTS);

    let h = Harness::new(
        TokenLogin::new(SECRET)
            .failures_per_minute(1)
            .trust_proxy_headers(true),
    )
    .await;
    let from = |ip: &str, token: &str| {
        let mut request = login_request(token);
        request
            .headers_mut()
            .insert("x-forwarded-for", ip.parse().unwrap());
        request
    };
    assert_eq!(
        h.send(from("203.0.113.7", "wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.send(from("203.0.113.7", SECRET)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        h.send(from("203.0.113.8", SECRET)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let h = harness().await;
    let cookie = h.session().await;
    let csrf = h.csrf(&cookie).await;

    // Not without the CSRF token.
    let reply = h.send(post("/logout", Some(&cookie), None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.send(get("/api/queues", Some(&cookie))).await.status,
        StatusCode::OK
    );

    let reply = h.send(post("/logout", Some(&cookie), Some(&csrf))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/admin/jobs/login"));
    let cleared = reply.header("set-cookie").unwrap();
    assert!(cleared.starts_with("rustforge_dashboard=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        h.send(get("/api/queues", Some(&cookie))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.send(get("/", Some(&cookie))).await.status,
        StatusCode::SEE_OTHER
    );

    // The landing page's form: the token as a form field.
    let cookie = h.session().await;
    let csrf = h.csrf(&cookie).await;
    let request = Request::post(format!("{PREFIX}/logout"))
        .header("host", HOST)
        .header("origin", format!("http://{HOST}"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf_token={csrf}")))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        h.send(get("/api/queues", Some(&cookie))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// An event stream opened in a session ends, with an `error` event saying why, within about a
/// second of the sign-out; a stream of another session goes on.
#[tokio::test]
async fn an_open_event_stream_ends_when_its_session_is_signed_out() {
    use http_body_util::BodyExt;

    let h = harness().await;
    let (cookie, other) = (h.session().await, h.session().await);
    let csrf = h.csrf(&cookie).await;
    let open = |cookie: &str| {
        let request = Request::get(format!("{PREFIX}/api/events"))
            .header("host", HOST)
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(h.app.clone(), request)
    };
    let stream = open(&cookie).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let kept = open(&other).await.unwrap();
    let mut body = stream.into_body();
    // The stream is flowing: its first event arrives.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a first event")
        .unwrap()
        .unwrap();
    assert!(first.into_data().is_ok());

    let reply = h.send(post("/logout", Some(&cookie), Some(&csrf))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the stream ends after the sign-out")
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    let last = rest.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\n"), "{last}");
    assert!(last.contains("\"error_code\":\"UNAUTHORIZED\""), "{last}");
    assert!(last.contains("sign in again"), "{last}");

    // The other session's stream still flows.
    let mut kept = kept.into_body();
    let mut seen = String::new();
    while !seen.contains("event: queues") {
        let frame = tokio::time::timeout(Duration::from_secs(5), kept.frame())
            .await
            .expect("the other stream goes on")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

#[tokio::test]
async fn a_new_sign_in_replaces_the_session_it_came_with() {
    let h = harness().await;
    let old = h.session().await;
    let mut request = login_request(SECRET);
    request.headers_mut().insert("cookie", old.parse().unwrap());
    let reply = h.send(request).await;
    let new = reply.session_cookie().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        h.send(get("/api/queues", Some(&old))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.send(get("/api/queues", Some(&new))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_expire() {
    let h = Harness::new(TokenLogin::new(SECRET).session_ttl(Duration::ZERO)).await;
    let cookie = h.session().await;
    assert_eq!(
        h.send(get("/api/queues", Some(&cookie))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_authorize_hook_runs_after_the_session_check() {
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    let dashboard = Dashboard::builder(Queue::memory(), failed)
        .token_login(SECRET)
        .authorize(|parts: &Parts| {
            let read_only = parts.method != http::Method::GET;
            async move {
                if read_only {
                    Err(AppError::Forbidden("Read-only here".into()))
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    let h = Harness {
        app: Router::new().nest_service(PREFIX, dashboard.router()),
        failed: FailedJobs::new(Database::Sqlite(sqlite.pool.clone())),
        queue: Queue::memory(),
        _sqlite: sqlite,
    };
    assert_eq!(
        h.send(get("/api/queues", None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cookie = h.session().await;
    let csrf = h.csrf(&cookie).await;
    assert_eq!(
        h.send(get("/api/queues", Some(&cookie))).await.status,
        StatusCode::OK
    );
    let reply = h
        .send(post("/api/failed/1/forget", Some(&cookie), Some(&csrf)))
        .await;
    assert_eq!(reply.json()["message"], "Read-only here");
}

#[tokio::test]
async fn mounted_at_the_root_the_paths_and_cookie_follow() {
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    let app = Dashboard::builder(Queue::memory(), failed)
        .token_login(SECRET)
        .build()
        .unwrap()
        .router();
    let reply = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.header("location"), Some("/login"));
    let request = Request::post("/login")
        .body(Body::from(format!("token={SECRET}")))
        .unwrap();
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/"));
    assert!(reply.header("set-cookie").unwrap().contains("; Path=/;"));
}

#[tokio::test]
async fn an_empty_token_does_not_build() {
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    let err = Dashboard::builder(Queue::memory(), failed)
        .token_login("")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, core_dashboard::Error::EmptyLoginToken),
        "{err}"
    );
}

#[tokio::test]
async fn the_secret_shows_nowhere() {
    let h = harness().await;
    // Every answer `send` reads is checked for the secret; go through every route once.
    let _ = h.send(get("/login", None)).await;
    let _ = h.send(login_request("wrong")).await;
    let cookie = h.session().await;
    let csrf = h.csrf(&cookie).await;
    for path in [
        "/",
        "/api/queues",
        "/api/failed",
        "/api/session",
        "/api/failed/1",
    ] {
        let _ = h.send(get(path, Some(&cookie))).await;
    }
    let _ = h.send(post("/logout", Some(&cookie), Some(&csrf))).await;
    for _ in 0..6 {
        let _ = h.send(login_request("wrong")).await;
    }
    let reply = h.send(login_request(SECRET)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    let login = TokenLogin::new(SECRET);
    assert!(!format!("{login:?}").contains(SECRET));
    let sqlite = test_support::sqlite().await;
    let builder = Dashboard::builder(
        Queue::memory(),
        FailedJobs::new(Database::Sqlite(sqlite.pool.clone())),
    )
    .login(login);
    assert!(!format!("{builder:?}").contains(SECRET));
    assert!(!format!("{:?}", builder.build().unwrap()).contains(SECRET));
}

#[tokio::test]
async fn a_disabled_dashboard_answers_503_and_says_why() {
    const REASON: &str = "The jobs dashboard is disabled: ADMIN_TOKEN is not set";
    let app = Router::new().nest_service(PREFIX, Dashboard::disabled(REASON));
    for path in ["/api/queues", "/api/failed/1/retry"] {
        let reply = send(&app, get(path, None)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let body = reply.json();
        assert_eq!(body["error_code"], "DASHBOARD_DISABLED");
        assert_eq!(body["message"], REASON);
    }
    let reply = send(&app, post("/api/failed/1/retry", None, None)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    for path in ["", "/", "/login"] {
        let reply = send(&app, get(path, None)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(reply.is_html());
        assert!(
            reply.body.contains("ADMIN_TOKEN is not set"),
            "{}",
            reply.body
        );
    }
}
