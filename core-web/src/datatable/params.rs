//! Parsing the raw query string into a [`ListQuery`].

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use core_db::db::like_pattern;

use super::{Column, ColumnType, Direction, Filter, FilterValue, Inner};
use crate::error::{AppError, FieldErrors};
use crate::messages;

/// Longest value (in characters) any parameter may have.
pub(crate) const MAX_VALUE_CHARS: usize = 1000;

/// Longest user-supplied name echoed back in an error message.
const SHOWN_CHARS: usize = 64;

/// A comparison in a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => " = ",
            Cmp::Gt => " > ",
            Cmp::Gte => " >= ",
            Cmp::Lt => " < ",
            Cmp::Lte => " <= ",
        }
    }
}

/// Where a condition's column comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// A column of the definition, by index.
    Column(usize),
    /// A table column the definition does not return, named by the application
    /// ([`ListQuery::where_eq`]).
    Named(String),
}

/// One condition of the `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    /// `column <cmp> value`.
    Compare {
        target: Target,
        cmp: Cmp,
        value: FilterValue,
    },
    /// `column LIKE '%value%'` (case-insensitive); the pattern is already escaped.
    Like { column: usize, pattern: String },
    /// Any searchable column `LIKE '%q%'`; the pattern is already escaped.
    Search { pattern: String },
}

/// A parsed, checked list request: page, page size, sort, filters and search. Made by
/// [`DataTable::parse`](super::DataTable::parse); run by [`DataTable::fetch`](super::DataTable::fetch).
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub(crate) page: u64,
    pub(crate) per_page: u64,
    pub(crate) sort: Vec<(usize, Direction)>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) search: Option<String>,
}

impl ListQuery {
    /// The 1-based page number.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Rows per page, after capping.
    pub fn per_page(&self) -> u64 {
        self.per_page
    }

    /// The search text `q`, trimmed, if any.
    pub fn search(&self) -> Option<&str> {
        self.search.as_deref()
    }

    /// Adds a condition of the application's own: only rows whose `column` equals `value`, for
    /// example the signed-in user's id. `column` is a column of the definition, or else a column
    /// of the table that is not returned (quoted as an identifier). The value is bound.
    #[must_use]
    pub fn where_eq(mut self, column: &str, value: impl Into<FilterValue>) -> Self {
        self.conditions.push(Condition::Compare {
            target: Target::Named(column.to_owned()),
            cmp: Cmp::Eq,
            value: value.into(),
        });
        self
    }
}

/// `s` cut to [`SHOWN_CHARS`] characters, for error messages.
fn shown(s: &str) -> String {
    if s.chars().count() <= SHOWN_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(SHOWN_CHARS).collect();
        out.push('…');
        out
    }
}

/// Percent-decodes one `application/x-www-form-urlencoded` component (`+` is a space). `None` for
/// a `%` not followed by two hex digits or bytes that are not UTF-8: the decoding is
/// `percent-encoding`'s, which would keep a malformed escape as it is and `form_urlencoded`
/// would also replace bad UTF-8, where a listing answers 400.
pub(crate) fn decode(raw: &str) -> Option<String> {
    if !raw.contains(['%', '+']) {
        return Some(raw.to_owned());
    }
    // Every `%` starts an escape of two hex digits.
    if !raw.split('%').skip(1).all(starts_with_hex_pair) {
        return None;
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

fn starts_with_hex_pair(text: &str) -> bool {
    text.get(..2)
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn add(errors: &mut FieldErrors, field: &str, message: String) {
    errors.entry(field.to_owned()).or_default().push(message);
}

fn validation(errors: FieldErrors) -> AppError {
    AppError::Validation {
        message: messages::text("errors.validation"),
        errors,
    }
}

/// Checks the length and characters of a value; `Err` holds the message.
fn check_value(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(messages::text_args(
            "datatable.too_long",
            &[("max", &MAX_VALUE_CHARS)],
        ));
    }
    if value.contains('\0') {
        return Err(messages::text("datatable.nul"));
    }
    Ok(())
}

/// Parses the whole query string.
pub(crate) fn parse(def: &Inner, raw: Option<&str>) -> Result<ListQuery, AppError> {
    let mut errors = FieldErrors::new();
    let mut malformed = FieldErrors::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut page: u64 = 1;
    let mut per_page = def.per_page;
    let mut sort: Option<Vec<(usize, Direction)>> = None;
    let mut conditions = Vec::new();
    let mut search = None;

    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(key) = decode(raw_key) else {
            add(
                &mut malformed,
                &shown(raw_key),
                messages::text("datatable.malformed_encoding"),
            );
            continue;
        };
        let Some(value) = decode(raw_value) else {
            add(
                &mut malformed,
                &shown(&key),
                messages::text("datatable.malformed_encoding"),
            );
            continue;
        };
        let field = shown(&key);
        let known =
            matches!(key.as_str(), "page" | "per_page" | "sort" | "q") || key.starts_with("filter");
        if !known {
            continue;
        }
        if !seen.insert(key.clone()) {
            add(&mut errors, &field, messages::text("datatable.duplicate"));
            continue;
        }
        if let Err(message) = check_value(&value) {
            add(&mut errors, &field, message);
            continue;
        }
        match key.as_str() {
            "page" => match parse_count(&value) {
                Ok(Some(n)) => page = n,
                Ok(None) => {}
                Err(message) => add(&mut errors, &field, message),
            },
            "per_page" => match parse_count(&value) {
                Ok(Some(n)) => per_page = n.min(def.max_per_page),
                Ok(None) => {}
                Err(message) => add(&mut errors, &field, message),
            },
            "sort" => {
                if value.trim().is_empty() {
                    continue;
                }
                match parse_sort(def, &value) {
                    Ok(s) => sort = Some(s),
                    Err(messages) => {
                        for message in messages {
                            add(&mut errors, &field, message);
                        }
                    }
                }
            }
            "q" => {
                let text = value.trim();
                if text.is_empty() {
                    continue;
                }
                if def.columns.iter().all(|c| !c.column.searchable) {
                    add(&mut errors, &field, messages::text("datatable.no_search"));
                    continue;
                }
                search = Some(text.to_owned());
            }
            _ => match parse_filter(def, &key, &value) {
                Ok(found) => conditions.extend(found),
                Err(message) => add(&mut errors, &field, message),
            },
        }
    }

    if !malformed.is_empty() {
        return Err(AppError::InvalidInput {
            message: messages::text("datatable.malformed_query"),
            errors: malformed,
        });
    }
    // The offset must fit the databases' signed 64-bit integers.
    if (page - 1)
        .checked_mul(per_page)
        .is_none_or(|o| o > i64::MAX as u64)
    {
        add(
            &mut errors,
            "page",
            messages::text_args("datatable.page_too_large", &[("page", &page)]),
        );
    }
    if !errors.is_empty() {
        return Err(validation(errors));
    }
    if let Some(text) = &search {
        conditions.push(Condition::Search {
            pattern: like_pattern(text),
        });
    }
    Ok(ListQuery {
        page,
        per_page,
        sort: sort.unwrap_or_else(|| def.default_sort.clone()),
        conditions,
        search,
    })
}

/// `page` / `per_page`: empty → `None`, a whole number ≥ 1 → `Some`.
fn parse_count(value: &str) -> Result<Option<u64>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(messages::text("datatable.positive_integer")),
    }
}

/// `-created_at,name` → column indexes and directions; `Err` holds every problem found.
pub(crate) fn parse_sort(def: &Inner, value: &str) -> Result<Vec<(usize, Direction)>, Vec<String>> {
    let mut out: Vec<(usize, Direction)> = Vec::new();
    let mut problems = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        let (name, direction) = match part.strip_prefix('-') {
            Some(rest) => (rest.trim(), Direction::Desc),
            None => (part, Direction::Asc),
        };
        if name.is_empty() {
            problems.push(messages::text("datatable.empty_sort"));
            continue;
        }
        match def.position(name) {
            None => problems.push(messages::text_args(
                "datatable.unknown_column",
                &[("column", &shown(name))],
            )),
            Some(i) if !def.columns[i].column.sortable => problems.push(messages::text_args(
                "datatable.not_sortable",
                &[("column", &name)],
            )),
            Some(i) if out.iter().any(|(j, _)| *j == i) => problems.push(messages::text_args(
                "datatable.sorted_twice",
                &[("column", &name)],
            )),
            Some(i) => out.push((i, direction)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The operators of `filter[col][op]`, with the filter kind that allows each.
const OPERATORS: [(&str, Filter); 6] = [
    ("eq", Filter::Eq),
    ("like", Filter::Like),
    ("gte", Filter::Range),
    ("gt", Filter::Range),
    ("lte", Filter::Range),
    ("lt", Filter::Range),
];

/// `filter[col]` / `filter[col][op]` → conditions (none for an empty value; two for a whole-day
/// range on a timestamp).
fn parse_filter(def: &Inner, key: &str, value: &str) -> Result<Vec<Condition>, String> {
    let malformed = || messages::text("datatable.malformed_filter");
    let rest = key.strip_prefix("filter[").ok_or_else(malformed)?;
    let (name, rest) = rest.split_once(']').ok_or_else(malformed)?;
    let op = if rest.is_empty() {
        "eq"
    } else {
        rest.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .filter(|op| !op.contains(['[', ']']))
            .ok_or_else(malformed)?
    };
    let index = def.position(name).ok_or_else(|| {
        messages::text_args("datatable.unknown_column", &[("column", &shown(name))])
    })?;
    let column = &def.columns[index].column;
    let (op, filter) = OPERATORS
        .iter()
        .find(|(o, _)| *o == op)
        .copied()
        .ok_or_else(|| {
            let expected = OPERATORS.map(|(o, _)| o).join(", ");
            messages::text_args(
                "datatable.unknown_operator",
                &[("operator", &shown(op)), ("expected", &expected)],
            )
        })?;
    if !column.allows(filter) {
        return Err(messages::text_args(
            "datatable.not_filterable",
            &[("column", &column.name), ("operator", &op)],
        ));
    }
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if op == "like" {
        return Ok(vec![Condition::Like {
            column: index,
            pattern: like_pattern(value),
        }]);
    }
    let cmp = match op {
        "eq" => Cmp::Eq,
        "gt" => Cmp::Gt,
        "gte" => Cmp::Gte,
        "lt" => Cmp::Lt,
        _ => Cmp::Lte,
    };
    let invalid = || {
        messages::text_args(
            "datatable.invalid_value",
            &[
                ("column", &column.name),
                (
                    "expected",
                    &messages::text(&format!("datatable.types.{}", column.kind.key())),
                ),
            ],
        )
    };
    let target = Target::Column(index);
    let compare = |cmp: Cmp, value: FilterValue| Condition::Compare {
        target: target.clone(),
        cmp,
        value,
    };
    let parsed = match column.kind {
        ColumnType::Text => FilterValue::Text(value.to_owned()),
        ColumnType::Integer => FilterValue::Integer(value.trim().parse().map_err(|_| invalid())?),
        ColumnType::Float => {
            let f: f64 = value.trim().parse().map_err(|_| invalid())?;
            if !f.is_finite() {
                return Err(invalid());
            }
            FilterValue::Float(f)
        }
        ColumnType::Bool => FilterValue::Bool(parse_bool(value.trim()).ok_or_else(invalid)?),
        ColumnType::Timestamp => match parse_time(value.trim()).ok_or_else(invalid)? {
            Time::Instant(t) if t < min_timestamp() => return Err(too_early(column)),
            Time::Day(day) if day < min_timestamp().date_naive() => return Err(too_early(column)),
            Time::Instant(t) => FilterValue::Timestamp(t),
            Time::Day(day) => {
                // A date means the whole day, [start, next day).
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                let next = start
                    .checked_add_signed(TimeDelta::days(1))
                    .ok_or_else(invalid)?;
                let (start, next) = (FilterValue::Timestamp(start), FilterValue::Timestamp(next));
                return Ok(match cmp {
                    Cmp::Eq => vec![compare(Cmp::Gte, start), compare(Cmp::Lt, next)],
                    Cmp::Gte => vec![compare(Cmp::Gte, start)],
                    Cmp::Lt => vec![compare(Cmp::Lt, start)],
                    Cmp::Gt => vec![compare(Cmp::Gte, next)],
                    Cmp::Lte => vec![compare(Cmp::Lt, next)],
                });
            }
        },
    };
    Ok(vec![compare(cmp, parsed)])
}

/// The earliest instant a filter may name: PostgreSQL's `timestamptz` starts at 4714-11-24 BC
/// (year -4713 in ISO 8601), and binding anything earlier is a database error. The latest
/// instant chrono parses (year 262142) is well within PostgreSQL's range (294276 AD).
fn min_timestamp() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(-4713, 11, 24)
        .unwrap_or(NaiveDate::MIN)
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// The field error for a timestamp before [`min_timestamp`].
fn too_early(column: &Column) -> String {
    let expected = format!(
        "{} ({} …)",
        messages::text("datatable.types.timestamp"),
        min_timestamp().format("%Y-%m-%d")
    );
    messages::text_args(
        "datatable.invalid_value",
        &[("column", &column.name), ("expected", &expected)],
    )
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) enum Time {
    Instant(DateTime<Utc>),
    Day(NaiveDate),
}

/// RFC 3339, `YYYY-MM-DD[T ]HH:MM[:SS[.f]]` (UTC), with or without an offset, or a date.
pub(crate) fn parse_time(value: &str) -> Option<Time> {
    if let Some(t) = parse_instant(value) {
        return Some(Time::Instant(t));
    }
    // An unencoded `+` in an offset arrives as a space: `…12:00:00 02:00`.
    if let Some((head, tail)) = value.rsplit_once(' ')
        && head.len() > 10
        && let Some(t) = parse_instant(&format!("{head}+{tail}"))
    {
        return Some(Time::Instant(t));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .map(Time::Day)
}

fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_components() {
        assert_eq!(decode("a+b%20c").as_deref(), Some("a b c"));
        assert_eq!(decode("filter%5Bname%5D").as_deref(), Some("filter[name]"));
        assert_eq!(decode("%E4%BD%A0").as_deref(), Some("你"));
        assert_eq!(decode("plain").as_deref(), Some("plain"));
        assert_eq!(decode("%"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn an_escaped_plus_stays_a_plus() {
        assert_eq!(decode("a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(decode("100%25").as_deref(), Some("100%"));
        assert_eq!(decode("%%41"), None);
        assert_eq!(decode("ok%2"), None);
    }

    #[test]
    fn escapes_like_patterns() {
        assert_eq!(like_pattern("a%b_c!d\\"), "%a!%b!_c!!d\\%");
    }

    #[test]
    fn parses_times() {
        let instant = |s: &str| match parse_time(s) {
            Some(Time::Instant(t)) => t.to_rfc3339(),
            _ => "none".into(),
        };
        assert_eq!(instant("2024-05-01T12:00:00Z"), "2024-05-01T12:00:00+00:00");
        assert_eq!(
            instant("2024-05-01T14:00:00+02:00"),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!(
            instant("2024-05-01T14:00:00 02:00"),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!(instant("2024-05-01 12:00:00"), "2024-05-01T12:00:00+00:00");
        assert_eq!(instant("2024-05-01 12:00"), "2024-05-01T12:00:00+00:00");
        assert!(matches!(parse_time("2024-05-01"), Some(Time::Day(_))));
        assert!(parse_time("2024-13-01").is_none());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn shortens_long_names() {
        let long = "x".repeat(500);
        assert_eq!(shown(&long).chars().count(), SHOWN_CHARS + 1);
        assert_eq!(shown("id"), "id");
    }
}
