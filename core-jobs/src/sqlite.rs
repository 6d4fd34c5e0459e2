//! How `failed_jobs` and `job_outbox` keep times on SQLite, which has no time type: as RFC 3339
//! text in UTC with milliseconds, which sorts and compares like the times themselves.

use chrono::{DateTime, SecondsFormat, Utc};

/// `t` as the text SQLite stores.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time read back from SQLite; `None` when the text is not RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_round_trips_to_the_millisecond() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T19:15:59.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2026-11-23T19:15:59.123Z");
        assert_eq!(parse_time(&format_time(t)), Some(t));
        assert_eq!(parse_time("yesterday"), None);
    }
}
