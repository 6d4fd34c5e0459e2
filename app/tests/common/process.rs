//! Running the `app` binary in tests: its JSON log lines, its address, SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The `app` binary in `dir` with a clean environment and JSON logs.
pub fn app(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("NO_COLOR", "1");
    cmd
}

/// The child's stdout (its JSON log lines), read on a thread.
pub struct Lines(Receiver<String>);

impl Lines {
    pub fn new(stdout: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line containing every one of `needles`; panics after 30 s.
    pub fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no log line with {needles:?} in 30 s"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the app exited without logging {needles:?}")
                }
            }
        }
    }
}

/// Waits for the line that carries the listen address.
pub fn listen_address(lines: &Lines) -> std::net::SocketAddr {
    let line = lines.wait_for(&["http://"]);
    let start = line.find("http://").unwrap() + 7;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c == '"' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().expect("the app logs its address")
}

/// Sends SIGTERM and waits (at most 10 s) for the child to exit.
pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the app did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `app {args}` in `dir` with `env`, its standard output captured line by line.
fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, Lines) {
    let mut cmd = app(dir);
    cmd.args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    (child, lines)
}

// region: serve-worker
/// Starts `app serve` in `dir` on a free port with `env`; returns the child, its log lines and
/// its address.
pub fn serve(dir: &Path, env: &[(&str, &str)]) -> (Child, Lines, std::net::SocketAddr) {
    let mut env = env.to_vec();
    env.push(("PORT", "0"));
    let (child, lines) = spawn(dir, &[], &env);
    let addr = listen_address(&lines);
    (child, lines, addr)
}

/// Starts `app worker` in `dir` with `env`; returns once it logged its start.
pub fn worker(dir: &Path, env: &[(&str, &str)]) -> (Child, Lines) {
    let (child, lines) = spawn(dir, &["worker"], env);
    lines.wait_for(&[r#""message":"worker started""#]);
    (child, lines)
}
// endregion: serve-worker

// region: services
/// A fresh PostgreSQL database, Redis prefix and directory for processes of one test.
pub struct Services {
    pub pg: test_support::TestPostgres,
    pub redis: test_support::TestRedis,
    pub dir: tempfile::TempDir,
    storage: String,
}

impl Services {
    /// `None` when a service is unreachable (and not required).
    pub async fn start(test: &str) -> Option<Self> {
        let pg = test_support::postgres(test).await?;
        let redis = test_support::redis(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage").display().to_string();
        Some(Self {
            pg,
            redis,
            dir,
            storage,
        })
    }

    /// The processes' environment: the services, storage in the directory, then `extra`.
    pub fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("DATABASE_URL", self.pg.url.as_str()),
            ("REDIS_URL", self.redis.url.as_str()),
            ("APP_NAME", self.redis.prefix.as_str()),
            ("STORAGE_ROOT", self.storage.as_str()),
        ];
        env.extend_from_slice(extra);
        env
    }
}
// endregion: services
