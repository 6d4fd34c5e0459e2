//! The dashboard's page at `{prefix}/`: the built files behind the session, with their
//! headers, and the "not built yet" stand-in. Driven through the router without a port.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_dashboard::{Dashboard, TokenLogin};
use core_db::Database;
use core_jobs::{FailedJobs, Queue};
use test_support::{TestSqlite, TextReply, send_text};

const SECRET: &str = "page-admin-token-for-tests";
const PREFIX: &str = "/admin/jobs";
const HOST: &str = "dashboard.test";

struct Harness {
    app: Router,
    _sqlite: TestSqlite,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A dashboard serving a fake built page from a temporary directory (`built`), or from an
/// empty one.
async fn harness(built: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    // Next to the site, not in it: never served.
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    if built {
        std::fs::create_dir(site.join("assets")).unwrap();
        std::fs::write(
            site.join("index.html"),
            "<!doctype html><title>Jobs</title><script type=\"module\" src=\"./assets/app-1.js\"></script>",
        )
        .unwrap();
        std::fs::write(site.join("assets/app-1.js"), "console.log(1)").unwrap();
    }
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    let dashboard = Dashboard::builder(Queue::memory(), failed)
        .queue_names(["default", "mail"])
        .login(TokenLogin::new(SECRET))
        .frontend_dir(&site)
        .build()
        .unwrap();
    Harness {
        app: Router::new().nest_service(PREFIX, dashboard.router()),
        _sqlite: sqlite,
        _dir: dir,
    }
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Reply {
        let TextReply {
            status,
            headers,
            body,
        } = send_text(&self.app, request).await;
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut builder = Request::get(format!("{PREFIX}{path}")).header("host", HOST);
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        self.send(builder.body(Body::empty()).unwrap()).await
    }

    async fn session(&self) -> String {
        let request = Request::post(format!("{PREFIX}/login"))
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={SECRET}")))
            .unwrap();
        let reply = self.send(request).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        reply
            .header("set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test]
async fn the_built_page_is_served_behind_the_session() {
    let h = harness(true).await;
    for path in ["/", "/assets/app-1.js", "/index.html", "/nope.js"] {
        let reply = h.get(path, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(reply.header("location"), "/admin/jobs/login", "{path}");
        assert!(!reply.body.contains("console.log"), "{path}");
    }
    let cookie = h.session().await;

    let page = h.get("/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("./assets/app-1.js"), "{}", page.body);
    assert!(page.header("content-type").starts_with("text/html"));
    assert_eq!(page.header("cache-control"), "no-store");
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options"), "DENY");

    let script = h.get("/assets/app-1.js", Some(&cookie)).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.body, "console.log(1)");
    assert!(script.header("content-type").starts_with("text/javascript"));
    assert!(script.header("cache-control").starts_with("private"));

    // Without the slash the page's relative paths would miss: redirected to it.
    let bare = h.get("", Some(&cookie)).await;
    assert!(bare.status.is_redirection(), "{}", bare.status);
    assert_eq!(bare.header("location"), "/admin/jobs/");
}

#[tokio::test]
async fn only_files_inside_the_directory_are_served() {
    let h = harness(true).await;
    let cookie = h.session().await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/.hidden",
        "/assets/missing.js",
    ] {
        let reply = h.get(path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!reply.body.contains("secret"), "{path}");
    }
    // Unknown API paths stay JSON.
    let reply = h.get("/api/nope", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.header("content-type").starts_with("application/json"));
}

#[tokio::test]
async fn an_unbuilt_page_says_how_to_build_it() {
    let h = harness(false).await;
    let cookie = h.session().await;
    let reply = h.get("/", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/html"));
    assert!(reply.body.contains("cd core-dashboard/frontend"));
    assert!(reply.body.contains("npm run build"));
    assert!(reply.body.contains("action=\"/admin/jobs/logout\""));
    assert_eq!(
        h.get("/assets/app-1.js", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}
