//! [`ValidatedJson`]: a JSON body, deserialized with serde and checked with `validator`.
//!
//! | what went wrong | status | `error_code` |
//! |---|---|---|
//! | `Content-Type` is not JSON | 400 | `BAD_REQUEST` |
//! | malformed JSON (line and column given) | 400 | `BAD_REQUEST` |
//! | a field of the wrong type (its path in `errors`) | 400 | `BAD_REQUEST` |
//! | the body is over the limit | 413 | `PAYLOAD_TOO_LARGE` |
//! | validation rules fail (paths like `items[0].name`) | 422 | `VALIDATION_ERROR` |

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::{AppError, FieldErrors};
use crate::messages;

/// Extracts a JSON body into `T`, then runs `T::validate()`.
///
/// ```
/// use core_web::{ApiResponse, ApiResult, ValidatedJson};
/// use serde::Deserialize;
/// use validator::Validate;
///
/// #[derive(Deserialize, Validate)]
/// struct CreateUser {
///     #[validate(email)]
///     email: String,
///     #[validate(length(min = 8))]
///     password: String,
/// }
///
/// async fn create(ValidatedJson(input): ValidatedJson<CreateUser>) -> ApiResult<String> {
///     Ok(ApiResponse::created(input.email, "User created"))
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(AppError::BadRequest(messages::text(
                "errors.json_content_type",
            )));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejection(rejection.status(), &rejection.body_text()))?;
        let value: T = parse_json(&bytes)?;
        value.validate().map_err(validation_error)?;
        Ok(ValidatedJson(value))
    }
}

/// Deserializes `bytes` as JSON into `T`, mapping errors to the framework's 400 responses: syntax
/// errors with line and column, type errors with the field's path in `errors`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        json_error(err.inner(), Some(path))
    })?;
    de.end().map_err(|err| json_error(&err, None))?;
    Ok(value)
}

fn json_error(err: &serde_json::Error, path: Option<String>) -> AppError {
    use serde_json::error::Category;
    let line = err.line();
    let column = err.column();
    let detail = strip_position(&err.to_string());
    match err.classify() {
        Category::Syntax => AppError::BadRequest(messages::text_args(
            "errors.json_syntax",
            &[("line", &line), ("column", &column), ("detail", &detail)],
        )),
        Category::Eof => AppError::BadRequest(messages::text_args(
            "errors.json_eof",
            &[("line", &line), ("column", &column)],
        )),
        Category::Data => {
            let path = path.filter(|p| p != ".").unwrap_or_default();
            let message =
                messages::text_args("errors.json_data", &[("path", &path), ("detail", &detail)]);
            let mut errors = FieldErrors::new();
            errors.insert(
                if path.is_empty() {
                    "$".to_owned()
                } else {
                    path
                },
                vec![messages::text_args(
                    "errors.invalid_field",
                    &[("detail", &detail)],
                )],
            );
            AppError::InvalidInput { message, errors }
        }
        Category::Io => AppError::BadRequest(messages::text_args(
            "errors.json_body",
            &[("detail", &detail)],
        )),
    }
}

/// serde_json appends " at line L column C"; the framework's message names them itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn has_json_content_type<B>(req: &axum::http::Request<B>) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Maps a body-reading rejection (axum's `BytesRejection` and friends) to the framework's error.
pub(crate) fn body_rejection(status: StatusCode, text: &str) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(crate::json_errors::payload_too_large_message())
    } else {
        AppError::BadRequest(messages::text_args(
            "errors.json_body",
            &[("detail", &text)],
        ))
    }
}

/// Turns `validator`'s errors into a 422 [`AppError::Validation`] with dotted field paths and
/// translated messages.
pub fn validation_error(errors: ValidationErrors) -> AppError {
    let mut out = FieldErrors::new();
    flatten(&errors, "", &mut out);
    AppError::Validation {
        message: messages::text("errors.validation"),
        errors: out,
    }
}

fn flatten(errors: &ValidationErrors, prefix: &str, out: &mut FieldErrors) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                let messages = out.entry(path).or_default();
                messages.extend(list.iter().map(translate));
            }
            ValidationErrorsKind::Struct(inner) => flatten(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    flatten(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

/// One validation error's message in the current locale. A custom `message` set on the rule is
/// treated as a translation key (and shown as is when no catalog has it); otherwise the rule's
/// code picks `validation.{code}`, refined by which bounds the rule has (`length_min`, …).
fn translate(error: &validator::ValidationError) -> String {
    let params: Vec<(String, String)> = error
        .params
        .iter()
        .filter(|(name, _)| name.as_ref() != "value")
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.to_string(), text)
        })
        .collect();
    let args: Vec<(&str, &dyn std::fmt::Display)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v as &dyn std::fmt::Display))
        .collect();
    if let Some(message) = &error.message {
        return messages::text_args(message, &args);
    }
    let code = error.code.as_ref();
    let has = |name: &str| params.iter().any(|(k, _)| k == name);
    let refined = match code {
        "length" | "range" if has("equal") => format!("validation.{code}_equal"),
        "length" | "range" if has("min") && !has("max") => format!("validation.{code}_min"),
        "length" | "range" if has("max") && !has("min") => format!("validation.{code}_max"),
        _ => format!("validation.{code}"),
    };
    for key in [refined.as_str(), "validation.invalid"] {
        if messages::has(key) {
            return messages::text_args(key, &args);
        }
    }
    code.to_owned()
}
