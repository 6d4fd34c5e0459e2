//! Two `app serve` and two `app worker` processes on PostgreSQL and Redis: 2,000 jobs of mixed
//! kinds submitted through HTTP, one worker SIGKILLed mid-run. Every job reaches a final state,
//! every report agrees with its events, and no job's events show an impossible sequence.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::jobs::{State, WorkKind};
use common::process::{Services, serve, terminate, worker};
use serde_json::Value;

const JOBS: usize = 2_000;

async fn post(
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> test_support::RawResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    test_support::http_request(addr, "POST", path, &headers, body)
        .await
        .expect("the server answers")
}

async fn get(addr: SocketAddr, path: &str, auth: &str) -> Value {
    let reply = test_support::http_request(addr, "GET", path, &[("authorization", auth)], b"")
        .await
        .expect("the server answers");
    assert_eq!(
        reply.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_two_workers_one_killed_lose_nothing() {
    let test = "two_servers_two_workers_one_killed_lose_nothing";
    let Some(services) = Services::start(test).await else {
        return;
    };
    // region: ch9-shape
    let env = services.env(&[
        ("WORK_TIME_SCALE", "0.01"),
        ("WORKER_LEASE_SECS", "2"),
        ("WORKER_CONCURRENCY", "32"),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("MAX_ACTIVE_JOBS_PER_CLIENT", "100000"),
        (
            "API_KEY_SECRET",
            "multi-process-test-secret-0123456789abcdef",
        ),
        ("SHUTDOWN_GRACE_SECS", "1"),
    ]);
    let (mut server_a, _la, a) = serve(services.dir.path(), &env);
    let (mut server_b, _lb, b) = serve(services.dir.path(), &env);
    let (mut doomed, _ld) = worker(services.dir.path(), &env);
    let (mut survivor, _ls) = worker(services.dir.path(), &env);
    // endregion: ch9-shape

    let reply = post(a, "/v1/clients", None, br#"{"name": "multi-process"}"#).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let auth = format!(
        "Bearer {}",
        reply.json()["data"]["api_key"].as_str().unwrap()
    );

    // Submit through both servers, eight requests at a time.
    let kinds: Vec<WorkKind> = WorkKind::ALL
        .iter()
        .copied()
        .filter(|k| k.is_submittable())
        .collect();
    let mut ids = Vec::with_capacity(JOBS);
    let started = Instant::now();
    let mut killed = false;
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for &n in chunk {
            let addr = if n % 2 == 0 { a } else { b };
            let body = format!(r#"{{"work_kind": "{}"}}"#, kinds[n % kinds.len()].as_str());
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                post(addr, "/v1/jobs", Some(&auth), body.as_bytes()).await
            }));
        }
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!(
                reply.status,
                202,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            ids.push(reply.json()["data"]["job_id"].as_str().unwrap().to_owned());
        }
        // region: ch9-kill
        // Mid-run: kill one worker without warning once a quarter is submitted.
        if !killed && ids.len() >= JOBS / 4 {
            doomed.kill().unwrap();
            doomed.wait().unwrap();
            killed = true;
        }
        // endregion: ch9-kill
    }
    eprintln!("{JOBS} jobs submitted in {:?}", started.elapsed());

    // Every job reaches a final state.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut pending: Vec<String> = ids.clone();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} jobs not final, e.g. {}",
            pending.len(),
            pending[0]
        );
        let mut still = Vec::new();
        for id in pending {
            let job = get(a, &format!("/v1/jobs/{id}"), &auth).await;
            let state = State::parse(job["data"]["state"].as_str().unwrap()).unwrap();
            if !state.is_final() {
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Every report agrees with its events; no sequence is impossible.
    let mut outcomes = BTreeMap::<String, usize>::new();
    let mut recovered = 0;
    for id in &ids {
        let report = get(b, &format!("/v1/jobs/{id}/report"), &auth).await;
        let report = &report["data"];
        let events = report["events"].as_array().unwrap();
        assert_eq!(events[0]["next_state"], "CREATED", "{id}");
        let mut state = State::Created;
        for event in &events[1..] {
            let prev = State::parse(event["prev_state"].as_str().unwrap()).unwrap();
            let next = State::parse(event["next_state"].as_str().unwrap()).unwrap();
            assert_eq!(prev, state, "{id}: events do not chain: {events:#?}");
            assert!(prev.can_become(next), "{id}: impossible {prev} -> {next}");
            if event["detail"] == "worker lost" {
                recovered += 1;
            }
            state = next;
        }
        assert!(state.is_final(), "{id} ended {state}");
        assert_eq!(report["outcome"], state.as_str(), "{id}: outcome vs events");
        assert_eq!(
            report["finished_at"],
            events.last().unwrap()["timestamp"],
            "{id}"
        );
        let first_run = events.iter().find(|e| e["next_state"] == "RUNNING");
        match first_run {
            Some(run) => assert_eq!(report["started_at"], run["timestamp"], "{id}"),
            None => assert!(report["started_at"].is_null(), "{id}"),
        }
        *outcomes.entry(state.as_str().to_owned()).or_default() += 1;
    }
    eprintln!("outcomes: {outcomes:?}; {recovered} attempts recovered from the killed worker");
    assert_eq!(outcomes.values().sum::<usize>(), JOBS);

    for child in [&mut server_a, &mut server_b, &mut survivor] {
        let exit = terminate(child).await;
        assert!(exit.success(), "{exit:?}");
    }
    drop(services);
}
