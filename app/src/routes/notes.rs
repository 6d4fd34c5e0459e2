//! `/api/v1/notes`: a small in-memory resource demonstrating `ApiResponse`, `AppError` and
//! `ValidatedJson` (nested validation, translated messages), and dispatch of a background job
//! ([`NoteCreated`]) from a handler.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use core_i18n::{t, t_args};
use core_jobs::Dispatch;
use core_web::{ApiResponse, ApiResult, AppError, FieldErrors, ValidatedJson};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use validator::Validate;

use crate::AppContext;
use crate::jobs::NoteCreated;

/// The most notes the demo store keeps.
pub const MAX_NOTES: usize = 10_000;

/// A stored note.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Identifier, assigned on creation.
    pub id: u64,
    /// Title, 1–120 characters.
    pub title: String,
    /// Optional body, at most 10,000 characters.
    pub body: String,
    /// Priority 1 (highest) – 5.
    pub priority: u8,
    /// Tags, each unique.
    pub tags: Vec<Tag>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A tag on a note.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
pub struct Tag {
    /// 1–32 characters.
    #[validate(length(min = 1, max = 32))]
    pub name: String,
}

/// The body of `POST /api/v1/notes`.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// 1–120 characters.
    #[validate(length(min = 1, max = 120))]
    pub title: String,
    /// At most 10,000 characters.
    #[serde(default)]
    #[validate(length(max = 10000))]
    pub body: String,
    /// 1–5, default 3.
    #[serde(default = "default_priority")]
    #[validate(range(min = 1, max = 5))]
    pub priority: u8,
    /// At most 10 tags, each validated.
    #[serde(default)]
    #[validate(length(max = 10), nested)]
    pub tags: Vec<Tag>,
}

fn default_priority() -> u8 {
    3
}

/// The in-memory store behind the demo resource; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct NoteStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    next_id: AtomicU64,
    notes: RwLock<BTreeMap<u64, Note>>,
}

/// `?page=&per_page=` for the list.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// 1-based page number (default 1).
    #[serde(default = "one")]
    pub page: u32,
    /// Page size, 1–100 (default 20).
    #[serde(default = "twenty")]
    pub per_page: u32,
}

fn one() -> u32 {
    1
}

fn twenty() -> u32 {
    20
}

/// `POST /api/v1/notes`: 201 with the note, 422 with field errors, 400 for bad JSON.
///
/// Dispatches [`NoteCreated`] for the new note; when the queue refuses it, the note is not
/// stored and the answer is a 500.
pub async fn create(
    State(state): State<AppContext>,
    ValidatedJson(input): ValidatedJson<NewNote>,
) -> ApiResult<Note> {
    let mut seen = HashSet::new();
    let mut errors = FieldErrors::new();
    for (i, tag) in input.tags.iter().enumerate() {
        if !seen.insert(tag.name.as_str()) {
            errors
                .entry(format!("tags[{i}].name"))
                .or_default()
                .push(t_args("notes.duplicate_tag", &[("tag", &tag.name)]));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation {
            message: core_web::messages::text("errors.validation"),
            errors,
        });
    }
    let mut notes = state.notes.inner.notes.write().await;
    if notes.len() >= MAX_NOTES {
        return Err(AppError::Conflict(t_args(
            "notes.full",
            &[("max", &MAX_NOTES)],
        )));
    }
    let id = state.notes.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let note = Note {
        id,
        title: input.title,
        body: input.body,
        priority: input.priority,
        tags: input.tags,
        created_at: Utc::now(),
    };
    // The store's lock is held until the note is inserted, so no reader sees a note whose job
    // was never queued.
    NoteCreated { id }
        .dispatch(&state.queue)
        .await
        .map_err(|e| {
            AppError::Internal(anyhow::Error::new(e).context("dispatching NoteCreated"))
        })?;
    notes.insert(id, note.clone());
    Ok(ApiResponse::created(note, &t("notes.created")))
}

/// `GET /api/v1/notes?page=&per_page=`: newest first, with `meta.total`.
pub async fn list(
    State(state): State<AppContext>,
    Query(page): Query<Page>,
) -> ApiResult<Vec<Note>> {
    if page.page == 0 {
        return Err(AppError::field(
            "page",
            t_args("validation.range_min", &[("min", &1)]),
        ));
    }
    if !(1..=100).contains(&page.per_page) {
        return Err(AppError::field(
            "per_page",
            t_args("validation.range", &[("min", &1), ("max", &100)]),
        ));
    }
    let notes = state.notes.inner.notes.read().await;
    let total = notes.len();
    let skip = (page.page as usize - 1).saturating_mul(page.per_page as usize);
    let items: Vec<Note> = notes
        .values()
        .rev()
        .skip(skip)
        .take(page.per_page as usize)
        .cloned()
        .collect();
    Ok(
        ApiResponse::success(items, &t_args("notes.listed", &[("count", &total)])).with_meta(
            serde_json::json!({ "total": total, "page": page.page, "per_page": page.per_page }),
        ),
    )
}

/// `GET /api/v1/notes/{id}`: the note or 404.
pub async fn show(State(state): State<AppContext>, Path(id): Path<u64>) -> ApiResult<Note> {
    let notes = state.notes.inner.notes.read().await;
    match notes.get(&id) {
        Some(note) => Ok(ApiResponse::success(note.clone(), &t("notes.found"))),
        None => Err(AppError::NotFound(t_args(
            "notes.not_found",
            &[("id", &id)],
        ))),
    }
}

/// `DELETE /api/v1/notes/{id}`: the deleted note or 404.
pub async fn delete(State(state): State<AppContext>, Path(id): Path<u64>) -> ApiResult<Note> {
    let removed = state.notes.inner.notes.write().await.remove(&id);
    match removed {
        Some(note) => Ok(ApiResponse::success(
            note,
            &t_args("notes.deleted", &[("id", &id)]),
        )),
        None => Err(AppError::NotFound(t_args(
            "notes.not_found",
            &[("id", &id)],
        ))),
    }
}
