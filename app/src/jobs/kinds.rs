//! The work-kind catalog: what each `work_kind` does, deterministically.
//!
//! Durations are multiplied by `WORK_TIME_SCALE`, so tests and benchmarks run the same catalog
//! in milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an attempt of a kind ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every attempt succeeds.
    Never,
    /// Every attempt fails.
    Always,
    /// The first attempt fails; later ones succeed.
    FirstAttempt,
    /// The attempt runs past `MAX_RUNTIME_MS` and is stopped.
    Timeout,
}

/// What the work does besides waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Sleeps (cooperatively cancellable).
    Wait,
    /// Burns CPU on a blocking thread.
    Cpu,
    /// Holds a large buffer in memory while it runs.
    Memory,
    /// Writes and reads files through Storage.
    Io,
}

/// Where the output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `bytes` of output: kept in the job row up to [`INLINE_LIMIT`], else one artifact.
    Bytes(usize),
    /// `count` artifacts of `each` bytes.
    Many {
        /// How many artifacts.
        count: usize,
        /// Bytes each.
        each: usize,
    },
}

/// Outputs larger than this go to Storage as artifacts.
pub const INLINE_LIMIT: usize = 16 * 1024;

/// One entry of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Unscaled duration; `None` for RUNS_OVER_TIMEOUT, whose duration is the limit + 1 s.
    pub duration_ms: Option<u64>,
    /// How attempts end.
    pub failure: Failure,
    /// What the work does.
    pub effort: Effort,
    /// The output.
    pub output: Output,
    /// Whether a failure is marked retryable.
    pub retryable: bool,
}

macro_rules! kinds {
    ($($name:ident = $text:literal: $ms:expr, $failure:ident, $effort:ident, $output:expr, $retryable:expr;)*) => {
        /// A `work_kind`: the synthetic work a job runs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum WorkKind {
            $(
                #[doc = concat!("`", $text, "`")]
                #[serde(rename = $text)]
                $name,
            )*
        }

        impl WorkKind {
            /// Every kind, in catalog order.
            pub const ALL: &[WorkKind] = &[$(WorkKind::$name),*];

            /// The kind's name: `SUCCESS_FAST`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(WorkKind::$name => $text,)*
                }
            }

            /// What the kind does.
            pub fn spec(self) -> Spec {
                match self {
                    $(WorkKind::$name => Spec {
                        duration_ms: $ms,
                        failure: Failure::$failure,
                        effort: Effort::$effort,
                        output: $output,
                        retryable: $retryable,
                    },)*
                }
            }
        }
    };
}

const KB: usize = 1024;

kinds! {
    SuccessFast = "SUCCESS_FAST": Some(1_000), Never, Wait, Output::Bytes(4 * KB), false;
    SuccessNormal = "SUCCESS_NORMAL": Some(10_000), Never, Wait, Output::Bytes(16 * KB), false;
    SuccessSlow = "SUCCESS_SLOW": Some(90_000), Never, Wait, Output::Bytes(32 * KB), false;
    FailImmediate = "FAIL_IMMEDIATE": Some(500), Always, Wait, Output::Bytes(KB), false;
    FailAfterProgress = "FAIL_AFTER_PROGRESS": Some(20_000), Always, Wait, Output::Bytes(8 * KB), false;
    FailAfterRetryable = "FAIL_AFTER_RETRYABLE": Some(5_000), Always, Wait, Output::Bytes(8 * KB), true;
    RunsLong = "RUNS_LONG": Some(110_000), Never, Wait, Output::Bytes(32 * KB), false;
    RunsOverTimeout = "RUNS_OVER_TIMEOUT": None, Timeout, Wait, Output::Bytes(8 * KB), true;
    CpuBurst = "CPU_BURST": Some(8_000), Never, Cpu, Output::Bytes(4 * KB), false;
    MemorySpike = "MEMORY_SPIKE": Some(12_000), Never, Memory, Output::Bytes(64 * KB), false;
    IoHeavy = "IO_HEAVY": Some(15_000), Never, Io, Output::Bytes(32 * KB), false;
    ManySmallOutputs = "MANY_SMALL_OUTPUTS": Some(9_000), Never, Wait, Output::Many { count: 16, each: KB }, false;
    LargeOutput = "LARGE_OUTPUT": Some(9_000), Never, Wait, Output::Bytes(256 * KB), false;
    CancelBeforeStart = "CANCEL_BEFORE_START": Some(5_000), Never, Wait, Output::Bytes(4 * KB), false;
    CancelDuringRun = "CANCEL_DURING_RUN": Some(10_000), Never, Wait, Output::Bytes(4 * KB), false;
    RetryOnFail = "RETRY_ON_FAIL": Some(3_000), FirstAttempt, Wait, Output::Bytes(4 * KB), true;
    RetryLimitReached = "RETRY_LIMIT_REACHED": Some(3_000), Always, Wait, Output::Bytes(4 * KB), true;
    WebhookSuccess = "WEBHOOK_SUCCESS": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    WebhookTimeout = "WEBHOOK_TIMEOUT": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    Webhook5xx = "WEBHOOK_5XX": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    WebhookRetriesExhausted = "WEBHOOK_RETRIES_EXHAUSTED": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    WebhookSlowReceiver = "WEBHOOK_SLOW_RECEIVER": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    ScheduledOnTime = "SCHEDULED_ON_TIME": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    ScheduledLateRecovery = "SCHEDULED_LATE_RECOVERY": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    ScheduledFarFuture = "SCHEDULED_FAR_FUTURE": Some(2_000), Never, Wait, Output::Bytes(4 * KB), false;
    PayloadSmall = "PAYLOAD_SMALL": Some(2_000), Never, Wait, Output::Bytes(KB), false;
    PayloadMedium = "PAYLOAD_MEDIUM": Some(2_000), Never, Wait, Output::Bytes(16 * KB), false;
    PayloadLarge = "PAYLOAD_LARGE": Some(2_000), Never, Wait, Output::Bytes(256 * KB), false;
    PayloadInvalid = "PAYLOAD_INVALID": None, Never, Wait, Output::Bytes(0), false;
}

impl WorkKind {
    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// Whether a job of this kind may be submitted: every kind but PAYLOAD_INVALID.
    pub fn is_submittable(self) -> bool {
        self != WorkKind::PayloadInvalid
    }

    /// How long an attempt runs, scaled; RUNS_OVER_TIMEOUT runs 1 s (scaled) past `limit`.
    pub fn duration(self, scale: f64, max_runtime: Duration) -> Duration {
        let ms = self.spec().duration_ms.unwrap_or_else(|| {
            u64::try_from(max_runtime.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_add(1_000)
        });
        Duration::from_millis(ms).mul_f64(scale)
    }
}

/// `len` bytes of deterministic printable output for `job_id`: the same job always produces
/// the same bytes.
pub fn output_bytes(job_id: &str, name: &str, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job_id.bytes().chain(name.bytes()) {
        state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..len)
        .map(|i| {
            if i % 64 == 63 {
                return b'\n';
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_by_name() {
        assert_eq!(WorkKind::ALL.len(), 29);
        for kind in WorkKind::ALL {
            assert_eq!(WorkKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(WorkKind::parse("success_fast"), None);
        assert!(!WorkKind::PayloadInvalid.is_submittable());
    }

    #[test]
    fn durations_scale_and_the_overrun_passes_the_limit() {
        let limit = Duration::from_secs(120);
        assert_eq!(
            WorkKind::SuccessFast.duration(0.001, limit),
            Duration::from_millis(1)
        );
        assert_eq!(WorkKind::SuccessFast.duration(0.0, limit), Duration::ZERO);
        assert_eq!(
            WorkKind::RunsOverTimeout.duration(1.0, limit),
            Duration::from_millis(121_000)
        );
    }

    #[test]
    fn output_is_deterministic_per_job() {
        let a = output_bytes("job-1", "output", 4096);
        assert_eq!(a.len(), 4096);
        assert_eq!(a, output_bytes("job-1", "output", 4096));
        assert_ne!(a, output_bytes("job-2", "output", 4096));
        assert!(a.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'\n'));
    }
}
