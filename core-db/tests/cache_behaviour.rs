//! The behaviour every cache driver must have, written once (`cases`) and run against the
//! memory, Redis and tiered drivers (`suite!` at the bottom). Redis-backed runs need Redis at
//! `REDIS_URL`; without it they print one SKIPPED line (or fail under
//! `RUSTFORGE_REQUIRE_SERVICES=1`).

use core_db::cache::{Cache, Expiry, MemoryCacheOptions, TieredConfig};

mod cases {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use core_db::Error;
    use core_db::cache::{Cache, Expiry, MAX_TTL};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: i64,
        name: String,
        tags: Vec<String>,
    }

    fn user(id: i64) -> User {
        User {
            id,
            name: format!("user {id} – ünïcödé ✓"),
            tags: vec!["a".into(), "b".into()],
        }
    }

    async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if check().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn get_set_del(cache: &Cache) {
        assert_eq!(cache.get("k").await.unwrap(), None);
        cache.set("k", "v1").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v1"));
        cache.set("k", "v2").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v2"));
        cache.del("k").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), None);
        cache.del("k").await.unwrap();
        cache.set("k", "v3").await.unwrap();
        cache.forget("k").await.unwrap();
        assert!(!cache.has("k").await.unwrap());
    }

    pub async fn values_round_trip_exactly(cache: &Cache) {
        for (key, value) in [
            ("empty", ""),
            ("unicode", "ünïcödé ✓ 漢字 🦀"),
            ("lines", "a\nb\r\nc\t"),
            ("spaces in key", "  padded  "),
            ("key:with:colons*and?globs[x]", "x"),
        ] {
            cache.set(key, value).await.unwrap();
            assert_eq!(
                cache.get(key).await.unwrap().as_deref(),
                Some(value),
                "{key}"
            );
        }
        let big = "x".repeat(1 << 20);
        cache.set("big", &big).await.unwrap();
        assert_eq!(
            cache.get("big").await.unwrap().as_deref(),
            Some(big.as_str())
        );
    }

    pub async fn empty_keys_are_rejected(cache: &Cache) {
        assert!(matches!(cache.get("").await, Err(Error::InvalidKey { .. })));
        assert!(matches!(
            cache.set("", "v").await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            cache.many(&["a", ""]).await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            cache.set_with_tags("k", "v", &[""], None).await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            cache.lock("", Duration::from_secs(1)).try_acquire().await,
            Err(Error::InvalidKey { .. })
        ));
    }

    pub async fn ttl_and_expiry(cache: &Cache) {
        assert_eq!(cache.ttl("missing").await.unwrap(), None);
        assert_eq!(cache.expiry("missing").await.unwrap(), Expiry::Missing);

        cache.set("forever", "v").await.unwrap();
        assert_eq!(cache.ttl("forever").await.unwrap(), None);
        assert_eq!(cache.expiry("forever").await.unwrap(), Expiry::Persistent);

        cache.set_ex("hundred", "v", 100).await.unwrap();
        let ttl = cache.ttl("hundred").await.unwrap().unwrap();
        assert!((99..=100).contains(&ttl), "ttl {ttl}");
        match cache.expiry("hundred").await.unwrap() {
            Expiry::Expires(d) => {
                assert!(d > Duration::from_secs(99) && d <= Duration::from_secs(100))
            }
            other => panic!("expected an expiry, got {other:?}"),
        }

        // A plain set clears the TTL, like Redis SET.
        cache.set("hundred", "v2").await.unwrap();
        assert_eq!(cache.expiry("hundred").await.unwrap(), Expiry::Persistent);

        // Under a second left: `ttl` rounds up to 1, never down to 0 (which would read as
        // "expired") or to None (which would read as "no expiry").
        cache
            .put("half", "v", Some(Duration::from_millis(500)))
            .await
            .unwrap();
        assert_eq!(cache.ttl("half").await.unwrap(), Some(1));

        // The longest TTL is capped, not overflowed into "no expiry" or an error.
        cache.set_ex("huge", "v", u64::MAX).await.unwrap();
        match cache.expiry("huge").await.unwrap() {
            Expiry::Expires(d) => {
                assert!(
                    d <= MAX_TTL && d > MAX_TTL - Duration::from_secs(60),
                    "{d:?}"
                )
            }
            other => panic!("expected the capped expiry, got {other:?}"),
        }
        cache.put("huge2", "v", Some(Duration::MAX)).await.unwrap();
        assert!(matches!(
            cache.expiry("huge2").await.unwrap(),
            Expiry::Expires(_)
        ));

        // A persistent key stays persistent through reads and counters.
        cache.set("p", "1").await.unwrap();
        cache.get("p").await.unwrap();
        cache.increment("p", 1).await.unwrap();
        assert_eq!(cache.expiry("p").await.unwrap(), Expiry::Persistent);
        assert_eq!(cache.ttl("p").await.unwrap(), None);
    }

    pub async fn millisecond_ttls(cache: &Cache) {
        cache
            .put("ms", "v", Some(Duration::from_millis(1500)))
            .await
            .unwrap();
        match cache.expiry("ms").await.unwrap() {
            Expiry::Expires(d) => {
                assert!(d <= Duration::from_millis(1500), "{d:?}");
                assert!(d > Duration::from_millis(1000), "{d:?}");
            }
            other => panic!("expected an expiry, got {other:?}"),
        }
        // Sub-millisecond TTLs round up to 1 ms instead of meaning "no expiry".
        cache
            .put("tiny", "v", Some(Duration::from_micros(10)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(cache.get("tiny").await.unwrap(), None);
        assert_eq!(cache.expiry("tiny").await.unwrap(), Expiry::Missing);
    }

    pub async fn sub_second_ttl_expires(cache: &Cache) {
        cache
            .put("short", "v", Some(Duration::from_millis(150)))
            .await
            .unwrap();
        cache.set_json_ex("long", &1, 60).await.unwrap();
        assert_eq!(cache.get("short").await.unwrap().as_deref(), Some("v"));
        assert!(cache.has("short").await.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(cache.get("short").await.unwrap(), None);
        assert!(!cache.has("short").await.unwrap());
        assert_eq!(cache.expiry("short").await.unwrap(), Expiry::Missing);
        assert_eq!(cache.ttl("short").await.unwrap(), None);
        assert_eq!(
            cache.many(&["short", "long"]).await.unwrap(),
            vec![None, Some("1".to_owned())]
        );
        assert_eq!(cache.pull("short").await.unwrap(), None);
        // An expired key is absent for add.
        assert!(cache.add("short", "again", None).await.unwrap());
    }

    pub async fn zero_ttl_means_already_expired(cache: &Cache) {
        cache.set("k", "v").await.unwrap();
        cache.set_ex("k", "v2", 0).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), None);

        cache.set("k", "v").await.unwrap();
        cache.put("k", "v2", Some(Duration::ZERO)).await.unwrap();
        assert!(!cache.has("k").await.unwrap());

        cache.set("k", "v").await.unwrap();
        cache.set_json_ex("k", &2, 0).await.unwrap();
        assert!(!cache.has("k").await.unwrap());

        assert!(!cache.add("k", "v", Some(Duration::ZERO)).await.unwrap());
        assert!(!cache.has("k").await.unwrap());

        cache.set("k", "v").await.unwrap();
        cache
            .set_with_tags("k", "v", &["t"], Some(Duration::ZERO))
            .await
            .unwrap();
        assert!(!cache.has("k").await.unwrap());
        assert!(cache.get_keys_by_tag("t").await.unwrap().is_empty());

        assert_eq!(cache.increment_ex("n", 5, Duration::ZERO).await.unwrap(), 5);
        assert!(!cache.has("n").await.unwrap());

        // remember with a zero TTL computes every time and stores nothing.
        let calls = AtomicUsize::new(0);
        for expected in 1..=2 {
            let n: usize = cache
                .remember("r0", 0, || async {
                    Ok(calls.fetch_add(1, Ordering::SeqCst) + 1)
                })
                .await
                .unwrap();
            assert_eq!(n, expected);
            assert!(!cache.has("r0").await.unwrap());
        }
        let v: i64 = cache
            .remember_with_tags("rt0", &["t0"], Some(Duration::ZERO), || async { Ok(1) })
            .await
            .unwrap();
        assert_eq!(v, 1);
        assert!(!cache.has("rt0").await.unwrap());
        assert!(cache.get_keys_by_tag("t0").await.unwrap().is_empty());
        let v: i64 = cache
            .flexible("f0", Duration::ZERO, Duration::ZERO, || async { Ok(2) })
            .await
            .unwrap();
        assert_eq!(v, 2);
        assert!(!cache.has("f0").await.unwrap());

        // Locks live at least a millisecond, even when asked for zero.
        let lock = cache.lock("l0", Duration::ZERO);
        assert!(lock.try_acquire().await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            cache
                .lock("l0", Duration::from_secs(1))
                .try_acquire()
                .await
                .unwrap()
        );
    }

    pub async fn json_values(cache: &Cache) {
        cache.set_json("u", &user(1)).await.unwrap();
        assert_eq!(cache.get_json::<User>("u").await.unwrap(), Some(user(1)));
        assert_eq!(cache.get_json::<User>("none").await.unwrap(), None);
        cache.set_json_ex("u2", &user(2), 60).await.unwrap();
        assert_eq!(cache.get_json::<User>("u2").await.unwrap(), Some(user(2)));
        assert!(cache.ttl("u2").await.unwrap().is_some());

        cache.set("broken", "{not json").await.unwrap();
        match cache.get_json::<User>("broken").await {
            Err(Error::InvalidValue { key, .. }) => assert_eq!(key, "broken"),
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    pub async fn counters(cache: &Cache) {
        assert_eq!(cache.increment("n", 1).await.unwrap(), 1);
        assert_eq!(cache.increment("n", 10).await.unwrap(), 11);
        assert_eq!(cache.decrement("n", 4).await.unwrap(), 7);
        assert_eq!(cache.increment("n", -10).await.unwrap(), -3);
        assert_eq!(cache.get("n").await.unwrap().as_deref(), Some("-3"));
        assert_eq!(cache.decrement("fresh", 2).await.unwrap(), -2);

        cache.set("s", "12").await.unwrap();
        assert_eq!(cache.increment("s", 1).await.unwrap(), 13);

        for not_int in ["abc", "1.5", " 1", "01", ""] {
            cache.set("bad", not_int).await.unwrap();
            match cache.increment("bad", 1).await {
                Err(Error::InvalidValue { key, .. }) => assert_eq!(key, "bad"),
                other => panic!("increment on {not_int:?}: expected InvalidValue, got {other:?}"),
            }
            assert_eq!(
                cache.get("bad").await.unwrap().as_deref(),
                Some(not_int),
                "left as it was"
            );
        }

        cache.set("max", &i64::MAX.to_string()).await.unwrap();
        assert!(matches!(
            cache.increment("max", 1).await,
            Err(Error::InvalidValue { .. })
        ));
        assert_eq!(cache.get("max").await.unwrap(), Some(i64::MAX.to_string()));
        assert!(matches!(
            cache.decrement("n", i64::MIN).await,
            Err(Error::InvalidValue { .. })
        ));

        // Counters keep their expiry.
        cache.set_ex("ttl-n", "5", 100).await.unwrap();
        assert_eq!(cache.increment("ttl-n", 1).await.unwrap(), 6);
        assert!(matches!(
            cache.expiry("ttl-n").await.unwrap(),
            Expiry::Expires(_)
        ));
    }

    pub async fn concurrent_increments_are_atomic(cache: &Cache) {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    cache.increment("hits", 1).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(cache.get("hits").await.unwrap().as_deref(), Some("500"));
    }

    pub async fn expiring_counters(cache: &Cache) {
        let window = Duration::from_millis(300);
        assert_eq!(cache.increment_ex("rate", 1, window).await.unwrap(), 1);
        let first = match cache.expiry("rate").await.unwrap() {
            Expiry::Expires(d) => d,
            other => panic!("expected an expiry, got {other:?}"),
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(cache.increment_ex("rate", 1, window).await.unwrap(), 2);
        match cache.expiry("rate").await.unwrap() {
            Expiry::Expires(d) => assert!(d < first, "later increments do not extend the window"),
            other => panic!("expected an expiry, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(cache.get("rate").await.unwrap(), None);
        assert_eq!(
            cache.increment_ex("rate", 1, window).await.unwrap(),
            1,
            "a new window"
        );

        // A counter without expiry gets one.
        cache.increment("plain", 3).await.unwrap();
        assert_eq!(cache.expiry("plain").await.unwrap(), Expiry::Persistent);
        assert_eq!(
            cache
                .increment_ex("plain", 1, Duration::from_secs(60))
                .await
                .unwrap(),
            4
        );
        assert!(matches!(
            cache.expiry("plain").await.unwrap(),
            Expiry::Expires(_)
        ));

        cache.set("bad", "x").await.unwrap();
        assert!(matches!(
            cache.increment_ex("bad", 1, window).await,
            Err(Error::InvalidValue { .. })
        ));
    }

    pub async fn bulk_operations(cache: &Cache) {
        assert_eq!(cache.many(&[]).await.unwrap(), Vec::<Option<String>>::new());
        cache.put_many(&[]).await.unwrap();
        cache
            .put_many(&[("a", "1"), ("b", "2"), ("c", "3")])
            .await
            .unwrap();
        assert_eq!(
            cache.many(&["c", "missing", "a", "b", "a"]).await.unwrap(),
            vec![
                Some("3".to_owned()),
                None,
                Some("1".to_owned()),
                Some("2".to_owned()),
                Some("1".to_owned())
            ]
        );
        assert_eq!(cache.expiry("a").await.unwrap(), Expiry::Persistent);
        let keys: Vec<String> = (0..1000).map(|i| format!("bulk:{i}")).collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), k.as_str())).collect();
        cache.put_many(&pairs).await.unwrap();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = cache.many(&refs).await.unwrap();
        assert!(
            values
                .iter()
                .zip(&keys)
                .all(|(v, k)| v.as_deref() == Some(k.as_str()))
        );
    }

    pub async fn add_is_atomic(cache: &Cache) {
        assert!(cache.add("a", "first", None).await.unwrap());
        assert!(!cache.add("a", "second", None).await.unwrap());
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("first"));

        let stored = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..32 {
            let cache = cache.clone();
            let stored = Arc::clone(&stored);
            tasks.push(tokio::spawn(async move {
                if cache
                    .add("race", &i.to_string(), Some(Duration::from_secs(60)))
                    .await
                    .unwrap()
                {
                    stored.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(stored.load(Ordering::SeqCst), 1);
        assert!(matches!(
            cache.expiry("race").await.unwrap(),
            Expiry::Expires(_)
        ));
    }

    pub async fn pull_is_atomic(cache: &Cache) {
        assert_eq!(cache.pull("none").await.unwrap(), None);
        cache.set("once", "v").await.unwrap();
        let got = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let cache = cache.clone();
            let got = Arc::clone(&got);
            tasks.push(tokio::spawn(async move {
                if let Some(v) = cache.pull("once").await.unwrap() {
                    assert_eq!(v, "v");
                    got.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(got.load(Ordering::SeqCst), 1);
        assert!(!cache.has("once").await.unwrap());
    }

    pub async fn flush_prefix_is_literal(cache: &Cache) {
        let keys = ["a*", "a*x", "ab", "a?", "a[b]", "b", "xa*"];
        for key in keys {
            cache.set(key, "v").await.unwrap();
        }
        cache
            .set_with_tags("a*tagged", "v", &["t"], None)
            .await
            .unwrap();
        cache.flush_prefix("a*").await.unwrap();
        let left: Vec<bool> = cache
            .many(&keys)
            .await
            .unwrap()
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(left, vec![false, false, true, true, true, true, true]);
        assert!(!cache.has("a*tagged").await.unwrap());
        assert!(cache.get_keys_by_tag("t").await.unwrap().is_empty());
        assert!(cache.list_tags().await.unwrap().is_empty());

        cache.flush_prefix("a[").await.unwrap();
        assert!(!cache.has("a[b]").await.unwrap());
        assert!(cache.has("a?").await.unwrap());

        cache.flush_prefix("").await.unwrap();
        for key in keys {
            assert!(!cache.has(key).await.unwrap(), "{key}");
        }
    }

    pub async fn flush_prefix_many_keys(cache: &Cache) {
        let keys: Vec<String> = (0..3000).map(|i| format!("page:{i}")).collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        cache.put_many(&pairs).await.unwrap();
        cache.set("pagex", "kept").await.unwrap();
        cache.flush_prefix("page:").await.unwrap();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert!(cache.many(&refs).await.unwrap().iter().all(Option::is_none));
        assert!(cache.has("pagex").await.unwrap());
    }

    pub async fn tags(cache: &Cache) {
        let hour = Some(Duration::from_secs(3600));
        cache
            .set_with_tags("user:1", "u1", &["users", "user:1"], hour)
            .await
            .unwrap();
        cache
            .set_with_tags("user:2", "u2", &["users", "user:2", "users"], None)
            .await
            .unwrap();
        cache
            .set_with_tags("post:1", "p1", &["posts", "user:1"], hour)
            .await
            .unwrap();
        assert_eq!(cache.get("user:1").await.unwrap().as_deref(), Some("u1"));
        assert!(matches!(
            cache.expiry("user:1").await.unwrap(),
            Expiry::Expires(_)
        ));
        assert_eq!(cache.expiry("user:2").await.unwrap(), Expiry::Persistent);

        assert_eq!(
            cache.get_keys_by_tag("users").await.unwrap(),
            vec!["user:1", "user:2"]
        );
        assert_eq!(
            cache.get_keys_by_tag("user:1").await.unwrap(),
            vec!["post:1", "user:1"]
        );
        assert!(cache.get_keys_by_tag("nobody").await.unwrap().is_empty());
        assert_eq!(
            cache.get_tags_for_key("user:2").await.unwrap(),
            vec!["user:2", "users"]
        );
        assert!(cache.get_tags_for_key("missing").await.unwrap().is_empty());
        assert_eq!(
            cache.list_tags().await.unwrap(),
            vec!["posts", "user:1", "user:2", "users"]
        );

        // Re-tagging replaces the tags.
        cache
            .set_with_tags("post:1", "p1b", &["posts"], hour)
            .await
            .unwrap();
        assert_eq!(
            cache.get_tags_for_key("post:1").await.unwrap(),
            vec!["posts"]
        );
        assert_eq!(
            cache.get_keys_by_tag("user:1").await.unwrap(),
            vec!["user:1"]
        );

        // A plain write keeps the tags.
        cache.set("user:2", "u2b").await.unwrap();
        assert_eq!(
            cache.get_tags_for_key("user:2").await.unwrap(),
            vec!["user:2", "users"]
        );

        // Invalidating a tag removes every key that carried it, and their other tags.
        assert_eq!(cache.invalidate_tag("user:1").await.unwrap(), 1);
        assert!(!cache.has("user:1").await.unwrap());
        assert!(cache.has("post:1").await.unwrap());
        assert_eq!(
            cache.get_keys_by_tag("users").await.unwrap(),
            vec!["user:2"]
        );
        assert_eq!(cache.invalidate_tag("user:1").await.unwrap(), 0);

        // Deleting a key removes it from its tags; setting it again does not bring them back.
        cache.del("user:2").await.unwrap();
        cache.set("user:2", "plain").await.unwrap();
        assert!(cache.get_keys_by_tag("users").await.unwrap().is_empty());
        assert!(cache.get_tags_for_key("user:2").await.unwrap().is_empty());

        cache.set_with_tags("a", "1", &["x"], None).await.unwrap();
        cache.set_with_tags("b", "2", &["y"], None).await.unwrap();
        cache.set_with_tags("c", "3", &["z"], None).await.unwrap();
        assert_eq!(
            cache.invalidate_tags(&["x", "y", "nothing"]).await.unwrap(),
            2
        );
        assert_eq!(cache.invalidate_tags(&[]).await.unwrap(), 0);
        assert_eq!(
            cache.many(&["a", "b", "c"]).await.unwrap(),
            vec![None, None, Some("3".to_owned())]
        );
        assert_eq!(cache.list_tags().await.unwrap(), vec!["posts", "z"]);

        // Pulling a tagged key untags it.
        assert_eq!(cache.pull("c").await.unwrap().as_deref(), Some("3"));
        assert!(cache.get_keys_by_tag("z").await.unwrap().is_empty());
    }

    pub async fn concurrent_retagging_is_consistent(cache: &Cache) {
        // Many writers re-tag one key at once; each write replaces the tags atomically, so the
        // key ends with exactly the tags of one write, and no tag lists it otherwise.
        let mut tasks = Vec::new();
        for i in 0..32 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                let tag = format!("t{i}");
                cache
                    .set_with_tags("k", &i.to_string(), &[tag.as_str(), "all"], None)
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let winner = cache.get("k").await.unwrap().unwrap();
        let winner_tag = format!("t{winner}");
        assert_eq!(
            cache.get_tags_for_key("k").await.unwrap(),
            vec!["all".to_owned(), winner_tag.clone()]
        );
        for i in 0..32 {
            let tag = format!("t{i}");
            let expected: Vec<String> = if tag == winner_tag {
                vec!["k".to_owned()]
            } else {
                Vec::new()
            };
            assert_eq!(
                cache.get_keys_by_tag(&tag).await.unwrap(),
                expected,
                "{tag}"
            );
        }
        assert_eq!(
            cache.list_tags().await.unwrap(),
            vec!["all".to_owned(), winner_tag]
        );
        assert_eq!(cache.invalidate_tag("all").await.unwrap(), 1);
        assert!(cache.list_tags().await.unwrap().is_empty());
    }

    pub async fn tags_expire_with_their_keys(cache: &Cache) {
        cache
            .set_with_tags(
                "short",
                "v",
                &["temp", "both"],
                Some(Duration::from_millis(150)),
            )
            .await
            .unwrap();
        cache
            .set_with_tags("long", "v", &["both"], Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(
            cache.get_keys_by_tag("both").await.unwrap(),
            vec!["long", "short"]
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(cache.get_keys_by_tag("both").await.unwrap(), vec!["long"]);
        assert!(cache.get_keys_by_tag("temp").await.unwrap().is_empty());
        assert!(cache.get_tags_for_key("short").await.unwrap().is_empty());
        assert_eq!(cache.list_tags().await.unwrap(), vec!["both"]);
        assert_eq!(cache.invalidate_tag("temp").await.unwrap(), 0);
    }

    pub async fn locks(cache: &Cache) {
        let ttl = Duration::from_secs(10);
        let first = cache.lock("report", ttl);
        let second = cache.lock("report", ttl);
        assert_ne!(first.token(), second.token());
        assert_eq!(first.name(), "report");
        assert_eq!(first.ttl(), ttl);
        assert!(first.try_acquire().await.unwrap());
        assert!(!second.try_acquire().await.unwrap());
        assert!(!first.try_acquire().await.unwrap(), "not re-entrant");
        assert!(!second.release().await.unwrap(), "only the owner releases");
        assert!(first.release().await.unwrap());
        assert!(!first.release().await.unwrap(), "released once");
        assert!(second.try_acquire().await.unwrap());

        // The owner token can travel to another handle.
        let restored = cache.lock_with_owner("report", ttl, second.token());
        assert!(restored.release().await.unwrap());

        // Locks are not cache values.
        assert!(!cache.has("report").await.unwrap());
    }

    pub async fn expired_locks_are_not_released_by_their_first_owner(cache: &Cache) {
        let first = cache.lock("job", Duration::from_millis(100));
        assert!(first.try_acquire().await.unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let second = cache.lock("job", Duration::from_secs(10));
        assert!(
            second.try_acquire().await.unwrap(),
            "the expired lock is free"
        );
        assert!(
            !first.release().await.unwrap(),
            "the first owner cannot release it"
        );
        assert!(
            !cache
                .lock("job", Duration::from_secs(1))
                .try_acquire()
                .await
                .unwrap()
        );
        assert!(second.release().await.unwrap());
    }

    pub async fn acquire_waits(cache: &Cache) {
        let holder = cache.lock("w", Duration::from_secs(10));
        assert!(holder.try_acquire().await.unwrap());
        let waiter = cache.lock("w", Duration::from_secs(10));
        let started = Instant::now();
        assert!(!waiter.acquire(Duration::from_millis(150)).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(150));

        let releaser = holder.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            releaser.release().await.unwrap();
        });
        assert!(waiter.acquire(Duration::from_secs(5)).await.unwrap());
        assert!(waiter.release().await.unwrap());
    }

    pub async fn remember_computes_on_miss_only(cache: &Cache) {
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let value: User = cache
                .remember("u", 60, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(user(7))
                })
                .await
                .unwrap();
            assert_eq!(value, user(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let ttl = cache.ttl("u").await.unwrap().unwrap();
        assert!((59..=60).contains(&ttl));

        let n: i64 = cache
            .remember_forever("f", || async { Ok(5) })
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(cache.expiry("f").await.unwrap(), Expiry::Persistent);

        let tagged: i64 = cache
            .remember_with_tags("t", &["nums"], None, || async { Ok(9) })
            .await
            .unwrap();
        assert_eq!(tagged, 9);
        assert_eq!(cache.get_keys_by_tag("nums").await.unwrap(), vec!["t"]);
    }

    pub async fn remember_errors_are_returned_and_not_cached(cache: &Cache) {
        let result: core_db::Result<i64> = cache
            .remember("e", 60, || async {
                let _ = std::fs::read("/definitely/not/here")?;
                Ok(1)
            })
            .await;
        assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
        assert!(!cache.has("e").await.unwrap());

        let result: core_db::Result<i64> = cache
            .remember("e", 60, || async {
                Err(anyhow::anyhow!("backend said no").into())
            })
            .await;
        assert!(matches!(result, Err(Error::Other(_))));
        assert!(!cache.has("e").await.unwrap());

        let ok: i64 = cache.remember("e", 60, || async { Ok(3) }).await.unwrap();
        assert_eq!(ok, 3);
    }

    pub async fn remember_is_single_flight(cache: &Cache) {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let cache = cache.clone();
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                cache
                    .remember("hot", 60, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(user(1))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), user(1));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the closure ran once for 100 misses"
        );
    }

    pub async fn remember_hands_over_after_a_failure(cache: &Cache) {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let cache = cache.clone();
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                cache
                    .remember("flaky", 60, || async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if n == 0 {
                            Err(anyhow::anyhow!("first attempt fails").into())
                        } else {
                            Ok(42_i64)
                        }
                    })
                    .await
            }));
        }
        let mut errors = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(v) => assert_eq!(v, 42),
                Err(_) => errors += 1,
            }
        }
        assert_eq!(errors, 1, "only the failing caller sees the error");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one failure, then one success"
        );
    }

    /// Captures what this thread logs while the guard lives.
    fn capture_logs() -> (
        Arc<std::sync::Mutex<Vec<u8>>>,
        tracing::subscriber::DefaultGuard,
    ) {
        #[derive(Clone)]
        struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || sink.clone())
            .finish();
        (buffer, tracing::subscriber::set_default(subscriber))
    }

    pub async fn corrupted_json_is_a_miss(cache: &Cache) {
        cache.set("corrupt:c", "{\"id\": oops").await.unwrap();
        let calls = AtomicUsize::new(0);
        let (logs, guard) = capture_logs();
        let value: User = cache
            .remember("corrupt:c", 60, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(user(3))
            })
            .await
            .unwrap();
        drop(guard);
        assert_eq!(value, user(3));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(
            logs.contains("WARN") && logs.contains("corrupt:c") && logs.contains("miss"),
            "the undecodable value is logged with its key: {logs:?}"
        );
        assert_eq!(
            cache.get_json::<User>("corrupt:c").await.unwrap(),
            Some(user(3)),
            "replaced"
        );
        let again: User = cache
            .remember("corrupt:c", 60, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(user(99))
            })
            .await
            .unwrap();
        assert_eq!(again, user(3), "the replacement is served");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // A value of another shape is a miss too.
        cache.set_json("shape", &"just a string").await.unwrap();
        let value: User = cache
            .remember("shape", 60, || async { Ok(user(4)) })
            .await
            .unwrap();
        assert_eq!(value, user(4));
        assert_eq!(
            cache.get_json::<User>("shape").await.unwrap(),
            Some(user(4))
        );
    }

    pub async fn flexible_serves_stale_while_refreshing(cache: &Cache) {
        let calls = Arc::new(AtomicUsize::new(0));
        let fresh = Duration::from_millis(300);
        let stale = Duration::from_secs(30);
        let compute = |calls: &Arc<AtomicUsize>, delay: Duration| {
            let calls = Arc::clone(calls);
            move || async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                Ok(n as i64)
            }
        };
        // A read whose computation, if it runs, is instant.
        let read = async |key: &str, fresh: Duration, stale: Duration| -> i64 {
            cache
                .flexible(key, fresh, stale, compute(&calls, Duration::ZERO))
                .await
                .unwrap()
        };

        assert_eq!(read("f", fresh, stale).await, 1);
        assert_eq!(
            read("f", fresh, stale).await,
            1,
            "fresh: served without computing"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_millis(400)).await;
        // Stale: every concurrent caller gets the old value at once; one refresh runs. The
        // refresh cannot finish before `gate` opens, which happens only once every caller has
        // its answer: a caller that waited for the refresh would never get one.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let cache = cache.clone();
            let calls = Arc::clone(&calls);
            let gate = Arc::clone(&gate);
            let f = move || async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let _open = gate.acquire().await;
                Ok(n as i64)
            };
            tasks.push(tokio::spawn(async move {
                cache.flexible("f", fresh, stale, f).await.unwrap()
            }));
        }
        let answers = tokio::time::timeout(Duration::from_secs(10), async {
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        })
        .await
        .expect("stale reads are served while the refresh is still running");
        assert_eq!(answers, vec![1; 10]);
        assert_eq!(
            cache.get_json::<i64>("f").await.unwrap(),
            Some(1),
            "not refreshed yet"
        );
        gate.add_permits(100);
        eventually(
            "the background refresh",
            Duration::from_secs(5),
            async || cache.get_json::<i64>("f").await.unwrap() == Some(2),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one refresh for ten stale reads"
        );
        assert_eq!(read("f", fresh, stale).await, 2, "fresh again");

        // Past `stale` the value is gone and is computed in line.
        let (fresh, stale) = (Duration::from_millis(50), Duration::from_millis(100));
        assert_eq!(read("g", fresh, stale).await, 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(read("g", fresh, stale).await, 4);
    }

    // -----------------------------------------------------------------------------------------
    // Fences: a computation that started before an invalidation is never cached after it.
    // -----------------------------------------------------------------------------------------

    /// How the writer invalidates the key `job` (after "committing" its change).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum How {
        /// `forget("job")`; the reads are `remember`.
        Forget,
        /// `pull("job")`; the reads are `remember_forever`.
        Pull,
        /// `put("job", 99)`; the reads are `remember`.
        Put,
        /// `invalidate_tag("job:7")`; the reads are `remember_with_tags(["job:7", "client:3"])`.
        JobTag,
        /// `invalidate_tags(["client:3", "other"])`; the reads as for `JobTag`.
        ClientTag,
    }

    /// The value `put` writes in [`How::Put`].
    const PUT: i64 = 99;

    async fn read_job<F, Fut>(cache: &Cache, how: How, f: F) -> i64
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = core_db::Result<i64>>,
    {
        match how {
            How::Forget | How::Put => cache.remember("job", 60, f).await,
            How::Pull => cache.remember_forever("job", f).await,
            How::JobTag | How::ClientTag => {
                cache
                    .remember_with_tags(
                        "job",
                        &["job:7", "client:3"],
                        Some(Duration::from_secs(60)),
                        f,
                    )
                    .await
            }
        }
        .unwrap()
    }

    async fn invalidate_job(cache: &Cache, how: How) {
        match how {
            How::Forget => cache.forget("job").await.unwrap(),
            How::Pull => drop(cache.pull("job").await.unwrap()),
            How::Put => cache
                .put("job", &PUT.to_string(), Some(Duration::from_secs(60)))
                .await
                .unwrap(),
            How::JobTag => drop(cache.invalidate_tag("job:7").await.unwrap()),
            How::ClientTag => drop(cache.invalidate_tags(&["client:3", "other"]).await.unwrap()),
        }
    }

    /// A computation of `value` that says when it has started and then waits to be resumed:
    /// the closure, the "started" receiver and the "resume" sender.
    #[allow(clippy::type_complexity)]
    fn held(
        value: i64,
    ) -> (
        impl FnOnce()
            -> std::pin::Pin<Box<dyn std::future::Future<Output = core_db::Result<i64>> + Send>>
        + Send
        + 'static,
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
        let f = move || -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> {
            Box::pin(async move {
                let _ = started_tx.send(());
                let _ = resume_rx.await;
                Ok(value)
            })
        };
        (f, started_rx, resume_tx)
    }

    /// The stale fill, made deterministic: a read of `cache` misses and starts computing (it read
    /// the old state, 1); the writer invalidates through `other` (the same cache, or another
    /// process's on the same Redis); a read that starts after that, on `other`, must not get 1;
    /// then the first computation ends, and its value is not cached.
    pub async fn a_stale_fill_is_refused(cache: &Cache, other: &Cache, how: How) {
        let (f, started, resume) = held(1);
        let reader = {
            let cache = cache.clone();
            tokio::spawn(async move { read_job(&cache, how, f).await })
        };
        started.await.unwrap();
        invalidate_job(other, how).await;

        // A read that starts after the invalidation returned, while the old computation still
        // runs (it joins that computation in this process, or waits for its lock in another).
        let late = {
            let other = other.clone();
            tokio::spawn(async move { read_job(&other, how, || async { Ok(2) }).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        resume.send(()).unwrap();

        assert_eq!(
            reader.await.unwrap(),
            1,
            "{how:?}: the caller that raced still gets what it computed"
        );
        let expected = if how == How::Put { PUT } else { 2 };
        assert_eq!(
            late.await.unwrap(),
            expected,
            "{how:?}: a read that started after the invalidation got the stale value"
        );
        for (name, c) in [("computing", cache), ("invalidating", other)] {
            assert_eq!(
                c.get_json::<i64>("job").await.unwrap(),
                Some(expected),
                "{how:?}: the {name} cache holds the stale value"
            );
            assert_eq!(
                read_job(c, how, || async { Ok(3) }).await,
                expected,
                "{how:?}: the {name} cache serves the stale value"
            );
        }
        cache.forget("job").await.unwrap();
    }

    /// [`a_stale_fill_is_refused`] without a late reader: after the racing computation ends,
    /// nothing is cached at all (or, for a put, the put's value), and the next read computes.
    pub async fn a_stale_fill_leaves_nothing(cache: &Cache, other: &Cache, how: How) {
        let (f, started, resume) = held(1);
        let reader = {
            let cache = cache.clone();
            tokio::spawn(async move { read_job(&cache, how, f).await })
        };
        started.await.unwrap();
        invalidate_job(other, how).await;
        resume.send(()).unwrap();
        assert_eq!(reader.await.unwrap(), 1);
        let expected = if how == How::Put { Some(PUT) } else { None };
        for c in [cache, other] {
            assert_eq!(c.get_json::<i64>("job").await.unwrap(), expected, "{how:?}");
        }
        let next = read_job(other, how, || async { Ok(4) }).await;
        assert_eq!(
            next,
            expected.unwrap_or(4),
            "{how:?}: the next read computes again"
        );
        assert_eq!(read_job(cache, how, || async { Ok(5) }).await, next);
        cache.forget("job").await.unwrap();
    }

    /// Every way of invalidating, through `cache` itself and through `other`.
    pub async fn stale_fills_are_refused(cache: &Cache, other: &Cache) {
        for how in [
            How::Forget,
            How::Pull,
            How::Put,
            How::JobTag,
            How::ClientTag,
        ] {
            for (c, o) in [(cache, cache), (cache, other)] {
                a_stale_fill_leaves_nothing(c, o, how).await;
                a_stale_fill_is_refused(c, o, how).await;
            }
        }
    }

    /// An invalidation of another tag, or of another key, does not stop the fill.
    pub async fn unrelated_invalidations_do_not_stop_a_fill(cache: &Cache) {
        let (f, started, resume) = held(1);
        let reader = {
            let cache = cache.clone();
            tokio::spawn(async move { read_job(&cache, How::JobTag, f).await })
        };
        started.await.unwrap();
        cache.invalidate_tag("job:8").await.unwrap();
        cache.forget("other-job").await.unwrap();
        resume.send(()).unwrap();
        assert_eq!(reader.await.unwrap(), 1);
        assert_eq!(cache.get_json::<i64>("job").await.unwrap(), Some(1));
        assert_eq!(
            cache.get_keys_by_tag("client:3").await.unwrap(),
            vec!["job"]
        );
    }

    /// `flexible`'s background refresh is fenced too: a forget while it computes keeps the
    /// refreshed (stale) value out.
    pub async fn a_flexible_refresh_that_raced_a_forget_is_dropped(cache: &Cache) {
        let (fresh, stale) = (Duration::from_millis(100), Duration::from_secs(60));
        let first: i64 = cache
            .flexible("fx", fresh, stale, || async { Ok(1) })
            .await
            .unwrap();
        assert_eq!(first, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (f, started, resume) = held(2);
        let served: i64 = cache.flexible("fx", fresh, stale, f).await.unwrap();
        assert_eq!(served, 1, "stale: served at once");
        started.await.unwrap();
        cache.forget("fx").await.unwrap();
        resume.send(()).unwrap();
        // The refresh holds its lock until it has stored (or not).
        eventually("the refresh ends", Duration::from_secs(5), async || {
            let lock = cache.lock("cache:flexible:fx", Duration::from_secs(1));
            lock.try_acquire().await.unwrap() && lock.release().await.unwrap()
        })
        .await;
        assert!(
            !cache.has("fx").await.unwrap(),
            "the refresh that raced the forget was stored"
        );
        let next: i64 = cache
            .flexible("fx", fresh, stale, || async { Ok(3) })
            .await
            .unwrap();
        assert_eq!(next, 3);
    }

    /// The race, randomized: writers "commit" a new version (an atomic counter) and then
    /// invalidate (a tag, the other tag, or the key); readers `remember_with_tags` the counter.
    /// Once a writer's invalidation has returned, every read that starts afterwards returns at
    /// least that writer's version.
    ///
    /// The tiered driver runs it with one writer: with several, one writer's invalidation can
    /// return while another's eviction of the same key from this process's L1 is still on its
    /// way (the L2 value is already gone, so the first has nothing to evict), which is the
    /// tiered driver's propagation lag, not a stale fill.
    pub async fn reads_never_go_back_past_an_invalidation(cache: &Cache) {
        use std::sync::atomic::AtomicU64;

        let writers: u64 = if cache.driver() == core_db::cache::CacheDriver::Tiered {
            1
        } else {
            4
        };
        const WRITES: u64 = 300;
        const READERS: u64 = 8;
        const MIN_READS: u64 = 300;
        let committed = Arc::new(AtomicU64::new(0));
        // The highest version whose writer's invalidation has returned.
        let settled = Arc::new(AtomicU64::new(0));
        let writing = Arc::new(AtomicUsize::new(writers as usize));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (cache, committed, settled, writing) = (
                cache.clone(),
                Arc::clone(&committed),
                Arc::clone(&settled),
                Arc::clone(&writing),
            );
            tasks.push(tokio::spawn(async move {
                for i in 0..WRITES {
                    let version = committed.fetch_add(1, Ordering::SeqCst) + 1;
                    match (w + i) % 3 {
                        0 => drop(cache.invalidate_tag("job:7").await.unwrap()),
                        1 => drop(cache.invalidate_tags(&["client:3"]).await.unwrap()),
                        _ => cache.forget("job").await.unwrap(),
                    }
                    settled.fetch_max(version, Ordering::SeqCst);
                    // Spread the writes over the readers' run.
                    tokio::time::sleep(Duration::from_micros(rand::random_range(0..1500))).await;
                }
                writing.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for _ in 0..READERS {
            let (cache, committed, settled, writing, reads) = (
                cache.clone(),
                Arc::clone(&committed),
                Arc::clone(&settled),
                Arc::clone(&writing),
                Arc::clone(&reads),
            );
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                while done < MIN_READS || writing.load(Ordering::SeqCst) > 0 {
                    done += 1;
                    reads.fetch_add(1, Ordering::Relaxed);
                    // A memory hit never yields: let the writers run.
                    tokio::task::yield_now().await;
                    let floor = settled.load(Ordering::SeqCst);
                    let committed = Arc::clone(&committed);
                    let got: u64 = cache
                        .remember_with_tags(
                            "job",
                            &["job:7", "client:3"],
                            Some(Duration::from_secs(60)),
                            || async move {
                                let seen = committed.load(Ordering::SeqCst);
                                // The row travels back from the database.
                                match rand::random_range(0..4) {
                                    0 => tokio::task::yield_now().await,
                                    1 => {
                                        tokio::time::sleep(Duration::from_micros(
                                            rand::random_range(0..1000),
                                        ))
                                        .await
                                    }
                                    _ => {}
                                }
                                Ok(seen)
                            },
                        )
                        .await
                        .unwrap();
                    assert!(
                        got >= floor,
                        "a read that started after version {floor} was invalidated got {got}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(reads.load(Ordering::Relaxed) >= (READERS * MIN_READS) as usize);
        // Quiet now: the next read returns the last version.
        cache.forget("job").await.unwrap();
        let last: u64 = cache
            .remember_with_tags("job", &["job:7"], None, || async {
                Ok(committed.load(Ordering::SeqCst))
            })
            .await
            .unwrap();
        assert_eq!(last, writers * WRITES);
    }
}

/// Instantiates every case for every driver.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cache = super::Cache::memory("rf-test-memory");
                    super::cases::$case(&cache).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("redis::", stringify!($case))).await else { return };
                    let cache = super::Cache::redis(&r.url, r.prefix.clone()).await.expect("connect");
                    super::cases::$case(&cache).await;
                    super::assert_layout(&r).await;
                }
            )*
        }

        mod tiered {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("tiered::", stringify!($case))).await else { return };
                    let l2 = super::Cache::redis(&r.url, r.prefix.clone()).await.expect("connect");
                    let l1 = super::Cache::memory(r.prefix.clone());
                    let cache = super::Cache::tiered(l1, l2, super::TieredConfig::default())
                        .await
                        .expect("tiered");
                    super::cases::$case(&cache).await;
                    super::assert_layout(&r).await;
                }
            )*
        }
    };
}

/// Instantiates cases that take two caches sharing one store: for memory the same cache twice;
/// for Redis and tiered, two caches (two "processes") on one Redis prefix.
macro_rules! pair_suite {
    ($($case:ident),* $(,)?) => {
        mod pair_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cache = super::Cache::memory("rf-test-memory");
                    super::cases::$case(&cache, &cache).await;
                }
            )*
        }

        mod pair_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("pair_redis::", stringify!($case))).await else { return };
                    let a = super::Cache::redis(&r.url, r.prefix.clone()).await.expect("connect");
                    let b = super::Cache::redis(&r.url, r.prefix.clone()).await.expect("connect");
                    super::cases::$case(&a, &b).await;
                    super::assert_layout(&r).await;
                }
            )*
        }

        mod pair_tiered {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("pair_tiered::", stringify!($case))).await else { return };
                    let mut caches = Vec::new();
                    for _ in 0..2 {
                        let l2 = super::Cache::redis(&r.url, r.prefix.clone()).await.expect("connect");
                        let l1 = super::Cache::memory(r.prefix.clone());
                        caches.push(
                            super::Cache::tiered(l1, l2, super::TieredConfig::default())
                                .await
                                .expect("tiered"),
                        );
                    }
                    super::cases::$case(&caches[0], &caches[1]).await;
                    super::assert_layout(&r).await;
                }
            )*
        }
    };
}

/// Every key a Redis-backed case left is inside the documented namespaces.
async fn assert_layout(r: &test_support::TestRedis) {
    for key in r.keys().await {
        let rest = &key[r.prefix.len()..];
        assert!(
            rest.starts_with(":cache:")
                || rest.starts_with(":cache-tag:")
                || rest.starts_with(":cache-gen:")
                || rest.starts_with(":lock:"),
            "key outside the cache layout: {key}"
        );
    }
}

/// The memory driver is bounded: past its capacity it evicts instead of growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded() {
    assert_eq!(MemoryCacheOptions::DEFAULT_MAX_ENTRIES, 100_000);
    let cache = Cache::memory_with(
        "rf-test-bounded",
        MemoryCacheOptions::new().max_entries(100),
    );
    let keys: Vec<String> = (0..5_000).map(|i| format!("k{i}")).collect();
    for key in &keys {
        cache.set(key, "v").await.unwrap();
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    loop {
        // Eviction runs in the memory cache's housekeeping, which reads and writes drive.
        let held = cache
            .many(&refs)
            .await
            .unwrap()
            .iter()
            .filter(|v| v.is_some())
            .count();
        if held <= 100 {
            assert!(held > 0, "it still holds the most useful entries");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still {held} entries for a capacity of 100"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `Expiry` tells the three states of one key apart: missing, persistent, expiring, missing
/// again (the suite's `ttl_and_expiry` checks the same on every driver).
#[tokio::test]
async fn expiry_tells_the_states_apart() {
    use std::time::Duration;
    let cache = Cache::memory("rf-test-expiry");
    assert_eq!(cache.expiry("k").await.unwrap(), Expiry::Missing);
    cache.set("k", "v").await.unwrap();
    assert_eq!(cache.expiry("k").await.unwrap(), Expiry::Persistent);
    cache
        .put("k", "v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(matches!(
        cache.expiry("k").await.unwrap(),
        Expiry::Expires(d) if d > Duration::from_secs(50) && d <= Duration::from_secs(60)
    ));
    cache.del("k").await.unwrap();
    assert_eq!(cache.expiry("k").await.unwrap(), Expiry::Missing);
}

suite!(
    get_set_del,
    values_round_trip_exactly,
    empty_keys_are_rejected,
    ttl_and_expiry,
    millisecond_ttls,
    sub_second_ttl_expires,
    zero_ttl_means_already_expired,
    json_values,
    counters,
    concurrent_increments_are_atomic,
    expiring_counters,
    bulk_operations,
    add_is_atomic,
    pull_is_atomic,
    flush_prefix_is_literal,
    flush_prefix_many_keys,
    tags,
    concurrent_retagging_is_consistent,
    tags_expire_with_their_keys,
    locks,
    expired_locks_are_not_released_by_their_first_owner,
    acquire_waits,
    remember_computes_on_miss_only,
    remember_errors_are_returned_and_not_cached,
    remember_is_single_flight,
    remember_hands_over_after_a_failure,
    corrupted_json_is_a_miss,
    flexible_serves_stale_while_refreshing,
    unrelated_invalidations_do_not_stop_a_fill,
    a_flexible_refresh_that_raced_a_forget_is_dropped,
    reads_never_go_back_past_an_invalidation,
);

pair_suite!(stale_fills_are_refused);
