//! The one error type of `core-dashboard`: a dashboard definition that cannot be built. Errors
//! while serving a request are core-web's [`AppError`](core_web::AppError) responses.

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`DashboardBuilder::build`](crate::DashboardBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A queue name the queue would refuse: empty, or holding `:` or whitespace.
    #[error("invalid queue name {0:?}: must be non-empty, without ':' or whitespace")]
    InvalidQueueName(String),
    /// A [`TokenLogin`](crate::TokenLogin) with an empty token: anyone could sign in.
    #[error("the dashboard's login token is empty")]
    EmptyLoginToken,
    /// A [`Panel`](crate::panel::Panel) that cannot be mounted: a bad or repeated id, or no
    /// rows handler.
    #[error("invalid dashboard panel: {0}")]
    InvalidPanel(String),
    /// The failed-jobs listing could not be defined (a bug in this crate, not in the caller's
    /// input).
    #[error(transparent)]
    Listing(#[from] core_web::datatable::DefinitionError),
}
