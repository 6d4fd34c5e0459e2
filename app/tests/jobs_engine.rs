//! The job engine without HTTP: submission, the worker's transitions, every work kind, cancel,
//! retry, scheduling and restarts, on both driver sets.

#[macro_use]
mod common;

use std::time::Duration;

use app::AppContext;
use app::jobs::{self, Canceled, JobRow, Moved, NewJob, State, WorkKind, store};
use common::{Drivers, TestApp, test_app};
use core_db::db::Timestamp;
use core_db::on_db;
use core_jobs::Shutdown;

/// Inserts a client and returns its id.
async fn client(ctx: &AppContext) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    on_db!(&ctx.db, pool => sqlx::query("INSERT INTO clients (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind("engine test")
        .bind(Timestamp::now())
        .execute(pool)
        .await
        .map(drop))
    .expect("insert client");
    id
}

fn new_job(kind: WorkKind) -> NewJob {
    NewJob {
        work_kind: kind,
        execution_at: None,
        callback: None,
        max_attempts: jobs::DEFAULT_MAX_ATTEMPTS,
    }
}

async fn submit(ctx: &AppContext, client_id: &str, job: &NewJob) -> JobRow {
    let id = uuid::Uuid::new_v4().to_string();
    let (row, _, tx) = jobs::submit(ctx, client_id, job, &id)
        .await
        .expect("submit");
    ctx.buffer.commit(tx).await.expect("commit");
    row
}

/// Polls until job `id` satisfies `done`, or panics after `limit`.
async fn wait_for(
    ctx: &AppContext,
    id: &str,
    limit: Duration,
    done: impl Fn(&JobRow) -> bool,
) -> JobRow {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let row = store::find(&ctx.db, id).await.unwrap().expect("job exists");
        if done(&row) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} ({}) still {} after {limit:?}",
            row.work_kind,
            row.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_final(ctx: &AppContext, id: &str) -> JobRow {
    wait_for(ctx, id, Duration::from_secs(30), |r| r.state().is_final()).await
}

/// Asserts `id`'s events are a possible history ending in the row's state.
async fn assert_history(ctx: &AppContext, row: &JobRow) -> Vec<store::EventRow> {
    let events = store::events(&ctx.db, &row.id).await.unwrap();
    assert!(!events.is_empty(), "job {} has no events", row.id);
    assert_eq!(events[0].event_name, "job.created");
    assert_eq!(events[0].prev_state, None);
    let mut state = State::Created;
    for event in &events[1..] {
        let prev = State::parse(event.prev_state.as_deref().unwrap()).unwrap();
        let next = State::parse(&event.next_state).unwrap();
        assert_eq!(
            prev, state,
            "events of {} do not chain: {events:#?}",
            row.id
        );
        assert!(
            prev.can_become(next),
            "impossible {prev} -> {next} in {events:#?}"
        );
        assert_eq!(event.event_name, next.event_name());
        state = next;
    }
    assert_eq!(state, row.state(), "last event vs row of {}", row.id);
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    events
}

async fn start(t: &TestApp) -> (Shutdown, jobs::Background) {
    let shutdown = Shutdown::new();
    let background = jobs::Background::start(&t.ctx, &shutdown, true)
        .await
        .expect("background");
    (shutdown, background)
}

async fn stop(shutdown: Shutdown, background: jobs::Background) {
    shutdown.cancel();
    shutdown.wait().await;
    drop(background);
}

on_both!(
    every_work_kind_reaches_its_outcome,
    cancel_before_start_and_during_run,
    retry_grants_one_more_attempt,
    cancel_racing_completion_is_decided_once,
    scheduled_jobs_never_start_early,
    a_restart_before_execution_at_loses_nothing,
    retention_deletes_only_what_it_no_longer_keeps,
    forbidden_transitions_are_refused_and_leave_no_event,
);

// region: through-worker
async fn every_work_kind_reaches_its_outcome(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;
    let mut submitted = Vec::new();
    for kind in WorkKind::ALL.iter().copied().filter(|k| k.is_submittable()) {
        submitted.push((kind, submit(&t.ctx, &client_id, &new_job(kind)).await));
    }
    for (kind, row) in submitted {
        let row = wait_final(&t.ctx, &row.id).await;
        let events = assert_history(&t.ctx, &row).await;
        let expected = match kind {
            WorkKind::FailImmediate
            | WorkKind::FailAfterProgress
            | WorkKind::FailAfterRetryable
            | WorkKind::RunsOverTimeout
            | WorkKind::RetryLimitReached => State::Failed,
            _ => State::Succeeded,
        };
        assert_eq!(row.state(), expected, "{kind:?}: {row:?}");
        assert_eq!(row.outcome.as_deref(), Some(expected.as_str()));
        assert!(row.finished_at.is_some() && row.started_at.is_some());
        // endregion: through-worker
        match kind {
            WorkKind::RetryOnFail => {
                assert_eq!(row.attempt, 2, "fails once, then succeeds");
                assert!(events.iter().any(|e| {
                    e.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with("attempt 1 failed"))
                }));
            }
            WorkKind::RetryLimitReached | WorkKind::FailImmediate => {
                assert_eq!(row.attempt, 3, "{kind:?} uses every attempt");
                assert!(row.error.is_some());
            }
            WorkKind::RunsOverTimeout => {
                assert!(row.error.as_deref().unwrap().contains("timeout"), "{row:?}");
                assert!(row.retryable);
            }
            WorkKind::FailAfterRetryable => assert!(row.retryable),
            WorkKind::SuccessFast => assert_eq!(row.attempt, 1),
            _ => {}
        }
        let artifacts = store::artifacts(&t.ctx.db, &row.id).await.unwrap();
        match kind {
            WorkKind::LargeOutput | WorkKind::PayloadLarge => {
                assert_eq!(artifacts.len(), 1);
                assert_eq!(artifacts[0].size, 256 * 1024);
                let stored = t
                    .ctx
                    .storage
                    .get(&artifacts[0].storage_key)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.len(), 256 * 1024);
            }
            WorkKind::ManySmallOutputs => {
                assert_eq!(artifacts.len(), 16);
                assert_eq!(artifacts.iter().map(|a| a.size).sum::<i64>(), 16 * 1024);
            }
            WorkKind::SuccessSlow
            | WorkKind::RunsLong
            | WorkKind::IoHeavy
            | WorkKind::MemorySpike => {
                assert_eq!(
                    artifacts.len(),
                    1,
                    "{kind:?}: outputs over 16 KB go to Storage"
                );
            }
            _ => assert!(artifacts.is_empty(), "{kind:?}: {artifacts:?}"),
        }
    }
    stop(shutdown, background).await;
}

async fn cancel_before_start_and_during_run(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.1")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;

    // Scheduled in the future: still QUEUED, canceled at once.
    let mut later = new_job(WorkKind::CancelBeforeStart);
    later.execution_at = Some(Timestamp::from(
        chrono::Utc::now() + chrono::Duration::seconds(2),
    ));
    let queued = submit(&t.ctx, &client_id, &later).await;
    let Some(Canceled::Now(row)) = jobs::cancel(&t.ctx, &queued.id).await.unwrap() else {
        panic!("a queued job is canceled at once");
    };
    assert_eq!(row.state(), State::Canceled);
    // Its dispatch fires later and does nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row = store::find(&t.ctx.db, &queued.id).await.unwrap().unwrap();
    assert_eq!(row.state(), State::Canceled);
    assert_eq!(row.attempt, 0, "never started");
    assert_history(&t.ctx, &row).await;

    // Running (1 s at this scale): asked to stop, stops within the poll interval.
    let running = submit(&t.ctx, &client_id, &new_job(WorkKind::CancelDuringRun)).await;
    wait_for(&t.ctx, &running.id, Duration::from_secs(10), |r| {
        r.state() == State::Running
    })
    .await;
    let asked = std::time::Instant::now();
    let Some(Canceled::Requested(_)) = jobs::cancel(&t.ctx, &running.id).await.unwrap() else {
        panic!("a running job is asked to stop");
    };
    let row = wait_final(&t.ctx, &running.id).await;
    assert_eq!(row.state(), State::Canceled, "{row:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(800),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert_history(&t.ctx, &row).await;

    // Cancel on a final job: no-op, no event.
    let before = store::events(&t.ctx.db, &row.id).await.unwrap().len();
    let Some(Canceled::AlreadyFinal(again)) = jobs::cancel(&t.ctx, &row.id).await.unwrap() else {
        panic!("already final");
    };
    assert_eq!(again.state(), State::Canceled);
    assert_eq!(
        store::events(&t.ctx.db, &row.id).await.unwrap().len(),
        before
    );
    stop(shutdown, background).await;
}

async fn retry_grants_one_more_attempt(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;
    let mut job = new_job(WorkKind::RetryLimitReached);
    job.max_attempts = 2;
    let row = submit(&t.ctx, &client_id, &job).await;
    let failed = wait_final(&t.ctx, &row.id).await;
    assert_eq!((failed.state(), failed.attempt), (State::Failed, 2));

    // Not FAILED → refused with the current state.
    let ok = submit(&t.ctx, &client_id, &new_job(WorkKind::SuccessFast)).await;
    let ok = wait_final(&t.ctx, &ok.id).await;
    let Moved::Refused(r) = jobs::retry(&t.ctx, &ok.id).await.unwrap() else {
        panic!("a SUCCEEDED job cannot be retried");
    };
    assert_eq!(r.state(), State::Succeeded);

    let Moved::Applied(queued) = jobs::retry(&t.ctx, &failed.id).await.unwrap() else {
        panic!("a FAILED job is retried");
    };
    assert_eq!((queued.state(), queued.max_attempts), (State::Queued, 3));
    let again = wait_for(&t.ctx, &failed.id, Duration::from_secs(30), |r| {
        r.state() == State::Failed && r.attempt == 3
    })
    .await;
    assert_eq!(again.max_attempts, 3);
    let events = assert_history(&t.ctx, &again).await;
    assert_eq!(
        events.iter().filter(|e| e.next_state == "FAILED").count(),
        2
    );
    stop(shutdown, background).await;
}

async fn cancel_racing_completion_is_decided_once(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.002")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows.push(submit(&t.ctx, &client_id, &new_job(WorkKind::SuccessFast)).await);
    }
    let mut cancels = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let ctx = t.ctx.clone();
        let id = row.id.clone();
        cancels.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((n % 10) as u64)).await;
            jobs::cancel(&ctx, &id).await.unwrap().expect("exists")
        }));
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for (row, cancel) in rows.iter().zip(cancels) {
        let answer = cancel.await.unwrap();
        let row = wait_final(&t.ctx, &row.id).await;
        let events = assert_history(&t.ctx, &row).await;
        let finals = events
            .iter()
            .filter(|e| State::parse(&e.next_state).unwrap().is_final())
            .count();
        assert_eq!(finals, 1, "decided exactly once: {events:#?}");
        match answer {
            Canceled::Now(_) => assert_eq!(row.state(), State::Canceled),
            Canceled::Requested(_) => {
                assert!(matches!(row.state(), State::Canceled | State::Succeeded));
            }
            Canceled::AlreadyFinal(r) => assert_eq!(r.state(), row.state()),
        }
        *outcomes.entry(row.state).or_insert(0) += 1;
    }
    eprintln!("{test}: {outcomes:?}");
    stop(shutdown, background).await;
}

async fn scheduled_jobs_never_start_early(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;
    let mut ids = Vec::new();
    for secs in [1, 2] {
        let mut job = new_job(WorkKind::ScheduledOnTime);
        let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
        job.execution_at = Some(Timestamp::from(
            chrono::DurationRound::duration_trunc(at, chrono::Duration::seconds(1)).unwrap(),
        ));
        ids.push((
            submit(&t.ctx, &client_id, &job).await,
            job.execution_at.unwrap(),
        ));
    }
    for (row, at) in ids {
        let row = wait_final(&t.ctx, &row.id).await;
        assert_eq!(row.state(), State::Succeeded);
        let started = row.started_at.unwrap();
        assert!(started >= at, "started {started} before execution_at {at}");
        assert!(
            started.get() - at.get() < chrono::Duration::seconds(2),
            "started {started}, due {at}"
        );
    }
    stop(shutdown, background).await;
}

async fn a_restart_before_execution_at_loses_nothing(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let client_id = client(&t.ctx).await;
    // First process: submits (the relay hands the dispatches to the queue), then stops.
    let (shutdown, background) = start(&t).await;
    let mut rows = Vec::new();
    for _ in 0..5 {
        let mut job = new_job(WorkKind::ScheduledLateRecovery);
        job.execution_at = Some(Timestamp::from(
            chrono::Utc::now() + chrono::Duration::seconds(1),
        ));
        rows.push(submit(&t.ctx, &client_id, &job).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(shutdown, background).await;
    // The restarted process: a new context (a new in-process queue on the embedded drivers).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ctx = t.second_context().await;
    let shutdown = Shutdown::new();
    let background = jobs::Background::start(&ctx, &shutdown, true)
        .await
        .unwrap();
    for row in rows {
        let row = wait_final(&ctx, &row.id).await;
        assert_eq!(row.state(), State::Succeeded, "{row:?}");
        assert!(row.started_at.unwrap() >= row.execution_at.unwrap());
        assert_history(&ctx, &row).await;
    }
    stop(shutdown, background).await;
}

async fn retention_deletes_only_what_it_no_longer_keeps(drivers: Drivers, test: &str) {
    let Some(t) = test_app(
        drivers,
        test,
        &[("WORK_TIME_SCALE", "0.001"), ("JOB_RETENTION", "1h")],
    )
    .await
    else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let client_id = client(&t.ctx).await;
    let done = submit(&t.ctx, &client_id, &new_job(WorkKind::LargeOutput)).await;
    let done = wait_final(&t.ctx, &done.id).await;
    let artifacts = store::artifacts(&t.ctx.db, &done.id).await.unwrap();
    assert_eq!(artifacts.len(), 1);
    let mut later = new_job(WorkKind::ScheduledFarFuture);
    later.execution_at = Some(Timestamp::from(
        chrono::Utc::now() + chrono::Duration::days(30),
    ));
    let pending = submit(&t.ctx, &client_id, &later).await;

    // A webhook's message and delivery attempt, made now.
    let hook = app::webhooks::WebhookRow {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: client_id.clone(),
        job_id: None,
        url: "https://93.184.215.14/in".to_owned(),
        events: "*".to_owned(),
        secret: core_web::webhook::Secret::generate().expose().to_owned(),
        created_at: Timestamp::now(),
        disabled_at: None,
        disabled_reason: None,
    };
    app::webhooks::insert(&t.ctx.db, &hook).await.unwrap();
    let sql = "INSERT INTO webhook_messages (webhook_id, event_id, event_type, job_id, body, \
               status, attempts, created_at, updated_at) VALUES ($1, 'e1', 'job.created', $2, '{}', \
               'delivered', 1, $3, $3)";
    core_db::on_db!(&t.ctx.db, pool => sqlx::query(sql)
        .bind(&hook.id)
        .bind(&done.id)
        .bind(Timestamp::now())
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
    let attempt = app::webhooks::DeliveryRow {
        id: uuid::Uuid::new_v4().to_string(),
        webhook_id: hook.id.clone(),
        event_id: "e1".to_owned(),
        event_type: "job.created".to_owned(),
        attempt: 1,
        outcome: "delivered".to_owned(),
        status_code: Some(200),
        duration_ms: 3,
        error: None,
        next_retry_at: None,
        created_at: Timestamp::now(),
    };
    app::webhooks::record_attempt(&t.ctx.db, &attempt, "delivered")
        .await
        .unwrap();

    // Within the retention period: nothing goes.
    let soon = Timestamp::from(chrono::Utc::now() + chrono::Duration::minutes(59));
    let pruned = app::jobs::retention::prune(&t.ctx, soon).await.unwrap();
    assert_eq!((pruned.jobs, pruned.deliveries), (0, 0));
    // Past it: the final job, its events and its stored artifact go; the pending job stays.
    let past = Timestamp::from(chrono::Utc::now() + chrono::Duration::minutes(61));
    let pruned = app::jobs::retention::prune(&t.ctx, past).await.unwrap();
    assert_eq!(pruned.jobs, 1);
    assert_eq!(pruned.deliveries, 2, "the message and its attempt");
    assert!(store::find(&t.ctx.db, &done.id).await.unwrap().is_none());
    assert!(store::events(&t.ctx.db, &done.id).await.unwrap().is_empty());
    assert!(
        !t.ctx
            .storage
            .exists(&artifacts[0].storage_key)
            .await
            .unwrap()
    );
    let still = store::find(&t.ctx.db, &pending.id).await.unwrap().unwrap();
    assert_eq!(still.state(), State::Queued);
    stop(shutdown, background).await;
}

async fn forbidden_transitions_are_refused_and_leave_no_event(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0.001")]).await else {
        return;
    };
    let client_id = client(&t.ctx).await;
    // A QUEUED job (no worker runs): walk it through every state, trying every move at each.
    let row = submit(&t.ctx, &client_id, &new_job(WorkKind::SuccessFast)).await;
    let path = [
        State::Assigned,
        State::Running,
        State::Failed,
        State::Queued,
        State::Canceled,
    ];
    for next in path {
        let current = store::find(&t.ctx.db, &row.id)
            .await
            .unwrap()
            .unwrap()
            .state();
        for to in State::ALL {
            if current.can_become(to) {
                continue;
            }
            let before = store::events(&t.ctx.db, &row.id).await.unwrap().len();
            let moved =
                store::transition(&t.ctx, &row.id, to, store::Guard::default(), None, |_| {})
                    .await
                    .unwrap();
            assert!(
                matches!(moved, Moved::Refused(_)),
                "{current} -> {to} must be refused"
            );
            assert_eq!(
                store::events(&t.ctx.db, &row.id).await.unwrap().len(),
                before
            );
            assert_eq!(
                store::find(&t.ctx.db, &row.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .state(),
                current
            );
        }
        let moved = store::transition(&t.ctx, &row.id, next, store::Guard::default(), None, |_| {})
            .await
            .unwrap();
        assert!(
            matches!(moved, Moved::Applied(_)),
            "{current} -> {next} is allowed"
        );
    }
    let final_row = store::find(&t.ctx.db, &row.id).await.unwrap().unwrap();
    assert_eq!(final_row.state(), State::Canceled);
    assert_history(&t.ctx, &final_row).await;
    // A guard on the attempt refuses a stale worker even where the move is allowed.
    let row = submit(&t.ctx, &client_id, &new_job(WorkKind::SuccessFast)).await;
    let stale = store::Guard {
        attempt: Some(7),
        ..store::Guard::default()
    };
    let moved = store::transition(&t.ctx, &row.id, State::Assigned, stale, None, |_| {})
        .await
        .unwrap();
    assert!(matches!(moved, Moved::Refused(_)));
}
