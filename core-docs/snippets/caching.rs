//! Caching: every example on the Caching page, run against the memory driver.

use std::time::Duration;

use core_db::{Cache, Database, Expiry};
use serde::{Deserialize, Serialize};

// region: setup
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub cache: Cache, // cheap to clone: every clone shares one connection and one memory
}

pub async fn connect(settings: &core_web::config::Settings) -> anyhow::Result<AppState> {
    let db = Database::from_config(&settings.database).await?; // migrated on start by default
    // memory:// by default; redis://… or tiered+redis://… from CACHE_URL / REDIS_URL.
    // APP_NAME is the prefix, so apps sharing one Redis never see each other's keys.
    let cache = Cache::from_config(&settings.cache, settings.app_name.clone()).await?;
    Ok(AppState { db, cache })
}
// endregion: setup

pub async fn basics(cache: &Cache) -> core_db::Result<()> {
    // region: basics
    cache.set("site:banner", "Summer sale").await?; // no expiry
    let banner: Option<String> = cache.get("site:banner").await?;
    assert_eq!(banner.as_deref(), Some("Summer sale"));

    assert!(cache.has("site:banner").await?);
    cache.del("site:banner").await?; // deleting a missing key is fine too
    cache.forget("site:banner").await?; // the same as del
    assert_eq!(cache.get("site:banner").await?, None);
    // endregion: basics

    // region: add-pull
    // Store only when the key is empty (atomic): true when this call stored it.
    let first = cache
        .add("welcome-mail:42", "sent", Some(Duration::from_secs(86_400)))
        .await?;
    let again = cache
        .add("welcome-mail:42", "sent", Some(Duration::from_secs(86_400)))
        .await?;
    assert!(first && !again);

    // Read and delete in one step: of two concurrent pulls, only one gets the value.
    cache.set_ex("login-code:ada", "318204", 300).await?;
    assert_eq!(
        cache.pull("login-code:ada").await?.as_deref(),
        Some("318204")
    );
    assert_eq!(cache.pull("login-code:ada").await?, None);
    // endregion: add-pull
    Ok(())
}

pub async fn ttl(cache: &Cache) -> core_db::Result<()> {
    // region: ttl
    cache.set_ex("weather:paris", "18°C, cloudy", 300).await?; // five minutes
    assert_eq!(cache.ttl("weather:paris").await?, Some(300)); // seconds left, rounded up

    // `ttl` is None for a missing key *and* for a key without expiry; `expiry` tells them apart.
    cache.set("motd", "Hello").await?;
    assert_eq!(cache.ttl("motd").await?, None);
    assert_eq!(cache.expiry("motd").await?, Expiry::Persistent);
    assert_eq!(cache.expiry("nothing-here").await?, Expiry::Missing);
    assert!(
        matches!(cache.expiry("weather:paris").await?, Expiry::Expires(left) if left <= Duration::from_secs(300))
    );

    // Millisecond precision with a Duration; a zero TTL deletes the key.
    cache
        .put("flash:saved", "Saved!", Some(Duration::from_millis(1500)))
        .await?;
    cache.set_ex("weather:paris", "", 0).await?;
    assert!(!cache.has("weather:paris").await?);
    // endregion: ttl
    Ok(())
}

// region: json
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: i64,
    pub name: String,
    pub roles: Vec<String>,
}

pub async fn cache_profile(cache: &Cache, profile: &Profile) -> core_db::Result<Option<Profile>> {
    let key = format!("profile:{}", profile.id);
    cache.set_json_ex(&key, profile, 600).await?; // ten minutes; set_json: no expiry
    cache.get_json::<Profile>(&key).await // Err(InvalidValue) if it holds another shape
}
// endregion: json

// region: remember
/// The expensive query: a full scan with an aggregate.
async fn count_published(db: &Database) -> core_db::Result<i64> {
    let sql = "SELECT COUNT(*) FROM articles WHERE published = 1";
    Ok(match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}

pub async fn published_count(state: &AppState) -> core_db::Result<i64> {
    // The closure runs only on a miss, and only once however many requests miss together.
    state
        .cache
        .remember("articles:published-count", 600, || {
            count_published(&state.db)
        })
        .await
}
// endregion: remember

// region: remember-forever
#[derive(Debug, Serialize, Deserialize)]
pub struct Country {
    pub code: String,
    pub name: String,
}

pub async fn countries(state: &AppState) -> core_db::Result<Vec<Country>> {
    // Reference data that only changes with a deploy: cache it until someone forgets it.
    state
        .cache
        .remember_forever("reference:countries", || async {
            let text = tokio::fs::read_to_string("data/countries.json").await?; // io::Error → core_db::Error
            Ok(serde_json::from_str(&text)?)
        })
        .await
}
// endregion: remember-forever

pub async fn counters(cache: &Cache) -> core_db::Result<()> {
    // region: counters
    let views = cache.increment("article:42:views", 1).await?; // a missing key counts as 0
    assert_eq!(views, 1);
    cache.increment("article:42:views", 10).await?;
    let views = cache.decrement("article:42:views", 3).await?;
    assert_eq!(views, 8);
    // endregion: counters
    Ok(())
}

// region: rate-limit
/// At most 100 requests per minute per client: the window starts with the first request and
/// later increments do not extend it.
pub async fn allow_request(cache: &Cache, client_ip: &str) -> core_db::Result<bool> {
    let key = format!("rate:{client_ip}");
    let hits = cache.increment_ex(&key, 1, Duration::from_secs(60)).await?;
    Ok(hits <= 100)
}
// endregion: rate-limit

pub async fn bulk(cache: &Cache) -> core_db::Result<()> {
    // region: bulk
    // One round trip for many keys (MGET / MSET on Redis).
    cache
        .put_many(&[
            ("price:1", "9.90"),
            ("price:2", "14.50"),
            ("price:3", "3.20"),
        ])
        .await?;
    let prices = cache.many(&["price:1", "price:2", "price:9"]).await?;
    assert_eq!(
        prices,
        vec![Some("9.90".to_owned()), Some("14.50".to_owned()), None]
    );

    // Every key that starts with the literal prefix, and nothing else.
    cache.flush_prefix("price:").await?;
    assert!(!cache.has("price:1").await?);
    // endregion: bulk
    Ok(())
}

// region: invalidate
pub async fn rename_article(state: &AppState, id: i64, title: &str) -> core_db::Result<()> {
    let sql = "UPDATE articles SET title = $1 WHERE id = $2";
    match &state.db {
        Database::Postgres(pool) => sqlx::query(sql)
            .bind(title)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
        Database::Sqlite(pool) => sqlx::query(sql)
            .bind(title)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    // After the write has committed: drop the copies that are now wrong.
    state.cache.forget(&format!("article:{id}")).await?; // the article itself
    state.cache.flush_prefix("articles:list:").await?; // every cached page of the list
    Ok(())
}
// endregion: invalidate

// region: drivers
pub async fn drivers(redis_url: &str, app: &str) -> core_db::Result<[Cache; 3]> {
    use core_db::cache::{MemoryCacheOptions, RedisCacheOptions};

    // One process, nothing installed: a bounded in-process cache.
    let memory = Cache::memory_with(app, MemoryCacheOptions::new().max_entries(50_000));

    // Shared by every process: one multiplexed, auto-reconnecting connection per Cache.
    // (redis_url: "redis://127.0.0.1:6379", say; app: the key prefix, e.g. APP_NAME)
    let redis = Cache::redis_with(
        redis_url,
        app,
        RedisCacheOptions::new()
            .timeout(Duration::from_millis(500)) // an error, not a hang, when Redis is down
            .remember_lock_ttl(Duration::from_secs(30)) // above your slowest remember closure
            .remember_wait(Duration::from_secs(10)),
    )
    .await?;

    // Or from configuration: memory://, memory://?max_entries=N, redis://, rediss://,
    // tiered+redis://, tiered+rediss://
    let configured = Cache::from_url(&format!("tiered+{redis_url}"), app).await?;
    Ok([memory, redis, configured])
}
// endregion: drivers

// region: tiered
pub async fn tiered(redis_url: &str, app: &str) -> core_db::Result<Cache> {
    use core_db::cache::TieredConfig;

    let l1 = Cache::memory(app);
    let l2 = Cache::redis(redis_url, app).await?;
    let cache = Cache::tiered(
        l1,
        l2,
        TieredConfig {
            l1_ttl_fraction: 0.1, // L1 keeps a value for 10% of its remaining Redis TTL
            l1_max_ttl: Duration::from_secs(30), // and never more than 30 s (default 60 s)
            ..TieredConfig::default()
        },
    )
    .await?;

    if let Some(stats) = cache.stats() {
        tracing::info!(
            l1 = stats.l1_hits,
            l2 = stats.l2_hits,
            misses = stats.misses,
            "cache"
        );
    }
    Ok(cache)
}
// endregion: tiered

pub async fn tags(cache: &Cache) -> core_db::Result<()> {
    // region: tags
    let hour = Some(Duration::from_secs(3600));
    cache
        .set_with_tags("user:7", r#"{"name":"Ada"}"#, &["users", "team:3"], hour)
        .await?;
    cache
        .set_with_tags("user:8", r#"{"name":"Grace"}"#, &["users"], hour)
        .await?;
    cache
        .set_with_tags("team:3:members", "[7]", &["team:3"], hour)
        .await?;

    assert_eq!(cache.get_tags_for_key("user:7").await?, ["team:3", "users"]);
    assert_eq!(
        cache.get_keys_by_tag("team:3").await?,
        ["team:3:members", "user:7"]
    );

    // Team 3 changed: drop everything that was derived from it.
    let removed = cache.invalidate_tag("team:3").await?;
    assert_eq!(removed, 2);
    assert!(cache.has("user:8").await?);
    cache.invalidate_tags(&["users", "orders"]).await?;
    // endregion: tags

    // region: remember-tags
    let names: Vec<String> = cache
        .remember_with_tags("team:3:names", &["team:3", "users"], hour, || async {
            Ok(vec!["Ada".to_owned(), "Grace".to_owned()])
        })
        .await?;
    assert_eq!(names.len(), 2);
    // endregion: remember-tags
    assert_eq!(cache.list_tags().await?, ["team:3", "users"]);
    Ok(())
}

pub async fn locks(cache: &Cache) -> core_db::Result<()> {
    // region: locks
    let lock = cache.lock("reports:nightly", Duration::from_secs(300));
    if lock.try_acquire().await? {
        // ... only one process at a time gets here ...
        lock.release().await?; // only releases if this owner still holds it
    }

    // Wait up to 5 s for another holder to finish.
    let lock = cache.lock("invoice:42", Duration::from_secs(30));
    if lock.acquire(Duration::from_secs(5)).await? {
        // Hand the token to another process (e.g. in a job) so it can release the lock.
        let token = lock.token().to_owned();
        let same = cache.lock_with_owner("invoice:42", Duration::from_secs(30), token);
        assert!(same.release().await?);
    }
    // endregion: locks
    Ok(())
}

// region: flexible
#[derive(Debug, Serialize, Deserialize)]
pub struct Dashboard {
    pub open_orders: i64,
}

pub async fn dashboard(state: &AppState) -> core_db::Result<Dashboard> {
    let db = state.db.clone(); // the refresh may run in the background: it owns its data
    state
        .cache
        .flexible(
            "dashboard",
            Duration::from_secs(30),  // fresh: served as is
            Duration::from_secs(600), // stale until then: served at once, refreshed behind
            move || async move {
                let sql = "SELECT COUNT(*) FROM orders WHERE status = 'open'";
                let open_orders = match &db {
                    Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
                    Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
                };
                Ok(Dashboard { open_orders })
            },
        )
        .await
}
// endregion: flexible

// region: cached
use core_db::cached;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Team {
    pub id: i64,
    pub name: String,
}

#[cached(cache = state.cache, key = "team:{id}", ttl = 300, tags = ["teams", "team:{id}"])]
pub async fn find_team(state: &AppState, id: i64) -> anyhow::Result<Option<Team>> {
    // Runs only on a miss; an Err is returned and not cached.
    let sql = "SELECT id, name FROM teams WHERE id = $1";
    let row: Option<(i64, String)> = match &state.db {
        Database::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
        Database::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
    };
    Ok(row.map(|(id, name)| Team { id, name }))
}
// endregion: cached

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn state() -> AppState {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, published INTEGER NOT NULL);
             INSERT INTO articles VALUES (1, 'One', 1), (2, 'Two', 1), (3, 'Three', 0);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL);
             INSERT INTO orders (status) VALUES ('open'), ('open'), ('shipped');
             CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO teams VALUES (3, 'Core');",
        )
        .await
        .expect("schema");
        AppState {
            db,
            cache: Cache::memory("docs"),
        }
    }

    #[tokio::test]
    async fn the_basic_examples_run() -> core_db::Result<()> {
        let cache = Cache::memory("docs");
        basics(&cache).await?;
        ttl(&cache).await?;
        counters(&cache).await?;
        bulk(&cache).await?;
        tags(&cache).await?;
        locks(&cache).await?;
        let ada = Profile {
            id: 1,
            name: "Ada".into(),
            roles: vec!["admin".into()],
        };
        assert_eq!(cache_profile(&cache, &ada).await?, Some(ada));
        for _ in 0..100 {
            assert!(allow_request(&cache, "203.0.113.9").await?);
        }
        assert!(!allow_request(&cache, "203.0.113.9").await?);
        Ok(())
    }

    #[tokio::test]
    async fn remember_computes_once_and_invalidation_drops_it() -> core_db::Result<()> {
        let state = state().await;
        assert_eq!(published_count(&state).await?, 2);
        state
            .db
            .execute("UPDATE articles SET published = 1")
            .await?;
        assert_eq!(published_count(&state).await?, 2, "served from the cache");
        state.cache.forget("articles:published-count").await?;
        assert_eq!(published_count(&state).await?, 3);

        // Concurrent misses share one computation.
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|_| {
            let runs = Arc::clone(&runs);
            let cache = state.cache.clone();
            async move {
                cache
                    .remember("slow", 60, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(7_u32)
                    })
                    .await
            }
        });
        for value in futures_util::future::join_all(calls).await {
            assert_eq!(value?, 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        state.cache.set("article:1", "{}").await?;
        state.cache.set("articles:list:1", "[]").await?;
        rename_article(&state, 1, "Uno").await?;
        assert!(!state.cache.has("article:1").await?);
        assert!(!state.cache.has("articles:list:1").await?);

        // remember_forever: an error (the file is missing) is returned and nothing is stored.
        assert!(countries(&state).await.is_err());
        assert!(!state.cache.has("reference:countries").await?);
        Ok(())
    }

    #[tokio::test]
    async fn flexible_and_cached_run() -> anyhow::Result<()> {
        let state = state().await;
        assert_eq!(dashboard(&state).await?.open_orders, 2);
        let team = find_team(&state, 3).await?.expect("team 3");
        assert_eq!(team.name, "Core");
        assert!(state.cache.has("team:3").await?);
        state.cache.invalidate_tag("teams").await?;
        assert!(!state.cache.has("team:3").await?);
        Ok(())
    }

    /// `drivers` against the Redis at `REDIS_URL`: the three caches it makes are the drivers
    /// it says, and the Redis-backed two share their values.
    #[tokio::test]
    async fn the_driver_examples_run() -> core_db::Result<()> {
        use core_db::CacheDriver;

        let Some(r) = test_support::redis("docs::caching::drivers").await else {
            return Ok(());
        };
        let [memory, redis, configured] = drivers(&r.url, &r.prefix).await?;
        assert_eq!(memory.driver(), CacheDriver::Memory);
        assert_eq!(redis.driver(), CacheDriver::Redis);
        assert_eq!(configured.driver(), CacheDriver::Tiered);
        redis.set("greeting", "hello").await?;
        assert_eq!(configured.get("greeting").await?.as_deref(), Some("hello"));
        assert_eq!(memory.get("greeting").await?, None, "memory is per process");
        redis.flush_prefix("").await?;
        Ok(())
    }

    /// `tiered` twice on one prefix (two processes): a change on one is seen by the other, whose
    /// L1 serves it once it holds a copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tiered_example_runs() -> core_db::Result<()> {
        use core_db::CacheDriver;

        let Some(r) = test_support::redis("docs::caching::tiered").await else {
            return Ok(());
        };
        let (a, b) = (
            tiered(&r.url, &r.prefix).await?,
            tiered(&r.url, &r.prefix).await?,
        );
        assert_eq!(a.driver(), CacheDriver::Tiered);
        a.set("k", "v1").await?;
        assert_eq!(b.get("k").await?.as_deref(), Some("v1"));
        a.set("k", "v2").await?;
        let started = std::time::Instant::now();
        while b.get("k").await?.as_deref() != Some("v2") {
            assert!(started.elapsed() < Duration::from_secs(3), "b never saw v2");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = b.stats().expect("tiered stats").l1_hits;
        for _ in 0..50 {
            assert_eq!(b.get("k").await?.as_deref(), Some("v2"));
        }
        assert!(
            b.stats().expect("tiered stats").l1_hits > before,
            "L1 serves it"
        );
        a.flush_prefix("").await?;
        Ok(())
    }

    /// `connect` with settings naming a SQLite file and the Redis at `REDIS_URL`, the test's
    /// prefix as the app name: both handles work.
    #[tokio::test]
    async fn the_setup_example_connects() -> anyhow::Result<()> {
        use core_db::CacheDriver;

        let Some(r) = test_support::redis("docs::caching::connect").await else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let database_url = format!("sqlite://{}/app.sqlite3", dir.path().display());
        let cache_url = r.url.clone();
        let settings = core_web::config::Settings::from_lookup(|name| match name {
            "DATABASE_URL" => Some(database_url.clone()),
            "CACHE_URL" => Some(cache_url.clone()),
            "APP_NAME" => Some(r.prefix.clone()),
            _ => None,
        })?;
        let state = connect(&settings).await?;
        assert_eq!(state.cache.driver(), CacheDriver::Redis);
        assert_eq!(state.cache.prefix(), r.prefix);
        state.cache.set("k", "v").await?;
        assert_eq!(state.cache.get("k").await?.as_deref(), Some("v"));
        state.db.execute("CREATE TABLE t (id INTEGER)").await?;
        state.cache.flush_prefix("").await?;
        Ok(())
    }
}
