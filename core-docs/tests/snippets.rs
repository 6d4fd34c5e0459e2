//! Every Rust snippet shown on the docs site, compiled against the real crates and run: on the
//! memory cache, in-memory SQLite and `oneshot` requests where that shows the behaviour, and
//! against the real services otherwise (the cache drivers, the tiered cache, the app's setup and
//! the jobs worker on the Redis at `REDIS_URL`, each under a fresh `test_support::redis` prefix;
//! a missing Redis fails under `RUSTFORGE_REQUIRE_SERVICES=1` and is one SKIPPED line otherwise).
//!
//! The pages import these files (`core-docs/snippets/*.rs`) with Vite's `?raw` and show the
//! regions between `// region: NAME` and `// endregion: NAME`; a snippet that stops compiling
//! fails this test, and so the workspace's test suite.

#![allow(dead_code)]

#[path = "../snippets/caching.rs"]
mod caching;
#[path = "../snippets/configuration.rs"]
mod configuration;
#[path = "../snippets/database.rs"]
mod database;
#[path = "../snippets/datatable.rs"]
mod datatable;
#[path = "../snippets/getting_started.rs"]
mod getting_started;
#[path = "../snippets/i18n.rs"]
mod i18n;
#[path = "../snippets/jobs.rs"]
mod jobs;
#[path = "../snippets/middleware.rs"]
mod middleware;
#[path = "../snippets/responses.rs"]
mod responses;
#[path = "../snippets/storage.rs"]
mod storage;
#[path = "../snippets/validation.rs"]
mod validation;

/// Helpers for the snippets' tests.
mod support {
    use serde_json::Value;

    /// The JSON example `name` (`snippets/json/NAME.json`), as shown on the site.
    pub fn example(name: &str) -> Value {
        let path = format!("{}/snippets/json/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Asserts that `actual` is the JSON example `name`, apart from the request id (which is
    /// new on every request).
    pub fn assert_example(mut actual: Value, name: &str) {
        let expected = example(name);
        if let (Some(id), Some(example_id)) =
            (actual.get_mut("request_id"), expected.get("request_id"))
        {
            assert!(id.is_string(), "request_id is a string: {id}");
            *id = example_id.clone();
        }
        assert_eq!(
            actual, expected,
            "the page's example snippets/json/{name}.json"
        );
    }
}

/// Every `// region: NAME` has one matching `// endregion: NAME` (regions may nest, but not
/// overlap), and names are unique per file: what the site's `region()` helper relies on.
#[test]
fn snippet_regions_are_well_formed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/snippets");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("snippets dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut open: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = || format!("{}:{}", path.display(), number + 1);
            if let Some(name) = line.strip_prefix("// region:") {
                let name = name.trim().to_owned();
                assert!(
                    seen.insert(name.clone()),
                    "{}: region {name} appears twice",
                    at()
                );
                open.push(name);
            } else if let Some(name) = line.strip_prefix("// endregion:") {
                let name = name.trim();
                assert_eq!(
                    open.pop().as_deref(),
                    Some(name),
                    "{}: endregion {name}",
                    at()
                );
            }
        }
        assert!(
            open.is_empty(),
            "{}: regions {open:?} never end",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 8, "found the snippet files");
}
