//! [`Dashboard`] and its builder: what the dashboard shows, who may see it, and the router.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use core_jobs::{FailedJobs, Queue};
use core_web::AppError;
use core_web::datatable::{Column, DataTable, Filter};

use crate::api;
use crate::auth::Authorize;
use crate::error::{Error, Result};

/// The message of the 401 a dashboard without an authorization hook answers.
pub(crate) const NO_HOOK: &str =
    "The jobs dashboard has no authorization hook, so it refuses every request";

/// Builds a [`Dashboard`]: start with [`Dashboard::builder`], name the queues, give the
/// authorization hook, end with [`build`](Self::build).
#[must_use]
pub struct DashboardBuilder {
    queue: Queue,
    failed: FailedJobs,
    queues: Vec<String>,
    authorize: Option<Arc<dyn Authorize>>,
}

impl fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardBuilder")
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .field("authorize", &self.authorize.is_some())
            .finish_non_exhaustive()
    }
}

impl DashboardBuilder {
    /// Shows queue `name` (in the order added; `default` alone when none is added).
    pub fn queue_name(mut self, name: impl Into<String>) -> Self {
        self.queues.push(name.into());
        self
    }

    /// Shows every queue of `names` (see [`queue_name`](Self::queue_name)).
    pub fn queue_names<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.queues.extend(names.into_iter().map(Into::into));
        self
    }

    /// The hook every request goes through before anything else (see [`Authorize`]); replaces
    /// an earlier one. Without it the dashboard answers every request with 401.
    pub fn authorize(mut self, hook: impl Authorize) -> Self {
        self.authorize = Some(Arc::new(hook));
        self
    }

    /// [`authorize`](Self::authorize) with a hook already shared behind an `Arc`.
    pub fn authorize_arc(mut self, hook: Arc<dyn Authorize>) -> Self {
        self.authorize = Some(hook);
        self
    }

    /// Checks the queue names and returns the [`Dashboard`]. Without an authorization hook it
    /// still builds, logs a warning, and refuses every request.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] for a name the queue would refuse.
    pub fn build(self) -> Result<Dashboard> {
        let mut queues: Vec<String> = Vec::with_capacity(self.queues.len().max(1));
        for name in self.queues {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(Error::InvalidQueueName(name));
            }
            if !queues.contains(&name) {
                queues.push(name);
            }
        }
        if queues.is_empty() {
            queues.push("default".to_owned());
        }
        if self.authorize.is_none() {
            tracing::warn!(
                "the jobs dashboard has no authorization hook: every request is refused (401)"
            );
        }
        Ok(Dashboard {
            inner: Arc::new(Inner {
                queue: self.queue,
                listing: listing()?,
                failed: self.failed,
                queues,
                authorize: self.authorize,
            }),
        })
    }
}

/// The failed-jobs listing: every column but the payload.
fn listing() -> Result<DataTable> {
    Ok(DataTable::table("failed_jobs")
        .column(Column::integer("id").sortable())
        .column(Column::text("job_id"))
        .column(Column::text("job_name").sortable().filter(Filter::Eq))
        .column(Column::text("queue").sortable().filter(Filter::Eq))
        .column(Column::text("error").filter(Filter::Like))
        .column(Column::integer("attempts").sortable())
        .column(Column::text("group_id"))
        .column(
            Column::timestamp("failed_at")
                .sortable()
                .filter(Filter::Range),
        )
        .default_sort("-failed_at")
        .key("id")
        .per_page(25)
        .max_per_page(200)
        .tracked_row_count()
        .build()?)
}

/// What the handlers share.
pub(crate) struct Inner {
    pub(crate) queue: Queue,
    pub(crate) failed: FailedJobs,
    pub(crate) queues: Vec<String>,
    pub(crate) listing: DataTable,
    authorize: Option<Arc<dyn Authorize>>,
}

/// A jobs dashboard: the queues' counts and the failed jobs, with retry and forget, as a
/// [`Router`] to mount anywhere. Cheap to clone.
///
/// ```
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::Router;
/// use core_dashboard::Dashboard;
/// use core_jobs::{FailedJobs, Queue};
/// use core_web::AppError;
/// use http::request::Parts;
///
/// let db = core_db::Database::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let dashboard = Dashboard::builder(Queue::memory(), FailedJobs::new(db))
///     .queue_names(["default", "mail"])
///     .authorize(|parts: &Parts| {
///         let admin = parts.headers.contains_key("x-admin");
///         async move {
///             if admin { Ok(()) } else { Err(AppError::Unauthorized("Admins only".into())) }
///         }
///     })
///     .build()?;
/// let app: Router = Router::new().nest("/admin/jobs", dashboard.router());
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("queues", &self.inner.queues)
            .field("authorize", &self.inner.authorize.is_some())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Starts a dashboard over `queue` (for the counts and for re-dispatching) and the failure
    /// store `failed`.
    pub fn builder(queue: Queue, failed: FailedJobs) -> DashboardBuilder {
        DashboardBuilder {
            queue,
            failed,
            queues: Vec::new(),
            authorize: None,
        }
    }

    /// The queues it shows, in order.
    pub fn queue_names(&self) -> &[String] {
        &self.inner.queues
    }

    /// The dashboard's routes, relative to where the router is mounted
    /// (`Router::new().nest("/admin/jobs", dashboard.router())`); see the [crate docs](crate)
    /// for the API. Every request, unknown paths included, passes the authorization hook first.
    pub fn router(&self) -> Router {
        let authorize = self.inner.authorize.clone();
        api::routes(self.inner.clone()).layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let authorize = authorize.clone();
                async move { guard(authorize.as_deref(), request, next).await }
            },
        ))
    }
}

/// Runs the hook on the request's head, then the request (or answers the hook's error).
async fn guard(authorize: Option<&dyn Authorize>, request: Request, next: Next) -> Response {
    let Some(authorize) = authorize else {
        return AppError::Unauthorized(NO_HOOK.to_owned()).into_response();
    };
    let (parts, body) = request.into_parts();
    if let Err(err) = authorize.authorize(&parts).await {
        return err.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
