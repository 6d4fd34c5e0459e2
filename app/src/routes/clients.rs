//! `/v1/clients`: clients and their API keys.
//!
//! | route | auth | success |
//! |---|---|---|
//! | `POST /v1/clients` `{name?}` | none | 201 [`IssuedKey`] |
//! | `GET /v1/clients/{id}/keys` | client `{id}` | 200 [`KeyInfo`] list |
//! | `POST /v1/clients/{id}/keys` `{rotate?}` | client `{id}` | 201 [`IssuedKey`] |
//! | `POST /v1/clients/{id}/keys/renew` | client `{id}` | 200 [`RenewedKey`] |
//! | `POST /v1/clients/{id}/keys/revoke` `{key_id}` | client `{id}` | 200 [`KeyInfo`] |
//!
//! A key authenticated as another client than `{id}` gets 404 `RFA_CLIENT_NOT_FOUND`, never a
//! 403 that would confirm the client exists. The raw key appears only in the create and renew
//! responses.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use core_i18n::t;
use core_web::{ApiResponse, AppError, ValidatedJson};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::AppContext;
use crate::auth::{AuthError, Caller, IssuedKey, KeyInfo, RenewedKey};

/// The body of `POST /v1/clients`.
#[derive(Debug, Default, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// A name for the client's own records, at most 200 characters.
    #[serde(default)]
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
}

/// The body of `POST /v1/clients/{id}/keys`.
#[derive(Debug, Default, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Also schedule every other working key of the client to stop after
    /// `API_KEY_RENEW_OVERLAP`.
    #[serde(default)]
    #[schema(default = false)]
    pub rotate: bool,
}

/// The body of `POST /v1/clients/{id}/keys/revoke`.
#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// The key to revoke.
    #[validate(length(min = 1, max = 64))]
    #[schema(min_length = 1, max_length = 64)]
    pub key_id: String,
}

/// A JSON body that may be left out: no body (no `Content-Type` and no content) is
/// `T::default()`; anything else goes through [`ValidatedJson`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Validate + Default,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|len| len.as_bytes() == b"0");
        if empty {
            return Ok(Self(T::default()));
        }
        let ValidatedJson(value) = ValidatedJson::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// What the handlers return: their body or an [`AuthError`].
pub type Reply<T> = Result<ApiResponse<T>, AuthError>;

/// `POST /v1/clients`: a new client and its first key (201; no authentication).
#[utoipa::path(
    post,
    path = "/v1/clients",
    operation_id = "createClient",
    tag = "clients",
    request_body(content = Option<NewClient>, content_type = "application/json", description = "Optional: no body at all is an unnamed client"),
    responses(
        (status = 201, description = "The client and its first key; the key is shown this once", body = crate::openapi::IssuedKeyEnvelope),
        crate::openapi::BodyErrors,
    ),
)]
pub async fn create(
    State(ctx): State<AppContext>,
    OptionalJson(input): OptionalJson<NewClient>,
) -> Reply<IssuedKey> {
    let name = input.name.unwrap_or_default();
    let key = ctx.keys.create_client(&ctx.db, name.trim()).await?;
    Ok(ApiResponse::created(key, &t("clients.created")))
}

/// `GET /v1/clients/{id}/keys`: the client's keys, without their secrets.
#[utoipa::path(
    get,
    path = "/v1/clients/{id}/keys",
    operation_id = "listKeys",
    tag = "clients",
    params(("id" = uuid::Uuid, Path, description = "The client's id (the caller's own)")),
    responses(
        (status = 200, description = "The client's keys, without their secrets", body = crate::openapi::KeyListEnvelope),
        crate::openapi::ClientNotFound,
    ),
)]
pub async fn list_keys(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply<Vec<KeyInfo>> {
    owner(&caller, &id)?;
    let keys = ctx.keys.list(&ctx.db, &caller.client_id).await?;
    Ok(ApiResponse::success(keys, ""))
}

/// `POST /v1/clients/{id}/keys`: a new key (201); `{"rotate": true}` also schedules the
/// client's other keys to expire after the overlap.
#[utoipa::path(
    post,
    path = "/v1/clients/{id}/keys",
    operation_id = "createKey",
    tag = "clients",
    params(("id" = uuid::Uuid, Path, description = "The client's id (the caller's own)")),
    request_body(content = Option<NewKey>, content_type = "application/json", description = "Optional: no body at all is `{\"rotate\": false}`"),
    responses(
        (status = 201, description = "The new key; shown this once", body = crate::openapi::IssuedKeyEnvelope),
        crate::openapi::BodyErrors,
        crate::openapi::ClientNotFound,
    ),
)]
pub async fn create_key(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(input): OptionalJson<NewKey>,
) -> Reply<IssuedKey> {
    owner(&caller, &id)?;
    let key = ctx
        .keys
        .issue(&ctx.db, &ctx.cache, &caller.client_id, input.rotate)
        .await?;
    Ok(ApiResponse::created(key, &t("clients.key_created")))
}

/// `POST /v1/clients/{id}/keys/renew`: a new key now; the key of the request keeps working for
/// `API_KEY_RENEW_OVERLAP`.
#[utoipa::path(
    post,
    path = "/v1/clients/{id}/keys/renew",
    operation_id = "renewKey",
    tag = "clients",
    params(("id" = uuid::Uuid, Path, description = "The client's id (the caller's own)")),
    responses(
        (status = 200, description = "The new key (shown this once) and when the key of the request stops working", body = crate::openapi::RenewedKeyEnvelope),
        crate::openapi::ClientNotFound,
    ),
)]
pub async fn renew(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply<RenewedKey> {
    owner(&caller, &id)?;
    let renewed = ctx.keys.renew(&ctx.db, &ctx.cache, &caller).await?;
    Ok(ApiResponse::success(renewed, &t("clients.key_renewed")))
}

/// `POST /v1/clients/{id}/keys/revoke` `{key_id}`: that key stops working at once.
#[utoipa::path(
    post,
    path = "/v1/clients/{id}/keys/revoke",
    operation_id = "revokeKey",
    tag = "clients",
    params(("id" = uuid::Uuid, Path, description = "The client's id (the caller's own)")),
    request_body(content = RevokeKey, content_type = "application/json"),
    responses(
        (status = 200, description = "The revoked key", body = crate::openapi::KeyInfoEnvelope),
        crate::openapi::BodyErrors,
        (status = 404, description = "The path names another client (`RFA_CLIENT_NOT_FOUND`), or the caller has no key with this id (`RFA_API_KEY_NOT_FOUND`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
pub async fn revoke(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    ValidatedJson(input): ValidatedJson<RevokeKey>,
) -> Reply<KeyInfo> {
    owner(&caller, &id)?;
    let info = ctx
        .keys
        .revoke(&ctx.db, &ctx.cache, &caller.client_id, &input.key_id)
        .await?;
    Ok(ApiResponse::success(info, &t("clients.key_revoked")))
}

/// A 404 unless the path's client is the caller.
fn owner(caller: &Caller, id: &str) -> Result<(), AuthError> {
    if caller.client_id == id {
        Ok(())
    } else {
        Err(AuthError::ClientNotFound)
    }
}
