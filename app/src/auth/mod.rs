//! Clients' API keys and request authentication.
//!
//! - [`keys`]: the key format (`frk_…`, checksummed so that a scanner can recognise a key offline);
//! - [`KeyStore`]: issues, renews, revokes and looks up keys. A key is stored only as
//!   HMAC-SHA-256 under the server secret (`API_KEY_SECRET`, or in development a secret
//!   generated once into `{DATA_DIR}/api_key_secret`), with its first eight and last four
//!   characters kept for display; lookups go through the cache by that hash, and revoking or
//!   renewing invalidates the cached entry on every process right after the database commit;
//! - [`Caller`]: the extractor a handler takes to require `Authorization: Bearer <key>`.
//!
//! | failure | status | `error_code` |
//! |---|---|---|
//! | no, malformed or unknown key | 401, `WWW-Authenticate: Bearer` | `RFA_AUTH_INVALID_CREDENTIALS` |
//! | expired key | 401, `WWW-Authenticate: Bearer` | `RFA_AUTH_TOKEN_EXPIRED` |
//! | revoked key | 403 | `RFA_AUTH_API_KEY_DISABLED` |
//! | another client's id in the path | 404 | `RFA_CLIENT_NOT_FOUND` |
//! | unknown or another client's key id | 404 | `RFA_API_KEY_NOT_FOUND` |

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_i18n::t;
use core_web::AppError;

use crate::AppContext;

pub mod keys;
mod secret;
mod store;

pub use secret::{DEV_SECRET_FILE, dev_secret_path};
pub use store::{CACHE_TTL, IssuedKey, KeyInfo, KeyStore, PreviousKey, RenewedKey};

/// The authenticated client of a request: take it as a handler argument to require a valid
/// `Authorization: Bearer <key>`.
///
/// ```
/// use app::auth::Caller;
/// use core_web::{ApiResponse, ApiResult};
///
/// async fn whoami(caller: Caller) -> ApiResult<String> {
///     Ok(ApiResponse::success(caller.client_id, ""))
/// }
///
/// let routes: axum::Router<app::AppContext> =
///     axum::Router::new().route("/v1/whoami", axum::routing::get(whoami));
/// # let _ = routes;
/// ```
///
/// A missing, malformed (checked offline, before any lookup) or unknown key is a 401
/// `RFA_AUTH_INVALID_CREDENTIALS`, an expired key a 401 `RFA_AUTH_TOKEN_EXPIRED`, a revoked key
/// a 403 `RFA_AUTH_API_KEY_DISABLED` (see [`AuthError`]). On success the client id is recorded
/// on the current tracing span's `client_id` field (when the span declares one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client the key belongs to.
    pub client_id: String,
    /// The key the request was made with.
    pub key_id: String,
}

// region: ch6-caller
impl FromRequestParts<AppContext> for Caller {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let key = bearer_token(&parts.headers).ok_or(AuthError::MissingCredentials)?;
        let caller = ctx.keys.authenticate(&ctx.db, &ctx.cache, key).await?;
        tracing::Span::current().record("client_id", caller.client_id.as_str());
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
// endregion: ch6-caller

/// Middleware for a group of routes that all require a key: authenticates the request once
/// (the same checks and answers as [`Caller`]) and leaves the [`Caller`] in the request's
/// extensions, where the handlers' `Caller` and the rate limiter (keyed per client) find it.
// region: ch6-require
pub async fn require(
    axum::extract::State(ctx): axum::extract::State<AppContext>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Err(rejection) = Caller::from_request_parts(&mut parts, &ctx).await {
        return rejection.into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
// endregion: ch6-require

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why a request was not authenticated, or a client or key operation failed. Renders as the
/// framework's JSON error with the application's codes (the module table), 401s with
/// `WWW-Authenticate`.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` header: 401 `RFA_AUTH_INVALID_CREDENTIALS`.
    MissingCredentials,
    /// A malformed or unknown key: 401 `RFA_AUTH_INVALID_CREDENTIALS`.
    InvalidCredentials,
    /// The key's expiry has passed: 401 `RFA_AUTH_TOKEN_EXPIRED`.
    Expired,
    /// The key was revoked: 403 `RFA_AUTH_API_KEY_DISABLED`.
    Disabled,
    /// The path names a client other than the caller: 404 `RFA_CLIENT_NOT_FOUND`.
    ClientNotFound,
    /// No key of the caller has this id: 404 `RFA_API_KEY_NOT_FOUND`.
    KeyNotFound,
    /// The database or the cache failed: 500, details only in the log.
    Internal(anyhow::Error),
}

impl AuthError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidCredentials | Self::Expired => {
                StatusCode::UNAUTHORIZED
            }
            Self::Disabled => StatusCode::FORBIDDEN,
            Self::ClientNotFound | Self::KeyNotFound => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    // region: auth-error-mapping
    /// The framework error this renders as.
    pub fn into_app_error(self) -> AppError {
        let status = self.status();
        let (code, key) = match self {
            Self::MissingCredentials => {
                ("RFA_AUTH_INVALID_CREDENTIALS", "auth.missing_credentials")
            }
            Self::InvalidCredentials => {
                ("RFA_AUTH_INVALID_CREDENTIALS", "auth.invalid_credentials")
            }
            Self::Expired => ("RFA_AUTH_TOKEN_EXPIRED", "auth.token_expired"),
            Self::Disabled => ("RFA_AUTH_API_KEY_DISABLED", "auth.api_key_disabled"),
            Self::ClientNotFound => ("RFA_CLIENT_NOT_FOUND", "clients.not_found"),
            Self::KeyNotFound => ("RFA_API_KEY_NOT_FOUND", "clients.key_not_found"),
            Self::Internal(err) => return AppError::Internal(err),
        };
        AppError::Status {
            status,
            error_code: code.to_owned(),
            message: t(key),
        }
    }
    // endregion: auth-error-mapping
}

impl<E: Into<anyhow::Error>> From<E> for AuthError {
    fn from(err: E) -> Self {
        Self::Internal(err.into())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let challenge = match self {
            Self::MissingCredentials => Some("Bearer"),
            Self::InvalidCredentials | Self::Expired => Some("Bearer error=\"invalid_token\""),
            _ => None,
        };
        let mut response = self.into_app_error().into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer   abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
