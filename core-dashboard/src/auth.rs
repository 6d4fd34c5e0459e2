//! [`Authorize`]: the application's hook that decides who may use the dashboard.
//!
//! The dashboard has no users of its own: every request (the API, and any path under the mount
//! point) first goes through the hook given to
//! [`DashboardBuilder::authorize`](crate::DashboardBuilder::authorize). `Ok(())` lets it through;
//! an [`AppError`] is sent as the answer, in the framework's JSON error shape (usually
//! [`AppError::Unauthorized`] or [`AppError::Forbidden`]). A dashboard built without a hook
//! refuses every request with 401: nothing is public by default.
//!
//! A closure taking the request's [`Parts`] is a hook. It reads what it needs from the parts
//! (headers, extensions a login layer put there) before its `async move` block, because the
//! future it returns may not borrow them (a named `fn` says so with `use<>`:
//! `fn hook(parts: &Parts) -> impl Future<Output = Result<(), AppError>> + Send + use<>`):
//!
//! ```
//! use core_web::AppError;
//! use http::request::Parts;
//!
//! let hook = |parts: &Parts| {
//!     let token = parts.headers.get("x-admin-token").cloned();
//!     async move {
//!         match token {
//!             Some(t) if t == "let-me-in" => Ok(()),
//!             _ => Err(AppError::Unauthorized("Admins only".into())),
//!         }
//!     }
//! };
//! # fn check(_: impl core_dashboard::Authorize) {}
//! # check(hook);
//! ```
//!
//! A type of your own implements the trait directly, and its future may borrow the parts:
//!
//! ```
//! use core_dashboard::Authorize;
//! use core_web::AppError;
//! use futures_util::future::BoxFuture;
//! use http::request::Parts;
//!
//! struct AdminToken(String);
//!
//! impl Authorize for AdminToken {
//!     fn authorize<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<(), AppError>> {
//!         Box::pin(async move {
//!             let given = parts.headers.get("x-admin-token").and_then(|v| v.to_str().ok());
//!             if given == Some(self.0.as_str()) {
//!                 Ok(())
//!             } else {
//!                 Err(AppError::Unauthorized("Admins only".into()))
//!             }
//!         })
//!     }
//! }
//! ```

use std::future::Future;

use core_web::AppError;
use futures_util::future::BoxFuture;
use http::request::Parts;

/// Decides whether a request may use the dashboard: `Ok(())` lets it through, an error is the
/// response. Object-safe, so the dashboard keeps one `Arc<dyn Authorize>`; implemented for every
/// `Fn(&Parts) -> impl Future<Output = Result<(), AppError>>` closure (see the [module
/// docs](self)).
pub trait Authorize: Send + Sync + 'static {
    /// Checks the request whose head is `parts` (method, URI, headers, extensions; the body is
    /// not read).
    fn authorize<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<(), AppError>>;
}

impl<F, Fut> Authorize for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AppError>> + Send + 'static,
{
    fn authorize<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(self(parts))
    }
}
