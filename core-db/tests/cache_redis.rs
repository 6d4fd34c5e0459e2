//! What only the Redis driver has to prove: the key layout, `flush_prefix` staying inside
//! `{prefix}:cache:`, tag sets that do not grow, single-flight across handles (processes), and
//! behaviour while Redis is unreachable.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use core_db::Error;
use core_db::cache::{Cache, RedisCacheOptions};
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

mod cache_support;
use cache_support::{client_id, kill_client, redis_addr, remember_on_both, until_ok};

async fn zcard(r: &test_support::TestRedis, key: &str) -> i64 {
    let mut conn = r.connection().await;
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn exists(r: &test_support::TestRedis, key: &str) -> bool {
    let mut conn = r.connection().await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_follow_the_documented_layout() {
    let Some(r) = test_support::redis("keys_follow_the_documented_layout").await else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    cache.set("user:1", "v").await.unwrap();
    cache
        .set_with_tags("user:2", "v", &["users"], None)
        .await
        .unwrap();
    let lock = cache.lock("nightly", Duration::from_secs(30));
    assert!(lock.try_acquire().await.unwrap());

    let p = &r.prefix;
    let expected: BTreeSet<String> = [
        format!("{p}:cache:user:1"),
        format!("{p}:cache:user:2"),
        format!("{p}:cache-tag:t:users"),
        format!("{p}:cache-tag:k:user:2"),
        format!("{p}:cache-tag:index"),
        format!("{p}:lock:nightly"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        r.keys().await.into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(lock.release().await.unwrap());
    assert!(!exists(&r, &format!("{p}:lock:nightly")).await);
}

#[tokio::test]
async fn flush_prefix_never_leaves_the_cache_namespace() {
    let Some(r) = test_support::redis("flush_prefix_never_leaves_the_cache_namespace").await else {
        return;
    };
    // Two applications whose prefixes a careless glob would confuse: `app*` and `appX`.
    let app = format!("{}:app*", r.prefix);
    let other_app = format!("{}:appX", r.prefix);
    let cache = Cache::redis(&r.url, app.clone()).await.unwrap();
    let other = Cache::redis(&r.url, other_app.clone()).await.unwrap();

    for key in ["a*", "a*1", "ab", "a?", "a[1]", "b"] {
        cache.set(key, "v").await.unwrap();
        other.set(key, "v").await.unwrap();
    }
    cache
        .set_with_tags("kept", "v", &["a*"], None)
        .await
        .unwrap();
    let mut conn = r.connection().await;
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{app}:queue:a*:ready"))
        .arg("job")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        cache
            .lock("a*", Duration::from_secs(30))
            .try_acquire()
            .await
            .unwrap()
    );

    let before: BTreeSet<String> = r.keys().await.into_iter().collect();
    let commands = watch_commands(&r, &cache, async {
        cache.flush_prefix("a*").await.unwrap();
    })
    .await;
    let after: BTreeSet<String> = r.keys().await.into_iter().collect();
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        removed,
        [format!("{app}:cache:a*"), format!("{app}:cache:a*1")]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );

    // How: SCAN with the escaped pattern and UNLINK in batches; never KEYS or FLUSHDB.
    for forbidden in ["\"KEYS\"", "\"FLUSHDB\"", "\"FLUSHALL\""] {
        assert!(
            !commands.iter().any(|c| c.contains(forbidden)),
            "{forbidden} sent: {commands:#?}"
        );
    }
    assert!(
        commands.iter().any(|c| c.contains("\"SCAN\"")
            && c.contains("\"MATCH\"")
            && c.contains("cache:a\\\\*")),
        "SCAN with the escaped pattern: {commands:#?}"
    );
    assert!(
        commands.iter().any(|c| c.contains("\"UNLINK\"")),
        "UNLINK: {commands:#?}"
    );

    // Flushing everything of one app leaves the other app, the queue, the lock and the tags'
    // bookkeeping of keys that still exist.
    cache.flush_prefix("").await.unwrap();
    let left: BTreeSet<String> = r.keys().await.into_iter().collect();
    assert!(
        left.iter()
            .all(|k| !k.starts_with(&format!("{app}:cache:"))),
        "{left:?}"
    );
    for key in ["a*", "a*1", "ab", "a?", "a[1]", "b"] {
        assert!(left.contains(&format!("{other_app}:cache:{key}")), "{key}");
    }
    assert!(left.contains(&format!("{app}:queue:a*:ready")));
    assert!(left.contains(&format!("{app}:lock:a*")));
    // The flushed tagged key left its tag.
    assert!(cache.get_keys_by_tag("a*").await.unwrap().is_empty());
}

/// Every command `MONITOR` shows while `work` runs (any client's).
async fn monitor(
    r: &test_support::TestRedis,
    work: impl std::future::Future<Output = ()>,
) -> Vec<String> {
    let client = redis::Client::open(r.url.as_str()).unwrap();
    let mut lines = client
        .get_async_monitor()
        .await
        .unwrap()
        .into_on_message::<String>();
    work.await;
    let sentinel = format!("{}-monitor-done", r.prefix);
    let mut conn = r.connection().await;
    let _: String = redis::cmd("ECHO")
        .arg(&sentinel)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let collect = async {
        while let Some(line) = lines.next().await {
            if line.contains(&sentinel) {
                return;
            }
            seen.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("MONITOR shows the sentinel");
    seen
}

/// The client address in a `MONITOR` line (`… [0 127.0.0.1:5000] "GET" …`), or `lua`.
fn monitor_client(line: &str) -> &str {
    line.split('[')
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|inside| inside.split(' ').nth(1))
        .unwrap_or("")
}

/// The commands `cache` sends while `work` runs (its own connection's, and those of the scripts
/// it runs), as `MONITOR` shows them.
async fn watch_commands(
    r: &test_support::TestRedis,
    cache: &Cache,
    work: impl std::future::Future<Output = ()>,
) -> Vec<String> {
    let mut conn = cache.redis_connection().unwrap();
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap();
    let addr = info
        .split(' ')
        .find_map(|field| field.strip_prefix("addr="))
        .unwrap()
        .to_owned();
    monitor(r, work)
        .await
        .into_iter()
        .filter(|line| {
            let client = monitor_client(line);
            client == addr || (client == "lua" && line.contains(&r.prefix))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clone_shares_one_connection() {
    let Some(r) = test_support::redis("every_clone_shares_one_connection").await else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let lines = monitor(&r, async {
        let mut tasks = Vec::new();
        for t in 0..64 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let key = format!("shared:{t}:{i}");
                    cache.set(&key, "v").await.unwrap();
                    assert!(cache.get(&key).await.unwrap().is_some());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    let cache_commands: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(&format!("{}:cache:shared:", r.prefix)))
        .collect();
    assert_eq!(
        cache_commands.len(),
        64 * 20 * 2,
        "every call is one command"
    );
    let clients: BTreeSet<&str> = cache_commands.iter().map(|l| monitor_client(l)).collect();
    assert_eq!(
        clients.len(),
        1,
        "one connection for every clone and call: {clients:?}"
    );
}

/// `put_many` and `many` of a thousand keys are one command each (`MONITOR` counts what the
/// cache's connection sends), and an empty call sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_calls_take_one_round_trip() {
    let Some(r) = test_support::redis("bulk_calls_take_one_round_trip").await else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("rt:{i}")).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();

    let sent = watch_commands(&r, &cache, async {
        cache.put_many(&pairs).await.unwrap();
    })
    .await;
    assert_eq!(sent.len(), 1, "put_many is one command: {sent:?}");
    assert!(sent[0].contains("\"MSET\""), "{}", sent[0]);

    let mut values = Vec::new();
    let sent = watch_commands(&r, &cache, async {
        values = cache.many(&refs).await.unwrap();
    })
    .await;
    assert_eq!(sent.len(), 1, "many is one command: {sent:?}");
    assert!(sent[0].contains("\"MGET\""), "{}", sent[0]);
    assert_eq!(values.len(), 1000);
    assert!(values.iter().all(|v| v.as_deref() == Some("v")));

    let sent = watch_commands(&r, &cache, async {
        assert!(cache.many(&[]).await.unwrap().is_empty());
        cache.put_many(&[]).await.unwrap();
    })
    .await;
    assert!(sent.is_empty(), "no command for nothing: {sent:?}");
}

#[tokio::test]
async fn tag_sets_do_not_grow_with_expired_or_removed_keys() {
    let Some(r) = test_support::redis("tag_sets_do_not_grow_with_expired_or_removed_keys").await
    else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let p = &r.prefix;
    let tag_set = format!("{p}:cache-tag:t:t");

    // Long enough that the writes below all happen within it, even on a busy machine.
    let ttl = Duration::from_millis(1000);
    for i in 0..200 {
        cache
            .set_with_tags(&format!("k{i}"), "v", &["t"], Some(ttl))
            .await
            .unwrap();
    }
    assert_eq!(zcard(&r, &tag_set).await, 200);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(
        !exists(&r, &format!("{p}:cache-tag:k:k0")).await,
        "a key's tags expire with it"
    );
    assert!(
        !exists(&r, &tag_set).await,
        "a tag whose keys all expired disappears"
    );

    for i in 0..50 {
        cache
            .set_with_tags(&format!("j{i}"), "v", &["t"], Some(ttl))
            .await
            .unwrap();
    }
    cache
        .set_with_tags("durable", "v", &["t"], None)
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    cache
        .set_with_tags("new", "v", &["t"], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        zcard(&r, &tag_set).await,
        2,
        "expired members are pruned on write"
    );

    // Re-tagging moves the key; deleting, pulling or flushing it removes it.
    cache
        .set_with_tags("durable", "v", &["other"], None)
        .await
        .unwrap();
    assert_eq!(zcard(&r, &tag_set).await, 1);
    cache.del("new").await.unwrap();
    assert!(!exists(&r, &tag_set).await);
    assert!(cache.pull("durable").await.unwrap().is_some());
    assert!(!exists(&r, &format!("{p}:cache-tag:t:other")).await);
    assert!(!exists(&r, &format!("{p}:cache-tag:k:durable")).await);

    cache
        .set_with_tags("f1", "v", &["flushed"], None)
        .await
        .unwrap();
    cache.flush_prefix("f").await.unwrap();
    assert!(!exists(&r, &format!("{p}:cache-tag:t:flushed")).await);
    assert!(cache.list_tags().await.unwrap().is_empty());
    // Listing tags prunes the index of tags without live keys: nothing is left behind.
    assert_eq!(r.keys().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_runs_once_across_two_handles() {
    let Some(r) = test_support::redis("remember_runs_once_across_two_handles").await else {
        return;
    };
    // Two handles = two connections and two in-process flight maps: two processes in effect.
    let a = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let b = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    assert_eq!(
        remember_on_both(&a, &b).await,
        1,
        "once in total across both handles"
    );
    assert!(
        !exists(&r, &format!("{}:lock:cache:remember:report", r.prefix)).await,
        "the compute lock is released"
    );
}

#[tokio::test]
async fn remember_stops_waiting_after_the_bound() {
    let Some(r) = test_support::redis("remember_stops_waiting_after_the_bound").await else {
        return;
    };
    let options = RedisCacheOptions::new().remember_wait(Duration::from_millis(300));
    let cache = Cache::redis_with(&r.url, r.prefix.clone(), options)
        .await
        .unwrap();
    // Another process holds the compute lock and never finishes.
    let stuck = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    assert!(
        stuck
            .lock("cache:remember:k", Duration::from_secs(30))
            .try_acquire()
            .await
            .unwrap()
    );
    let started = Instant::now();
    let v: i64 = cache.remember("k", 60, || async { Ok(1) }).await.unwrap();
    assert_eq!(v, 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn remember_waiter_takes_over_when_the_computing_process_fails() {
    let Some(r) =
        test_support::redis("remember_waiter_takes_over_when_the_computing_process_fails").await
    else {
        return;
    };
    let a = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let b = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();

    // An error releases the lock at once.
    let failed: core_db::Result<i64> = a
        .remember("k", 60, || async { Err(Error::Config("boom".into())) })
        .await;
    assert!(failed.is_err());
    let started = Instant::now();
    let v: i64 = b.remember("k", 60, || async { Ok(2) }).await.unwrap();
    assert_eq!(v, 2);
    assert!(started.elapsed() < Duration::from_secs(1));

    // A cancelled computation releases it too.
    let slow = a.clone();
    let task = tokio::spawn(async move {
        slow.remember("c", 60, || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(0_i64)
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
    let _ = task.await;
    let started = Instant::now();
    let v: i64 = b.remember("c", 60, || async { Ok(3) }).await.unwrap();
    assert_eq!(v, 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn locks_are_shared_between_handles() {
    let Some(r) = test_support::redis("locks_are_shared_between_handles").await else {
        return;
    };
    let a = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let b = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let ttl = Duration::from_secs(30);
    let held = a.lock("deploy", ttl);
    assert!(held.try_acquire().await.unwrap());
    assert!(!b.lock("deploy", ttl).try_acquire().await.unwrap());
    assert!(!b.lock("deploy", ttl).release().await.unwrap());
    assert!(
        b.lock_with_owner("deploy", ttl, held.token())
            .release()
            .await
            .unwrap()
    );
    assert!(b.lock("deploy", ttl).try_acquire().await.unwrap());
}

#[tokio::test]
async fn unreachable_redis_is_an_error_not_a_hang() {
    let started = Instant::now();
    let options = RedisCacheOptions::new().timeout(Duration::from_millis(500));
    let result = Cache::redis_with("redis://127.0.0.1:1", "app", options).await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(
        Cache::redis("not a url", "app").await,
        Err(Error::Redis(_))
    ));
    assert!(matches!(
        Cache::redis("redis://127.0.0.1:1", "").await,
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_errors_then_recovers() {
    let Some(r) = test_support::redis("a_killed_connection_errors_then_recovers").await else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    cache.set("k", "v").await.unwrap();

    // Kill exactly this cache's connection (by its id), nobody else's.
    let mut conn = cache.redis_connection().unwrap();
    let id = client_id(&mut conn).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(id)
        .query_async(&mut conn)
        .await
        .unwrap();
    if list.contains("lib-name=") {
        // Redis 7.2+ shows the name the cache gives its connections.
        assert!(
            list.contains(&format!("lib-name=rustforge-cache:{}", r.prefix)),
            "the connection names itself: {list}"
        );
    }
    kill_client(&mut r.connection().await, id).await;

    let first = cache.get("k").await;
    assert!(
        first.is_err(),
        "the call on the dead connection fails: {first:?}"
    );
    let v = until_ok(Duration::from_secs(2), async || cache.get("k").await).await;
    assert_eq!(v.as_deref(), Some("v"));
    let new_id = client_id(&mut conn).await;
    assert_ne!(new_id, id, "a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_run_errors_then_recovers() {
    let Some(r) = test_support::redis("a_connection_killed_mid_run_errors_then_recovers").await
    else {
        return;
    };
    let timeout = Duration::from_millis(500);
    let cache = Cache::redis_with(
        &r.url,
        r.prefix.clone(),
        RedisCacheOptions::new().timeout(timeout),
    )
    .await
    .unwrap();
    let id = client_id(&mut cache.redis_connection().unwrap()).await;

    // Eight tasks write and read without pause; the connection dies under them.
    let started = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (cache, stop) = (cache.clone(), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut log = Vec::new();
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let at = started.elapsed();
                let key = format!("w{w}");
                let result = match cache.set(&key, &i.to_string()).await {
                    Ok(()) => cache.get(&key).await.map(|v| v.is_some()),
                    Err(e) => Err(e),
                };
                log.push((
                    at,
                    started.elapsed() - at,
                    result.map_err(|e| e.to_string()),
                ));
                i += 1;
            }
            log
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut admin = r.connection().await;
    let killed_at = started.elapsed();
    kill_client(&mut admin, id).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);

    let mut log = Vec::new();
    for worker in workers {
        log.extend(worker.await.unwrap());
    }
    let errors: Vec<_> = log.iter().filter(|(_, _, r)| r.is_err()).collect();
    assert!(!errors.is_empty(), "calls in flight when it died fail");
    for (at, took, result) in &log {
        assert!(
            *took < timeout + Duration::from_millis(300),
            "a call hung for {took:?}"
        );
        if *at + *took < killed_at {
            assert!(result.is_ok(), "before the kill: {result:?}");
        }
        if *at > killed_at + Duration::from_millis(300) {
            assert_eq!(
                result,
                &Ok(true),
                "300 ms after the kill calls succeed again"
            );
        }
    }
    assert!(
        log.iter()
            .any(|(at, _, r)| *at > killed_at + Duration::from_millis(300) && r.is_ok()),
        "calls were made, and succeeded, after the recovery"
    );
}

/// A TCP proxy to Redis that the test can take down, bring back and turn into a black hole.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(redis_url: &str) -> Self {
        let upstream = redis_addr(redis_url);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener, true).await;
        proxy
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn serve(&self, listener: TcpListener, forward: bool) {
        let upstream = self.upstream.clone();
        let tasks = Arc::clone(&self.tasks);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if forward {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    } else {
                        // A black hole: accept, read nothing, answer nothing.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(client);
                    }
                });
                tasks.lock().await.push(conn);
            }
        });
        self.tasks.lock().await.push(accept);
    }

    async fn down(&self) {
        for task in self.tasks.lock().await.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }

    async fn up(&self, forward: bool) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener, forward).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back() {
    let Some(r) = test_support::redis("redis_down_then_back").await else {
        return;
    };
    let proxy = Proxy::start(&r.url).await;
    let timeout = Duration::from_millis(400);
    let cache = Cache::redis_with(
        &proxy.url(),
        r.prefix.clone(),
        RedisCacheOptions::new().timeout(timeout),
    )
    .await
    .unwrap();
    cache.set("k", "v").await.unwrap();
    let default_options = Cache::redis(&proxy.url(), r.prefix.clone()).await.unwrap();
    default_options.get("k").await.unwrap();

    // Down (connection refused): every call fails, quickly, none hangs or panics.
    proxy.down().await;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(cache.get("k").await.is_err());
        assert!(
            started.elapsed() < timeout + Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(cache.set("k2", "v").await.is_err());
    assert!(cache.remember("r", 60, || async { Ok(1) }).await.is_err());
    // Calls that need no round trip still work.
    assert_eq!(cache.many(&[]).await.unwrap(), Vec::<Option<String>>::new());
    cache.put_many(&[]).await.unwrap();

    // Back: calls succeed again right away.
    proxy.up(true).await;
    let v = until_ok(Duration::from_secs(3), async || cache.get("k").await).await;
    assert_eq!(v.as_deref(), Some("v"));

    // A black hole (accepts, never answers): calls end with a timeout error.
    proxy.down().await;
    proxy.up(false).await;
    let started = Instant::now();
    let result = cache.get("k").await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Error::Timeout { .. }) | Err(Error::Redis(_))),
        "{result:?}"
    );
    assert!(took < timeout + Duration::from_millis(300), "{took:?}");
    let result = cache.get("k").await;
    assert!(
        matches!(result, Err(Error::Timeout { after, .. }) if after == timeout),
        "{result:?}"
    );
    // Without options the bound is 2 s.
    assert_eq!(RedisCacheOptions::DEFAULT_TIMEOUT, Duration::from_secs(2));
    for _ in 0..2 {
        let started = Instant::now();
        let result = default_options.get("k").await;
        let took = started.elapsed();
        assert!(result.is_err(), "{result:?}");
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }
    let result = default_options.get("k").await;
    assert!(
        matches!(result, Err(Error::Timeout { after, .. }) if after == Duration::from_secs(2)),
        "{result:?}"
    );

    proxy.down().await;
    proxy.up(true).await;
    // Recovered from the black hole.
    until_ok(Duration::from_secs(5), async || cache.get("k").await).await;
}
