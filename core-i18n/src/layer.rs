//! The tower middleware that gives each request its locale.
//!
//! [`LocaleLayer`] wraps a service taking `http::Request<B>` (an axum
//! `Router`, a handler, any tower service). For each request it:
//!
//! 1. resolves the locale from the `X-Locale` and `Accept-Language` headers
//!    with [`resolve_locale`](crate::resolve_locale);
//! 2. runs the inner service — both its `call` and its response future —
//!    inside [`scope`](crate::scope), so [`t`](crate::t) and
//!    [`current_locale`](crate::current_locale) use that locale anywhere in
//!    the handler;
//! 3. sets `Content-Language` on the response (unless the inner service
//!    already set one) and adds `Accept-Language, X-Locale` to `Vary`, since
//!    the response depends on them.
//!
//! ```
//! use axum::{Router, routing::get};
//! use core_i18n::LocaleLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { core_i18n::t("welcome") }))
//!     .layer(LocaleLayer::new());
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{ACCEPT_LANGUAGE, CONTENT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::locale::{MAX_ACCEPT_LANGUAGE_LEN, resolve_with, scoped, sync_scoped};

/// The `X-Locale` request header: an explicit locale choice that takes
/// priority over `Accept-Language` when it is supported.
pub const X_LOCALE: HeaderName = HeaderName::from_static("x-locale");

/// The `Vary` value added to every response.
const VARY_VALUE: HeaderValue = HeaderValue::from_static("accept-language, x-locale");

/// Resolves the locale of a request from its headers, like [`LocaleLayer`]
/// does: `X-Locale`, then `Accept-Language` (several header lines are
/// combined), then the default locale.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert(core_i18n::layer::X_LOCALE, "garbage!".parse().unwrap());
/// assert_eq!(core_i18n::layer::locale_from_headers(&headers), core_i18n::default_locale());
/// ```
pub fn locale_from_headers(headers: &HeaderMap) -> String {
    negotiate_headers(headers, str::to_owned)
}

/// [`locale_from_headers`]'s answer, handed to `f` without copying it.
fn negotiate_headers<R>(headers: &HeaderMap, f: impl FnOnce(&str) -> R) -> R {
    let x_locale = headers.get(X_LOCALE).and_then(|v| v.to_str().ok());
    let mut values = headers
        .get_all(ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let accept: Option<Cow<'_, str>> = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(only), None) => Some(Cow::Borrowed(only)),
        (Some(first), Some(second)) => {
            let mut joined = format!("{first}, {second}");
            for value in values {
                if joined.len() > MAX_ACCEPT_LANGUAGE_LEN {
                    break; // will be ignored as too long anyway
                }
                joined.push_str(", ");
                joined.push_str(value);
            }
            Some(Cow::Owned(joined))
        }
    };
    resolve_with(x_locale, accept.as_deref(), f)
}

/// The locale `locale` as a request holds it, shared rather than copied: its text and its
/// `Content-Language` value. Negotiation answers a supported locale, so each thread keeps the
/// few it has answered.
fn shared(locale: &str) -> (Arc<str>, Option<HeaderValue>) {
    thread_local! {
        static SHARED: RefCell<Vec<(Arc<str>, Option<HeaderValue>)>> = const { RefCell::new(Vec::new()) };
    }
    let make = || (Arc::from(locale), HeaderValue::from_str(locale).ok());
    SHARED
        .try_with(|shared| {
            let mut shared = shared.borrow_mut();
            if let Some(found) = shared.iter().find(|(l, _)| &**l == locale) {
                return found.clone();
            }
            let made = make();
            // Bounded like the supported locales; a catalog reload may add a few more.
            if shared.len() < 64 {
                shared.push(made.clone());
            }
            made
        })
        .unwrap_or_else(|_| make())
}

/// A request's locale, negotiated from its headers, in the pieces a middleware stack that runs
/// several layers' work in one future needs: [`negotiate`](Self::negotiate) before the request
/// goes on, [`scope`](Self::scope) around its handling, [`finish`](Self::finish) on the response
/// (`Content-Language`, unless already set, and `Vary`). [`with_locale`] and [`LocaleLayer`] are
/// these three steps.
#[derive(Debug, Clone)]
pub struct RequestLocale {
    locale: Arc<str>,
    content_language: Option<HeaderValue>,
}

impl RequestLocale {
    /// The locale [`locale_from_headers`] picks for `headers`.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let (locale, content_language) = negotiate_headers(headers, shared);
        Self {
            locale,
            content_language,
        }
    }

    /// The negotiated locale (canonical).
    pub fn locale(&self) -> &str {
        &self.locale
    }

    /// Runs `fut` with this locale as the [`current_locale`](crate::current_locale).
    pub fn scope<F: Future>(&self, fut: F) -> TaskLocalFuture<Arc<str>, F> {
        scoped(self.locale.clone(), fut)
    }

    /// Runs `f` with this locale as the [`current_locale`](crate::current_locale): the
    /// synchronous [`scope`](Self::scope), for a future that sets its scopes around each of its
    /// polls itself.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        sync_scoped(self.locale.clone(), f)
    }

    /// Sets `Content-Language` on `response` (unless it has one) and adds the negotiation's
    /// headers to `Vary`.
    pub fn finish<B>(self, response: &mut Response<B>) {
        let headers = response.headers_mut();
        if let Some(value) = self.content_language {
            headers.entry(CONTENT_LANGUAGE).or_insert(value);
        }
        headers.append(VARY, VARY_VALUE);
    }
}

/// What [`LocaleService`] does, around `run`: resolves the request's locale, runs the future
/// `run` returns inside its scope, then sets `Content-Language` and `Vary` on the response (see
/// [`RequestLocale`]; `run` itself is called outside the scope, only its future runs inside).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let request = http::Request::builder()
///     .header("accept-language", "en")
///     .body(())
///     .unwrap();
/// let response = core_i18n::layer::with_locale(request, |_request| async {
///     http::Response::new(core_i18n::current_locale())
/// })
/// .await;
/// assert_eq!(response.headers()["content-language"], response.body().as_str());
/// # }
/// ```
pub async fn with_locale<B, ResBody, F, Fut>(request: Request<B>, run: F) -> Response<ResBody>
where
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    let locale = RequestLocale::negotiate(request.headers());
    let mut response = locale.scope(run(request)).await;
    locale.finish(&mut response);
    response
}

/// A tower [`Layer`] that scopes each request to its negotiated locale.
/// See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocaleLayer {
    _private: (),
}

impl LocaleLayer {
    /// Creates the layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for LocaleLayer {
    type Service = LocaleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LocaleService { inner }
    }
}

/// The [`Service`] produced by [`LocaleLayer`].
#[derive(Debug, Clone)]
pub struct LocaleService<S> {
    inner: S,
}

impl<S> LocaleService<S> {
    /// Wraps `inner` (same as `LocaleLayer::new().layer(inner)`).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for LocaleService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = LocaleFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let locale = RequestLocale::negotiate(request.headers());
        // `call` may do work synchronously: give it the locale too.
        let inner = sync_scoped(locale.locale.clone(), || self.inner.call(request));
        LocaleFuture {
            inner: locale.scope(inner),
            locale: Some(locale),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`LocaleService`]: polls the inner future inside
    /// the request's locale scope, then sets `Content-Language` and `Vary`.
    /// It is `Send` whenever the inner future is.
    pub struct LocaleFuture<F> {
        #[pin]
        inner: TaskLocalFuture<Arc<str>, F>,
        locale: Option<RequestLocale>,
    }
}

impl<F> std::fmt::Debug for LocaleFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocaleFuture")
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for LocaleFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(locale) = this.locale.take() {
            locale.finish(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}
