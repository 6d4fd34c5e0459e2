//! 10,000 random byte strings posted as JSON to `POST /v1/jobs` over real TCP: every answer is
//! a JSON 4xx (or a 202 when the bytes happen to form a valid job), none is a 500, and the
//! server keeps serving.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Random bodies biased towards almost-JSON, which reaches deeper into the parser than noise.
fn body(rng: &mut StdRng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"work_kind\"",
        b"\"SUCCESS_FAST\"",
        b"\"execution_at\"",
        b"\"2099-01-01T00:00:00Z\"",
        b"\"max_attempts\"",
        b"\"callback\"",
        b":",
        b",",
        b"\"",
        b"\\u0000",
        b"\\ud800",
        b"1e999",
        b"-0",
        b"null",
        b"true",
        b"9999999999999999999",
        b"\xff\xfe",
        b"\xc3\x28",
        b" ",
        b"\n",
        b"\"x\"",
        b"0.5",
    ];
    let len = rng.random_range(0..64);
    let mut out = Vec::new();
    match rng.random_range(0..3) {
        0 => (0..len).for_each(|_| out.push(rng.random())),
        1 => {
            (0..len).for_each(|_| out.extend_from_slice(PIECES[rng.random_range(0..PIECES.len())]))
        }
        _ => {
            out.extend_from_slice(b"{\"work_kind\":");
            (0..len / 4)
                .for_each(|_| out.extend_from_slice(PIECES[rng.random_range(0..PIECES.len())]));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_bodies_get_json_4xx() {
    let (router, _state, _dir) = common::app(&[
        ("RATE_LIMIT_PER_MINUTE", "10000000"),
        ("MAX_ACTIVE_JOBS_PER_CLIENT", "100000"),
    ])
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(core_web::server::serve(
        listener,
        router,
        async move {
            let _ = stop_rx.await;
        },
        std::time::Duration::from_secs(5),
    ));

    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz seed {seed} (FUZZ_SEED={seed} reproduces this run)");
    let mut rng = StdRng::seed_from_u64(seed);
    let bodies: Vec<Vec<u8>> = (0..10_000).map(|_| body(&mut rng)).collect();

    let reply = test_support::http_request(
        addr,
        "POST",
        "/v1/clients",
        &[("content-type", "application/json")],
        br#"{"name": "fuzz"}"#,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 201, "{:?}", reply);
    let auth = format!(
        "Bearer {}",
        reply.json()["data"]["api_key"].as_str().unwrap()
    );

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut created = 0;
    // Eight connections at a time, each request on its own connection.
    for chunk in bodies.chunks(8) {
        let mut tasks = Vec::new();
        for body in chunk {
            let body = body.clone();
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                let reply = test_support::http_request(
                    addr,
                    "POST",
                    "/v1/jobs",
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                    &body,
                )
                .await
                .expect("the server answers");
                (body, reply)
            }));
        }
        for task in tasks {
            let (body, reply) = task.await.unwrap();
            let shown = String::from_utf8_lossy(&body).into_owned();
            assert!(
                reply
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "non-JSON answer to {shown:?}: {reply:?}"
            );
            let json = reply.json();
            *statuses.entry(reply.status).or_default() += 1;
            if reply.status == 202 {
                // Random bytes can form a valid job; that is a correct answer too.
                created += 1;
                continue;
            }
            assert!(
                (400..500).contains(&reply.status),
                "{} for {shown:?}: {json}",
                reply.status
            );
            assert!(json["error_code"].is_string(), "{json}");
            assert!(json["message"].is_string(), "{json}");
        }
    }
    eprintln!("statuses: {statuses:?} ({created} created)");
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 5_000,
        "most bodies are malformed: {statuses:?}"
    );

    // Still up and healthy.
    let reply = test_support::http_request(addr, "GET", "/health", &[], b"")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["data"]["status"], "ok");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
