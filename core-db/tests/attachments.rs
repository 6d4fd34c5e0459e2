//! Attachment uploads end to end: a real multipart body through an axum router whose handlers
//! use the upload helpers and answer with the framework's JSON (`?` turns an `UploadError` into
//! `core_web::AppError`), on the
//! local driver and on the S3 driver (`suite!` below). The S3 runs need the S3-protocol server at
//! `S3_ENDPOINT` (`scripts/s3-server`).

mod storage_support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use core_db::attachments;
use core_db::{Attachment, AttachmentRules, Storage, UploadError};
use core_web::{ApiResponse, ApiResult, AppError};
use futures_util::StreamExt;
use tower::ServiceExt;

use storage_support::Fixture;

// ---------------------------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct AppState {
    storage: Arc<dyn Storage>,
    /// What the failing route's hook saw: the key and whether the object existed then.
    seen_by_hook: Arc<Mutex<Option<(String, bool)>>>,
    /// Signalled by the hanging route's hook once the object is stored.
    stored: Arc<tokio::sync::Notify>,
}

fn avatar_rules() -> AttachmentRules {
    AttachmentRules::images()
        .max_size(512 * 1024)
        .min_dimensions(16, 16)
        .max_dimensions(4096, 4096)
}

async fn upload_avatar(
    State(state): State<AppState>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let avatar = attachments::upload_from(
        &mut form,
        "avatar",
        "users/42",
        &avatar_rules(),
        &state.storage,
    )
    .await?;
    Ok(ApiResponse::created(avatar, ""))
}

async fn upload_thumbnail(
    State(state): State<AppState>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let rules = AttachmentRules::images().max_size(64 * 1024);
    // The field-level helper, for handlers that walk the form themselves.
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?
    {
        if field.name() == Some("thumbnail") {
            let thumb = attachments::upload(field, "thumbs", &rules, &state.storage).await?;
            return Ok(ApiResponse::created(thumb, ""));
        }
    }
    Err(AppError::from(UploadError::MissingFile {
        field: "thumbnail".into(),
    }))
}

async fn upload_document(
    State(state): State<AppState>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let rules = AttachmentRules::documents().max_size(12 * 1024 * 1024);
    let doc =
        attachments::upload_from(&mut form, "document", "docs", &rules, &state.storage).await?;
    Ok(ApiResponse::created(doc, ""))
}

/// Uploads the `avatar` field as [`upload_avatar`] does, with `after_store` as the hook.
async fn upload_avatar_then<F, Fut>(
    state: &AppState,
    form: &mut Multipart,
    after_store: F,
) -> ApiResult<Attachment>
where
    F: FnOnce(Attachment) -> Fut,
    Fut: Future<Output = Result<(), UploadError>>,
{
    let (avatar, ()) = attachments::upload_from_with(
        form,
        "avatar",
        "users/42",
        &avatar_rules(),
        &state.storage,
        after_store,
    )
    .await?;
    Ok(ApiResponse::created(avatar, ""))
}

/// Stores the file, then fails as a database insert might.
async fn upload_then_fail(
    State(state): State<AppState>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let storage = Arc::clone(&state.storage);
    let seen = Arc::clone(&state.seen_by_hook);
    upload_avatar_then(&state, &mut form, |stored: Attachment| async move {
        let exists = storage.exists(&stored.path).await.unwrap_or(false);
        *seen.lock().unwrap() = Some((stored.path.clone(), exists));
        Err(UploadError::Other(anyhow::anyhow!(
            "inserting the avatar row failed"
        )))
    })
    .await
}

/// Stores the file, then never finishes, as a handler whose client goes away mid-request.
async fn upload_then_hang(
    State(state): State<AppState>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let stored = Arc::clone(&state.stored);
    upload_avatar_then(&state, &mut form, |_: Attachment| async move {
        stored.notify_one();
        std::future::pending().await
    })
    .await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/avatar", post(upload_avatar))
        .route("/thumbnail", post(upload_thumbnail))
        .route("/avatar-then-fail", post(upload_then_fail))
        .route("/avatar-then-hang", post(upload_then_hang))
        .route(
            "/document",
            post(upload_document).layer(DefaultBodyLimit::max(32 * 1024 * 1024)),
        )
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Test files and multipart bodies
// ---------------------------------------------------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A real PNG (RGB, uncompressed deflate blocks) of `width` × `height` pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &zlib);
    chunk(b"IEND", &[]);
    out
}

/// A baseline JPEG header (JFIF, a comment, a frame header of `width` × `height`), some scan
/// bytes and the end marker: what the type and dimension checks read.
fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    b.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    b.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x0A]);
    b.extend_from_slice(b"comment!");
    b.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 3, 1, 0, 2, 0x11, 3]);
    b.extend(std::iter::repeat_n(0x55, 2000));
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: Option<&'a str>,
    data: Vec<u8>,
}

fn file<'a>(name: &'a str, file_name: &'a str, content_type: &'a str, data: Vec<u8>) -> Part<'a> {
    Part {
        name,
        file_name: Some(file_name),
        content_type: Some(content_type),
        data,
    }
}

fn text_field<'a>(name: &'a str, value: &str) -> Part<'a> {
    Part {
        name,
        file_name: None,
        content_type: None,
        data: value.as_bytes().to_vec(),
    }
}

const BOUNDARY: &str = "rustforge-test-boundary-7d3f0c";

fn multipart_body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

use test_support::JsonReply as Reply;

/// The body in 64 KiB chunks that arrive one at a time, as from a network: the parser cannot
/// read ahead, so the helpers see a stream (and the size limit trips part-way through storing).
fn chunked(body: Vec<u8>) -> Body {
    let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let paced =
        futures_util::stream::iter(chunks.into_iter().enumerate()).then(|(i, chunk)| async move {
            if i > 0 {
                tokio::task::yield_now().await;
            }
            chunk
        });
    Body::from_stream(paced)
}

fn request(path: &str, parts: &[Part<'_>]) -> Request<Body> {
    Request::post(path)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(chunked(multipart_body(parts)))
        .expect("request")
}

async fn send(app: &Router, path: &str, parts: &[Part<'_>]) -> Reply {
    test_support::send_json(app, request(path, parts)).await
}

fn app_for(fx: &Fixture) -> (Router, AppState) {
    let state = AppState {
        storage: Arc::clone(&fx.storage),
        seen_by_hook: Arc::new(Mutex::new(None)),
        stored: Arc::new(tokio::sync::Notify::new()),
    };
    (router(state.clone()), state)
}

/// The framework's JSON error shape with the given status and code.
fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.json);
    assert_eq!(reply.json["error_code"], code, "{}", reply.json);
    assert!(reply.json["message"].is_string(), "{}", reply.json);
    assert!(reply.json.get("request_id").is_some(), "{}", reply.json);
}

// ---------------------------------------------------------------------------------------------
// The cases, run on every driver
// ---------------------------------------------------------------------------------------------

mod cases {
    use super::*;

    pub async fn valid_png_is_stored(fx: &Fixture) {
        let (app, state) = app_for(fx);
        let image = png(64, 48);
        let reply = send(
            &app,
            "/avatar",
            &[file("avatar", "me.png", "image/png", image.clone())],
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let avatar: Attachment = serde_json::from_value(reply.json["data"].clone()).unwrap();
        assert_eq!(avatar.content_type, "image/png");
        assert_eq!(avatar.size, image.len() as u64);
        assert_eq!((avatar.width, avatar.height), (Some(64), Some(48)));
        assert_eq!(avatar.original_name.as_deref(), Some("me.png"));
        assert!(avatar.is_image());
        // owner/yyyy/mm/dd/uuid.ext, dated today (UTC).
        let today = avatar.created_at.format("%Y/%m/%d").to_string();
        assert_eq!(avatar.path, format!("users/42/{today}/{}.png", avatar.id));
        assert!((chrono::Utc::now() - avatar.created_at).num_seconds().abs() < 60);
        assert_eq!(avatar.url, state.storage.url(&avatar.path).unwrap());
        assert_eq!(
            state.storage.get(&avatar.path).await.unwrap().unwrap(),
            image
        );
        assert_eq!(fx.leftovers().await, vec![avatar.path.clone()]);
        // The value round-trips through a JSON column.
        let stored = serde_json::to_string(&avatar).unwrap();
        assert_eq!(serde_json::from_str::<Attachment>(&stored).unwrap(), avatar);
        // The model's delete removes the file.
        avatar.delete(&*state.storage).await.unwrap();
        assert!(fx.leftovers().await.is_empty());
    }

    pub async fn valid_jpeg_after_other_fields(fx: &Fixture) {
        let (app, state) = app_for(fx);
        let image = jpeg(800, 600);
        let reply = send(
            &app,
            "/avatar",
            &[
                text_field("title", "holiday"),
                // Declared as something else: the bytes decide.
                file("avatar", "photo", "application/octet-stream", image.clone()),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let avatar: Attachment = serde_json::from_value(reply.json["data"].clone()).unwrap();
        assert_eq!(avatar.content_type, "image/jpeg");
        assert!(avatar.path.ends_with(".jpg"), "{}", avatar.path);
        assert_eq!((avatar.width, avatar.height), (Some(800), Some(600)));
        assert_eq!(
            state.storage.get(&avatar.path).await.unwrap().unwrap(),
            image
        );
    }

    pub async fn disguised_types_are_rejected(fx: &Fixture) {
        let (app, _) = app_for(fx);
        let disguises: [(&str, Vec<u8>); 4] = [
            (
                "an executable",
                b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".repeat(64),
            ),
            (
                "a script",
                b"<html><script>alert(1)</script></html>".to_vec(),
            ),
            ("a PDF", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n".to_vec()),
            ("a truncated PNG signature", b"\x89PNG\r\n".to_vec()),
        ];
        for (what, bytes) in disguises {
            let reply = send(
                &app,
                "/avatar",
                &[file("avatar", "cat.png", "image/png", bytes)],
            )
            .await;
            assert_error(&reply, 422, "VALIDATION_ERROR");
            let messages = &reply.json["errors"]["avatar"];
            assert!(messages.is_array(), "{what}: {}", reply.json);
            assert!(
                messages[0].as_str().unwrap().contains("not allowed"),
                "{what}: {}",
                reply.json
            );
        }
        assert!(fx.leftovers().await.is_empty());
    }

    pub async fn dimension_rules_apply(fx: &Fixture) {
        let (app, _) = app_for(fx);
        let reply = send(
            &app,
            "/avatar",
            &[file("avatar", "tiny.png", "image/png", png(8, 8))],
        )
        .await;
        assert_error(&reply, 422, "VALIDATION_ERROR");
        let message = reply.json["errors"]["avatar"][0].as_str().unwrap();
        assert!(message.contains("at least 16×16"), "{message}");
        assert!(fx.leftovers().await.is_empty());
    }

    pub async fn oversized_files_are_refused_while_streaming(fx: &Fixture) {
        let (app, _) = app_for(fx);
        // Over the limit within the first bytes read (64 KiB limit, 120 KiB file).
        let reply = send(
            &app,
            "/thumbnail",
            &[file("thumbnail", "big.png", "image/png", png(200, 200))],
        )
        .await;
        assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
        // Over the limit only after the type was checked and storing began (512 KiB, ~1 MiB).
        let reply = send(
            &app,
            "/avatar",
            &[file("avatar", "big.png", "image/png", png(600, 600))],
        )
        .await;
        assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
        assert!(
            reply.json["message"].as_str().unwrap().contains("524288"),
            "{}",
            reply.json
        );
        // Over the limit after several multipart parts went up (12 MiB limit, 14 MiB file).
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.resize(14 * 1024 * 1024, b'x');
        let reply = send(
            &app,
            "/document",
            &[file("document", "big.pdf", "application/pdf", pdf)],
        )
        .await;
        assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
        // Nothing stored: no object, no temporary file, no unfinished multipart upload.
        assert!(
            fx.leftovers().await.is_empty(),
            "{:?}",
            fx.leftovers().await
        );
        // Just under the limit is fine.
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.resize(12 * 1024 * 1024, b'x');
        let reply = send(
            &app,
            "/document",
            &[file("document", "ok.pdf", "application/pdf", pdf)],
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        assert_eq!(reply.json["data"]["size"], 12 * 1024 * 1024);
    }

    pub async fn missing_files_are_bad_requests(fx: &Fixture) {
        let (app, _) = app_for(fx);
        // No avatar field at all.
        let reply = send(&app, "/avatar", &[text_field("title", "no file")]).await;
        assert_error(&reply, 400, "BAD_REQUEST");
        assert!(
            reply.json["message"].as_str().unwrap().contains("avatar"),
            "{}",
            reply.json
        );
        // An avatar field that is a plain value, not a file.
        let reply = send(&app, "/avatar", &[text_field("avatar", "not a file")]).await;
        assert_error(&reply, 400, "BAD_REQUEST");
        // A file input left empty (what a browser sends).
        let reply = send(
            &app,
            "/avatar",
            &[file("avatar", "", "application/octet-stream", Vec::new())],
        )
        .await;
        assert_error(&reply, 400, "BAD_REQUEST");
        // An empty form, through the field-level helper.
        let reply = send(&app, "/thumbnail", &[]).await;
        assert_error(&reply, 400, "BAD_REQUEST");
        assert!(fx.leftovers().await.is_empty());
    }

    pub async fn failure_after_put_leaves_no_orphan(fx: &Fixture) {
        let (app, state) = app_for(fx);
        let reply = send(
            &app,
            "/avatar-then-fail",
            &[file("avatar", "me.png", "image/png", png(32, 32))],
        )
        .await;
        assert_error(&reply, 500, "INTERNAL_ERROR");
        let (key, existed) = state
            .seen_by_hook
            .lock()
            .unwrap()
            .clone()
            .expect("the hook ran");
        assert!(existed, "the object {key} was stored before the hook ran");
        assert!(
            !state.storage.exists(&key).await.unwrap(),
            "{key} was removed"
        );
        assert!(
            fx.leftovers().await.is_empty(),
            "{:?}",
            fx.leftovers().await
        );
    }

    /// The request is dropped (its client went away) after the object was stored but before
    /// the handler finished: the object is removed in the background.
    pub async fn dropped_request_leaves_no_orphan(fx: &Fixture) {
        let (app, state) = app_for(fx);
        let stored = state.stored.notified();
        let call = app.oneshot(request(
            "/avatar-then-hang",
            &[file("avatar", "me.png", "image/png", png(32, 32))],
        ));
        tokio::select! {
            _ = stored => {}
            response = call => panic!("the hanging route answered: {:?}", response.map(|r| r.status())),
        }
        // `call` is dropped here, mid-hook; the object was stored.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = fx.leftovers().await;
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "left behind: {left:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Instantiates every case for one driver: `suite!(module, fixture_fn)`.
macro_rules! suite {
    ($driver:ident, $fixture:path) => {
        suite!(@cases $driver, $fixture, [
            valid_png_is_stored,
            valid_jpeg_after_other_fields,
            disguised_types_are_rejected,
            dimension_rules_apply,
            oversized_files_are_refused_while_streaming,
            missing_files_are_bad_requests,
            failure_after_put_leaves_no_orphan,
            dropped_request_leaves_no_orphan,
        ]);
    };
    (@cases $driver:ident, $fixture:path, [$($case:ident),* $(,)?]) => {
        mod $driver {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("attachments::", stringify!($driver), "::", stringify!($case));
                    let Some(fx) = $fixture(test).await else { return };
                    crate::cases::$case(&fx).await;
                }
            )*
        }
    };
}

suite!(local, crate::storage_support::local);
suite!(s3, crate::storage_support::s3);
