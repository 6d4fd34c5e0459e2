//! Serving a router with graceful shutdown.
//!
//! On SIGINT or SIGTERM the server stops accepting connections, lets in-flight requests finish
//! (for at most the configured grace period), and returns, so the process can exit 0.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests for at
/// most `grace`.
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
    let server = axum::serve(listener, router.into_make_service()).with_graceful_shutdown(signal);
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

/// Binds `addr` and serves `router` until SIGINT or SIGTERM.
pub async fn run(router: Router, addr: SocketAddr, grace: Duration) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Bind { addr, source: e })?;
    let local = listener.local_addr().map_err(Error::Io)?;
    tracing::info!(address = %format!("http://{local}"), "listening");
    serve(listener, router, shutdown_signal(), grace).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
