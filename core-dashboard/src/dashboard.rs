//! [`Dashboard`] and its builder: what the dashboard shows, who may see it, and the router.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use core_jobs::{FailedJobs, JobCounters, Queue, ScheduledJob};
use core_web::AppError;
use core_web::datatable::{Column, DataTable, Filter};

use crate::api;
use crate::auth::Authorize;
use crate::error::{Error, Result};
use crate::frontend::{self, Frontend};
use crate::login::{self, Admit, Login, TokenLogin};
use crate::panel::Panel;
use crate::throughput::{
    DEFAULT_SAMPLE_INTERVAL, DEFAULT_THROUGHPUT_WINDOW, MIN_SAMPLE_INTERVAL, Throughput,
};

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
    login: Option<TokenLogin>,
    live_interval: Duration,
    frontend_dir: Option<PathBuf>,
    counters: Option<JobCounters>,
    sample_interval: Duration,
    throughput_window: Duration,
    schedule: Vec<ScheduledJob>,
    panels: Vec<Panel>,
    recent_jobs: usize,
}

/// How many finished jobs the dashboard keeps for `GET api/jobs/recent` unless
/// [`recent_jobs`](DashboardBuilder::recent_jobs) says otherwise.
pub const DEFAULT_RECENT_JOBS: usize = 100;

/// How often `GET api/events` sends the counts unless
/// [`live_interval`](DashboardBuilder::live_interval) says otherwise.
pub const DEFAULT_LIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest interval [`live_interval`](DashboardBuilder::live_interval) accepts.
pub const MIN_LIVE_INTERVAL: Duration = Duration::from_millis(100);

impl fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardBuilder")
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .field("authorize", &self.authorize.is_some())
            .field("login", &self.login)
            .field("live_interval", &self.live_interval)
            .field("frontend_dir", &self.frontend_dir)
            .field("sample_interval", &self.sample_interval)
            .field("throughput_window", &self.throughput_window)
            .field("schedule", &self.schedule.len())
            .field("panels", &self.panels)
            .field("recent_jobs", &self.recent_jobs)
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

    /// Signs admins in with a token, with sessions and CSRF protection (see [`TokenLogin`]);
    /// replaces an earlier login. Every route but sign-in and sign-out then needs a session;
    /// an [`authorize`](Self::authorize) hook given as well runs after the session check.
    ///
    /// ```
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use core_dashboard::{Dashboard, TokenLogin};
    /// use core_jobs::{FailedJobs, JobCounters, Queue};
    ///
    /// let db = core_db::Database::connect("sqlite::memory:").await?;
    /// let dashboard = Dashboard::builder(Queue::memory(), FailedJobs::new(db))
    ///     .login(TokenLogin::new("a-long-random-admin-token").failures_per_minute(3))
    ///     .build()?;
    /// # let _ = dashboard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn login(mut self, login: TokenLogin) -> Self {
        self.login = Some(login);
        self
    }

    /// [`login`](Self::login) with [`TokenLogin::new(token)`](TokenLogin::new) and its
    /// defaults.
    pub fn token_login(self, token: impl AsRef<str>) -> Self {
        self.login(TokenLogin::new(token))
    }

    /// How often `GET api/events` sends the queues' counts to a connected page
    /// ([`DEFAULT_LIVE_INTERVAL`], one second, by default; at least [`MIN_LIVE_INTERVAL`]).
    /// The counts are read only while a page is connected, once per interval per page.
    ///
    /// ```
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use core_dashboard::Dashboard;
    /// use core_jobs::{FailedJobs, JobCounters, Queue};
    ///
    /// let db = core_db::Database::connect("sqlite::memory:").await?;
    /// let dashboard = Dashboard::builder(Queue::memory(), FailedJobs::new(db))
    ///     .token_login("a-long-random-admin-token")
    ///     .live_interval(Duration::from_secs(5))
    ///     .build()?;
    /// # let _ = dashboard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn live_interval(mut self, interval: Duration) -> Self {
        self.live_interval = interval.max(MIN_LIVE_INTERVAL);
        self
    }

    /// Charts the counts of `counters` instead of the queue's own
    /// ([`Queue::counters`](core_jobs::Queue::counters)): for an application whose workers run
    /// on another `Queue` handle, given the same registry with
    /// [`Worker::counters`](core_jobs::Worker::counters). Either way, only workers in this
    /// process are counted (see [`throughput`](crate::throughput)).
    pub fn counters(mut self, counters: &JobCounters) -> Self {
        self.counters = Some(counters.clone());
        self
    }

    /// How often the throughput charts' counters are sampled, each sample one point of the
    /// charts ([`DEFAULT_SAMPLE_INTERVAL`], 10 s, by default; at least [`MIN_SAMPLE_INTERVAL`],
    /// and at least the [window](Self::throughput_window) divided by
    /// [`MAX_POINTS`](crate::throughput::MAX_POINTS)). Sampling reads in-process counters only.
    ///
    /// ```
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use core_dashboard::Dashboard;
    /// use core_jobs::{FailedJobs, JobCounters, Queue};
    ///
    /// let db = core_db::Database::connect("sqlite::memory:").await?;
    /// let dashboard = Dashboard::builder(Queue::memory(), FailedJobs::new(db))
    ///     .token_login("a-long-random-admin-token")
    ///     .sample_interval(Duration::from_secs(30))
    ///     .throughput_window(Duration::from_secs(6 * 3600))
    ///     .build()?;
    /// # let _ = dashboard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval.max(MIN_SAMPLE_INTERVAL);
        self
    }

    /// How far back the throughput charts reach ([`DEFAULT_THROUGHPUT_WINDOW`], one hour, by
    /// default; at least one [sample interval](Self::sample_interval)).
    pub fn throughput_window(mut self, window: Duration) -> Self {
        self.throughput_window = window;
        self
    }

    /// Shows `jobs`, the application's scheduled jobs, with their cron expressions and next
    /// runs (`GET api/schedule`). Give it what the scheduler runs, e.g.
    /// `scheduler.jobs().to_vec()`; the dashboard only reads the entries.
    pub fn schedule(mut self, jobs: impl IntoIterator<Item = ScheduledJob>) -> Self {
        self.schedule.extend(jobs);
        self
    }

    /// Adds `panel`, a page of the application's own records (a list with filters, each record
    /// with its timeline and a live stream), to the dashboard's page and API; see
    /// [`panel`](crate::panel). Panels appear in the order added.
    pub fn panel(mut self, panel: Panel) -> Self {
        self.panels.push(panel);
        self
    }

    /// Keeps the last `capacity` jobs finished by the workers of this process
    /// ([`DEFAULT_RECENT_JOBS`], 100, by default), for `GET api/jobs/recent` and the `jobs`
    /// events: [`build`](Self::build) calls [`JobCounters::keep_recent`] on the counters the
    /// dashboard charts ([`counters`](Self::counters), or the queue's own). 0 turns the ring
    /// off: the recent list stays empty and the workers pay nothing for it. The ring belongs to
    /// the counters, so a second dashboard on the same counters sets its capacity anew.
    ///
    /// ```
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use core_dashboard::Dashboard;
    /// use core_jobs::{FailedJobs, Queue};
    ///
    /// let db = core_db::Database::connect("sqlite::memory:").await?;
    /// let queue = Queue::memory();
    /// let dashboard = Dashboard::builder(queue.clone(), FailedJobs::new(db))
    ///     .token_login("a-long-random-admin-token")
    ///     .recent_jobs(500)
    ///     .build()?;
    /// assert_eq!(queue.counters().recent_capacity(), 500);
    /// # let _ = dashboard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recent_jobs(mut self, capacity: usize) -> Self {
        self.recent_jobs = capacity;
        self
    }

    /// Serves the dashboard's page from `dir` (a directory holding the built `index.html` and
    /// `assets/`) instead of the one [`frontend::frontend_dir`] names.
    pub fn frontend_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.frontend_dir = Some(dir.into());
        self
    }

    /// Checks the queue names and returns the [`Dashboard`]. Without an authorization hook or
    /// a login it still builds, logs a warning, and refuses every request.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] for a name the queue would refuse;
    /// [`Error::EmptyLoginToken`] for a login with an empty token.
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
        if self.login.as_ref().is_some_and(TokenLogin::is_empty) {
            return Err(Error::EmptyLoginToken);
        }
        for (i, panel) in self.panels.iter().enumerate() {
            panel.check()?;
            if self.panels[..i].iter().any(|p| p.id() == panel.id()) {
                return Err(Error::InvalidPanel(format!(
                    "panel id {:?} is used twice",
                    panel.id()
                )));
            }
        }
        if self.authorize.is_none() && self.login.is_none() {
            tracing::warn!(
                "the jobs dashboard has no authorization hook: every request is refused (401)"
            );
        }
        let counters = self
            .counters
            .unwrap_or_else(|| self.queue.counters().clone());
        counters.keep_recent(self.recent_jobs);
        let throughput = Throughput::new(
            counters.clone(),
            queues.clone(),
            self.sample_interval,
            self.throughput_window,
        );
        throughput.ensure_started();
        Ok(Dashboard {
            inner: Arc::new(Inner {
                throughput,
                counters,
                queue: self.queue,
                listing: listing()?,
                failed: self.failed,
                queues,
                authorize: self.authorize,
                login: self.login.map(Login::new),
                live_interval: self.live_interval,
                schedule: self.schedule,
                panels: self.panels,
                frontend: Frontend::new(self.frontend_dir.unwrap_or_else(frontend::frontend_dir)),
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
    pub(crate) login: Option<Login>,
    pub(crate) live_interval: Duration,
    pub(crate) schedule: Vec<ScheduledJob>,
    pub(crate) panels: Vec<Panel>,
    pub(crate) frontend: Frontend,
    pub(crate) throughput: Arc<Throughput>,
    /// What the charts sample and the recent jobs come from.
    pub(crate) counters: JobCounters,
}

/// A jobs dashboard: the queues' counts and the failed jobs, with retry and forget, as a
/// [`Router`] to mount anywhere. Cheap to clone.
///
/// ```
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::Router;
/// use core_dashboard::Dashboard;
/// use core_jobs::{FailedJobs, JobCounters, Queue};
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
            .field("login", &self.inner.login.is_some())
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
            login: None,
            live_interval: DEFAULT_LIVE_INTERVAL,
            frontend_dir: None,
            counters: None,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            throughput_window: DEFAULT_THROUGHPUT_WINDOW,
            schedule: Vec::new(),
            panels: Vec::new(),
            recent_jobs: DEFAULT_RECENT_JOBS,
        }
    }

    /// A stand-in for a dashboard the application has turned off: every path under the mount
    /// point answers 503 `DASHBOARD_DISABLED` saying `reason` (JSON under `api/`, a small HTML
    /// page elsewhere), so an admin who opens it learns why instead of meeting a bare 404.
    ///
    /// ```
    /// use axum::Router;
    /// use core_dashboard::Dashboard;
    ///
    /// let app: Router = Router::new().nest_service(
    ///     "/admin/jobs",
    ///     Dashboard::disabled("The jobs dashboard is disabled: ADMIN_TOKEN is not set"),
    /// );
    /// # let _ = app;
    /// ```
    pub fn disabled(reason: impl Into<String>) -> Router {
        let reason: Arc<str> = Arc::from(reason.into());
        tracing::info!(reason = %reason, "the jobs dashboard is disabled");
        Router::new().fallback(move |request: Request| {
            let reason = reason.clone();
            async move { disabled_answer(&reason, &request) }
        })
    }

    /// The queues it shows, in order.
    pub fn queue_names(&self) -> &[String] {
        &self.inner.queues
    }

    /// The dashboard's routes, relative to where the router is mounted
    /// (`Router::new().nest("/admin/jobs", dashboard.router())`, or `nest_service` for a
    /// dashboard with a [`TokenLogin`], see [`login`]); see the [crate docs](crate)
    /// for the API. Every request, unknown paths included, passes the login's session check
    /// (when there is a login) and the authorization hook first.
    pub fn router(&self) -> Router {
        let inner = self.inner.clone();
        api::routes(self.inner.clone()).layer(axum::middleware::from_fn(
            move |request: Request, next: Next| guard(inner.clone(), request, next),
        ))
    }
}

/// How often an open event stream checks that its session is still live.
pub(crate) const SESSION_CHECK: Duration = Duration::from_secs(1);

/// Runs the login's check and the hook on the request, then the request (or answers their
/// refusal). An event stream opened in a session ends when the session does.
async fn guard(inner: Arc<Inner>, mut request: Request, next: Next) -> Response {
    // A dashboard built outside a Tokio runtime starts sampling at its first request.
    inner.throughput.ensure_started();
    let mut session = None;
    if let Some(login) = &inner.login {
        match login.admit(&mut request) {
            Admit::Public => return next.run(request).await,
            Admit::Session(id) => session = Some(id),
            Admit::Refused(response) => return response,
        }
    }
    if let Some(authorize) = inner.authorize.as_deref() {
        let (parts, body) = request.into_parts();
        if let Err(err) = authorize.authorize(&parts).await {
            return err.into_response();
        }
        request = Request::from_parts(parts, body);
    } else if inner.login.is_none() {
        return AppError::Unauthorized(NO_HOOK.to_owned()).into_response();
    }
    let response = next.run(request).await;
    match session {
        Some(id) if is_event_stream(&response) => end_with_session(response, inner, id),
        _ => response,
    }
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The event stream of `response`, ended with an `error` event (the framework's 401 body) once
/// session `id` is signed out or expires: a page left open after sign-out stops receiving.
fn end_with_session(response: Response, inner: Arc<Inner>, id: String) -> Response {
    use futures_util::StreamExt as _;

    let (parts, body) = response.into_parts();
    let mut ticker = tokio::time::interval(SESSION_CHECK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (body.into_data_stream(), ticker, Some((inner, id)));
    let frames = futures_util::stream::unfold(
        state,
        |(mut frames, mut ticker, watch)| async move {
            let (inner, id) = watch?;
            loop {
                tokio::select! {
                    frame = frames.next() => {
                        let frame = frame?;
                        return Some((frame, (frames, ticker, Some((inner, id)))));
                    }
                    _ = ticker.tick() => {
                        let live = inner.login.as_ref().is_some_and(|login| login.is_live(&id));
                        if !live {
                            let body = AppError::Unauthorized(SESSION_ENDED.to_owned()).body();
                            let event = format!("event: error\ndata: {}\n\n", serde_json::to_string(&body).unwrap_or_default());
                            return Some((Ok(event.into()), (frames, ticker, None)));
                        }
                    }
                }
            }
        },
    );
    Response::from_parts(parts, axum::body::Body::from_stream(frames))
}

/// What the last event of a stream whose session ended says.
pub(crate) const SESSION_ENDED: &str = "The dashboard session has ended: sign in again";

/// What a disabled dashboard answers to `request`.
fn disabled_answer(reason: &str, request: &Request) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return AppError::coded(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "DASHBOARD_DISABLED",
            reason,
        )
        .into_response();
    }
    login::html(
        http::StatusCode::SERVICE_UNAVAILABLE,
        login::disabled_page(reason),
    )
}
