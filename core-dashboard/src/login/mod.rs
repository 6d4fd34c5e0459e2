//! [`TokenLogin`]: sign-in with one secret token, server-side sessions and CSRF protection, for
//! a dashboard that has no users of its own.
//!
//! Given to [`DashboardBuilder::login`](crate::DashboardBuilder::login) (or
//! [`token_login`](crate::DashboardBuilder::token_login)), it adds these routes, relative to the
//! mount point `{prefix}` (which it reads from the request, so the dashboard can be nested
//! anywhere):
//!
//! | route | does |
//! |---|---|
//! | `GET {prefix}/login` | the sign-in form: a small self-contained HTML page |
//! | `POST {prefix}/login` | form field `token`: right, a new session, its cookie and 303 to `{prefix}/`; wrong, the form again with an error and 401 |
//! | `POST {prefix}/logout` | ends the session, clears the cookie, 303 to `{prefix}/login` |
//! | `GET {prefix}/` | the dashboard's page (see [`frontend`](crate::frontend)), behind the session like everything else |
//! | `GET {prefix}/api/session` | `{"csrf_token", "expires_at"}` of the caller's session |
//!
//! Mount it with `Router::nest_service`: `Router::nest` would leave `{prefix}/`, where a
//! sign-in leads, to the outer router (it serves `{prefix}` without the slash only).
//!
//! It guards every other route:
//!
//! - **Sessions.** A successful sign-in starts a session under a fresh random id (256 bits),
//!   kept in this process's memory with its expiry ([`session_ttl`](TokenLogin::session_ttl),
//!   12 hours by default), and sets the cookie [`SESSION_COOKIE`] with `HttpOnly`,
//!   `SameSite=Strict`, `Path={prefix}`, `Max-Age` the session's lifetime, and `Secure` when the
//!   request came over HTTPS (or always, with [`secure_cookie`](TokenLogin::secure_cookie)). A
//!   request without a live session gets 401 in the framework's JSON error shape on `api/…`
//!   routes, and a 303 redirect to `{prefix}/login` on page requests (`GET` and `HEAD`
//!   elsewhere). Sessions live in one process: behind several server processes, send each
//!   admin to the same one (sticky sessions) or sign in again.
//! - **CSRF.** Every session has its own random CSRF token. Every state-changing request
//!   (any method but `GET`, `HEAD`, `OPTIONS` and `TRACE`) must carry it in the
//!   [`CSRF_HEADER`] (`x-csrf-token`) header, compared in constant time, or gets 403
//!   `CSRF_TOKEN_INVALID`; sign-out also takes it as the form field `csrf_token`, so a plain
//!   form can sign out. The cookie being `SameSite=Strict`, another site cannot even send it.
//! - **Origin.** A state-changing request, the sign-in included (login CSRF), is refused with
//!   403 `ORIGIN_MISMATCH` when its `Origin` header names another host than its `Host` header
//!   (or is `null`), or its `Sec-Fetch-Site` header says it came from another site. Requests
//!   without those headers (non-browser clients) are judged by the session and token alone.
//! - **Wrong tokens are rate-limited.** After [`failures_per_minute`](TokenLogin::failures_per_minute)
//!   wrong tokens (5 by default) from one client address within a minute, its sign-ins get 429
//!   with `Retry-After` until the minute is over, without the token being looked at. The
//!   address is the peer's, from axum's `ConnectInfo<SocketAddr>` (`core_web::server` serves
//!   with it; an app serving itself uses
//!   `into_make_service_with_connect_info::<SocketAddr>()`); without it every client shares one
//!   budget. `X-Forwarded-For` is believed only with
//!   [`trust_proxy_headers`](TokenLogin::trust_proxy_headers).
//! - **The token stays secret.** Only its SHA-256 digest is kept; the comparison is in constant
//!   time over digests; it appears in no log line, no response and no `Debug` output.
//!
//! The sign-in form and its errors are HTML (`text/html`, never cached,
//! never framed, a content security policy that allows nothing but their inline styles). A
//! sign-in that asks for JSON (`Accept: application/json` without `text/html`) gets its errors
//! as the framework's JSON error instead.
//!
//! # Using the CSRF token from a page
//!
//! A page of the dashboard reads the token once, from `GET {prefix}/api/session` (or from the
//! "not built yet" page's `<meta name="csrf-token">`), and sends it with every change:
//!
//! ```text
//! const { data } = await (await fetch("api/session")).json();
//! await fetch("api/failed/42/retry", {
//!   method: "POST",
//!   headers: { "x-csrf-token": data.csrf_token },
//! });
//! ```
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::Router;
//! use core_dashboard::{Dashboard, TokenLogin};
//! use core_jobs::{FailedJobs, Queue};
//!
//! # fn app(queue: Queue, failed: FailedJobs) -> Result<Router, core_dashboard::Error> {
//! let token = std::env::var("ADMIN_TOKEN").unwrap_or_default();
//! let dashboard = Dashboard::builder(queue, failed)
//!     .login(TokenLogin::new(token).session_ttl(Duration::from_secs(4 * 3600)))
//!     .build()?;
//! Ok(Router::new().nest_service("/admin/jobs", dashboard.router()))
//! # }
//! ```

mod failures;
mod page;
mod sessions;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use core_web::token::constant_time_eq;
use core_web::{ApiResponse, AppError};
use http::request::Parts;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dashboard::Inner;
use failures::Failures;
pub(crate) use page::disabled as disabled_page;
pub(crate) use page::not_built as not_built_page;
pub(crate) use page::respond as html;
pub(crate) use sessions::Session;
use sessions::Sessions;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rustforge_dashboard";

/// The request header a state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The sign-in route, relative to the mount point.
const LOGIN_PATH: &str = "/login";
/// The sign-out route, relative to the mount point.
const LOGOUT_PATH: &str = "/logout";
/// The largest sign-in or sign-out form read.
const MAX_FORM: usize = 16 * 1024;
/// The window wrong tokens are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Sign-in to the dashboard with one secret token (an admin token from the application's
/// settings), with sessions, CSRF protection and a limit on wrong tokens; see the [module
/// docs](self). Give it to [`DashboardBuilder::login`](crate::DashboardBuilder::login).
///
/// ```
/// use std::time::Duration;
/// use core_dashboard::TokenLogin;
///
/// let login = TokenLogin::new("a-long-random-admin-token")
///     .session_ttl(Duration::from_secs(3600))
///     .failures_per_minute(3)
///     .secure_cookie(true);
/// assert!(!format!("{login:?}").contains("a-long-random-admin-token"));
/// ```
#[must_use]
#[derive(Clone)]
pub struct TokenLogin {
    digest: [u8; 32],
    empty: bool,
    session_ttl: Duration,
    secure_cookie: Option<bool>,
    failures_per_minute: u32,
    trust_proxy_headers: bool,
}

impl fmt::Debug for TokenLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLogin")
            .field("token", &"***")
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookie", &self.secure_cookie)
            .field("failures_per_minute", &self.failures_per_minute)
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .finish()
    }
}

impl TokenLogin {
    /// Sign-in with `token`. Only its SHA-256 digest is kept. An empty token is refused when
    /// the dashboard is built ([`Error::EmptyLoginToken`](crate::Error::EmptyLoginToken)).
    pub fn new(token: impl AsRef<str>) -> Self {
        let token = token.as_ref();
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
            empty: token.is_empty(),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookie: None,
            failures_per_minute: 5,
            trust_proxy_headers: false,
        }
    }

    /// How long a session lasts after its sign-in (12 hours by default).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// `true`: the cookie is always `Secure`; `false`: never. By default it is `Secure` when the
    /// sign-in came over HTTPS (the request URI's scheme, its `Origin`, or, with
    /// [`trust_proxy_headers`](Self::trust_proxy_headers), `X-Forwarded-Proto`).
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = Some(secure);
        self
    }

    /// Wrong tokens one client address may send per minute before its sign-ins are refused
    /// with 429 for the rest of the minute (5 by default; at least 1).
    pub fn failures_per_minute(mut self, failures: u32) -> Self {
        self.failures_per_minute = failures.max(1);
        self
    }

    /// Believes the proxy headers: the client address is the last one of `X-Forwarded-For`,
    /// the host is `X-Forwarded-Host`, HTTPS is `X-Forwarded-Proto: https`. Only for an app
    /// whose every request comes through a proxy that sets them (off by default).
    pub fn trust_proxy_headers(mut self, trust: bool) -> Self {
        self.trust_proxy_headers = trust;
        self
    }

    /// Whether the token is empty (such a login cannot be built).
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }
}

/// A [`TokenLogin`] at work: its sessions and its failure counts.
pub(crate) struct Login {
    config: TokenLogin,
    sessions: Sessions,
    failures: Failures,
}

/// What the guard decided about a request.
pub(crate) enum Admit {
    /// A sign-in or sign-out route: its handler decides.
    Public,
    /// A live session, CSRF-checked, with its id; the [`Session`] is in the request's
    /// extensions.
    Session(String),
    /// The answer instead of the route.
    Refused(Response),
}

impl Login {
    pub(crate) fn new(config: TokenLogin) -> Self {
        Self {
            sessions: Sessions::new(config.session_ttl),
            failures: Failures::new(config.failures_per_minute, FAILURE_WINDOW),
            config,
        }
    }

    /// Checks the session (and, for a change, the origin and the CSRF token) of a request to
    /// any route but sign-in and sign-out.
    pub(crate) fn admit(&self, request: &mut Request) -> Admit {
        let path = request.uri().path();
        if path == LOGIN_PATH || path == LOGOUT_PATH {
            return Admit::Public;
        }
        let api = path == "/api" || path.starts_with("/api/");
        let Some((id, session)) = self.session_of(request.headers()) else {
            let prefix = mount_prefix(request.uri().path(), request.extensions());
            if !api && matches!(*request.method(), Method::GET | Method::HEAD) {
                return Admit::Refused(no_store(
                    Redirect::to(&format!("{prefix}{LOGIN_PATH}")).into_response(),
                ));
            }
            return Admit::Refused(
                AppError::Unauthorized(format!(
                    "Sign in to the jobs dashboard first, at {prefix}{LOGIN_PATH}"
                ))
                .into_response(),
            );
        };
        if changes_state(request.method()) {
            let same = same_origin(
                request.headers(),
                request.uri(),
                self.config.trust_proxy_headers,
            );
            let token_ok = request.headers().get(CSRF_HEADER).is_some_and(|given| {
                constant_time_eq(given.as_bytes(), session.csrf_token.as_bytes())
            });
            if !same {
                return Admit::Refused(origin_mismatch().into_response());
            }
            if !token_ok {
                return Admit::Refused(csrf_invalid().into_response());
            }
        }
        request.extensions_mut().insert(session);
        Admit::Session(id)
    }

    /// Whether session `id` is still live (not signed out, not expired).
    pub(crate) fn is_live(&self, id: &str) -> bool {
        self.sessions.get(id).is_some()
    }

    /// The live session the request's cookies name: its id and the session.
    fn session_of(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == SESSION_COOKIE)
            .find_map(|(_, id)| {
                let id = id.trim_matches('"');
                self.sessions.get(id).map(|s| (id.to_owned(), s))
            })
    }

    /// Whether `given` is the token, in constant time over the digests.
    fn matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        constant_time_eq(&digest, &self.config.digest)
    }

    /// The session cookie: `value` for `max_age`, scoped to the mount point.
    fn cookie(&self, parts: &Parts, prefix: &str, value: &str, max_age: Duration) -> HeaderValue {
        let path = if prefix.is_empty() { "/" } else { prefix };
        let secure = self
            .config
            .secure_cookie
            .unwrap_or_else(|| over_https(parts, self.config.trust_proxy_headers));
        let cookie = format!(
            "{SESSION_COOKIE}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
            max_age.as_secs(),
            if secure { "; Secure" } else { "" }
        );
        // The prefix is a path the router matched and the value is hex: always valid.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The routes a token login adds (see the [module docs](self)).
pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route(LOGIN_PATH, get(login_form).post(sign_in))
        .route(LOGOUT_PATH, post(sign_out))
        .route("/api/session", get(session_info))
}

type Shared = State<Arc<Inner>>;

/// The login of a dashboard whose routes include these handlers.
fn login_of(inner: &Inner) -> Result<&Login, AppError> {
    inner
        .login
        .as_ref()
        .ok_or_else(|| AppError::NotFound("This dashboard has no sign-in".to_owned()))
}

async fn login_form(State(s): Shared, parts: Parts) -> Result<Response, AppError> {
    login_of(&s)?;
    let prefix = mount_prefix(parts.uri.path(), &parts.extensions);
    Ok(html(StatusCode::OK, page::login(&prefix, None)))
}

/// Why a sign-in was refused.
enum Refusal {
    CrossOrigin,
    TooMany(Duration),
    Wrong,
    BadForm,
}

async fn sign_in(State(s): Shared, request: Request) -> Result<Response, AppError> {
    let login = login_of(&s)?;
    let (parts, body) = request.into_parts();
    let prefix = mount_prefix(parts.uri.path(), &parts.extensions);
    let json = wants_json(&parts.headers);
    let trust = login.config.trust_proxy_headers;
    if !same_origin(&parts.headers, &parts.uri, trust) {
        return Ok(refuse(Refusal::CrossOrigin, &prefix, json));
    }
    let client = client_ip(&parts, trust);
    if let Some(wait) = login.failures.blocked(client) {
        tracing::warn!(client = ?client, "jobs dashboard: sign-in refused, too many wrong tokens");
        return Ok(refuse(Refusal::TooMany(wait), &prefix, json));
    }
    let Ok(form) = to_bytes(body, MAX_FORM).await else {
        return Ok(refuse(Refusal::BadForm, &prefix, json));
    };
    let token = form_field(&form, "token").unwrap_or_default();
    if !login.matches(&token) {
        login.failures.record(client);
        tracing::warn!(client = ?client, "jobs dashboard: sign-in with a wrong token");
        return Ok(refuse(Refusal::Wrong, &prefix, json));
    }
    // A fresh session every time: an id known before the sign-in is never promoted.
    if let Some((old, _)) = login.session_of(&parts.headers) {
        login.sessions.remove(&old);
    }
    let (id, _) = login.sessions.create();
    tracing::info!(client = ?client, "jobs dashboard: signed in");
    let mut response = no_store(Redirect::to(&format!("{prefix}/")).into_response());
    let cookie = login.cookie(&parts, &prefix, &id, login.sessions.ttl());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

fn refuse(refusal: Refusal, prefix: &str, json: bool) -> Response {
    let wait_secs = match &refusal {
        Refusal::TooMany(wait) => Some(whole_seconds(*wait)),
        _ => None,
    };
    let error = match refusal {
        Refusal::CrossOrigin => origin_mismatch(),
        Refusal::TooMany(wait) => AppError::TooManyRequests {
            message: format!(
                "Too many wrong tokens: try again in {} seconds",
                whole_seconds(wait)
            ),
            retry_after: Some(wait),
        },
        Refusal::Wrong => AppError::Unauthorized("That is not the admin token".to_owned()),
        Refusal::BadForm => AppError::PayloadTooLarge("The sign-in form is too large".to_owned()),
    };
    if json {
        return error.into_response();
    }
    let mut response = html(
        error.status(),
        page::login(prefix, Some(&error.body().message)),
    );
    if let Some(secs) = wait_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

async fn sign_out(State(s): Shared, request: Request) -> Result<Response, AppError> {
    let login = login_of(&s)?;
    let (parts, body) = request.into_parts();
    let prefix = mount_prefix(parts.uri.path(), &parts.extensions);
    if !same_origin(&parts.headers, &parts.uri, login.config.trust_proxy_headers) {
        return Err(origin_mismatch());
    }
    if let Some((id, session)) = login.session_of(&parts.headers) {
        let given = match parts.headers.get(CSRF_HEADER) {
            Some(value) => Some(value.as_bytes().to_vec()),
            None => to_bytes(body, MAX_FORM)
                .await
                .ok()
                .and_then(|form| form_field(&form, "csrf_token"))
                .map(String::into_bytes),
        };
        if !given.is_some_and(|given| constant_time_eq(&given, session.csrf_token.as_bytes())) {
            return Err(csrf_invalid());
        }
        login.sessions.remove(&id);
        tracing::info!("jobs dashboard: signed out");
    }
    let mut response = if wants_json(&parts.headers) {
        Json(ApiResponse::success(SignedOut { signed_out: true }, "")).into_response()
    } else {
        Redirect::to(&format!("{prefix}{LOGIN_PATH}")).into_response()
    };
    let cookie = login.cookie(&parts, &prefix, "", Duration::ZERO);
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(no_store(response))
}

#[derive(Serialize)]
struct SignedOut {
    signed_out: bool,
}

/// The caller's session, as `GET api/session` answers it.
#[derive(Serialize)]
struct SessionReply {
    csrf_token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

async fn session_info(Extension(session): Extension<Session>) -> Response {
    no_store(
        ApiResponse::success(
            SessionReply {
                csrf_token: session.csrf_token,
                expires_at: session.expires_at,
            },
            "",
        )
        .into_response(),
    )
}

fn origin_mismatch() -> AppError {
    AppError::coded(
        StatusCode::FORBIDDEN,
        "ORIGIN_MISMATCH",
        "This request comes from another site than the jobs dashboard",
    )
}

fn csrf_invalid() -> AppError {
    AppError::coded(
        StatusCode::FORBIDDEN,
        "CSRF_TOKEN_INVALID",
        format!(
            "A change to the jobs dashboard needs the session's CSRF token in the {CSRF_HEADER} header"
        ),
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Any method but the safe ones changes state.
fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Where the dashboard is mounted: the part of the original path before the route's own path
/// (empty when it is not nested).
pub(crate) fn mount_prefix(path: &str, extensions: &http::Extensions) -> String {
    let original = extensions
        .get::<OriginalUri>()
        .map_or(path, |uri| uri.0.path());
    let prefix = if path == "/" {
        original
    } else {
        original.strip_suffix(path).unwrap_or("")
    };
    prefix.trim_end_matches('/').to_owned()
}

/// The first value of form field `name` in a form-encoded body.
fn form_field(form: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(form)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Whether the client asked for JSON rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

/// The client's address: the peer's, or the proxy's word for it when trusted.
fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Whether the request came over HTTPS, as far as the server can tell.
fn over_https(parts: &Parts, trust_proxy: bool) -> bool {
    let header_is = |name: &str, prefix: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with(prefix))
    };
    parts.uri.scheme_str() == Some("https")
        || header_is("origin", "https://")
        || (trust_proxy && header_is("x-forwarded-proto", "https"))
}

/// Whether a state-changing request may come from where it says it comes from: no
/// `Sec-Fetch-Site` other than `same-origin` or `none`, and an `Origin`, when present, naming
/// the host the request was sent to.
fn same_origin(headers: &HeaderMap, uri: &Uri, trust_proxy: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(authority) = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
    }) else {
        return false;
    };
    let forwarded = trust_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let host = forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| uri.authority().map(|a| a.as_str()));
    host.is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// `wait` in whole seconds, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::post("/login");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn same_origin_of(parts: &Parts, trust: bool) -> bool {
        same_origin(&parts.headers, &parts.uri, trust)
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        assert!(same_origin_of(&parts(&[]), false));
        assert!(same_origin_of(
            &parts(&[("host", "a.test:3000"), ("origin", "http://a.test:3000")]),
            false
        ));
        assert!(!same_origin_of(
            &parts(&[("host", "a.test"), ("origin", "http://b.test")]),
            false
        ));
        assert!(!same_origin_of(
            &parts(&[("host", "a.test"), ("origin", "null")]),
            false
        ));
        assert!(!same_origin_of(
            &parts(&[("origin", "http://a.test")]),
            false
        ));
        assert!(!same_origin_of(
            &parts(&[("sec-fetch-site", "cross-site")]),
            false
        ));
        assert!(same_origin_of(
            &parts(&[("sec-fetch-site", "same-origin")]),
            false
        ));
        let proxied = [
            ("host", "internal:8080"),
            ("x-forwarded-host", "admin.test"),
            ("origin", "https://admin.test"),
        ];
        assert!(!same_origin_of(&parts(&proxied), false));
        assert!(same_origin_of(&parts(&proxied), true));
    }

    #[test]
    fn client_addresses_come_from_the_peer_unless_the_proxy_is_trusted() {
        let mut p = parts(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2")]);
        assert_eq!(client_ip(&p, false), None);
        assert_eq!(client_ip(&p, true), Some(IpAddr::from([2, 2, 2, 2])));
        p.extensions
            .insert(ConnectInfo(SocketAddr::from(([9, 9, 9, 9], 1234))));
        assert_eq!(client_ip(&p, false), Some(IpAddr::from([9, 9, 9, 9])));
    }

    #[test]
    fn helpers() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(
            form_field(b"a=1&token=x%2By+z", "token").as_deref(),
            Some("x+y z")
        );
        assert!(changes_state(&Method::DELETE) && !changes_state(&Method::HEAD));
        assert!(over_https(&parts(&[("origin", "https://a.test")]), false));
        assert!(!over_https(
            &parts(&[("x-forwarded-proto", "https")]),
            false
        ));
        assert!(over_https(&parts(&[("x-forwarded-proto", "https")]), true));
    }
}
