//! Settings errors never echo secrets: URL passwords are redacted whatever characters they hold,
//! and the value of a secret setting is never printed. (`QUEUE_URL`, which core-jobs owns, is
//! checked the same way in the app's `tests/settings.rs`, where the queue's section is composed.)

use std::collections::HashMap;

use core_web::config::{Settings, redact_url};

fn settings_error(pairs: &[(&str, &str)]) -> String {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
        .expect_err("the settings are invalid")
        .to_string()
}

use test_support::URL_PASSWORDS as PASSWORDS;

#[test]
fn invalid_urls_name_the_variable_without_the_password() {
    for password in PASSWORDS {
        for (variable, url) in [
            (
                "DATABASE_URL",
                format!("mysql://app:{password}@db.internal:3306/app"),
            ),
            (
                "REDIS_URL",
                format!("http://default:{password}@cache:6379/0"),
            ),
            ("CACHE_URL", format!("memcached://:{password}@cache:11211")),
        ] {
            let err = settings_error(&[(variable, &url)]);
            assert!(err.contains(variable), "{err} names {variable}");
            assert!(
                !err.contains(password),
                "{variable} with password {password:?} leaks it: {err}"
            );
            assert!(err.contains(":***@"), "{err} shows where the password was");
        }
    }
}

#[test]
fn redaction_hides_the_whole_password() {
    for password in PASSWORDS {
        for (url, redacted) in [
            (
                format!("postgres://app:{password}@db:5432/app?sslmode=require"),
                "postgres://app:***@db:5432/app?sslmode=require",
            ),
            (
                format!("rediss://:{password}@cache.example.com:6380/2"),
                "rediss://:***@cache.example.com:6380/2",
            ),
            (
                format!("postgresql://u:{password}@h"),
                "postgresql://u:***@h",
            ),
        ] {
            assert_eq!(redact_url(&url), redacted, "{url}");
        }
    }
}

#[test]
fn urls_without_a_password_are_unchanged() {
    for url in [
        "postgres://app@db/app",
        "postgres://db:5432/app",
        "redis://127.0.0.1:6379",
        "sqlite://data/app.sqlite3",
        "sqlite:data.db",
        "memory://",
        "not a url",
        "",
    ] {
        assert_eq!(redact_url(url), url);
    }
}
