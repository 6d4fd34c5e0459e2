//! The JSON log format: one object per line, written by a layer of its own.
//!
//! The shape is the one `tracing-subscriber`'s JSON formatter writes with the event's fields
//! flattened and the current span's fields under `span`:
//!
//! ```text
//! {"timestamp":"2026-12-05T12:00:00.123456Z","level":"INFO","message":"request finished","status":200,"latency_ms":0.41,"target":"core_web::request_id","span":{"request_id":"…","method":"GET","path":"/health","name":"request"}}
//! ```
//!
//! What it does differently is the cost, since every request writes a line: a span's fields are
//! rendered to JSON once, when they are recorded, and copied into each line as they are (that
//! formatter stores them as JSON text and parses it back into a map for every event); the line
//! is built in a buffer the thread keeps; the timestamp's date and time of day are formatted
//! once a second per thread.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The layer writing JSON lines to `W`.
pub(crate) struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's fields as JSON members (`"a":1,"b":"x"`), kept in the span's extensions.
struct SpanFields(String);

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Room for a request span's fields at once, rather than growing by doubling.
        let mut fields = String::with_capacity(160);
        attrs.record(&mut Members(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            // A field recorded again keeps its first member out: the later value wins.
            let mut added = String::new();
            values.record(&mut Members(&mut added));
            if !added.is_empty() {
                remove_members(fields, values);
                fields.push_str(&added);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<(String, Clock)> = RefCell::new((String::with_capacity(512), Clock::default()));
        }
        LINE.with_borrow_mut(|(line, clock)| {
            line.clear();
            let meta = event.metadata();
            line.push_str("{\"timestamp\":\"");
            clock.write_now(line);
            line.push_str("\",\"level\":\"");
            line.push_str(meta.level().as_str());
            line.push('"');
            event.record(&mut Members(line));
            line.push_str(",\"target\":");
            push_json_str(line, meta.target());
            if let Some(span) = ctx.event_span(event) {
                line.push_str(",\"span\":{");
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    // The members start with a comma each.
                    if let Some(rest) = fields.strip_prefix(',') {
                        line.push_str(rest);
                        line.push(',');
                    }
                }
                line.push_str("\"name\":");
                push_json_str(line, span.name());
                line.push('}');
            }
            line.push_str("}\n");
            let mut writer = self.make_writer.make_writer_for(meta);
            let _ = writer.write_all(line.as_bytes());
        });
    }
}

/// Drops from `fields` the members named by the fields of `values` (a field recorded twice).
fn remove_members(fields: &mut String, values: &Record<'_>) {
    struct Names<'a>(&'a mut Vec<&'static str>);
    impl Visit for Names<'_> {
        fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
            self.0.push(field.name());
        }
    }
    let mut names = Vec::new();
    values.record(&mut Names(&mut names));
    for name in names {
        let key = format!(",\"{name}\":");
        let Some(start) = fields.find(&key) else {
            continue;
        };
        let value_start = start + key.len();
        let end = value_end(&fields[value_start..]).map_or(fields.len(), |n| value_start + n);
        fields.replace_range(start..end, "");
    }
}

/// The length of the JSON value (a string, a number, a literal) at the start of `rest`.
fn value_end(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    } else {
        rest.find(',')
    }
}

/// Appends each field as a JSON member, `,"name":value`.
struct Members<'a>(&'a mut String);

impl Members<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        push_json_str(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for Members<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        push_f64(self.0, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.0, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        self.0.push('"');
        let _ = write!(Escaped(self.0), "{value}");
        self.0.push('"');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.0.push('"');
        let _ = write!(Escaped(self.0), "{value:?}");
        self.0.push('"');
    }
}

/// Appends `value` as a JSON number (`null` when it is not finite), in the shortest form that
/// reads back as the same value, as `ryu` writes it. A whole number of thousandths (a
/// latency in milliseconds to the microsecond) is written with integer formatting instead,
/// which is several times cheaper and gives the same text.
fn push_f64(out: &mut String, value: f64) {
    if value.is_sign_positive() && value < 1e12 {
        let thousandths = (value * 1000.0).round();
        // The decimal `thousandths / 1000` reads back as `value`, and no shorter decimal
        // does: decimals with at most three places below 1e12 are further apart than a unit
        // in the last place.
        if thousandths / 1000.0 == value {
            let n = thousandths as u64;
            out.push_str(itoa::Buffer::new().format(n / 1000));
            out.push('.');
            let fraction = n % 1000;
            let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
            // `.5` rather than `.500`, and `.0` for none.
            let kept = digits
                .iter()
                .rposition(|&d| d != 0)
                .map_or(1, |last| last + 1);
            for &digit in &digits[..kept] {
                out.push(char::from(b'0' + digit as u8));
            }
            return;
        }
    }
    if value.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let _ = Escaped(out).write_str(s);
    out.push('"');
}

/// A `fmt::Write` that escapes what it is given for the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

/// Whether any byte of `bytes` needs escaping in a JSON string: a control character (below
/// 0x20, or 0x7f), `"` or `\`. Eight bytes at a time ([`word_needs_escape`]); the last eight
/// bytes of the text are read as one more word, overlapping the words before, rather than
/// copied out one by one.
fn needs_escape(bytes: &[u8]) -> bool {
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    if bytes.len() < 8 {
        return bytes
            .iter()
            .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f);
    }
    bytes
        .chunks_exact(8)
        .any(|chunk| word_needs_escape(word(chunk)))
        || word_needs_escape(word(&bytes[bytes.len() - 8..]))
}

/// Whether any of the eight bytes of `word` needs escaping. Exact, with no false positives:
/// bytes of 0x80 and above never match.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    below_space
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | zero_byte(word ^ (ONES * 0x7f))
        != 0
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !needs_escape(s.as_bytes()) {
            self.0.push_str(s);
            return Ok(());
        }
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.push_str(&s[start..i]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{b:04x}");
            } else {
                self.0.push_str(escape);
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        Ok(())
    }
}

/// Formats the current time as RFC 3339 in UTC with microseconds, the date and time of day
/// formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
}

impl Clock {
    fn write_now(&mut self, out: &mut String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.write(out, now.as_secs(), now.subsec_micros());
    }

    fn write(&mut self, out: &mut String, secs: u64, micros: u32) {
        if self.prefix.is_empty() || self.second != secs {
            self.second = secs;
            self.prefix.clear();
            let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
            let (y, m, d) = civil_from_days(days);
            let of_day = secs % 86_400;
            let _ = write!(
                self.prefix,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
        }
        out.push_str(&self.prefix);
        // Six digits, zero-padded, without the formatting machinery.
        let mut digits = [b'0'; 7];
        digits[6] = b'Z';
        let mut rest = micros.min(999_999);
        for digit in digits[..6].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.push_str(std::str::from_utf8(&digits).unwrap_or("000000Z"));
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLayer::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_event_flattened_and_its_span_nested() {
        let lines = capture(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                method = %"GET",
                client_id = tracing::field::Empty,
            );
            let _in = span.enter();
            span.record("client_id", "c-9");
            tracing::info!(
                status = 200u16,
                latency_ms = 0.25,
                ok = true,
                "request finished"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request finished");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_ms"], 0.25);
        assert_eq!(line["ok"], true);
        assert_eq!(line["target"], module_path!());
        assert_eq!(
            line["span"],
            json!({"request_id": "r-1", "method": "GET", "client_id": "c-9", "name": "request"})
        );
        let at: DateTime<Utc> = line["timestamp"].as_str().unwrap().parse().unwrap();
        assert!((Utc::now() - at).num_seconds().abs() < 5, "{at}");
    }

    #[test]
    fn a_field_recorded_twice_keeps_the_later_value_once() {
        let lines = capture(|| {
            let span = tracing::info_span!("job", attempt = 1u32);
            span.record("attempt", 2u32);
            span.record("attempt", 3u32);
            span.in_scope(|| tracing::warn!("retrying"));
        });
        assert_eq!(lines[0]["span"], json!({"attempt": 3, "name": "job"}));
    }

    #[test]
    fn text_is_escaped_and_odd_numbers_stay_valid() {
        let lines = capture(|| {
            tracing::error!(
                path = "/a\"b\\c\n\u{1}",
                ratio = f64::NAN,
                error = %"quote \" inside",
                "multi\nline"
            );
        });
        let line = &lines[0];
        assert_eq!(line["path"], "/a\"b\\c\n\u{1}");
        assert_eq!(line["ratio"], Value::Null);
        assert_eq!(line["error"], "quote \" inside");
        assert_eq!(line["message"], "multi\nline");
        assert!(line.get("span").is_none(), "no span, no member");
    }

    #[test]
    fn numbers_are_written_as_ryu_writes_them() {
        let ryu = |v: f64| ryu::Buffer::new().format_finite(v).to_owned();
        let ours = |v: f64| {
            let mut out = String::new();
            push_f64(&mut out, v);
            out
        };
        // Every latency to the microsecond up to 10 s, and some far larger.
        for micros in (0..10_000_000u64)
            .step_by(7)
            .chain([999_999_999_999_999, 1_000_000])
        {
            let v = micros as f64 / 1000.0;
            assert_eq!(ours(v), ryu(v), "{micros} µs");
        }
        // Other numbers take ryu's path, and the fast one is not taken by mistake.
        for v in [
            -0.0,
            -1.5,
            0.0001,
            0.4123456,
            1e12,
            1.5e15,
            123.4565,
            1.0 / 3.0,
            1e-7,
            2.5e-3,
        ] {
            assert_eq!(ours(v), ryu(v), "{v}");
        }
        assert_eq!(ours(f64::NAN), "null");
        assert_eq!(ours(f64::INFINITY), "null");
    }

    #[test]
    fn the_check_finds_exactly_the_bytes_that_need_escaping() {
        for b in 0..=255u8 {
            let expected = b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f;
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                assert_eq!(needs_escape(&word), expected, "{b:#x} at {at}");
            }
        }
        // Bytes next to each other do not mask or fake one another.
        assert!(!needs_escape(b"\x80\xff !#~\x7e\x21"));
        assert!(needs_escape(b"\x80\x00\xff\x01abcd"));
        let long = format!("a{}\"{}\u{1}", "é".repeat(20), "x".repeat(30));
        let mut out = String::new();
        push_json_str(&mut out, &long);
        assert_eq!(out, serde_json::to_string(&long).unwrap());
        // Every length around a word, clean or with a byte to escape (or a character of
        // several bytes) anywhere, whole words and the tail alike.
        for len in 0..=17 {
            for special in ["", "\"", "\\", "\n", "\u{1}", "é"] {
                for at in 0..=len {
                    let text = format!("{}{special}{}", "k".repeat(at), "v".repeat(len - at));
                    let mut out = String::new();
                    push_json_str(&mut out, &text);
                    assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn timestamps_match_chrono_across_dates() {
        let mut clock = Clock::default();
        for secs in [
            0u64,
            951_782_400,   // 2000-02-29
            1_709_164_800, // 2024-02-29
            1_796_473_538,
            4_102_444_799, // 2099-12-31T23:59:59
        ] {
            let mut out = String::new();
            clock.write(&mut out, secs, 42);
            let expected = DateTime::<Utc>::from_timestamp(secs as i64, 42_000)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(out, expected);
        }
    }
}
