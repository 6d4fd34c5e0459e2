//! Cron expressions with seconds, in UTC, parsed and evaluated by [`croner`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Timelike, Utc};
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

/// A parsed cron expression, evaluated in UTC.
///
/// Six fields — `second minute hour day-of-month month day-of-week` — or the classic five
/// (seconds are then `0`). Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a/n` or
/// `a-b/n`, and comma-separated lists of those; months and weekdays also take names
/// (`jan`…`dec`, `sun`…`sat`, `7` is Sunday too); `?` is `*`. When both day fields are
/// restricted, a day matching either runs (the cron rule). Shorthands: `@yearly`,
/// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@minutely`,
/// `@secondly`. A step is at most the length of its field (`*/60` in the seconds matches second
/// 0 only; `*/61` is an error). [`croner`]'s extensions (`L`, `W`, `#`) are accepted too.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use core_jobs::schedule::Cron;
///
/// let every_15s: Cron = "*/15 * * * * *".parse()?;
/// let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 7).unwrap();
/// assert_eq!(every_15s.next_after(t), Some(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 15).unwrap()));
///
/// let weekdays_9am: Cron = "0 9 * * mon-fri".parse()?;
/// let sat = Utc.with_ymd_and_hms(2026, 10, 31, 10, 0, 0).unwrap();
/// assert_eq!(weekdays_9am.next_after(sat), Some(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
/// # Ok::<(), core_jobs::Error>(())
/// ```
#[derive(Clone)]
pub struct Cron {
    source: String,
    schedule: croner::Cron,
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Cron {}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Cron {
    type Err = Error;

    fn from_str(expr: &str) -> Result<Self> {
        Self::parse(expr)
    }
}

fn bad(expr: &str, why: impl fmt::Display) -> Error {
    Error::Config(format!("invalid cron expression {expr:?}: {why}"))
}

/// How many values each of the six fields has: a step longer than that could only ever match
/// the field's start, and is refused as a mistake.
const FIELD_SPANS: [u32; 6] = [60, 60, 24, 31, 12, 8];

/// The searches of [`Cron::next_after`] end this many years after their start.
const SEARCH_YEARS: i32 = 5;

impl Cron {
    /// Parses `expr`; see the type's docs for the syntax.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong.
    pub fn parse(expr: &str) -> Result<Self> {
        let trimmed = expr.trim();
        // croner knows the classic shorthands; these name six-field expressions of their own.
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            "@minutely" => "0 * * * * *",
            "@secondly" => "* * * * * *",
            s if s.starts_with('@') => return Err(bad(expr, "unknown shorthand")),
            _ => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let skipped = match fields.len() {
            6 => 0,
            5 => 1,
            n => return Err(bad(expr, format!("expected 5 or 6 fields, found {n}"))),
        };
        for (field, span) in fields.iter().zip(&FIELD_SPANS[skipped..]) {
            for step in field.split(',').filter_map(|part| part.split_once('/')) {
                let step: u32 = step
                    .1
                    .parse()
                    .map_err(|_| bad(expr, format!("bad step {:?}", step.1)))?;
                if step == 0 || step > *span {
                    return Err(bad(expr, format!("a step must be within 1-{span}")));
                }
            }
        }
        let schedule = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build()
            .parse(expanded)
            .map_err(|e| bad(expr, e))?;
        Ok(Self {
            source: trimmed.to_owned(),
            schedule,
        })
    }

    /// Whether `t` (to the second) is a tick.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.schedule.is_time_matching(&t).unwrap_or(false)
    }

    /// The first tick strictly after `t`, or `None` if there is none within five years
    /// (for example `0 0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.with_nanosecond(0)?;
        let next = self.schedule.find_next_occurrence(&start, false).ok()?;
        (next.year() <= start.year() + SEARCH_YEARS).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn every_second_and_steps() {
        let c = Cron::parse("* * * * * *").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 1, 0, 0, 1))
        );
        let c = Cron::parse("*/20 * * * * *").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 40)),
            Some(at(2026, 1, 1, 0, 1, 0))
        );
        let c = Cron::parse("5/20 * * * * *").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 6)),
            Some(at(2026, 1, 1, 0, 0, 25))
        );
    }

    #[test]
    fn five_fields_mean_second_zero() {
        let c = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 3, 0, 0)),
            Some(at(2026, 1, 2, 2, 30, 0))
        );
    }

    #[test]
    fn names_ranges_lists_and_sunday_seven() {
        let c = Cron::parse("0 0 12 * jan,jul sun").unwrap();
        // 2026-01-04 is a Sunday.
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 4, 12, 0, 0))
        );
        let c7 = Cron::parse("0 0 12 * 1,7 7").unwrap();
        assert_eq!(
            c7.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 4, 12, 0, 0))
        );
        let c = Cron::parse("0 0 9-17/4 * * mon-fri").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 2, 17, 0, 0)),
            Some(at(2026, 1, 5, 9, 0, 0))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 13th, or any Friday.
        let c = Cron::parse("0 0 0 13 * fri").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 2, 0, 0, 0))
        );
        assert!(c.matches(at(2026, 1, 13, 0, 0, 0)));
    }

    #[test]
    fn shorthands_and_impossible_dates() {
        let c = Cron::parse("@hourly").unwrap();
        assert_eq!(
            c.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2026, 1, 1, 1, 0, 0))
        );
        assert_eq!(
            Cron::parse("0 0 0 30 2 *")
                .unwrap()
                .next_after(at(2026, 1, 1, 0, 0, 0)),
            None
        );
        let leap = Cron::parse("0 0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at(2026, 1, 1, 0, 0, 0)),
            Some(at(2028, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "* * *",
            "61 * * * * *",
            "* * * * * * *",
            "*/0 * * * * *",
            "a * * * * *",
            "@often",
            "5-1 * * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_name_the_expression_and_the_rule() {
        let err = Cron::parse("*/61 * * * * *").unwrap_err().to_string();
        assert!(
            err.contains("\"*/61 * * * * *\"") && err.contains("a step must be within 1-60"),
            "{err}"
        );
        let err = Cron::parse("0 */25 * * *").unwrap_err().to_string();
        assert!(err.contains("within 1-24"), "{err}");
        let err = Cron::parse("* * * * * * *").unwrap_err().to_string();
        assert!(err.contains("expected 5 or 6 fields, found 7"), "{err}");
    }

    #[test]
    fn every_shorthand_parses() {
        let t = at(2026, 1, 1, 0, 0, 0);
        for (short, next) in [
            ("@secondly", at(2026, 1, 1, 0, 0, 1)),
            ("@minutely", at(2026, 1, 1, 0, 1, 0)),
            ("@midnight", at(2026, 1, 2, 0, 0, 0)),
            ("@weekly", at(2026, 1, 4, 0, 0, 0)),
            ("@monthly", at(2026, 2, 1, 0, 0, 0)),
            ("@Yearly", at(2027, 1, 1, 0, 0, 0)),
        ] {
            let cron = Cron::parse(short).unwrap();
            assert_eq!(cron.next_after(t), Some(next), "{short}");
            assert_eq!(cron.to_string(), short);
        }
    }
}
