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

/// The curl commands the pages show, as the requests curl sends.
#[path = "support/curl.rs"]
mod curl;

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

    /// Asserts that `actual` has the shape of the JSON example `name`: the same keys at every
    /// level, each value of the same JSON type (for examples whose values, such as ids and
    /// times, differ on every request). Array elements are compared with the example's first.
    pub fn assert_shape(actual: &Value, name: &str) {
        fn check(actual: &Value, expected: &Value, at: &str) {
            match (actual, expected) {
                (Value::Object(a), Value::Object(e)) => {
                    let keys =
                        |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
                    let (mut ka, mut ke) = (keys(a), keys(e));
                    ka.sort();
                    ke.sort();
                    assert_eq!(ka, ke, "the keys of {at}");
                    for (key, value) in a {
                        check(value, &e[key], &format!("{at}.{key}"));
                    }
                }
                (Value::Array(a), Value::Array(e)) => {
                    if let Some(first) = e.first() {
                        for (i, value) in a.iter().enumerate() {
                            check(value, first, &format!("{at}[{i}]"));
                        }
                    }
                }
                (Value::Number(_), Value::Number(_))
                | (Value::String(_), Value::String(_))
                | (Value::Bool(_), Value::Bool(_))
                | (Value::Null, Value::Null) => {}
                _ => panic!("{at}: {actual} is not of the type of the example's {expected}"),
            }
        }
        check(
            actual,
            &example(name),
            &format!("snippets/json/{name}.json"),
        );
    }

    /// Sends `request` to `router`: the status, the headers and the body as JSON.
    pub async fn send(
        router: axum::Router,
        request: axum::http::Request<axum::body::Body>,
    ) -> (axum::http::StatusCode, axum::http::HeaderMap, Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = router.oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                parts.status,
                String::from_utf8_lossy(&bytes)
            )
        });
        (parts.status, parts.headers, json)
    }
}

/// A region marker line, as the site's `region()` helper reads it: `// region: NAME` (Rust,
/// TypeScript), `# region: NAME` (shell, TOML, Python) or `-- region: NAME` (SQL), and the same
/// with `endregion`. The kind (`region` or `endregion`) and the name.
fn marker(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let rest = ["//", "#", "--"]
        .iter()
        .find_map(|comment| line.strip_prefix(comment))?
        .trim_start();
    let (kind, name) = rest.split_once(':')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (matches!(kind, "region" | "endregion") && valid).then_some((kind, name))
}

/// Every region of the file at `path` has one matching end (regions may nest, but not overlap)
/// and names are unique: what the site's `region()` helper relies on. The number of regions.
fn check_regions(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut open: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), number + 1);
        match marker(line) {
            Some(("region", name)) => {
                assert!(
                    seen.insert(name.to_owned()),
                    "{}: region {name} appears twice",
                    at()
                );
                open.push(name.to_owned());
            }
            Some((_, name)) => {
                assert_eq!(
                    open.pop().as_deref(),
                    Some(name),
                    "{}: endregion {name}",
                    at()
                );
            }
            None => {
                let looks_like_one = ["//", "#", "--"]
                    .iter()
                    .filter_map(|comment| line.trim().strip_prefix(comment))
                    .any(|rest| {
                        let rest = rest.trim_start();
                        rest.starts_with("region:") || rest.starts_with("endregion:")
                    });
                assert!(
                    !looks_like_one,
                    "{}: a region marker the site cannot read: {line}",
                    at()
                );
            }
        }
    }
    assert!(
        open.is_empty(),
        "{}: regions {open:?} never end",
        path.display()
    );
    seen.len()
}

/// The files the site's pages import with `?raw` (`frontend/src/pages/**/*.tsx`), resolved from
/// the importing page: the snippets, and the app's source, tests and scripts the cookbook shows.
fn raw_imports() -> Vec<std::path::PathBuf> {
    fn tsx_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("pages dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                tsx_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "tsx") {
                out.push(path);
            }
        }
    }
    let pages = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend/src/pages");
    let mut pages_files = Vec::new();
    tsx_files(&pages, &mut pages_files);
    let mut out = Vec::new();
    for page in pages_files {
        let text = std::fs::read_to_string(&page).expect("read page");
        for line in text.lines() {
            let line = line.trim();
            if !line.starts_with("import ") {
                continue;
            }
            for quote in ['\'', '"'] {
                let Some((_, rest)) = line.split_once(quote) else {
                    continue;
                };
                let Some((spec, _)) = rest.split_once(quote) else {
                    continue;
                };
                if let Some(file) = spec.strip_suffix("?raw") {
                    let path = page.parent().expect("dir").join(file);
                    let path = path
                        .canonicalize()
                        .unwrap_or_else(|e| panic!("{}: {file}: {e}", page.display()));
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every snippet file, and every file a page imports with `?raw`, has well-formed regions.
#[test]
fn snippet_regions_are_well_formed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/snippets");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("snippets dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        check_regions(&path);
        checked += 1;
    }
    assert!(checked >= 8, "found the snippet files");

    let imports = raw_imports();
    assert!(
        imports.len() >= 20,
        "found the pages' ?raw imports: {imports:?}"
    );
    for path in imports {
        check_regions(&path);
    }
}

#[test]
fn region_markers_are_read_as_the_site_reads_them() {
    assert_eq!(
        marker("    // region: add-pull"),
        Some(("region", "add-pull"))
    );
    assert_eq!(marker("# endregion: try-it"), Some(("endregion", "try-it")));
    assert_eq!(
        marker("-- region: articles_table"),
        Some(("region", "articles_table"))
    );
    assert_eq!(marker("// a comment: not a marker"), None);
    assert_eq!(marker("# region: two words"), None);
}

/// A missing end, an overlap, a repeated name and a marker the site cannot read all fail.
#[test]
fn malformed_regions_are_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        "# region: a\necho a\n",
        "-- region: a\n-- region: b\n-- endregion: a\n-- endregion: b\n",
        "// region: a\n// endregion: a\n// region: a\n// endregion: a\n",
        "# region: two words\n# endregion: two words\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.txt"));
        std::fs::write(&path, text).expect("write");
        let checked = std::panic::catch_unwind(|| check_regions(&path));
        assert!(checked.is_err(), "case {i} passed: {text}");
    }
    let path = dir.path().join("good.sql");
    std::fs::write(
        &path,
        "-- region: a\nSELECT 1;\n-- region: b\n-- endregion: b\n-- endregion: a\n",
    )
    .expect("write");
    assert_eq!(check_regions(&path), 2);
}
