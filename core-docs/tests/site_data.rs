//! Tables on the site that are generated from the crates, so they cannot drift from the code:
//! `frontend/src/generated/settings.json` (every setting, from the crates' `SETTINGS` tables and their configurations' defaults) and
//! `frontend/src/generated/errors.json` (every `AppError` variant with its status and code).
//!
//! When a setting or a variant changes this test fails; regenerate the files with
//! `RUSTFORGE_BLESS=1 cargo test -p core-docs --test site_data` and rebuild the site.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use core_web::{AppError, FieldErrors};
use serde_json::{Value, json};

fn check(name: &str, value: Value) {
    let path = format!(
        "{}/frontend/src/generated/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = serde_json::to_string_pretty(&value).expect("json") + "\n";
    if std::env::var_os("RUSTFORGE_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{path}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{path} is out of date with the crates; regenerate it with \
         `RUSTFORGE_BLESS=1 cargo test -p core-docs --test site_data`"
    );
}

#[test]
fn settings_table_matches_core_web() {
    // The framework's settings composed with core-jobs' sections, as an application does.
    let mut defaults = serde_json::to_value(core_web::config::Settings::default()).expect("json");
    defaults["queue"] = serde_json::to_value(core_jobs::QueueConfig::default()).expect("json");
    defaults["worker"] = serde_json::to_value(core_jobs::WorkerConfig::default()).expect("json");
    let tables = [
        core_web::config::SETTINGS,
        core_db::settings::SETTINGS,
        core_jobs::config::SETTINGS,
    ];
    let settings: Vec<Value> = core_web::config::documented(&tables, &defaults)
        .into_iter()
        .map(|s| json!({"name": s.name, "default": s.default, "description": s.description}))
        .collect();
    check("settings", Value::Array(settings));
}

#[test]
fn error_table_matches_app_error() {
    let fields = || {
        let mut errors = FieldErrors::new();
        errors.insert("title".to_owned(), vec!["…".to_owned()]);
        errors
    };
    let message = || "…".to_owned();
    let variants: Vec<(&str, AppError)> = vec![
        (
            "Internal(anyhow::Error)",
            AppError::Internal(anyhow::anyhow!("…")),
        ),
        ("NotFound(String)", AppError::NotFound(message())),
        ("BadRequest(String)", AppError::BadRequest(message())),
        (
            "InvalidInput { message, errors }",
            AppError::InvalidInput {
                message: message(),
                errors: fields(),
            },
        ),
        ("Unauthorized(String)", AppError::Unauthorized(message())),
        ("Forbidden(String)", AppError::Forbidden(message())),
        ("Conflict(String)", AppError::Conflict(message())),
        ("Timeout(String)", AppError::Timeout(message())),
        (
            "PayloadTooLarge(String)",
            AppError::PayloadTooLarge(message()),
        ),
        (
            "UnprocessableEntity(String)",
            AppError::UnprocessableEntity(message()),
        ),
        (
            "Validation { message, errors }",
            AppError::Validation {
                message: message(),
                errors: fields(),
            },
        ),
        (
            "TooManyRequests { message, retry_after }",
            AppError::TooManyRequests {
                message: message(),
                retry_after: Some(Duration::from_secs(1)),
            },
        ),
        (
            "ServiceUnavailable(String)",
            AppError::ServiceUnavailable(message()),
        ),
        (
            "Status { status, error_code, message }",
            AppError::Status {
                status: StatusCode::GONE,
                error_code: "YOUR_CODE".to_owned(),
                message: message(),
            },
        ),
    ];
    let rows: Vec<Value> = variants
        .iter()
        .map(|(variant, error)| {
            let body = error.body();
            let mut row = BTreeMap::new();
            row.insert("variant", json!(variant));
            row.insert(
                "status",
                if variant.starts_with("Status") {
                    json!("any")
                } else {
                    json!(error.status().as_u16())
                },
            );
            row.insert("error_code", json!(error.error_code()));
            row.insert("field_errors", json!(body.errors.is_some()));
            json!(row)
        })
        .collect();
    check("errors", Value::Array(rows));
}
