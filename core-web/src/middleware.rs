//! The middleware stack, applied in one call with [`stack`].
//!
//! From the outside in: compression (for requests with an `Accept-Encoding`) → CORS → HTTP
//! metrics ([`crate::metrics::middleware`]) → request id and trace span → error format
//! negotiation → locale → JSON error bodies → timeout → panic → body limit (a declared length
//! over it refused, a body cut off past it; axum's extractors get the same limit) → handler. Every error any of them produces leaves as the framework's JSON
//! error body, or as RFC 9457 problem details when the request's `Accept` prefers them (see
//! [`crate::problem`]). A CORS preflight is answered by the CORS layer before the metrics, so it
//! is not counted.
//!
//! The layers from the metrics to the body limit are one service that runs them in one
//! future: stacked as separate `from_fn` layers, each would clone everything inside it and box a
//! future on every request. The functions ([`crate::metrics::middleware`],
//! [`crate::request_id::middleware`], [`crate::json_errors::middleware`], …) remain for an
//! application that composes its own stack; they and the stack share each layer's code.
//!
//! The stack is added with `Router::layer`, so it wraps each route and the fallback and runs
//! after routing: the metrics see the matched route's template, and every status the layers
//! inside produce (404/405 from the router, 408, 413, 500 from a panic). Routes added to the
//! router after `stack` are not wrapped.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryFutureExt as _;
use futures_util::future::{BoxFuture, Either, MapOk};
use http_body_util::Limited;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{
    CompressionBody, CompressionLayer, ResponseFuture as CompressionFuture,
};
use tower_http::cors::{AllowOrigin, Any as CorsAny, Cors, CorsLayer};

use crate::config::HttpConfig;
use crate::error::AppError;
use crate::json_errors::{self, BodyLimit};
use crate::{messages, metrics, problem, request_id};

/// Wraps `router` in the framework's middleware stack, configured by `config`.
///
/// ```
/// use axum::{Router, routing::get};
/// use core_web::config::HttpConfig;
///
/// let app: Router = core_web::middleware::stack(
///     Router::new().route("/health", get(|| async { "ok" })),
///     &HttpConfig::default(),
/// );
/// # let _ = app;
/// ```
pub fn stack<S>(router: Router<S>, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    messages::ensure_loaded();
    let limit = config.body_limit;
    let layers = ServiceBuilder::new()
        .layer(NegotiatedCompressionLayer)
        .option_layer(cors(&config.cors_allowed_origins).map(BoxedCors))
        .layer(FrameworkLayer {
            body_limit: limit,
            request_timeout: config.request_timeout,
        })
        .layer(DefaultBodyLimit::max(limit));
    router.layer(layers)
}

/// The CORS layer, its service boxed. axum clones a route's whole service for every request;
/// the CORS service holds its configuration inline (some 300 bytes), and unboxed it would make
/// every route's service as large whether CORS is on or off (`option_layer` makes an `Either`).
#[derive(Debug, Clone)]
struct BoxedCors(CorsLayer);

impl<S> Layer<S> for BoxedCors {
    type Service = Box<Cors<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        Box::new(self.0.layer(inner))
    }
}

/// Compression for the requests that accept an encoding; the others go straight to the inner
/// service, without the compression layer's response future and body wrapper (the body stays
/// the handler's, unboxed). Such a response carries no `Vary: accept-encoding`, which a
/// compressible response to a client that accepts an encoding does: an uncompressed response
/// suits every client, so a cache may serve it to any of them.
#[derive(Debug, Clone, Copy)]
struct NegotiatedCompressionLayer;

impl<S> Layer<S> for NegotiatedCompressionLayer {
    type Service = NegotiatedCompression<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NegotiatedCompression { inner }
    }
}

/// The service of [`NegotiatedCompressionLayer`].
#[derive(Debug, Clone)]
struct NegotiatedCompression<S> {
    inner: S,
}

type Compressed<F> =
    MapOk<CompressionFuture<F, DefaultPredicate>, fn(Response<CompressionBody<Body>>) -> Response>;

impl<S> Service<Request> for NegotiatedCompression<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Compressed<S::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if !req.headers().contains_key(header::ACCEPT_ENCODING) {
            return Either::Right(self.inner.call(req));
        }
        // The clone is left here; the one that was polled ready serves this request.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let mut compression = CompressionLayer::new().layer(ready);
        Either::Left(compression.call(req).map_ok(|r| r.map(Body::new)))
    }
}

/// The framework's own layers as one service: metrics, request id and span, error format,
/// locale, JSON errors, timeout and panic catching run in one future.
///
/// Each `axum::middleware::from_fn` layer costs, on every request, a clone of the whole service
/// inside it (down to the route's boxed handler and the application's state), a boxed
/// `Next` and a boxed future; one service for all of them calls its inner service where it was
/// polled ready, without a clone, and boxes only the handler's future. Each layer's work is split
/// in the module that owns it into what it reads from the request, the scope it runs the rest
/// in, and what it does to the response (`request_id::Assigned`, `problem::Negotiated`,
/// `core_i18n::layer::RequestLocale`, `json_errors::Rewrite`, `metrics::Measured`); the scopes
/// are nested directly around one future, [`Handling`], and [`Handled`] finishes the response.
#[derive(Debug, Clone, Copy)]
struct FrameworkLayer {
    body_limit: usize,
    request_timeout: Duration,
}

impl<S> Layer<S> for FrameworkLayer {
    type Service = Framework<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Framework {
            inner,
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service of [`FrameworkLayer`].
#[derive(Debug, Clone)]
struct Framework<S> {
    inner: S,
    body_limit: usize,
    request_timeout: Duration,
}

impl<S, B> Service<Request> for Framework<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<Handled<S::Future>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // What each layer reads from the request, taken before the request goes on.
        let started = Instant::now();
        let measured = metrics::Measured::start(&req, started);
        let request_id = request_id::Assigned::assign(&mut req, started);
        let format = problem::Negotiated::negotiate(&req);
        let locale = core_i18n::layer::RequestLocale::negotiate(req.headers());
        req.extensions_mut().insert(BodyLimit(self.body_limit));
        let limit = Some(self.body_limit);
        let rewrite = json_errors::Rewrite::new(&req, limit);
        // The body limit: a declared length over it is refused before the handler runs (and
        // answered below as the framework's 413); any other body is cut off past it, which the
        // extractors report as a 413. A request without a body is left as it is.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let handler = if declared.is_some_and(|len| len > self.body_limit as u64) {
            Handler::Answer(Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response()))
        } else {
            if !req.body().is_end_stream() {
                let limit = self.body_limit;
                req = req.map(|body| Body::new(Limited::new(body, limit)));
            }
            // The inner service is called here, where it was polled ready (the route clones
            // its handler); a panic in `call` is answered like one in the handler's future.
            // Its future holds the request until its first poll: boxed here, it is not copied
            // again by every scope built around it (a measured 0.1–0.2 µs a request).
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
                Ok(future) => Handler::Call(Box::pin(future)),
                Err(panic) => Handler::Panicked(panic),
            }
        };
        // The handler runs inside every scope (span and id, error format, locale, body limit);
        // the timeout runs outside the panic catcher (a panic is caught either way, and the
        // timeout's 408 is an `AppError` rendered inside the JSON error scope).
        Box::pin(Handled {
            handling: Handling {
                handler,
                limit: self.request_timeout,
                started,
                timer: None,
                rewrite: Some(rewrite),
                rewriting: None,
            },
            scopes: Some(Scopes {
                request_id,
                format,
                locale,
                limit,
                measured,
            }),
        })
    }
}

/// The future of [`Framework`]: the request's handling in its scopes, then what each layer
/// does to the response.
///
/// One future written out, which sets the request's span and task-local values around each of
/// its polls itself: nested `async` blocks each keep the future they await twice over (the one
/// they captured and the one they pinned), which made the boxed future 2.8 KB, allocated and
/// copied on every request, and a `TaskLocalFuture` or `Instrumented` per scope enters its
/// scope again to drop what it wraps. This one is 416 bytes; it is boxed, so each layer around
/// it moves a pointer rather than the future. A handler's future is dropped in its scopes as
/// soon as it has answered (or, cancelled, in [`Drop`]).
struct Handled<F> {
    handling: Handling<F>,
    /// Until the response is finished.
    scopes: Option<Scopes>,
}

/// A request's scopes, and what each layer does to its response.
struct Scopes {
    request_id: request_id::Assigned,
    format: problem::Negotiated,
    locale: core_i18n::layer::RequestLocale,
    limit: Option<usize>,
    measured: metrics::Measured,
}

impl Scopes {
    /// Runs `f` in the request's scopes, from the outside in: its span and id, its error
    /// format, its locale, its body limit.
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.request_id.in_scope(|| {
            self.format.in_scope(|| {
                self.locale
                    .in_scope(|| json_errors::in_limit_scope(self.limit, f))
            })
        })
    }

    /// What each layer does to the response, then the request's log line and metrics.
    fn finish(self, response: &mut Response) {
        self.locale.finish(response);
        problem::Negotiated::finish(response);
        let finished = Instant::now();
        self.request_id.finish_in_span(response, finished);
        self.measured.finish(response, finished);
    }
}

impl<F, B> Future for Handled<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin`: the handler's future is boxed.
        let this = &mut *self;
        let Some(scopes) = &this.scopes else {
            panic!("a request's future polled after it completed");
        };
        let handling = &mut this.handling;
        let mut response = ready!(scopes.run(|| Pin::new(handling).poll(cx)));
        if let Some(scopes) = this.scopes.take() {
            scopes.finish(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

impl<F> Drop for Handled<F> {
    /// A request dropped before it answered (its client went away) drops its handler's future
    /// in the request's scopes, as it would have been dropped had it answered.
    fn drop(&mut self) {
        if let Some(scopes) = &self.scopes {
            let handling = &mut self.handling;
            scopes.run(|| handling.cancel());
        }
    }
}

/// What answers a request: the inner service's future, an answer given before it (a body over
/// the limit), or the panic its `call` raised.
enum Handler<F> {
    Call(Pin<Box<F>>),
    /// Boxed: the rare case does not make every request's future larger.
    Answer(Box<Response>),
    Panicked(Box<dyn Any + Send + 'static>),
    /// Answered: the handler's future is dropped as soon as it is done, inside the scopes.
    Done,
}

/// The innermost part of a request's handling, inside every scope: the handler with its panics
/// caught, the timeout, and the JSON error rewrite of its response.
///
/// The timer starts only when the handler is not ready at its first poll: a request answered
/// at once (most are) registers no timer, reads no clock and does not reach for the runtime's
/// handle.
struct Handling<F> {
    handler: Handler<F>,
    limit: Duration,
    started: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    rewrite: Option<json_errors::Rewrite>,
    /// The rewrite of an error response whose body is read first.
    rewriting: Option<BoxFuture<'static, Response>>,
}

impl<F> Handling<F> {
    /// Drops the handler's future, its timer and a rewrite under way: the request is dropped
    /// before it answered.
    fn cancel(&mut self) {
        self.handler = Handler::Done;
        self.timer = None;
        self.rewriting = None;
    }
}

impl<F, B> Handling<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    /// The handler's response, a JSON 500 when it panicked (in the service's `call` or in its
    /// future), or a JSON 408 once the limit has passed since the request came in.
    fn poll_handler(&mut self, cx: &mut Context<'_>) -> Poll<Response> {
        let answered = match std::mem::replace(&mut self.handler, Handler::Done) {
            Handler::Call(mut future) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Ready(Ok(response))) => Some(response.map(Body::new)),
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Ok(Poll::Pending) => {
                        self.handler = Handler::Call(future);
                        None
                    }
                    Err(panic) => Some(panic_response(panic)),
                }
            }
            Handler::Answer(response) => Some(*response),
            Handler::Panicked(panic) => Some(panic_response(panic)),
            Handler::Done => panic!("a request's handler polled after it answered"),
        };
        if let Some(response) = answered {
            return Poll::Ready(response);
        }
        let timer = self.timer.get_or_insert_with(|| {
            // A limit past what the clock can express is no limit: a year is as good.
            let year = Duration::from_secs(365 * 24 * 3600);
            let deadline = self
                .started
                .checked_add(self.limit)
                .unwrap_or(self.started + year);
            Box::pin(tokio::time::sleep_until(deadline.into()))
        });
        ready!(timer.as_mut().poll(cx));
        // The handler's future is dropped here, inside the request's scopes.
        self.handler = Handler::Done;
        Poll::Ready(timed_out(self.limit))
    }
}

impl<F, B> Future for Handling<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        // Every field is `Unpin`: the handler's future is boxed.
        let this = &mut *self;
        if let Some(rewriting) = &mut this.rewriting {
            return rewriting.as_mut().poll(cx);
        }
        let response = ready!(this.poll_handler(cx));
        let Some(rewrite) = this.rewrite.take() else {
            panic!("a request's handling polled after it completed");
        };
        match rewrite.finish_now(response) {
            Ok(response) => Poll::Ready(response),
            Err(mut rewriting) => {
                let polled = rewriting.as_mut().poll(cx);
                if polled.is_pending() {
                    this.rewriting = Some(rewriting);
                }
                polled
            }
        }
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(CorsAny)
        .expose_headers([request_id::HEADER])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return Some(base.allow_origin(CorsAny));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(base.allow_origin(AllowOrigin::list(list)))
}

/// The JSON 408 of a request that took longer than `limit`.
fn timed_out(limit: Duration) -> Response {
    tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
    let seconds = format_seconds(limit);
    AppError::Timeout(messages::text_args(
        "errors.timeout",
        &[("seconds", &seconds)],
    ))
    .into_response()
}

fn format_seconds(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let detail = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    tracing::error!(panic = %detail, "handler panicked");
    let mut response = AppError::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error_code: "INTERNAL_ERROR".to_owned(),
        message: messages::text("errors.panic"),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_printed_without_trailing_zeros() {
        assert_eq!(format_seconds(Duration::from_millis(100)), "0.1");
        assert_eq!(format_seconds(Duration::from_secs(30)), "30");
        assert_eq!(format_seconds(Duration::from_millis(1500)), "1.5");
    }
}
