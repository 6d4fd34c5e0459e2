//! Request ids: accepted from `x-request-id` or generated, echoed on the response, carried by
//! the request's tracing span and readable anywhere in the request with [`current`].

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header a request id is read from and written to.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the current request. Extract it in a handler, or call [`current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(Arc::from(generate()))))
    }
}

/// The current request's id, when called inside a request handled by the middleware stack.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.to_string()).ok()
}

/// A client's id is kept when it is 1–128 visible ASCII characters; anything else is replaced.
fn accept(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A random (version 4) UUID in its simple form. The bytes come from the thread's `rand`
/// generator (seeded from the OS once per thread), not from a `getrandom` system call per
/// request as `Uuid::new_v4` makes.
fn generate() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid.simple().encode_lower(&mut buffer).to_owned()
}

/// Middleware: assigns the id, opens the request's span (id, method, path, and an empty
/// `client_id` that an application's authentication fills with
/// `tracing::Span::current().record("client_id", …)`), logs the outcome and echoes the id in the
/// response header.
pub async fn middleware(req: Request, next: Next) -> Response {
    with_id(req, |req| next.run(req)).await
}

/// [`middleware`] around `run`, so the stack can run the next layer's work in the same future.
pub(crate) async fn with_id<F, Fut>(mut req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(accept)
        .unwrap_or_else(generate);
    // Checked once here (the id is visible ASCII), then cloned onto the response.
    let header = HeaderValue::from_str(&id).ok();
    let request_id = RequestId(Arc::from(id.as_str()));
    req.extensions_mut().insert(request_id.clone());
    // Text fields, not `Display` ones: recorded without the formatting machinery.
    let span = tracing::info_span!(
        "request",
        request_id = id.as_str(),
        method = req.method().as_str(),
        path = req.uri().path(),
        client_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = CURRENT
        .scope(request_id, run(req))
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    // The span as the line's explicit parent: no entering and leaving it just to log.
    tracing::info!(
        parent: &span,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request finished"
    );
    if let Some(value) = header {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
