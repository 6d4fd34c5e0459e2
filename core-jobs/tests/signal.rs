//! `Worker::run` and `worker::shutdown_signal` listen for SIGINT and SIGTERM from the moment
//! they are called: a signal that arrives before their future is first polled stops the worker
//! instead of being lost (or, before any handler is installed, killing the process).
//!
//! The signals go to this test process itself, sent with `kill(1)`. That is why this file holds
//! a single test: no other test of the binary may receive them.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Harness, Kind, TestJob, wait_until};
use core_jobs::Dispatch;

const T: Duration = Duration::from_secs(10);

/// Sends `signal` (`TERM`, `INT`) to this process and returns once `kill` has exited.
fn send_to_self(signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {signal} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_before_the_first_poll_is_not_lost() {
    let h = Harness::new(Kind::Memory, "signal").await.unwrap();

    // SIGTERM between `run()` and its first poll: with the handlers installed only on the first
    // poll, the default action would end this process here.
    let run = h.worker().run();
    send_to_self("TERM");
    tokio::time::timeout(T, run)
        .await
        .expect("the worker stopped on the SIGTERM sent before it was polled")
        .expect("the worker ran");

    // SIGINT while a job runs: the worker stops after the job has finished.
    let worker = tokio::spawn(h.worker().grace(Duration::from_secs(5)).run());
    TestJob::new("busy")
        .sleeping(300)
        .dispatch(&h.queue)
        .await
        .unwrap();
    assert!(wait_until(T, || h.rec.runs("busy") == 1).await);
    send_to_self("INT");
    tokio::time::timeout(T, worker)
        .await
        .expect("the worker stopped on SIGINT")
        .expect("the worker task did not panic")
        .expect("the worker ran");
    assert!(h.rec.log().contains(&"end:busy".to_owned()));
    let s = h.queue.stats("default").await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 0), "{s:?}");

    // The public future listens from its creation too (Tokio's process-wide handler is
    // installed by now, so a lost signal shows as a timeout here).
    let signal = core_jobs::worker::shutdown_signal();
    send_to_self("TERM");
    tokio::time::timeout(T, signal)
        .await
        .expect("shutdown_signal() completed on the SIGTERM sent before it was polled");
}
