//! The task-local current locale.

use std::time::Duration;

use core_i18n::{add_catalog, current_locale, scope, sync_scope, t};

fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        add_catalog("en", r#"{"sc": {"hello": "Hello"}}"#).unwrap();
        add_catalog("zh", r#"{"sc": {"hello": "你好"}}"#).unwrap();
        add_catalog("fr", r#"{"sc": {"hello": "Bonjour"}}"#).unwrap();
        add_catalog("pt-BR", r#"{"sc": {"hello": "Olá"}}"#).unwrap();
    });
}

#[test]
fn outside_any_scope_is_the_default_locale() {
    assert_eq!(current_locale(), "en");
    assert_eq!(current_locale(), core_i18n::default_locale());
}

#[test]
fn sync_scope_sets_and_restores() {
    setup();
    let inner = sync_scope("zh", || {
        assert_eq!(t("sc.hello"), "你好");
        let nested = sync_scope("fr", || (current_locale(), t("sc.hello")));
        assert_eq!(current_locale(), "zh");
        nested
    });
    assert_eq!(inner, ("fr".to_owned(), "Bonjour".to_owned()));
    assert_eq!(current_locale(), "en");
}

#[test]
fn scope_normalizes_and_rejects_garbage() {
    assert_eq!(sync_scope("ZH_cn", current_locale), "zh-CN");
    assert_eq!(sync_scope(String::from("pt_br"), current_locale), "pt-BR");
    assert_eq!(sync_scope("definitely not a locale", current_locale), "en");
    assert_eq!(sync_scope("", current_locale), "en");
}

#[tokio::test]
async fn async_scope_sets_and_restores() {
    setup();
    let (outer, inner, after_inner) = scope("zh", async {
        let outer = t("sc.hello");
        let inner = scope("fr", async {
            tokio::task::yield_now().await;
            t("sc.hello")
        })
        .await;
        (outer, inner, current_locale())
    })
    .await;
    assert_eq!(outer, "你好");
    assert_eq!(inner, "Bonjour");
    assert_eq!(after_inner, "zh");
    assert_eq!(current_locale(), "en");
}

#[tokio::test]
async fn sync_scope_inside_async_scope() {
    let seen = scope("zh", async { sync_scope("fr", current_locale) }).await;
    assert_eq!(seen, "fr");
}

#[tokio::test]
async fn spawned_tasks_do_not_inherit_the_locale() {
    let (spawned, rescoped) = scope("zh", async {
        let spawned = tokio::spawn(async { current_locale() }).await.unwrap();
        let locale = current_locale();
        let rescoped = tokio::spawn(scope(locale, async { current_locale() }))
            .await
            .unwrap();
        (spawned, rescoped)
    })
    .await;
    assert_eq!(spawned, "en");
    assert_eq!(rescoped, "zh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tasks_are_isolated() {
    setup();
    let cases = [
        ("en", "en", "Hello"),
        ("zh", "zh", "你好"),
        ("zh_CN", "zh-CN", "你好"),
        ("fr-CA", "fr-CA", "Bonjour"),
        ("pt-br", "pt-BR", "Olá"),
        ("de-AT", "de-AT", "Hello"),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let (requested, canonical, hello) = cases[i % cases.len()];
        tasks.spawn(scope(requested, async move {
            for round in 0..5 {
                if (i + round) % 2 == 0 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_micros((i % 7) as u64 * 50)).await;
                }
                assert_eq!(current_locale(), canonical, "task {i} round {round}");
                assert_eq!(t("sc.hello"), hello, "task {i} round {round}");
            }
            i
        }));
    }
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        result.expect("task panicked");
        done += 1;
    }
    assert_eq!(done, 600);
    assert_eq!(current_locale(), "en");
}

#[test]
fn threads_are_isolated_too() {
    setup();
    std::thread::scope(|s| {
        for (locale, hello) in [("zh", "你好"), ("fr", "Bonjour"), ("en", "Hello")] {
            s.spawn(move || {
                for _ in 0..1_000 {
                    sync_scope(locale, || assert_eq!(t("sc.hello"), hello));
                }
            });
        }
    });
}
