//! Rustforge's HTTP layer.
//!
//! - [`AppError`] and [`ApiResponse`]: every handler answers `{"data", "message"?}` on success and
//!   `{"message", "error_code", "errors"?, "request_id"}` on failure — including the framework's
//!   own rejections, timeouts, panics and oversized bodies. [`AppError::coded`] gives an error
//!   the application's own code, [`AppError::with_header`] any response header.
//! - [`problem`]: the same errors as RFC 9457 problem details for clients whose `Accept` prefers
//!   `application/problem+json`.
//! - [`rate_limit`]: fixed-window rate limits on the shared cache, with the IETF `RateLimit`
//!   headers and a layer for routers.
//! - [`ValidatedJson`]: a JSON body checked with `validator`; failures come back as 422 with
//!   dotted field paths and messages in the request's locale.
//! - [`middleware::stack`]: HTTP metrics, request id, trace span, locale, JSON errors, panic
//!   catching, timeout, body limit, CORS and compression in one call.
//! - [`datatable::DataTable`]: a declarative list endpoint (pagination, sorting, filters, search)
//!   over PostgreSQL or SQLite, every value bound.
//! - [`metrics`]: Prometheus metrics — one recorder per process, HTTP requests by route
//!   template and status with latency histograms (applied by the stack), and `GET /metrics`.
//! - [`ssrf`]: checks user-given URLs (webhooks, callbacks) and their resolved addresses so
//!   that outbound requests cannot reach loopback, private or metadata addresses.
//! - [`webhook`]: Standard Webhooks signing and verification (`whsec_` secrets, `v1` HMAC
//!   signatures) and a sender that connects only to the addresses the `ssrf` guard checked.
//! - [`token`]: random tokens, hex and constant-time comparison for session ids, CSRF tokens and
//!   API keys.
//! - [`server`]: serving with graceful shutdown on SIGINT/SIGTERM.
//! - [`config::Settings`] and [`config::Loader`]: typed settings from the environment, `.env`
//!   and TOML, composed from each crate's own configuration;
//!   [`telemetry::init`] for logs.
//!
//! ```
//! use axum::{Router, routing::post};
//! use core_web::{ApiResponse, ApiResult, ValidatedJson, config::HttpConfig};
//! use serde::Deserialize;
//! use validator::Validate;
//!
//! #[derive(Deserialize, Validate)]
//! struct Greeting {
//!     #[validate(length(min = 1, max = 40))]
//!     name: String,
//! }
//!
//! async fn greet(ValidatedJson(g): ValidatedJson<Greeting>) -> ApiResult<String> {
//!     Ok(ApiResponse::success(format!("Hello, {}!", g.name), ""))
//! }
//!
//! let app: Router = core_web::middleware::stack(
//!     Router::new().route("/greet", post(greet)),
//!     &HttpConfig::default(),
//! );
//! # let _ = app;
//! ```

pub mod config;
pub mod datatable;
pub mod error;
pub mod json_errors;
pub mod messages;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod response;
pub mod server;
pub mod ssrf;
pub mod telemetry;
pub mod token;
pub mod validation;
pub mod webhook;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use error::{AppError, Error, ErrorBody, FieldErrors, Result};
pub use request_id::RequestId;
pub use response::{ApiResponse, ApiResult};
pub use validation::ValidatedJson;
