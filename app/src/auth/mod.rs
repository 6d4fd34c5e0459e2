//! TEMPORARY stub replaced by the auth branch.
#![allow(missing_docs)]
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use core_web::AppError;

use crate::AppContext;

#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub key_id: String,
}

impl FromRequestParts<AppContext> for Caller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppContext) -> Result<Self, AppError> {
        let id = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::Unauthorized("no".into()))?;
        Ok(Self {
            client_id: id.to_owned(),
            key_id: String::new(),
        })
    }
}
