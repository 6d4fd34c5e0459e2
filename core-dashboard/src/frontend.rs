//! The dashboard's web page: a built single-page app served at `{prefix}/`.
//!
//! The page lives in `core-dashboard/frontend/` (Vite, React, TypeScript, Tailwind) and is
//! built into `core-dashboard/frontend/dist` with [`BUILD_COMMAND`]:
//!
//! ```sh
//! cd core-dashboard/frontend && npm install && npm run build
//! ```
//!
//! The built page uses relative asset paths and hash routing, so it works under any mount
//! point. It talks to the dashboard only through the [JSON API](crate#the-api) and
//! `GET api/events`, sends the session's CSRF token (from `GET api/session`) with every
//! `POST`, and follows `prefers-color-scheme`.
//!
//! # What is served, to whom
//!
//! - **Everything needs the session** (or the [`Authorize`](crate::Authorize) hook), the page's
//!   scripts and styles included: they pass the same check as the API, so a visitor without a
//!   session is redirected to `{prefix}/login` and learns nothing, not even which version of
//!   the page is deployed. The sign-in page is self-contained and needs none of them.
//! - **Only files inside the directory**, `GET` and `HEAD` only: the files are sent by
//!   [`core_docs::router_with_dir`], which refuses `..`, hidden segments, backslashes, NUL
//!   bytes and symbolic links leading outside the directory with 404.
//! - **Headers**: `index.html` is sent `no-store` with a content security policy that allows
//!   scripts, styles and connections to the page's own origin only, and forbids framing; the
//!   hashed files under `assets/` may be cached privately for a year.
//! - **Not built yet**: while `index.html` is missing, `{prefix}/` answers a small page that
//!   says how to build it (with the queues, links to the API and, behind a
//!   [`TokenLogin`](crate::TokenLogin), a sign-out button), and other files 404.
//!
//! The directory is [`DEFAULT_FRONTEND_DIR`] (next to this crate's sources, fixed at compile
//! time) unless [`FRONTEND_DIR_ENV`] names another at run time, or the builder's
//! [`frontend_dir`](crate::DashboardBuilder::frontend_dir) does. It is looked at on every
//! request, so a page built after the server started is served without a restart.

use std::ffi::OsString;
use std::path::PathBuf;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;

use crate::dashboard::Inner;
use crate::login::{self, Session};

/// The environment variable that overrides where the built page is looked for.
pub const FRONTEND_DIR_ENV: &str = "RUSTFORGE_DASHBOARD_DIR";

/// Where `npm run build` writes the page: `core-dashboard/frontend/dist` in this crate's source
/// tree.
pub const DEFAULT_FRONTEND_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/frontend/dist");

/// The command that builds the page, from the workspace root.
pub const BUILD_COMMAND: &str = "cd core-dashboard/frontend && npm install && npm run build";

/// What `index.html` may load: its own scripts, styles, images and fonts, connections to its
/// own origin (the API and the event stream); no framing, no plugins, no `<base>`.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                        img-src 'self' data:; font-src 'self'; connect-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The directory the page is served from: [`FRONTEND_DIR_ENV`] when set and not empty, else
/// [`DEFAULT_FRONTEND_DIR`].
pub fn frontend_dir() -> PathBuf {
    resolve_frontend_dir(std::env::var_os(FRONTEND_DIR_ENV))
}

/// The directory to serve given the value of [`FRONTEND_DIR_ENV`] (`None` when unset).
///
/// ```
/// use std::path::PathBuf;
/// use core_dashboard::frontend::{DEFAULT_FRONTEND_DIR, resolve_frontend_dir};
///
/// assert_eq!(resolve_frontend_dir(None), PathBuf::from(DEFAULT_FRONTEND_DIR));
/// assert_eq!(resolve_frontend_dir(Some("/srv/dash".into())), PathBuf::from("/srv/dash"));
/// ```
pub fn resolve_frontend_dir(env_value: Option<OsString>) -> PathBuf {
    match env_value {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_FRONTEND_DIR),
    }
}

/// The built page's directory and the router that sends its files.
pub(crate) struct Frontend {
    root: PathBuf,
    files: Router,
}

impl Frontend {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            files: core_docs::router_with_dir(&root),
            root,
        }
    }

    /// Answers a request for a page path (anything outside `api/`, after the guard).
    pub(crate) async fn serve(&self, inner: &Inner, request: Request) -> Response {
        let path = request.uri().path();
        let index = path.is_empty() || path == "/" || path == "/index.html";
        let safe = matches!(*request.method(), Method::GET | Method::HEAD);
        if index && safe && !self.built().await {
            return not_built(inner, &request, &self.root);
        }
        let Ok(mut response) = self.files.clone().oneshot(request).await;
        secure(&mut response);
        response
    }

    async fn built(&self) -> bool {
        tokio::fs::metadata(self.root.join("index.html"))
            .await
            .is_ok_and(|m| m.is_file())
    }
}

/// The headers of a served file: `no-store` and the page's policy on HTML, private caching of
/// the hashed assets.
fn secure(response: &mut Response) {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let headers = response.headers_mut();
    if html {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    } else if headers
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.as_bytes().starts_with(b"public"))
    {
        // Behind a session: shared caches must not keep them.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
    }
}

/// The stand-in page while the page is not built.
fn not_built(inner: &Inner, request: &Request, root: &std::path::Path) -> Response {
    let prefix = login::mount_prefix(request.uri().path(), request.extensions());
    let csrf = request
        .extensions()
        .get::<Session>()
        .map(|s| s.csrf_token.as_str());
    let mut response = login::html(
        StatusCode::OK,
        login::not_built_page(&prefix, &inner.queues, csrf, root),
    );
    if request.method() == Method::HEAD {
        *response.body_mut() = axum::body::Body::empty();
    }
    response.into_response()
}
