//! The test harness every Rustforge crate's tests use.
//!
//! Each helper gives a test its own isolated piece of a real service and removes it afterwards:
//!
//! - [`redis()`]: a fresh random key prefix on the Redis at `REDIS_URL`; every key under it is
//!   deleted when the [`TestRedis`] is dropped.
//! - [`postgres`]: a fresh database created on the server at `DATABASE_URL`, with the workspace's
//!   PostgreSQL migrations applied; dropped (with `FORCE`) when the [`TestPostgres`] is dropped.
//! - [`sqlite`]: a fresh temporary SQLite file with the SQLite migrations applied.
//! - [`FaultProxy`]: a TCP proxy between a client and Redis or PostgreSQL that black-holes,
//!   stalls, delays, cuts or resets the traffic on command (see [`proxy`]).
//!
//! When a service is unreachable the helper returns `None` after printing one `SKIPPED` line, so a
//! contributor without Redis or PostgreSQL can still run `cargo test`. With
//! `RUSTFORGE_REQUIRE_SERVICES=1` (set by `scripts/test` and CI) it panics instead, naming the
//! service and how to start it, so a missing service can never make a suite pass silently.
//!
//! ```no_run
//! # async fn example() {
//! let Some(redis) = test_support::redis("my_test").await else { return };
//! let key = redis.key("user:1"); // "rf-test-3f9c…:user:1"
//! # let _ = key;
//! # }
//! ```

pub mod http;
pub mod proxy;
pub mod receiver;
pub mod s3;
pub use http::{JsonReply, TextReply, send_json, send_text};
pub use proxy::{Direction, Fault, FaultProxy};
pub use receiver::Receiver;
pub use s3::{TestS3, s3};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Default Redis URL when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Passwords holding every character that ends a URL part early (`/`, `@`, `:`, `#`, `?`): for
/// tests that a URL's password is redacted whole wherever it is shown.
pub const URL_PASSWORDS: &[&str] = &[
    "s3cret",
    "se/cret",
    "se@cret",
    "se:cret",
    "se#cret",
    "se?cret",
    "a/b@c:d#e?f",
    "//@@::##??",
];

/// Default PostgreSQL URL when `DATABASE_URL` is not set (or is not a PostgreSQL URL).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// True when `RUSTFORGE_REQUIRE_SERVICES=1`: a missing service fails the test instead of skipping.
pub fn require_services() -> bool {
    matches!(
        std::env::var("RUSTFORGE_REQUIRE_SERVICES").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// The Redis URL tests use: `REDIS_URL`, or [`DEFAULT_REDIS_URL`].
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// The PostgreSQL server URL tests create their databases on: `DATABASE_URL` when it is a
/// PostgreSQL URL, or [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// The workspace's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("migrations"))
        .unwrap_or_else(|| PathBuf::from("migrations"))
}

/// A short random lowercase identifier, unique enough for per-test names.
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..12)
        .map(|_| {
            let n: u8 = rng.random_range(0..36);
            char::from_digit(u32::from(n), 36).unwrap_or('x')
        })
        .collect()
}

/// Reports that `service` is unavailable for `test`: panics under `RUSTFORGE_REQUIRE_SERVICES=1`,
/// otherwise prints one `SKIPPED` line straight to the terminal (past the test harness's capture).
///
/// # Panics
/// When services are required.
pub fn service_unavailable(test: &str, service: &str, url: &str, error: &str, how: &str) {
    if require_services() {
        panic!(
            "{service} is required (RUSTFORGE_REQUIRE_SERVICES=1) but is not reachable at {url}: \
             {error}. Start it with: {how}"
        );
    }
    let line = format!(
        "SKIPPED {test}: {service} not reachable at {url} ({error}); start it with: {how}\n"
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

const REDIS_HOW: &str = "scripts/test (starts it), or `redis-server --daemonize yes`";
const POSTGRES_HOW: &str = "scripts/test (starts it), or `pg_ctlcluster <version> main start` / your distribution's service";

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// A per-test Redis key prefix. Every key that starts with [`TestRedis::prefix`] is deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    /// The Redis URL.
    pub url: String,
    /// A fresh random prefix, `rf-test-<random>`; no other test uses it.
    pub prefix: String,
}

impl TestRedis {
    /// `"{prefix}:{key}"`.
    pub fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// A new multiplexed async connection to the test Redis.
    ///
    /// # Panics
    /// If Redis stopped answering since the helper checked it.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).expect("valid REDIS_URL");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis connection")
    }

    /// Every key currently stored under this test's prefix, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.connection().await;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", glob_escape(&self.prefix)))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("UNLINK").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// Escapes Redis glob characters (`*`, `?`, `[`, `]`, `\`) so `s` matches itself literally.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fresh Redis prefix for `test`, or `None` (after one `SKIPPED` line) when Redis is unreachable.
///
/// # Panics
/// When Redis is unreachable and `RUSTFORGE_REQUIRE_SERVICES=1`.
pub async fn redis(test: &str) -> Option<TestRedis> {
    let url = redis_url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => Some(TestRedis {
            url,
            prefix: format!("rf-test-{}", random_suffix()),
        }),
        Ok(Err(e)) => {
            service_unavailable(test, "Redis", &url, &e.to_string(), REDIS_HOW);
            None
        }
        Err(_) => {
            service_unavailable(test, "Redis", &url, "timed out after 3 s", REDIS_HOW);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A fresh PostgreSQL database with the workspace's migrations applied, dropped on drop.
#[derive(Debug)]
pub struct TestPostgres {
    /// URL of the fresh database.
    pub url: String,
    /// Its name, `rf_test_<random>`.
    pub name: String,
    /// A pool connected to it.
    pub pool: PgPool,
    admin_url: String,
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which stays blocked until the clean-up thread
        // ends; so that thread must not touch the pool, whose connections belong to the blocked
        // runtime (closing them from elsewhere can wait forever). `WITH (FORCE)` ends them on
        // the server side instead, and the pool is dropped with `self`.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A fresh PostgreSQL database for `test`, or `None` (after one `SKIPPED` line) when the server
/// is unreachable.
///
/// # Panics
/// When the server is unreachable and `RUSTFORGE_REQUIRE_SERVICES=1`, or when a migration fails.
pub async fn postgres(test: &str) -> Option<TestPostgres> {
    let admin_url = database_url();
    let connect = async {
        let opts: PgConnectOptions = admin_url.parse()?;
        opts.connect().await
    };
    let mut admin = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            service_unavailable(test, "PostgreSQL", &admin_url, &e.to_string(), POSTGRES_HOW);
            return None;
        }
        Err(_) => {
            service_unavailable(
                test,
                "PostgreSQL",
                &admin_url,
                "timed out after 5 s",
                POSTGRES_HOW,
            );
            return None;
        }
    };
    let name = format!("rf_test_{}", random_suffix());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE for the test");
    let _ = admin.close().await;

    let opts: PgConnectOptions = admin_url.parse().expect("valid DATABASE_URL");
    let opts = opts.database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .expect("connect to the test database");
    let url = replace_database(&admin_url, &name);
    let db = TestPostgres {
        url,
        name,
        pool,
        admin_url,
    };
    let migrator = Migrator::new(migrations_dir().join("postgres"))
        .await
        .expect("read migrations/postgres");
    migrator
        .run(&db.pool)
        .await
        .expect("apply PostgreSQL migrations");
    Some(db)
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/db  → keep everything up to the last '/' after the authority.
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

/// A fresh SQLite database file with the workspace's SQLite migrations applied; the file and its
/// directory are removed on drop.
#[derive(Debug)]
pub struct TestSqlite {
    /// `sqlite://…` URL of the file.
    pub url: String,
    /// The database file.
    pub path: PathBuf,
    /// A pool connected to it.
    pub pool: SqlitePool,
    _dir: tempfile::TempDir,
}

/// A fresh SQLite database. SQLite is embedded, so this never skips.
///
/// # Panics
/// If the temporary directory cannot be made or a migration fails.
pub async fn sqlite() -> TestSqlite {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("test.sqlite3");
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .expect("open the test SQLite file");
    let migrator = Migrator::new(migrations_dir().join("sqlite"))
        .await
        .expect("read migrations/sqlite");
    migrator.run(&pool).await.expect("apply SQLite migrations");
    TestSqlite {
        url: format!("sqlite://{}", path.display()),
        path,
        pool,
        _dir: dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(glob_escape("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\");
        assert_eq!(glob_escape("plain:key"), "plain:key");
    }

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h:5432", "z"),
            "postgres://h:5432/z"
        );
    }

    #[tokio::test]
    async fn redis_prefix_is_cleaned_on_drop() {
        let Some(r) = redis("redis_prefix_is_cleaned_on_drop").await else {
            return;
        };
        let mut conn = r.connection().await;
        let key = r.key("a");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .query_async(&mut conn)
            .await
            .expect("SET");
        assert_eq!(r.keys().await, vec![key.clone()]);
        drop(r);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(
            !exists,
            "the prefix's keys are removed when the TestRedis is dropped"
        );
    }

    #[tokio::test]
    async fn postgres_database_is_fresh_and_dropped() {
        let Some(db) = postgres("postgres_database_is_fresh_and_dropped").await else {
            return;
        };
        let name = db.name.clone();
        let current: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&db.pool)
            .await
            .expect("query");
        assert_eq!(current, name);
        drop(db);
        let mut admin = sqlx::PgConnection::connect(&database_url())
            .await
            .expect("admin");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("query");
        assert_eq!(left, 0, "the test database is dropped");
    }

    #[tokio::test]
    async fn sqlite_file_is_fresh() {
        let db = sqlite().await;
        assert!(db.path.exists());
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&db.pool)
            .await
            .expect("query");
        assert_eq!(one, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP
// ---------------------------------------------------------------------------------------------

/// A response read off a real socket by [`http_request`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` to `addr` over TCP and reads the whole
/// response. `headers` are added as given; `Content-Length` is set from `body`.
///
/// # Errors
/// Connection refused or reset, or a response that is not HTTP/1.1.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<RawResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
