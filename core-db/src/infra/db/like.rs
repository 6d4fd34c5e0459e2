//! `LIKE` patterns for text a user typed: the pattern matches the text literally, wherever it
//! stands, on both databases.

/// `%text%` for `… LIKE $1 ESCAPE '!'`: `%`, `_` and `!` in `text` are escaped with `!` so they
/// match themselves. Both PostgreSQL and SQLite honour `ESCAPE '!'`; the query must say it.
///
/// ```
/// assert_eq!(core_db::db::like_pattern("50%_off!"), "%50!%!_off!!%");
/// ```
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}
