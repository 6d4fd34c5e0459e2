//! `GET /storage/{*key}` through the full middleware stack: who may read which object, and how
//! active content is sent.

mod common;

use std::time::Duration;

use app::AppContext;
use axum::Router;
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use bytes::Bytes;
use common::{request, send};

/// The app with `prefixes` as `STORAGE_PUBLIC_PREFIXES`, on the settings `extra` adds.
async fn app_with(
    extra: &[(&str, &str)],
    prefixes: &[&str],
) -> (Router, AppContext, tempfile::TempDir) {
    let prefixes = prefixes.join(",");
    let mut vars = extra.to_vec();
    vars.push(("STORAGE_PUBLIC_PREFIXES", &prefixes));
    common::app(&vars).await
}

async fn put(state: &AppContext, key: &str, body: &'static [u8]) {
    state
        .storage
        .put(key, Bytes::from_static(body), "application/octet-stream")
        .await
        .unwrap();
}

/// Status, headers and body of a `GET` of `uri`.
async fn fetch(app: &Router, uri: &str) -> (StatusCode, HeaderMap, Bytes) {
    let res = tower::ServiceExt::oneshot(app.clone(), request("GET", uri, None, None))
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, headers, body)
}

/// A 403 in the framework's error shape.
async fn assert_forbidden(app: &Router, uri: &str) {
    let reply = send(app, request("GET", uri, None, None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}: {}", reply.json);
    assert_eq!(reply.json["error_code"], "FORBIDDEN", "{uri}");
    assert!(reply.json["message"].is_string(), "{uri}: {}", reply.json);
    assert!(
        reply.json["request_id"].is_string(),
        "{uri}: {}",
        reply.json
    );
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn private_objects_need_a_valid_presigned_link() {
    let (app, state, _dir) = app_with(&[], &[]).await;
    put(&state, "reports/q1.txt", b"secret figures").await;

    // The unsigned link is refused, and so is a missing object: existence does not leak.
    assert_forbidden(&app, &state.storage.url("reports/q1.txt").unwrap()).await;
    assert_forbidden(&app, "/storage/reports/none.txt").await;

    let link = state
        .storage
        .presign_get("reports/q1.txt", Duration::from_secs(300))
        .await
        .unwrap();
    assert!(link.starts_with("/storage/reports/q1.txt?"), "{link}");
    let (status, headers, body) = fetch(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"secret figures");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        header(&headers, "cache-control"),
        Some("private, no-store"),
        "a private object is not cached by shared caches"
    );

    // Forged: the last signature digit changed.
    let flipped = if link.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &link[..link.len() - 1]);
    assert_forbidden(&app, &forged).await;
    // Tampered: the same signature for another key.
    put(&state, "reports/q2.txt", b"other figures").await;
    assert_forbidden(&app, &link.replace("q1.txt", "q2.txt")).await;
    // Tampered: a later expiry.
    assert_forbidden(&app, &link.replace("expires=", "expires=9")).await;
    // Missing parameters.
    let (path, query) = link.split_once('?').unwrap();
    let expires = query
        .split('&')
        .find(|p| p.starts_with("expires="))
        .unwrap();
    let signature = query
        .split('&')
        .find(|p| p.starts_with("signature="))
        .unwrap();
    assert_forbidden(&app, &format!("{path}?{expires}")).await;
    assert_forbidden(&app, &format!("{path}?{signature}")).await;
    // A PUT link does not allow a GET.
    let put_link = state
        .storage
        .presign_put("reports/q1.txt", Duration::from_secs(300))
        .await
        .unwrap();
    assert_forbidden(&app, &put_link).await;

    // Expired.
    let short = state
        .storage
        .presign_get("reports/q1.txt", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_forbidden(&app, &short).await;
}

#[tokio::test]
async fn public_prefixes_are_served_unsigned_but_a_signature_is_always_checked() {
    let (app, state, _dir) = app_with(&[], &["avatars", "docs/public/"]).await;
    put(&state, "avatars/42.png", b"\x89PNG avatar").await;
    put(&state, "docs/public/guide.txt", b"read me").await;
    put(&state, "avatars-private/42.png", b"\x89PNG hidden").await;
    put(&state, "docs/private.txt", b"hidden").await;

    let (status, headers, body) = fetch(&app, &state.storage.url("avatars/42.png").unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"\x89PNG avatar");
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    assert_eq!(header(&headers, "content-disposition"), None);
    assert_eq!(header(&headers, "cache-control"), None);
    let (status, _, body) = fetch(&app, "/storage/docs/public/guide.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"read me");
    // Prefixes match whole segments.
    assert_forbidden(&app, "/storage/avatars-private/42.png").await;
    assert_forbidden(&app, "/storage/docs/private.txt").await;
    // Under a public prefix, a link that carries a signature must carry a valid one.
    assert_forbidden(&app, "/storage/avatars/42.png?expires=1&signature=00").await;
    assert_forbidden(&app, "/storage/avatars/42.png?signature=").await;
    let link = state
        .storage
        .presign_get("avatars/42.png", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(fetch(&app, &link).await.0, StatusCode::OK);
    // Other query parameters are no signature.
    assert_eq!(
        fetch(&app, "/storage/avatars/42.png?v=2").await.0,
        StatusCode::OK
    );
    // A missing public object is a 404.
    let reply = send(
        &app,
        request("GET", "/storage/avatars/none.png", None, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error_code"], "NOT_FOUND");
}

#[tokio::test]
async fn active_content_is_a_sandboxed_download() {
    let (app, state, _dir) = app_with(&[], &["up"]).await;
    for key in [
        "up/page.html",
        "up/page.htm",
        "up/logo.svg",
        "up/feed.xml",
        "up/app.js",
        "up/style.css",
        "up/unknown.bin",
        "up/noextension",
    ] {
        put(&state, key, b"<script>alert(document.cookie)</script>").await;
        let (status, headers, _) = fetch(&app, &format!("/storage/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert_eq!(
            header(&headers, "content-disposition"),
            Some("attachment"),
            "{key}"
        );
        assert_eq!(
            header(&headers, "content-security-policy"),
            Some("sandbox"),
            "{key}"
        );
        assert_eq!(
            header(&headers, "x-content-type-options"),
            Some("nosniff"),
            "{key}"
        );
    }
    for key in ["up/photo.jpg", "up/notes.txt", "up/data.json"] {
        put(&state, key, b"passive").await;
        let (status, headers, _) = fetch(&app, &format!("/storage/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert_eq!(header(&headers, "content-disposition"), None, "{key}");
        assert_eq!(
            header(&headers, "x-content-type-options"),
            Some("nosniff"),
            "{key}"
        );
    }
    // The same holds for a private object behind a valid link.
    put(&state, "private/page.html", b"<h1>hi</h1>").await;
    let link = state
        .storage
        .presign_get("private/page.html", Duration::from_secs(60))
        .await
        .unwrap();
    let (status, headers, _) = fetch(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-disposition"), Some("attachment"));
    assert_eq!(header(&headers, "content-security-policy"), Some("sandbox"));
}

#[tokio::test]
async fn overlong_or_unsafe_keys_are_json_400s() {
    let (app, _state, _dir) = app_with(&[], &["*"]).await;
    let long = "x".repeat(300);
    for uri in [
        format!("/storage/{long}"),
        format!("/storage/a/{long}.png"),
        format!("/storage/{long}/b.txt"),
        "/storage/a%00b".to_owned(),
        "/storage/a%5Cb".to_owned(),
    ] {
        let reply = send(&app, request("GET", &uri, None, None)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.json
        );
        assert_eq!(reply.json["error_code"], "BAD_REQUEST", "{uri}");
    }
}

/// A minimal HTTP/1.1 `GET` of an `http://` URL: status, raw header block (lower case) and body.
async fn http_get(url: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("receive");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head, raw[end + 4..].to_vec())
}

/// On S3 nothing is proxied: a private object without a link the app can check is a 403, and a
/// public one is a redirect to a short-lived presigned URL of the bucket.
#[tokio::test]
async fn s3_objects_are_redirected_never_proxied() {
    let Some(s3) = test_support::s3("s3_objects_are_redirected_never_proxied").await else {
        return;
    };
    let (app, state, _dir) = app_with(
        &[
            ("STORAGE_DRIVER", "s3"),
            ("S3_BUCKET", &s3.bucket),
            ("S3_REGION", &s3.region),
            ("S3_ENDPOINT", &s3.endpoint),
            ("S3_ACCESS_KEY_ID", &s3.access_key),
            ("S3_SECRET_ACCESS_KEY", &s3.secret),
            ("S3_FORCE_PATH_STYLE", "true"),
        ],
        &["public"],
    )
    .await;
    assert_eq!(state.storage.driver(), "s3");
    put(&state, "private/report.txt", b"secret").await;
    put(&state, "public/readme.txt", b"hello").await;
    put(&state, "public/page.html", b"<script>1</script>").await;

    assert_forbidden(&app, &state.storage.url("private/report.txt").unwrap()).await;
    assert_forbidden(
        &app,
        "/storage/private/report.txt?expires=99999999999&signature=00",
    )
    .await;
    // The bucket's own presigned link works at the bucket; the app does not take it.
    let link = state
        .storage
        .presign_get("private/report.txt", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(link.starts_with(&s3.endpoint), "{link}");
    let query = link.split_once('?').unwrap().1;
    assert_forbidden(&app, &format!("/storage/private/report.txt?{query}")).await;
    assert_eq!(http_get(&link).await.2, b"secret");

    // A public object: a redirect, with no body of the object.
    let (status, headers, body) = fetch(&app, "/storage/public/readme.txt").await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let location = header(&headers, "location").unwrap();
    assert!(location.starts_with(&s3.endpoint), "{location}");
    let (status, _, body) = http_get(location).await;
    assert_eq!(status, 200, "{location}");
    assert_eq!(body, b"hello");
    // Active content is signed as a download.
    let (status, headers, _) = fetch(&app, "/storage/public/page.html").await;
    assert_eq!(status, StatusCode::FOUND);
    let location = header(&headers, "location").unwrap();
    assert!(
        location.contains("response-content-disposition=attachment"),
        "{location}"
    );
    let (status, head, _) = http_get(location).await;
    assert_eq!(status, 200, "{location}");
    assert!(head.contains("content-disposition: attachment"), "{head}");
    // A missing public object is the app's JSON 404, not the bucket's.
    let reply = send(&app, request("GET", "/storage/public/none.txt", None, None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error_code"], "NOT_FOUND");
    drop(s3);
}
