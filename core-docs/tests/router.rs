//! `core_docs::router`: the built site, the not-built page, traversal attempts, content types and
//! mounting under `/docs`.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use test_support::{TextReply, send_text};
use tower::ServiceExt;

type Reply = TextReply;

async fn send(app: &Router, method: Method, uri: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    send_text(app, request).await
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Method::GET, uri).await
}

fn header(reply: &Reply, name: header::HeaderName) -> &str {
    reply
        .headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A built site in `dir`: index.html, hashed assets, a favicon and an image.
fn build_site(dir: &Path) {
    std::fs::create_dir_all(dir.join("assets")).expect("assets dir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Rustforge docs</title><script src=\"./assets/index-abc123.js\"></script>",
    )
    .expect("index");
    std::fs::write(dir.join("assets/index-abc123.js"), "console.log('docs')").expect("js");
    std::fs::write(dir.join("assets/index-def456.css"), "body{}").expect("css");
    std::fs::write(dir.join("favicon.svg"), "<svg/>").expect("svg");
    std::fs::write(dir.join("logo.png"), [0x89, b'P', b'N', b'G']).expect("png");
    std::fs::write(dir.join("font.woff2"), [0u8; 4]).expect("font");
}

#[tokio::test]
async fn a_site_that_is_not_built_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = core_docs::router_with_dir(dir.path());

    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        header(&page, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert!(
        page.body.contains(core_docs::BUILD_COMMAND),
        "{}",
        page.body
    );
    assert!(page.body.contains(core_docs::DOCS_DIR_ENV));
    assert_eq!(get(&app, "/index.html").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/assets/index-abc123.js").await.status,
        StatusCode::NOT_FOUND
    );

    // A missing directory is "not built" too.
    let missing = core_docs::router_with_dir(dir.path().join("nope"));
    let page = get(&missing, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("npm run build"));
}

#[tokio::test]
async fn a_site_built_after_start_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = core_docs::router_with_dir(dir.path());
    assert!(get(&app, "/").await.body.contains("npm run build"));
    build_site(dir.path());
    assert!(
        get(&app, "/")
            .await
            .body
            .contains("<title>Rustforge docs</title>")
    );
}

#[tokio::test]
async fn the_built_site_is_served_with_its_content_types() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_site(dir.path());
    let app = core_docs::router_with_dir(dir.path());

    let index = get(&app, "/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.body.contains("<title>Rustforge docs</title>"));
    assert_eq!(
        header(&index, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&index, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header(&index, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(get(&app, "/index.html").await.body, index.body);

    for (uri, content_type) in [
        ("/assets/index-abc123.js", "text/javascript; charset=utf-8"),
        ("/assets/index-def456.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
        ("/logo.png", "image/png"),
        ("/font.woff2", "font/woff2"),
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(header(&reply, header::CONTENT_TYPE), content_type, "{uri}");
    }
    let asset = get(&app, "/assets/index-abc123.js").await;
    assert_eq!(asset.body, "console.log('docs')");
    assert_eq!(
        header(&asset, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );

    let head = send(&app, Method::HEAD, "/assets/index-abc123.js").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.body, "");
    assert_eq!(header(&head, header::CONTENT_LENGTH), "19");

    let post = send(&app, Method::POST, "/").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&post, header::ALLOW), "GET, HEAD");

    assert_eq!(get(&app, "/missing.js").await.status, StatusCode::NOT_FOUND);
    // Directories are not listed.
    assert_eq!(get(&app, "/assets").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/assets/").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nothing_outside_the_directory_can_be_reached() {
    let outer = tempfile::tempdir().expect("temp dir");
    let site = outer.path().join("site");
    build_site(&site);
    std::fs::write(outer.path().join("secret.txt"), "secret").expect("secret");
    std::fs::write(site.join(".env"), "SECRET=1").expect("dotfile");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), site.join("link.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(outer.path(), site.join("up")).expect("symlink dir");
    }
    let app = core_docs::router_with_dir(&site);

    for uri in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/assets/..%2F..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/.env",
        "/%2eenv",
        "/link.txt",
        "/up/secret.txt",
        "/index.html%00.js",
        "/%c0%ae%c0%ae/secret.txt",
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!reply.body.contains("secret"), "{uri}");
    }
}

#[tokio::test]
async fn mounted_at_docs_it_redirects_to_the_trailing_slash() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_site(dir.path());
    let app = Router::new().nest_service("/docs", core_docs::router_with_dir(dir.path()));
    // Files at the top of the site are reachable under the prefix too.
    assert_eq!(get(&app, "/docs/favicon.svg").await.status, StatusCode::OK);

    let bare = get(&app, "/docs").await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, header::LOCATION), "/docs/");
    let query = get(&app, "/docs?x=1").await;
    assert_eq!(header(&query, header::LOCATION), "/docs/?x=1");

    let index = get(&app, "/docs/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.body.contains("<title>Rustforge docs</title>"));
    let asset = get(&app, "/docs/assets/index-abc123.js").await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(
        header(&asset, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        get(&app, "/docs/../Cargo.toml").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn behind_the_middleware_stack_the_site_is_still_html() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_site(dir.path());
    let app = core_web::middleware::stack(
        Router::new().nest_service("/docs", core_docs::router_with_dir(dir.path())),
        &core_web::config::HttpConfig::default(),
    );
    let index = get(&app, "/docs/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        header(&index, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    // A missing file leaves as the framework's JSON error, like any other 404.
    let missing = get(&app, "/docs/nope.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("\"error_code\":\"NOT_FOUND\""));
}

/// Files are sent by tower-http's `ServeDir`: byte ranges, `Last-Modified` and conditional
/// requests work, and a link to a file inside the directory is served as that file.
#[tokio::test]
async fn files_answer_ranges_and_conditional_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    build_site(dir.path());
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        dir.path().join("assets/index-abc123.js"),
        dir.path().join("latest.js"),
    )
    .expect("symlink");
    let app = core_docs::router_with_dir(dir.path());
    let send_with = |uri: &str, name: header::HeaderName, value: &str| {
        let request = Request::builder()
            .uri(uri)
            .header(name, value)
            .body(Body::empty())
            .expect("request");
        app.clone().oneshot(request)
    };

    let range = send_with("/assets/index-abc123.js", header::RANGE, "bytes=0-6")
        .await
        .expect("infallible");
    assert_eq!(range.status(), StatusCode::PARTIAL_CONTENT);
    let bytes = range.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&bytes[..], b"console");

    let index = get(&app, "/").await;
    let modified = header(&index, header::LAST_MODIFIED).to_owned();
    assert!(!modified.is_empty(), "Last-Modified is sent");
    let again = send_with("/", header::IF_MODIFIED_SINCE, &modified)
        .await
        .expect("infallible");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    #[cfg(unix)]
    {
        let linked = get(&app, "/latest.js").await;
        assert_eq!(linked.status, StatusCode::OK);
        assert_eq!(linked.body, "console.log('docs')");
        assert_eq!(
            header(&linked, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
    }
}

#[test]
fn content_types_come_from_the_extension() {
    use core_docs::content_type;
    for (name, expected) in [
        ("index.html", "text/html; charset=utf-8"),
        ("page.HTM", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.svg", "image/svg+xml"),
        ("a.jpeg", "image/jpeg"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.pdf", "application/pdf"),
        ("README", "application/octet-stream"),
        ("a.unknown-extension", "application/octet-stream"),
    ] {
        assert_eq!(content_type(Path::new(name)), expected, "{name}");
    }
}

#[test]
fn the_default_directory_is_the_frontend_build_output() {
    assert!(core_docs::DEFAULT_DOCS_DIR.ends_with("core-docs/frontend/dist"));
    assert!(
        Path::new(core_docs::DEFAULT_DOCS_DIR)
            .parent()
            .expect("frontend dir")
            .join("package.json")
            .is_file()
    );
}
