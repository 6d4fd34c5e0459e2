//! Prometheus metrics: the recorder, the HTTP metrics of the middleware stack, and `/metrics`.
//!
//! The recorder is global to this test binary and the tests run in parallel, so every test uses
//! route and metric names of its own and reads only its own series.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{any, get, post};
use common::{get as get_req, post_json};
use core_web::config::HttpConfig;
use core_web::metrics::{self as web_metrics, Metrics};
use core_web::{ApiResponse, ApiResult, AppError, ValidatedJson};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;
use validator::Validate;

// ---------------------------------------------------------------------------------------------
// A strict reader of the text exposition format.

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the whole exposition text; panics on the first line that is neither a `# HELP` /
/// `# TYPE` comment, blank, nor a well-formed sample.
fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("line {n}: TYPE without a kind: {line:?}"));
            assert!(is_metric_name(name), "line {n}: bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "line {n}: unknown type in {line:?}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(is_metric_name(name), "line {n}: bad name in {line:?}");
            continue;
        }
        assert!(!line.starts_with('#'), "line {n}: unknown comment {line:?}");
        samples.push(parse_sample(line).unwrap_or_else(|e| panic!("line {n}: {e}: {line:?}")));
    }
    (samples, types)
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // label name up to '=' (or the closing brace of an empty/finished set)
            let start = match chars.peek() {
                Some(&(_, '}')) => {
                    let (i, _) = chars.next().unwrap_or((0, '}'));
                    rest = &body[i + 1..];
                    break;
                }
                Some(&(i, _)) => i,
                None => return Err("unterminated labels".to_owned()),
            };
            let eq = body[start..]
                .find('=')
                .ok_or_else(|| "label without '='".to_owned())?
                + start;
            let label = &body[start..eq];
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {label} value is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, '"')) => break,
                    Some((_, '\n')) | None => return Err("unterminated label value".to_owned()),
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} repeated"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    rest = &body[i + 1..];
                    break;
                }
                other => return Err(format!("expected ',' or '}}', got {other:?}")),
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    let mut parts = rest.split(' ');
    let value = parts.next().unwrap_or_default();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The samples named `name` whose labels include every pair of `with`.
fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one sample named `name` with labels `with`; 0 when absent.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, with);
    assert!(
        found.len() <= 1,
        "several {name} series for {with:?}: {found:?}"
    );
    found.first().map_or(0.0, |s| s.value)
}

fn scrape(metrics: &Metrics) -> (Vec<Sample>, BTreeMap<String, String>, String) {
    let text = metrics.render();
    let (samples, types) = parse(&text);
    (samples, types, text)
}

async fn status_of(app: &Router, req: Request<Body>) -> StatusCode {
    app.clone().oneshot(req).await.expect("infallible").status()
}

fn metrics() -> Metrics {
    web_metrics::install().expect("the recorder installs")
}

// ---------------------------------------------------------------------------------------------

#[test]
fn installing_many_times_returns_one_recorder() {
    let handles: Vec<Metrics> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8).map(|_| scope.spawn(metrics)).collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    metrics::counter!("metrics_test_install_total").increment(3);
    for handle in handles.iter().chain([&metrics()]) {
        let (samples, types, _) = scrape(handle);
        assert_eq!(value(&samples, "metrics_test_install_total", &[]), 3.0);
        assert_eq!(types["metrics_test_install_total"], "counter");
    }
}

#[tokio::test]
async fn a_templated_route_is_one_series_whatever_the_ids() {
    let metrics = metrics();
    let app = core_web::middleware::stack(
        Router::new().route(
            "/template_case/{id}",
            get(|| async { ApiResponse::success("job", "") }),
        ),
        &HttpConfig::default(),
    );
    for id in ["1", "2", "abc", "2"] {
        let status = status_of(&app, get_req(&format!("/template_case/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
    }

    let (samples, _, text) = scrape(&metrics);
    let series: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "http_requests_total")
        .filter(|s| s.labels["route"].starts_with("/template_case"))
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].labels["route"], "/template_case/{id}");
    assert_eq!(series[0].labels["method"], "GET");
    assert_eq!(series[0].labels["status"], "200");
    assert_eq!(series[0].value, 4.0);
    assert!(
        !text.contains("/template_case/abc"),
        "raw path leaked:\n{text}"
    );
}

#[derive(Deserialize, Validate)]
struct Input {
    #[validate(length(min = 1))]
    name: String,
}

async fn create(ValidatedJson(input): ValidatedJson<Input>) -> ApiResult<String> {
    Ok(ApiResponse::success(input.name, ""))
}

#[tokio::test]
async fn every_status_is_labelled_including_panics_and_timeouts() {
    let metrics = metrics();
    let app = core_web::middleware::stack(
        Router::new()
            .route("/status_case/ok", get(|| async { "ok" }))
            .route(
                "/status_case/missing",
                get(|| async {
                    Err::<ApiResponse<()>, _>(AppError::NotFound("no such thing".to_owned()))
                }),
            )
            .route("/status_case/create", post(create))
            .route(
                "/status_case/panic",
                get(|| async {
                    if true {
                        panic!("handler exploded");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/status_case/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/status_case/any", any(|| async { "any" })),
        &HttpConfig {
            request_timeout: Duration::from_millis(100),
            body_limit: 64,
            ..HttpConfig::default()
        },
    );

    let purge = Request::builder()
        .method("PURGE")
        .uri("/status_case/any")
        .body(Body::empty())
        .expect("request");
    let cases = [
        (get_req("/status_case/ok"), StatusCode::OK),
        (get_req("/status_case/missing"), StatusCode::NOT_FOUND),
        (
            post_json("/status_case/create", r#"{"name":""}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            post_json(
                "/status_case/create",
                format!(r#"{{"name":"{}"}}"#, "x".repeat(100)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            get_req("/status_case/panic"),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (get_req("/status_case/slow"), StatusCode::REQUEST_TIMEOUT),
        (
            post_json("/status_case/ok", "{}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (purge, StatusCode::OK),
    ];
    for (req, expected) in cases {
        assert_eq!(status_of(&app, req).await, expected);
    }

    let (samples, _, _) = scrape(&metrics);
    for (method, route, status) in [
        ("GET", "/status_case/ok", "200"),
        ("GET", "/status_case/missing", "404"),
        ("POST", "/status_case/create", "422"),
        ("POST", "/status_case/create", "413"),
        ("GET", "/status_case/panic", "500"),
        ("GET", "/status_case/slow", "408"),
        ("POST", "/status_case/ok", "405"),
        ("OTHER", "/status_case/any", "200"),
    ] {
        let labels = [("method", method), ("route", route), ("status", status)];
        assert_eq!(
            value(&samples, "http_requests_total", &labels),
            1.0,
            "{labels:?}"
        );
        assert_eq!(
            value(&samples, "http_request_duration_seconds_count", &labels),
            1.0,
            "{labels:?}"
        );
    }
    let slow = value(
        &samples,
        "http_request_duration_seconds_sum",
        &[("route", "/status_case/slow")],
    );
    assert!(
        (0.1..5.0).contains(&slow),
        "the timeout's duration is measured: {slow}"
    );
}

#[tokio::test]
async fn durations_are_histograms_with_buckets() {
    let metrics = metrics();
    let app = core_web::middleware::stack(
        Router::new().route("/histogram_case", get(|| async { "ok" })),
        &HttpConfig::default(),
    );
    for _ in 0..2 {
        assert_eq!(
            status_of(&app, get_req("/histogram_case")).await,
            StatusCode::OK
        );
    }
    // An application histogram in seconds gets the longer duration buckets.
    metrics::histogram!("metrics_test_execution_seconds").record(42.0);

    let (samples, types, _) = scrape(&metrics);
    assert_eq!(types["http_request_duration_seconds"], "histogram");
    let route = [("route", "/histogram_case")];
    let buckets = find(&samples, "http_request_duration_seconds_bucket", &route);
    assert_eq!(buckets.len(), web_metrics::LATENCY_BUCKETS.len() + 1);
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|s| match s.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            le => le.parse().expect("le is a number"),
        })
        .collect();
    let mut expected = web_metrics::LATENCY_BUCKETS.to_vec();
    expected.push(f64::INFINITY);
    assert_eq!(bounds, expected);
    assert!(
        buckets.windows(2).all(|w| w[0].value <= w[1].value),
        "buckets are cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last().map(|s| s.value), Some(2.0));
    assert_eq!(
        value(&samples, "http_request_duration_seconds_count", &route),
        2.0
    );
    assert!(value(&samples, "http_request_duration_seconds_sum", &route) >= 0.0);

    assert_eq!(types["metrics_test_execution_seconds"], "histogram");
    let le = |le: &str| {
        value(
            &samples,
            "metrics_test_execution_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(le("30"), 0.0);
    assert_eq!(le("60"), 1.0);
    assert_eq!(le("3600"), 1.0);
    assert_eq!(le("+Inf"), 1.0);
}

#[tokio::test]
async fn unmatched_requests_share_one_fixed_label() {
    let metrics = metrics();
    let app = core_web::middleware::stack(
        Router::new().route("/unmatched_case", get(|| async { "ok" })),
        &HttpConfig::default(),
    );
    let unmatched = [
        ("method", "GET"),
        ("route", web_metrics::UNMATCHED_ROUTE),
        ("status", "404"),
    ];
    let (before, _, _) = scrape(&metrics);
    let before = value(&before, "http_requests_total", &unmatched);
    for path in [
        "/unmatched_case_nothing_here/1",
        "/unmatched_case_nothing_here/2",
    ] {
        assert_eq!(status_of(&app, get_req(path)).await, StatusCode::NOT_FOUND);
    }

    let (samples, _, text) = scrape(&metrics);
    assert!(
        value(&samples, "http_requests_total", &unmatched) >= before + 2.0,
        "{text}"
    );
    assert!(!text.contains("unmatched_case_nothing_here"), "{text}");
}

#[tokio::test]
async fn the_endpoint_serves_the_applications_metrics() {
    let metrics = metrics();
    let app = core_web::middleware::stack(
        Router::new()
            .route("/endpoint_case", get(|| async { "ok" }))
            .merge(metrics.router()),
        &HttpConfig::default(),
    );
    metrics::counter!("metrics_test_jobs_submitted_total", "queue" => "default").increment(2);
    metrics::gauge!("metrics_test_job_queue_depth").set(7.0);
    // Label values are escaped in the text and read back intact.
    metrics::counter!("metrics_test_escaped_total", "note" => "say \"hi\"\nbye").increment(1);
    assert_eq!(
        status_of(&app, get_req("/endpoint_case")).await,
        StatusCode::OK
    );

    let response = app
        .clone()
        .oneshot(get_req(web_metrics::PATH))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    let (samples, types) = parse(&text);

    assert_eq!(
        value(
            &samples,
            "metrics_test_jobs_submitted_total",
            &[("queue", "default")]
        ),
        2.0
    );
    assert_eq!(types["metrics_test_job_queue_depth"], "gauge");
    assert_eq!(value(&samples, "metrics_test_job_queue_depth", &[]), 7.0);
    assert_eq!(
        value(
            &samples,
            "metrics_test_escaped_total",
            &[("note", "say \"hi\"\nbye")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "http_requests_total",
            &[("route", "/endpoint_case"), ("status", "200")]
        ),
        1.0
    );

    // The scrape itself is counted, under its route.
    let (samples, _, _) = scrape(&metrics);
    assert!(
        value(
            &samples,
            "http_requests_total",
            &[("route", web_metrics::PATH), ("status", "200")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_handler_serves_from_the_applications_state() {
    let metrics = metrics();
    let app: Router = Router::new()
        .route("/state_case/metrics", get(web_metrics::render))
        .with_state(metrics.clone());
    metrics::counter!("metrics_test_state_total").increment(5);
    let response = app
        .oneshot(get_req("/state_case/metrics"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        web_metrics::CONTENT_TYPE
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let (samples, _) = parse(std::str::from_utf8(&body).expect("UTF-8"));
    assert_eq!(value(&samples, "metrics_test_state_total", &[]), 5.0);
}

#[test]
fn the_reader_rejects_malformed_lines() {
    for bad in [
        "name{route=\"/a\" 1",
        "name{route=/a} 1",
        "name{route=\"/a\"}1",
        "name 1 2 3",
        "name one",
        "9name 1",
        "name{1x=\"a\"} 1",
        "name{a=\"x\",a=\"y\"} 1",
        "name{a=\"\\x\"} 1",
    ] {
        assert!(parse_sample(bad).is_err(), "accepted {bad:?}");
    }
    let ok = parse_sample("a_b:c{x=\"1\",y=\"q\\\"\"} +Inf").expect("valid");
    assert_eq!(ok.labels["y"], "q\"");
    assert!(ok.value.is_infinite());
}
