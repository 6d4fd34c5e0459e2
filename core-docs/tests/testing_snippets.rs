//! The examples of the docs site's Testing page (`snippets/testing.rs`), compiled and run.
//!
//! They are tests themselves: per-test Redis prefixes, PostgreSQL databases, SQLite files and S3
//! buckets from `test-support`, and its fault-injection proxy between the code under test and
//! Redis or PostgreSQL. Where a service is unreachable each test prints one `SKIPPED` line, or
//! fails under `RUSTFORGE_REQUIRE_SERVICES=1`.

#[path = "../snippets/testing.rs"]
mod testing;
