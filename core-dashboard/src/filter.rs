//! The failed-jobs filter: one parsed value behind both the listing (as DataTable filters) and
//! the bulk actions (as a [`FailedFilter`]), so that both mean the same rows.
//!
//! | name | meaning | listing's DataTable filter |
//! |---|---|---|
//! | `job_name` | the job's name, exactly | `filter[job_name]` (`Eq`) |
//! | `queue` | the queue, exactly | `filter[queue]` (`Eq`) |
//! | `error` | the error contains it, ignoring case (`%`, `_` match themselves) | `filter[error][like]` |
//! | `failed_from` | failed at or after (RFC 3339, or a date: its midnight UTC) | `filter[failed_at][gte]` |
//! | `failed_before` | failed before (likewise) | `filter[failed_at][lt]` |
//!
//! Times are cut to whole milliseconds (what SQLite keeps) before either side sees them. An
//! empty value means "not given", as HTML forms send empty fields.

use chrono::{DateTime, Datelike as _, NaiveDate, SecondsFormat, Utc};
use core_jobs::FailedFilter;
use core_web::{AppError, FieldErrors};
use serde::Deserialize;

/// The names of the filter, as query parameters and JSON keys.
pub(crate) const NAMES: [&str; 5] = ["job_name", "queue", "error", "failed_from", "failed_before"];

/// Longest filter value, in characters (the DataTable's own limit).
const MAX_CHARS: usize = 1000;

/// A checked filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    job_name: Option<String>,
    queue: Option<String>,
    error: Option<String>,
    failed_from: Option<DateTime<Utc>>,
    failed_before: Option<DateTime<Utc>>,
}

/// The filter as a JSON object (`filter` in the bulk bodies). Unknown keys are refused: a typo
/// must not widen a bulk action to every row.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterBody {
    job_name: Option<String>,
    queue: Option<String>,
    error: Option<String>,
    failed_from: Option<String>,
    failed_before: Option<String>,
}

impl FilterBody {
    /// Checks the body's values; field errors are named `{prefix}{name}`.
    pub(crate) fn check(self, prefix: &str) -> Result<Filter, FieldErrors> {
        check(
            [
                self.job_name,
                self.queue,
                self.error,
                self.failed_from,
                self.failed_before,
            ],
            prefix,
        )
    }
}

/// Checks raw values given in [`NAMES`] order.
pub(crate) fn check(values: [Option<String>; 5], prefix: &str) -> Result<Filter, FieldErrors> {
    let mut errors = FieldErrors::new();
    let [job_name, queue, error, from, before] = values.map(|v| v.filter(|v| !v.is_empty()));
    let mut text = |name: &str, value: Option<String>| {
        let value = value?;
        if value.chars().count() > MAX_CHARS {
            errors
                .entry(format!("{prefix}{name}"))
                .or_default()
                .push(format!("must be at most {MAX_CHARS} characters long"));
            return None;
        }
        if value.contains('\0') {
            errors
                .entry(format!("{prefix}{name}"))
                .or_default()
                .push("must not contain NUL characters".to_owned());
            return None;
        }
        Some(value)
    };
    let job_name = text("job_name", job_name);
    let queue = text("queue", queue);
    let error = text("error", error);
    let mut time = |name: &str, value: Option<String>| {
        let value = value?;
        match parse_time(value.trim()) {
            Some(t) => Some(t),
            None => {
                errors.entry(format!("{prefix}{name}")).or_default().push(
                    "must be an RFC 3339 time (2026-12-05T14:30:00Z) or a date (2026-12-05) \
                     between the years 1 and 9999"
                        .to_owned(),
                );
                None
            }
        }
    };
    let failed_from = time("failed_from", from);
    let failed_before = time("failed_before", before);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Filter {
        job_name,
        queue,
        error,
        failed_from,
        failed_before,
    })
}

/// RFC 3339, or a date meaning its midnight UTC; cut to whole milliseconds. Years outside
/// 1–9999 are refused (both databases, and RFC 3339, stay within them).
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let t = match DateTime::parse_from_rfc3339(value) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
    };
    if !(1..=9999).contains(&t.year()) {
        return None;
    }
    DateTime::from_timestamp_millis(t.timestamp_millis())
}

/// A time as the listing's filter parameter (RFC 3339 with milliseconds).
fn time_param(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Filter {
    /// The same rows as a [`FailedFilter`].
    pub(crate) fn to_failed_filter(&self) -> FailedFilter {
        let mut f = FailedFilter::new();
        if let Some(v) = &self.job_name {
            f = f.job_name(v.as_str());
        }
        if let Some(v) = &self.queue {
            f = f.queue(v.as_str());
        }
        if let Some(v) = &self.error {
            f = f.error_contains(v.as_str());
        }
        if let Some(t) = self.failed_from {
            f = f.failed_from(t);
        }
        if let Some(t) = self.failed_before {
            f = f.failed_before(t);
        }
        f
    }

    /// Appends the same rows as the listing's DataTable filter parameters.
    pub(crate) fn append_params(&self, out: &mut form_urlencoded::Serializer<'_, String>) {
        if let Some(v) = &self.job_name {
            out.append_pair("filter[job_name]", v);
        }
        if let Some(v) = &self.queue {
            out.append_pair("filter[queue]", v);
        }
        if let Some(v) = &self.error {
            out.append_pair("filter[error][like]", v);
        }
        if let Some(t) = self.failed_from {
            out.append_pair("filter[failed_at][gte]", &time_param(t));
        }
        if let Some(t) = self.failed_before {
            out.append_pair("filter[failed_at][lt]", &time_param(t));
        }
    }
}

/// Percent-decodes one query-string component (`+` is a space); `None` for a `%` without two
/// hex digits after it or bytes that are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    if !raw.split('%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        return None;
    }
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The listing's query string: its filter (by [`NAMES`]) checked, and the DataTable query string
/// to run — that filter as DataTable parameters plus `page`, `per_page` and `sort` as given.
/// Other parameters are ignored, except DataTable's own `filter[…]` ones, which are refused so
/// that the listing never shows rows the bulk actions would not touch.
pub(crate) fn listing_query(raw: Option<&str>) -> Result<(Filter, String), AppError> {
    let mut values: [Option<String>; 5] = Default::default();
    let mut passed = Vec::new();
    let mut errors = FieldErrors::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(key), Some(value)) = (decode(raw_key), decode(raw_value)) else {
            return Err(AppError::BadRequest(
                "The query string is not valid percent-encoded UTF-8".to_owned(),
            ));
        };
        if let Some(i) = NAMES.iter().position(|n| *n == key) {
            if values[i].is_some() {
                errors
                    .entry(key)
                    .or_default()
                    .push("is given more than once".to_owned());
            } else {
                values[i] = Some(value);
            }
        } else if matches!(key.as_str(), "page" | "per_page" | "sort") {
            passed.push(pair);
        } else if key.starts_with("filter") {
            errors.entry(key).or_default().push(format!(
                "is not a filter of this list; filter with {}",
                NAMES.join(", ")
            ));
        }
    }
    let filter = match check(values, "") {
        Ok(filter) if errors.is_empty() => filter,
        Ok(_) => return Err(validation(errors)),
        Err(more) => {
            errors.extend(more);
            return Err(validation(errors));
        }
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    filter.append_params(&mut out);
    let mut query = out.finish();
    for pair in passed {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(pair);
    }
    Ok((filter, query))
}

/// 422 with `errors`.
pub(crate) fn validation(errors: FieldErrors) -> AppError {
    AppError::Validation {
        message: core_web::messages::text("errors.validation"),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_query_carries_the_filter_and_the_paging() {
        let (filter, query) = listing_query(Some(
            "job_name=send+mail&error=100%25&failed_from=2026-12-05&page=2&sort=-id&other=1",
        ))
        .unwrap();
        assert_eq!(filter.job_name.as_deref(), Some("send mail"));
        assert_eq!(
            query,
            "filter%5Bjob_name%5D=send+mail&filter%5Berror%5D%5Blike%5D=100%25\
             &filter%5Bfailed_at%5D%5Bgte%5D=2026-12-05T00%3A00%3A00.000Z&page=2&sort=-id"
        );
    }

    #[test]
    fn bad_values_are_field_errors() {
        let err = listing_query(Some(
            "failed_from=yesterday&filter[queue]=x&queue=a&queue=b",
        ))
        .unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        let errors = err.body().errors.unwrap();
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["failed_from", "filter[queue]", "queue"]
        );
        assert_eq!(
            listing_query(Some("q=%zz")).unwrap_err().status().as_u16(),
            400
        );
    }

    #[test]
    fn times_are_cut_to_milliseconds_and_bounded() {
        assert_eq!(
            parse_time("2026-12-05T10:00:00.123999+02:00").map(time_param),
            Some("2026-12-05T08:00:00.123Z".to_owned())
        );
        assert!(parse_time("0000-01-01").is_none());
        assert!(parse_time("2026-13-01").is_none());
    }
}
