//! A 200 MiB upload on each driver never holds 200 MiB in memory.
//!
//! The body is generated on the fly in 64 KiB chunks and read back as a stream, so the only
//! buffers are the driver's. The test measures the process's peak resident memory (`VmHWM`,
//! reset through `/proc/self/clear_refs` before each driver) and requires the growth to stay far
//! below the object size. It is the only test in this binary, so no other test's memory counts.

mod storage_support;

use std::io::Write;
use std::time::Instant;

use storage_support::{Fixture, check_pattern, pattern_stream};

const SIZE: u64 = 200 * 1024 * 1024;
/// Peak memory growth allowed while 200 MiB stream through: a few parts' worth.
const MAX_GROWTH_KIB: u64 = 48 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets the peak (`VmHWM`) to the current resident size; returns that size in KiB.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("reset VmHWM through /proc/self/clear_refs");
    status_kib("VmRSS:")
}

async fn upload_and_read_back(fx: &Fixture) {
    let baseline = reset_peak();
    let started = Instant::now();
    let written = fx
        .storage
        .put_stream(
            "large/200mib.bin",
            pattern_stream(SIZE, 64 * 1024),
            "application/octet-stream",
        )
        .await
        .expect("200 MiB upload");
    let upload_time = started.elapsed();
    assert_eq!(written, SIZE);
    let upload_peak = status_kib("VmHWM:").saturating_sub(baseline);

    let started = Instant::now();
    let back = fx
        .storage
        .get_stream("large/200mib.bin")
        .await
        .expect("get")
        .expect("the object exists");
    assert_eq!(check_pattern(back).await, SIZE, "every byte comes back");
    let read_time = started.elapsed();
    let total_peak = status_kib("VmHWM:").saturating_sub(baseline);
    assert_eq!(fx.leftovers().await, vec!["large/200mib.bin".to_owned()]);

    // Written straight to stderr, past the harness's capture, for the record.
    let line = format!(
        "storage_large {}: 200 MiB upload in {:.1?}, read back in {:.1?}; peak memory growth {} KiB \
         during the upload, {} KiB overall (limit {} KiB)\n",
        fx.driver, upload_time, read_time, upload_peak, total_peak, MAX_GROWTH_KIB
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    assert!(
        upload_peak < MAX_GROWTH_KIB,
        "{}: the upload grew peak memory by {upload_peak} KiB",
        fx.driver
    );
    assert!(
        total_peak < MAX_GROWTH_KIB,
        "{}: upload and read back grew peak memory by {total_peak} KiB",
        fx.driver
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_upload_stays_within_bounded_memory() {
    let local = storage_support::local("a_200_mib_upload_stays_within_bounded_memory")
        .await
        .expect("local fixture");
    upload_and_read_back(&local).await;
    drop(local);
    let Some(s3) = storage_support::s3_with_part_size(
        "a_200_mib_upload_stays_within_bounded_memory",
        core_db::storage::s3::DEFAULT_PART_SIZE,
    )
    .await
    else {
        return;
    };
    upload_and_read_back(&s3).await;
}
