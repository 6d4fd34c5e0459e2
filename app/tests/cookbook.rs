//! The cookbook's "Verify" steps, run against the running app: every script in
//! `core-docs/verify/` (what the docs site shows under "Verify", taken from the same file) is run
//! with bash against a server and a worker of its own, on a fresh PostgreSQL database and Redis
//! prefix, so a recipe that stops working fails the build.
//!
//! A script gets `BASE` (the server's address), `DATABASE_URL`, `REDIS_URL`, `APP_NAME` (the
//! Redis key prefix) and `APP` (the app binary) and must exit 0; it may use curl, jq, redis-cli,
//! psql and python3. A reader runs the same script against `cargo run -p app` with `BASE` unset.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{Services, serve, terminate, worker};

/// The most a script may take before it counts as hanging.
const LIMIT: Duration = Duration::from_secs(120);

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core-docs/verify")
}

/// Runs `core-docs/verify/{script}` against a server and worker of its own.
async fn verify(test: &str, script: &str) {
    let Some(services) = Services::start(test).await else {
        return;
    };
    let env = services.env(&[
        ("WORK_TIME_SCALE", "0.01"),
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("WEBHOOK_BACKOFF_MS", "200"),
        ("WEBHOOK_TIMEOUT_MS", "2000"),
    ]);
    let (mut server, _server_log, addr) = serve(services.dir.path(), &env);
    let (mut worker, _worker_log) = worker(services.dir.path(), &env);

    let path = scripts_dir().join(script);
    let mut cmd = Command::new("bash");
    cmd.arg(&path)
        .current_dir(services.dir.path())
        .env("BASE", format!("http://{addr}"))
        .env("APP", env!("CARGO_BIN_EXE_app"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &env {
        cmd.env(name, value);
    }
    let child = cmd.spawn().expect("bash");
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || wait_with_limit(child, LIMIT))
        .await
        .unwrap();

    terminate(&mut server).await;
    terminate(&mut worker).await;

    let (status, stdout, stderr) = output;
    println!("--- {script} (stdout) ---\n{stdout}\n--- {script} (stderr) ---\n{stderr}");
    let status = status.unwrap_or_else(|| {
        panic!(
            "{script} did not finish in {LIMIT:?} ({:?})",
            started.elapsed()
        )
    });
    assert!(
        status.success(),
        "{script} failed ({status}); its output is above"
    );
}

/// Waits for `child` at most `limit` (killing it after); its status and output.
fn wait_with_limit(
    mut child: std::process::Child,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

macro_rules! verify_scripts {
    ($($name:ident => $script:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                verify(stringify!($name), $script).await;
            }
        )*

        /// Every script in `core-docs/verify/` has a test above, so none is skipped.
        #[test]
        fn every_script_is_run() {
            let listed: &[&str] = &[$($script),*];
            let mut found: Vec<String> = std::fs::read_dir(scripts_dir())
                .expect("core-docs/verify")
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sh") && name != "lib.sh")
                .collect();
            found.sort();
            let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            listed.sort();
            assert_eq!(found, listed, "core-docs/verify/*.sh and the tests in app/tests/cookbook.rs");
        }
    };
}

verify_scripts! {
    chapter_01_first_resource => "01-first-resource.sh",
    chapter_02_validation => "02-validation.sh",
    chapter_03_jobs => "03-jobs.sh",
    chapter_04_webhooks => "04-webhooks.sh",
    chapter_05_live_events => "05-live-events.sh",
    chapter_06_api_keys => "06-api-keys.sh",
    chapter_07_cli => "07-cli.sh",
    chapter_08_end_to_end => "08-end-to-end.sh",
    chapter_09_production => "09-production.sh",
    chapter_10_caching => "10-caching.sh",
    chapter_12_event_fanout => "12-event-fanout.sh",
}
