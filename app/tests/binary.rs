//! The `app` binary: starts with embedded defaults, serves `/health`, exits 0 on SIGTERM and
//! refuses invalid settings with a message naming the variable. (Draining in-flight requests on
//! shutdown is tested in core-web's `tests/server.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn app(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("NO_COLOR", "1");
    cmd
}

/// Reads the child's log lines until one carries the listen address.
fn listen_address(stdout: impl std::io::Read + Send + 'static) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(start) = line.find("http://") {
                let rest = &line[start + 7..];
                let end = rest
                    .find(|c: char| c == '"' || c.is_whitespace())
                    .unwrap_or(rest.len());
                if let Ok(addr) = rest[..end].parse() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the app logs its address")
}

#[tokio::test]
async fn serves_health_with_defaults_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = app(dir.path())
        .env("PORT", "0")
        .env("REQUEST_TIMEOUT_MS", "10000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr = listen_address(child.stdout.take().unwrap());

    let reply = test_support::http_request(addr, "GET", "/health", &[], b"")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["data"]["status"], "ok");
    let reply = test_support::http_request(addr, "GET", "/ready", &[], b"")
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        dir.path().join("data/app.sqlite3").exists(),
        "the embedded SQLite default is created"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the app did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        test_support::http_request(addr, "GET", "/health", &[], b"")
            .await
            .is_err(),
        "no longer accepting connections"
    );
}

#[test]
fn invalid_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, accepts) in [
        ("PORT", "seventy", "port number"),
        ("DATABASE_URL", "mysql://x", "postgres://"),
        ("LOG_FORMAT", "xml", "json"),
        ("CACHE_URL", "memcached://x", "memory://"),
    ] {
        let out = app(dir.path()).env(name, value).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stderr.contains(accepts), "{name}: {stderr}");
    }
    let out = app(dir.path()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: app"));
}

#[test]
fn migrate_command_applies_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = app(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/app.sqlite3").exists());
}

#[test]
fn an_unreachable_database_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = app(dir.path())
        .env(
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/none",
        )
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password is not printed: {stderr}"
    );
}
