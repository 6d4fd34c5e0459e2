//! The middleware stack's cost: the app's router against a bare axum router serving the same
//! bodies, measured in the same run.
//!
//! `cargo bench -p app --bench http` (no services needed: the app runs on SQLite in a temporary
//! directory, the memory cache and the memory queue, without its workers, so only HTTP is
//! measured). `HTTP_BENCH_SECS` sets the length of one round (default 3 s; 1 for a quick run),
//! `HTTP_BENCH_ROUNDS` the rounds per side (default 5), `HTTP_BENCH_ONLY` one path to measure
//! (`/health`, `/bench/echo` or `/nowhere`).
//!
//! The app's side is [`app::router`]'s route table and middleware stack (request id and span,
//! error format, locale, JSON errors, panic catching, timeout, body limits, compression, metrics
//! with the recorder installed, the request log line), plus one route, `POST /bench/echo`, that
//! takes a `ValidatedJson` body and answers it in an `ApiResponse`. The bare side is an axum
//! router with no layer whose handlers answer the same JSON bodies: `GET /health`, the echo with
//! `Json` + `validator`, a JSON 422 and a JSON 404 fallback. Both are served on 127.0.0.1; the
//! load generator (in this process, so the two cores are shared by all of it) drives each over
//! 64 keep-alive HTTP/1.1 connections for one round, alternating which side goes first. Each
//! side's median round is printed, and the ratio is the median of the rounds' ratios, each of
//! two rounds run one after the other (the machine's speed drifts over a run, and moves both
//! rounds of a pair alike). Beside requests per second, each side's CPU time per request (the
//! whole process's, load generator included) and their ratio are printed: the throughput ratio
//! also moves with how the tasks happen to land on the two cores, the CPU cost less so.
//! `HTTP_BENCH_VERBOSE=1` prints every pair of rounds.
//!
//! Logs are the app's real setup, [`core_web::telemetry::init`], writing to stdout. The bench
//! runs itself twice as a child process with stdout redirected to `/dev/null` (so every log line
//! is formatted and written with a `write(2)` as it is in production, and discarded by the
//! kernel): once with `LOG_LEVEL=warn` (no request log line) and once with `LOG_LEVEL=info`,
//! `LOG_FORMAT=json`. Target: `/health` with request logs on at ≥ 0.85x bare axum.
//!
//! `HTTP_BENCH_IN_PROCESS=1` measures the stack alone instead: each router is called as a
//! service, one request after another on one task, with no socket and no HTTP parsing, and
//! the time per request of each side and their difference (what the stack adds) are printed.
//! The figures move less than the load test's, which makes this the mode to compare a change
//! with, and to profile (`HTTP_BENCH_MODE=info-json` runs one child directly;
//! `HTTP_BENCH_SIDE=app` or `bare` measures one side only, in either mode, and prints how many
//! requests it made, to count per request what a profiler or a probe counted).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::{Conn, percentile, serve};
use core_web::{ApiResponse, ApiResult, ValidatedJson};
use serde::{Deserialize, Serialize};
use validator::Validate;

mod common;

/// Keep-alive connections the load generator uses.
const CONNECTIONS: usize = 64;

/// The mode a child process runs in.
const MODE: &str = "HTTP_BENCH_MODE";

/// The echo route's body.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
struct Echo {
    #[validate(length(min = 1, max = 64))]
    name: String,
    #[validate(range(min = 1, max = 10))]
    priority: u8,
}

async fn echo(ValidatedJson(input): ValidatedJson<Echo>) -> ApiResult<Echo> {
    Ok(ApiResponse::created(input, ""))
}

/// The app's router as [`app::router`] builds it, with `POST /bench/echo`.
fn app_router(ctx: app::AppContext) -> Router {
    let http = ctx.settings.base.http.clone();
    let routes = app::routes::routes(&ctx)
        .route("/bench/echo", post(echo))
        .nest_service("/docs", core_docs::router())
        .with_state(ctx);
    core_web::middleware::stack(routes, &http)
}

#[derive(Serialize)]
struct BareHealth {
    status: &'static str,
    app: String,
    version: &'static str,
}

#[derive(Serialize)]
struct Envelope<T> {
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// axum alone, answering the same bodies as the app.
fn bare_router(app_name: String) -> Router {
    Router::new()
        .route(
            "/health",
            get(move || {
                let app = app_name.clone();
                async move {
                    Json(Envelope {
                        data: BareHealth {
                            status: "ok",
                            app,
                            version: env!("CARGO_PKG_VERSION"),
                        },
                        message: Some("The service is alive"),
                    })
                }
            }),
        )
        .route(
            "/bench/echo",
            post(|Json(input): Json<Echo>| async move {
                match input.validate() {
                    Ok(()) => (
                        StatusCode::CREATED,
                        Json(Envelope {
                            data: input,
                            message: None,
                        }),
                    )
                        .into_response(),
                    Err(errors) => {
                        let errors: std::collections::BTreeMap<String, Vec<String>> = errors
                            .field_errors()
                            .into_iter()
                            .map(|(field, errs)| {
                                (
                                    field.to_string(),
                                    errs.iter().map(|e| e.code.to_string()).collect(),
                                )
                            })
                            .collect();
                        (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            Json(serde_json::json!({
                                "message": "The given data was invalid.",
                                "error_code": "VALIDATION_ERROR",
                                "errors": errors,
                            })),
                        )
                            .into_response()
                    }
                }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({
                    "message": "Route GET /nowhere not found",
                    "error_code": "NOT_FOUND",
                })),
            )
                .into_response()
        })
}

/// One request the load generator sends.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static [u8],
    status: u16,
}

const CASES: &[Case] = &[
    Case {
        name: "GET /health",
        method: "GET",
        path: "/health",
        body: b"",
        status: 200,
    },
    Case {
        name: "POST ValidatedJson, valid",
        method: "POST",
        path: "/bench/echo",
        body: br#"{"name":"nightly report","priority":3}"#,
        status: 201,
    },
    Case {
        name: "POST ValidatedJson, 422",
        method: "POST",
        path: "/bench/echo",
        body: br#"{"name":"","priority":42}"#,
        status: 422,
    },
    Case {
        name: "GET unknown route, 404",
        method: "GET",
        path: "/nowhere",
        body: b"",
        status: 404,
    },
];

/// One round's result.
#[derive(Clone, Copy)]
struct Round {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The process's CPU time (user and system, load generator included) per request, in µs.
    cpu_us: f64,
}

/// The CPU time this process has used so far, in seconds (from `/proc/self/stat`, in clock
/// ticks of 10 ms; a round uses hundreds of them).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Sends `case` on [`CONNECTIONS`] connections for `duration`.
async fn hammer(addr: SocketAddr, case: Case, duration: Duration) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut latencies = Vec::with_capacity(4096);
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let (status, body) = conn
                    .call(case.method, case.path, "Bearer none", case.body)
                    .await;
                latencies.push(sent.elapsed().as_micros() as u64);
                assert_eq!(
                    status,
                    case.status,
                    "{} {}",
                    case.name,
                    String::from_utf8_lossy(&body)
                );
            }
            latencies
        }));
    }
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let cpu = cpu_seconds() - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Round {
        rps: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us: cpu * 1e6 / latencies.len().max(1) as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary(rounds: &[Round]) -> Round {
    Round {
        rps: median(rounds.iter().map(|r| r.rps).collect()),
        p50_ms: median(rounds.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(rounds.iter().map(|r| r.p99_ms).collect()),
        cpu_us: median(rounds.iter().map(|r| r.cpu_us).collect()),
    }
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    match std::env::var(MODE) {
        Ok(mode) => child(&mode),
        Err(_) => parent(),
    }
}

/// Runs the bench once per log mode, each in a child whose stdout (the log) is `/dev/null`.
fn parent() {
    println!(
        "HTTP bench: {} cores, {CONNECTIONS} connections, {} s rounds, {} rounds per side",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env_number("HTTP_BENCH_SECS", 3.0),
        env_number("HTTP_BENCH_ROUNDS", 5.0),
    );
    let exe = std::env::current_exe().expect("the bench's path");
    for mode in ["warn", "info-json"] {
        let status = std::process::Command::new(&exe)
            .env(MODE, mode)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the bench's child");
        assert!(status.success(), "the {mode} run failed");
    }
}

/// Serves both routers and measures every case; prints to stderr (stdout is the log).
fn child(mode: &str) {
    let (level, format, label) = match mode {
        "warn" => ("warn", "pretty", "request logs off (LOG_LEVEL=warn)"),
        "info-json" => (
            "info",
            "json",
            "request logs on (LOG_LEVEL=info, LOG_FORMAT=json)",
        ),
        "info-pretty" => (
            "info",
            "pretty",
            "request logs on (LOG_LEVEL=info, LOG_FORMAT=pretty)",
        ),
        other => panic!("unknown {MODE} {other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/app.sqlite3", dir.path().display());
    let storage = dir.path().join("storage").display().to_string();
    let data = dir.path().join("data").display().to_string();
    let vars: std::collections::HashMap<&str, &str> = [
        ("DATABASE_URL", database.as_str()),
        ("CACHE_URL", "memory://"),
        ("QUEUE_URL", "memory://"),
        ("APP_NAME", "http-bench"),
        ("STORAGE_ROOT", storage.as_str()),
        ("DATA_DIR", data.as_str()),
        ("LOG_LEVEL", level),
        ("LOG_FORMAT", format),
    ]
    .into_iter()
    .collect();
    let settings = app::Settings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
        .expect("settings");
    core_web::telemetry::init(&settings.base.log).expect("logging");
    let seconds = env_number("HTTP_BENCH_SECS", 3.0);
    let rounds = env_number("HTTP_BENCH_ROUNDS", 5.0).max(1.0) as usize;
    common::main(async move {
        let ctx = app::AppContext::connect(settings).await.expect("context");
        let app_name = ctx.settings.base.app_name.clone();
        let (app_router, bare_router) = (app_router(ctx), bare_router(app_name));
        let round = Duration::from_secs_f64(seconds);
        eprintln!("\n{label}");
        let only = std::env::var("HTTP_BENCH_ONLY").ok();
        let cases = CASES
            .iter()
            .filter(|c| only.as_deref().is_none_or(|o| c.path == o));
        if std::env::var_os("HTTP_BENCH_IN_PROCESS").is_some() {
            in_process(app_router, bare_router, cases, round, rounds).await;
            return;
        }
        let side = std::env::var("HTTP_BENCH_SIDE").ok();
        if let Some(side) = side {
            let addr = serve(if side == "bare" {
                bare_router
            } else {
                app_router
            })
            .await;
            for case in cases {
                let r = hammer(addr, *case, round).await;
                let requests = r.rps * round.as_secs_f64();
                eprintln!(
                    "{:<28} {side}: {:.0} req/s, {requests:.0} requests, {:.1} CPU µs/req",
                    case.name, r.rps, r.cpu_us
                );
            }
            return;
        }
        let app_addr = serve(app_router).await;
        let bare_addr = serve(bare_router).await;
        eprintln!(
            "{:<28} {:>26} {:>26} {:>7} {:>17} {:>9}",
            "",
            "Rustforge req/s (p50/p99 ms)",
            "bare axum req/s (p50/p99)",
            "ratio",
            "CPU µs/req (bare)",
            "CPU ratio"
        );
        for case in cases {
            // Warm both sides up (connections, caches, the allocator).
            hammer(app_addr, *case, Duration::from_millis(300)).await;
            hammer(bare_addr, *case, Duration::from_millis(300)).await;
            let (mut ours, mut bare) = (Vec::new(), Vec::new());
            for r in 0..rounds {
                if r % 2 == 0 {
                    ours.push(hammer(app_addr, *case, round).await);
                    bare.push(hammer(bare_addr, *case, round).await);
                } else {
                    bare.push(hammer(bare_addr, *case, round).await);
                    ours.push(hammer(app_addr, *case, round).await);
                }
            }
            if std::env::var_os("HTTP_BENCH_VERBOSE").is_some() {
                for (o, b) in ours.iter().zip(&bare) {
                    eprintln!(
                        "  round: {:.0} / {:.0} req/s = {:.2}x, {:.1} / {:.1} CPU µs/req",
                        o.rps,
                        b.rps,
                        o.rps / b.rps,
                        o.cpu_us,
                        b.cpu_us
                    );
                }
            }
            // Each ratio is of two rounds run one after the other, so a change in the
            // machine's speed over the run (which moves both sides) cancels out in it.
            let ratio = median(ours.iter().zip(&bare).map(|(o, b)| o.rps / b.rps).collect());
            let cpu_ratio = median(
                ours.iter()
                    .zip(&bare)
                    .map(|(o, b)| b.cpu_us / o.cpu_us)
                    .collect(),
            );
            let (ours, bare) = (summary(&ours), summary(&bare));
            eprintln!(
                "{:<28} {:>9.0} ({:>5.2}/{:>6.2}) {:>9.0} ({:>5.2}/{:>6.2}) {:>6.2}x {:>8.1} ({:>5.1}) {:>8.2}x",
                case.name,
                ours.rps,
                ours.p50_ms,
                ours.p99_ms,
                bare.rps,
                bare.p50_ms,
                bare.p99_ms,
                ratio,
                ours.cpu_us,
                bare.cpu_us,
                cpu_ratio,
            );
            if mode == "info-json" && case.path == "/health" {
                eprintln!(
                    "  /health with request logs on ≥ 0.85x bare axum: {}",
                    if ratio >= 0.85 {
                        "PASS"
                    } else {
                        "BELOW TARGET"
                    }
                );
            }
        }
    });
}

/// The time one request takes through `router` called as a service, in ns: requests one after
/// another for `duration`, each body read to its end.
async fn call_for(router: &Router, case: Case, duration: Duration) -> f64 {
    use tower::ServiceExt as _;
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < duration {
        for _ in 0..256 {
            let request = axum::http::Request::builder()
                .method(case.method)
                .uri(case.path)
                .header("host", "127.0.0.1")
                .header("authorization", "Bearer none")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(case.body))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
            let body = http_body_util::BodyExt::collect(response.into_body()).await;
            std::hint::black_box(body.unwrap().to_bytes());
        }
        calls += 256;
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

/// [`call_for`] on both sides in alternating rounds; prints each side's median and the
/// difference.
async fn in_process<'a>(
    app: Router,
    bare: Router,
    cases: impl Iterator<Item = &'a Case>,
    round: Duration,
    rounds: usize,
) {
    eprintln!(
        "{:<28} {:>16} {:>16} {:>16}",
        "in process", "Rustforge ns/req", "bare axum ns/req", "stack adds ns"
    );
    let side = std::env::var("HTTP_BENCH_SIDE").ok();
    if let Some(side) = side {
        let router = if side == "bare" { &bare } else { &app };
        for case in cases {
            let ns = call_for(router, *case, round).await;
            let calls = round.as_nanos() as f64 / ns;
            eprintln!(
                "{:<28} {side}: {ns:.0} ns/req, {calls:.0} requests",
                case.name
            );
        }
        return;
    }
    for case in cases {
        call_for(&app, *case, Duration::from_millis(300)).await;
        call_for(&bare, *case, Duration::from_millis(300)).await;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            if r % 2 == 0 {
                ours.push(call_for(&app, *case, round).await);
                theirs.push(call_for(&bare, *case, round).await);
            } else {
                theirs.push(call_for(&bare, *case, round).await);
                ours.push(call_for(&app, *case, round).await);
            }
        }
        let (ours, theirs) = (median(ours), median(theirs));
        eprintln!(
            "{:<28} {:>16.0} {:>16.0} {:>16.0}",
            case.name,
            ours,
            theirs,
            ours - theirs
        );
    }
}
