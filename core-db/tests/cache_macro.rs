//! The `#[cached]` attribute: what it does at run time, and the compile errors of its misuse
//! (trybuild cases in `tests/ui/`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use core_db::cache::{Cache, Expiry};
use core_db::cached;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
}

/// An application error type: cache failures convert into it.
#[derive(Debug)]
enum AppError {
    NotFound(i64),
    Cache(core_db::Error),
}

impl From<core_db::Error> for AppError {
    fn from(e: core_db::Error) -> Self {
        Self::Cache(e)
    }
}

type AppResult<T> = Result<T, AppError>;

struct AppState {
    cache: Cache,
    loads: AtomicUsize,
}

#[cached(cache = state.cache, key = "user:{id}", ttl = 300, tags = ["users", "user:{id}"])]
async fn find_user(state: &AppState, id: i64) -> Result<User, AppError> {
    state.loads.fetch_add(1, Ordering::SeqCst);
    if id < 0 {
        return Err(AppError::NotFound(id));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(User {
        id,
        name: format!("user {id}"),
    })
}

/// An alias for `Result`, no TTL, `?` in the body, an owned argument.
#[cached(cache = state.cache, key = "greeting:{name}")]
async fn greeting(state: &AppState, name: String) -> AppResult<String> {
    state.loads.fetch_add(1, Ordering::SeqCst);
    let parsed: i64 = "42".parse().map_err(|_| AppError::NotFound(0))?;
    Ok(format!("hello {name} {parsed}"))
}

struct Service {
    cache: Arc<Cache>,
    loads: AtomicUsize,
}

impl Service {
    /// A method: `self` in the cache expression, `anyhow::Result` as the return type.
    #[cached(cache = self.cache, key = "count:{kind}", ttl = 60)]
    async fn count(&self, kind: &str) -> anyhow::Result<u64> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(kind.len() as u64)
    }
}

fn state() -> Arc<AppState> {
    Arc::new(AppState {
        cache: Cache::memory("app"),
        loads: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn ok_values_are_cached_with_ttl_and_tags() {
    let state = state();
    let expected = User {
        id: 1,
        name: "user 1".into(),
    };
    assert_eq!(find_user(&state, 1).await.unwrap(), expected);
    assert_eq!(find_user(&state, 1).await.unwrap(), expected);
    assert_eq!(state.loads.load(Ordering::SeqCst), 1);

    assert_eq!(
        state.cache.get_json::<User>("user:1").await.unwrap(),
        Some(expected.clone())
    );
    match state.cache.expiry("user:1").await.unwrap() {
        Expiry::Expires(left) => assert!(left > Duration::from_secs(290)),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert_eq!(
        state.cache.get_tags_for_key("user:1").await.unwrap(),
        vec!["user:1", "users"]
    );

    state.cache.invalidate_tag("users").await.unwrap();
    assert_eq!(find_user(&state, 1).await.unwrap(), expected);
    assert_eq!(
        state.loads.load(Ordering::SeqCst),
        2,
        "recomputed after invalidation"
    );
}

/// A job whose state a test changes while a read of it is computing.
struct Jobs {
    cache: Cache,
    /// The committed state.
    version: std::sync::atomic::AtomicI64,
    /// Whether a read pauses once it has read the state, until `resume`.
    hold: std::sync::atomic::AtomicBool,
    started: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

#[cached(cache = state.cache, key = "job:{id}", ttl = 300, tags = ["job:{id}"])]
async fn job_state(state: &Jobs, id: i64) -> Result<i64, AppError> {
    let version = state.version.load(Ordering::SeqCst);
    if state.hold.load(Ordering::SeqCst) {
        state.started.notify_one();
        state.resume.notified().await;
    }
    Ok(version * 100 + id)
}

/// The `#[cached]` path is fenced like `remember_with_tags`: a read that raced a transition
/// (commit, then invalidate the tag) returns the old state but does not cache it.
#[tokio::test]
async fn a_read_that_raced_an_invalidation_is_not_cached() {
    let jobs = Arc::new(Jobs {
        cache: Cache::memory("app"),
        version: 1.into(),
        hold: true.into(),
        started: tokio::sync::Notify::new(),
        resume: tokio::sync::Notify::new(),
    });
    let reader = {
        let jobs = Arc::clone(&jobs);
        tokio::spawn(async move { job_state(&jobs, 7).await.map_err(|e| format!("{e:?}")) })
    };
    jobs.started.notified().await;
    jobs.version.store(2, Ordering::SeqCst);
    jobs.cache.invalidate_tag("job:7").await.unwrap();
    jobs.hold.store(false, Ordering::SeqCst);
    jobs.resume.notify_one();
    assert_eq!(
        reader.await.unwrap().unwrap(),
        107,
        "the racing read keeps its value"
    );
    assert!(
        !jobs.cache.has("job:7").await.unwrap(),
        "but does not cache it"
    );
    assert_eq!(job_state(&jobs, 7).await.unwrap(), 207);
    assert_eq!(
        jobs.cache.get_json::<i64>("job:7").await.unwrap(),
        Some(207)
    );
}

#[tokio::test]
async fn errors_are_returned_and_not_cached() {
    let state = state();
    assert!(matches!(
        find_user(&state, -1).await,
        Err(AppError::NotFound(-1))
    ));
    assert!(matches!(
        find_user(&state, -1).await,
        Err(AppError::NotFound(-1))
    ));
    assert_eq!(state.loads.load(Ordering::SeqCst), 2);
    assert!(!state.cache.has("user:-1").await.unwrap());

    // An undecodable value is a miss, not an error: it is recomputed and replaced.
    state.cache.set("user:5", "not json").await.unwrap();
    assert_eq!(
        find_user(&state, 5).await.unwrap().id,
        5,
        "undecodable value is a miss"
    );
    assert_eq!(state.loads.load(Ordering::SeqCst), 3);
    assert!(matches!(
        state.cache.get_json::<User>("user:5").await,
        Ok(Some(User { id: 5, .. }))
    ));
}

/// A cache that fails (Redis answers the read with an error: the key holds a list, not a
/// string) makes the function return its own error type carrying the cache's error, without
/// running the body.
#[tokio::test]
async fn a_cache_failure_surfaces_as_the_functions_error_type() {
    let Some(r) = test_support::redis("a_cache_failure_surfaces_as_the_functions_error_type").await
    else {
        return;
    };
    let state = AppState {
        cache: Cache::redis(&r.url, r.prefix.clone()).await.unwrap(),
        loads: AtomicUsize::new(0),
    };
    let mut conn = r.connection().await;
    let _: i64 = redis::cmd("RPUSH")
        .arg(format!("{}:cache:user:7", r.prefix))
        .arg("not a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    match find_user(&state, 7).await {
        Err(AppError::Cache(core_db::Error::Redis(e))) => {
            assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        }
        other => panic!("expected the cache's error as AppError::Cache, got {other:?}"),
    }
    assert_eq!(
        state.loads.load(Ordering::SeqCst),
        0,
        "the body did not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_single_flight() {
    let state = state();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let state = Arc::clone(&state);
        tasks.push(tokio::spawn(
            async move { find_user(&state, 9).await.unwrap() },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().id, 9);
    }
    assert_eq!(state.loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn aliases_owned_arguments_and_methods() {
    let state = state();
    assert_eq!(
        greeting(&state, "ann".into()).await.unwrap(),
        "hello ann 42"
    );
    assert_eq!(
        greeting(&state, "ann".into()).await.unwrap(),
        "hello ann 42"
    );
    assert_eq!(state.loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        state.cache.expiry("greeting:ann").await.unwrap(),
        Expiry::Persistent
    );

    let service = Service {
        cache: Arc::new(Cache::memory("svc")),
        loads: AtomicUsize::new(0),
    };
    assert_eq!(service.count("abc").await.unwrap(), 3);
    assert_eq!(service.count("abc").await.unwrap(), 3);
    assert_eq!(service.loads.load(Ordering::SeqCst), 1);
}

#[test]
fn misuse_fails_to_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/cached_*.rs");
}
