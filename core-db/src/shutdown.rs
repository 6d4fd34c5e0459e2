//! One shutdown for every background part of a process: the HTTP server, job workers, the
//! scheduler and the outbox relay.
//!
//! A [`Shutdown`] pairs a [`CancellationToken`] (the request to stop) with a [`TaskTracker`]
//! (what is still draining). Each part is handed the same `Shutdown` (`Worker::with_shutdown`,
//! `Scheduler::with_shutdown`, `JobBuffer::spawn_relay_with`, `serve_with_shutdown` in
//! core-web); cancelling it stops them all, each finishes its in-flight work, and
//! [`wait`](Shutdown::wait) returns once every one of them has. OS signals are handled in one
//! place, [`signal`], which [`Shutdown::on_signal`] ties to the token.
//!
//! It lives in core-db because both core-web and core-jobs build on core-db and neither depends
//! on the other.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use core_db::shutdown::Shutdown;
//!
//! let shutdown = Shutdown::new();
//! let token = shutdown.token().child_token();
//! shutdown.tracker().spawn(async move {
//!     token.cancelled().await;
//!     // drain in-flight work here
//! });
//! shutdown.cancel();
//! shutdown.wait().await;
//! # }
//! ```

use std::future::Future;

pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// A cancellation token shared by every background loop, and the tracker of their tasks.
///
/// Cheap to clone: clones share the token and the tracker.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown that happens when [`cancel`](Self::cancel) is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown driven by an existing token: cancelling `token` stops every part given this
    /// shutdown.
    pub fn from_token(token: CancellationToken) -> Self {
        Self {
            token,
            tracker: TaskTracker::new(),
        }
    }

    /// A shutdown that is cancelled on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
    ///
    /// The listeners are installed when this is called, so a signal that arrives while the
    /// process is still starting up is not lost. When they cannot be installed the error is
    /// logged and the shutdown is cancelled at once. Call it inside a Tokio runtime.
    pub fn on_signal() -> Self {
        let shutdown = Self::new();
        let signal = signal();
        let token = shutdown.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signal => {
                    tracing::info!("shutdown signal received");
                    token.cancel();
                }
                () = token.cancelled() => {}
            }
        });
        shutdown
    }

    /// The token every part watches.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The tracker every part spawns its main task on, so that [`wait`](Self::wait) waits for it.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Asks every part to stop.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has been asked for.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown has been asked for.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Waits until every task spawned on the tracker has finished (call it after
    /// [`cancel`](Self::cancel), or after the signal). No task may be added afterwards.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the one place a Rustforge process
/// listens for OS signals.
///
/// Called inside a Tokio runtime, it listens from the moment it is called, so a signal that
/// arrives before the future is first polled is not lost. When the handlers cannot be
/// installed the error is logged and the future completes at once.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let signals = Signals::install_in_runtime();
    async move {
        match signals.unwrap_or_else(Signals::install) {
            Ok(signals) => signals.recv().await,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGINT and SIGTERM; shutting down");
            }
        }
    }
}

/// As [`signal`], but returns the error when the handlers cannot be installed. Installs them
/// now: call it inside a Tokio runtime.
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn try_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(Signals::install()?.recv())
}

/// SIGINT and SIGTERM listeners, registered when they are created: a signal that arrives
/// before [`recv`](Self::recv) is polled is kept for it.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the listeners. Needs a Tokio runtime with signals enabled.
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// [`install`](Self::install) now when called inside a Tokio runtime; `None` outside one
    /// (the caller installs on its first poll, which runs inside one).
    fn install_in_runtime() -> Option<std::io::Result<Self>> {
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| Self::install())
    }

    /// Completes on the first signal received since the listeners were installed.
    async fn recv(self) {
        #[cfg(unix)]
        {
            let Self {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wait_returns_after_every_tracked_task_has_drained() {
        let shutdown = Shutdown::new();
        let drained = Arc::new(AtomicBool::new(false));
        let (token, done) = (shutdown.token().child_token(), drained.clone());
        shutdown.tracker().spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
        });
        let waiter = shutdown.clone();
        let wait = tokio::spawn(async move { waiter.wait().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!wait.is_finished(), "nothing was cancelled yet");
        shutdown.cancel();
        wait.await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn from_token_follows_the_given_token() {
        let token = CancellationToken::new();
        let shutdown = Shutdown::from_token(token.clone());
        assert!(!shutdown.is_cancelled());
        token.cancel();
        shutdown.cancelled().await;
    }
}
