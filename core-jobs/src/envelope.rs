//! The envelope a job travels in: its id, name, queue, JSON payload, attempts so far, group and
//! dispatch time. The queue stores the envelope's exact text; acknowledging a job names that
//! text, so an envelope is never re-encoded while it is leased.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A queued job. The Redis scripts never decode it: a grouped job's id and group travel beside
/// it (see `queue/redis.rs`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The job id.
    pub(crate) id: String,
    /// `Job::NAME`.
    pub(crate) job: String,
    /// The queue it was dispatched to.
    pub(crate) queue: String,
    /// The job's own JSON.
    pub(crate) data: Box<RawValue>,
    /// Runs already made (0 when first dispatched).
    #[serde(default)]
    pub(crate) attempt: u32,
    /// The FIFO group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) group: Option<String>,
    /// Dispatch time, Unix milliseconds.
    #[serde(default)]
    pub(crate) at: i64,
    /// A cache lock (name, owner token) to release when the job finishes
    /// (the scheduler's `without_overlapping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unlock: Option<(String, String)>,
}

impl Envelope {
    pub(crate) fn encode(&self) -> String {
        // Serializing strings, integers and an already-valid RawValue cannot fail.
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    pub(crate) fn decode(raw: &str) -> serde_json::Result<Self> {
        serde_json::from_str(raw)
    }
}

/// Text as a JSON payload: itself when it is valid JSON, else a JSON string holding it (so
/// that a failed job whose payload was never JSON can still be re-dispatched and fail again
/// with a clear reason instead of being lost).
pub(crate) fn raw_payload(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::Value::String(text.to_owned()).to_string())
            .expect("a JSON string is valid JSON")
    })
}

/// How deeply `json` (valid JSON text) nests arrays and objects: 0 for a scalar, 1 for `[]` or
/// `{}`, 2 for `[[]]`… One pass over the bytes, without decoding.
pub(crate) fn json_depth(json: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn measures_nesting_without_counting_brackets_in_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth("{}"), 1);
        assert_eq!(json_depth(r#"{"a":[1,{"b":[]}],"c":[]}"#), 4);
        assert_eq!(json_depth(r#"["[[[{", "\\\"[[["]"#), 1);
        assert_eq!(
            json_depth(&format!("{}{}", "[".repeat(500), "]".repeat(500))),
            500
        );
    }
}
