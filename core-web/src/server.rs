//! Serving a router with graceful shutdown.
//!
//! On SIGINT or SIGTERM the server stops accepting connections, lets in-flight requests finish
//! (for at most the configured grace period), and returns, so the process can exit 0.
//!
//! [`serve_with_shutdown`] stops on a [`Shutdown`] shared with the rest of the process (job
//! workers, the scheduler, the outbox relay): one cancellation, or the signal
//! [`Shutdown::on_signal`] listens for, drains them all. Signals themselves are handled in one
//! place, [`core_db::shutdown::signal`], which [`shutdown_signal`] is.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
pub use core_db::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests for at
/// most `grace`. Requests carry their peer's address as `axum::extract::ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// # async fn run() -> core_web::Result<()> {
/// use std::time::Duration;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let router = axum::Router::new();
/// core_web::server::serve(listener, router, core_web::server::shutdown_signal(), Duration::from_secs(30)).await
/// # }
/// ```
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    grace: Duration,
) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
        let _ = started_tx.send(());
    };
    // Each request carries its peer's address (`ConnectInfo<SocketAddr>`): per-client limits
    // such as the dashboard's sign-in budget need it.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(signal);
    let drain_deadline = async move {
        if started_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(Error::Io),
        () = drain_deadline => {
            tracing::warn!("grace period elapsed with requests still running; closing them");
            Ok(())
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains in-flight requests
/// for at most `grace`. [`Shutdown::wait`] also waits for the drain.
///
/// ```no_run
/// # async fn run() -> core_web::Result<()> {
/// use std::time::Duration;
/// use core_web::server::{Shutdown, serve_with_shutdown};
///
/// let shutdown = Shutdown::on_signal(); // also given to workers, scheduler, relay
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// serve_with_shutdown(listener, axum::Router::new(), &shutdown, Duration::from_secs(30)).await?;
/// shutdown.wait().await; // every other part has drained too
/// # Ok(())
/// # }
/// ```
pub async fn serve_with_shutdown(
    listener: TcpListener,
    router: Router,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<()> {
    let token = shutdown.token().clone();
    let server = serve(listener, router, token.cancelled_owned(), grace);
    shutdown.tracker().track_future(server).await
}

/// Binds `addr` and serves `router` until SIGINT or SIGTERM, then writes out the log lines
/// still waiting ([`crate::telemetry::flush`]).
pub async fn run(router: Router, addr: SocketAddr, grace: Duration) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Bind { addr, source: e })?;
    let local = listener.local_addr().map_err(Error::Io)?;
    tracing::info!(address = %format!("http://{local}"), "listening");
    let served = serve(listener, router, shutdown_signal(), grace).await;
    tracing::info!("stopped");
    // The process is about to end: the log lines still in memory go out now.
    crate::telemetry::flush();
    served
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: [`core_db::shutdown::signal`].
///
/// Called inside a Tokio runtime, it listens from the moment it is called, so a signal that
/// arrives before the future is first polled is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    core_db::shutdown::signal()
}
