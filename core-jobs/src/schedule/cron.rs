//! Cron expressions with seconds, in UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::error::{Error, Result};

/// A parsed cron expression, evaluated in UTC.
///
/// Six fields — `second minute hour day-of-month month day-of-week` — or the classic five
/// (seconds are then `0`). Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a/n` or
/// `a-b/n`, and comma-separated lists of those; months and weekdays also take names
/// (`jan`…`dec`, `sun`…`sat`, `7` is Sunday too); `?` is `*`. When both day fields are
/// restricted, a day matching either runs (the cron rule). Shorthands: `@yearly`,
/// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@minutely`,
/// `@secondly`.
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
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

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

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn bad(expr: &str, why: impl fmt::Display) -> Error {
    Error::Config(format!("invalid cron expression {expr:?}: {why}"))
}

/// Parses one field into a bit set of the allowed values in `min..=max`; also whether it was
/// restricted (not `*`).
fn field(
    expr: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool)> {
    let value = |s: &str| -> Result<u32> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + name_base);
        }
        s.parse::<u32>()
            .map_err(|_| bad(expr, format!("{s:?} is not a number")))
    };
    let mut bits = 0u64;
    let mut restricted = true;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| bad(expr, format!("bad step {s:?}")))?;
                // A step longer than the field's range could only ever match its start.
                let span = max - min + 1;
                if step == 0 || step > span {
                    return Err(bad(expr, format!("a step must be within 1-{span}")));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            if step == 1 && text.split(',').count() == 1 {
                restricted = false;
            }
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad(expr, format!("{part:?} is outside {min}-{max}")));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
    }
    Ok((bits, restricted))
}

impl FromStr for Cron {
    type Err = Error;

    fn from_str(expr: &str) -> Result<Self> {
        Self::parse(expr)
    }
}

impl Cron {
    /// Parses `expr`; see the type's docs for the syntax.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong.
    pub fn parse(expr: &str) -> Result<Self> {
        let trimmed = expr.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 0 1 * *".to_owned(),
            "@weekly" => "0 0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 0 * * *".to_owned(),
            "@hourly" => "0 0 * * * *".to_owned(),
            "@minutely" => "0 * * * * *".to_owned(),
            "@secondly" => "* * * * * *".to_owned(),
            s if s.starts_with('@') => return Err(bad(expr, "unknown shorthand")),
            _ => trimmed.to_owned(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let fields: Vec<&str> = match fields.len() {
            6 => fields,
            5 => std::iter::once("0").chain(fields).collect(),
            n => return Err(bad(expr, format!("expected 5 or 6 fields, found {n}"))),
        };
        let (seconds, _) = field(expr, fields[0], 0, 59, &[], 0)?;
        let (minutes, _) = field(expr, fields[1], 0, 59, &[], 0)?;
        let (hours, _) = field(expr, fields[2], 0, 23, &[], 0)?;
        let (days, days_restricted) = field(expr, fields[3], 1, 31, &[], 0)?;
        let (months, _) = field(expr, fields[4], 1, 12, &MONTHS, 1)?;
        // Weekdays parse as 0-7 (Sunday may be written 7)...
        let (weekdays, weekdays_restricted) = field(expr, fields[5], 0, 7, &WEEKDAYS, 0)?;
        // ...and 7 folds into 0.
        let weekdays = (weekdays & 0x7f) | ((weekdays >> 7) & 1);
        Ok(Self {
            source: trimmed.to_owned(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// Whether `t` (to the second) is a tick.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let n = t.naive_utc();
        self.months & (1 << n.month()) != 0
            && self.day_matches(n.date())
            && self.hours & (1 << n.hour()) != 0
            && self.minutes & (1 << n.minute()) != 0
            && self.seconds & (1 << n.second()) != 0
    }

    /// The first tick strictly after `t`, or `None` if there is none within five years
    /// (for example `0 0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.naive_utc().with_nanosecond(0)? + Duration::seconds(1);
        let limit = start.year() + 5;
        let mut n: NaiveDateTime = start;
        loop {
            if n.year() > limit {
                return None;
            }
            if self.months & (1 << n.month()) == 0 {
                let (y, m) = if n.month() == 12 {
                    (n.year() + 1, 1)
                } else {
                    (n.year(), n.month() + 1)
                };
                n = NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.day_matches(n.date()) {
                n = n.date().succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            }
            if self.hours & (1 << n.hour()) == 0 {
                n = n.with_minute(0)?.with_second(0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << n.minute()) == 0 {
                n = n.with_second(0)? + Duration::minutes(1);
                continue;
            }
            if self.seconds & (1 << n.second()) == 0 {
                n += Duration::seconds(1);
                continue;
            }
            return Some(n.and_utc());
        }
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
}
