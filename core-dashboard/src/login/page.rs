//! The dashboard's own HTML: the sign-in form, the "not built yet" stand-in for the page and
//! the "disabled" page. Self-contained (no external assets, inline CSS only), readable from
//! 375 px wide, light or dark after `prefers-color-scheme`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What a dashboard HTML page may load: nothing but its own inline styles, and forms only to
/// its own origin; no framing.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--muted:#57606a;--card:#fff;\
--border:#d0d7de;--accent:#0b57d0;--error:#b42318}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;\
--card:#161b22;--border:#30363d;--accent:#4493f8;--error:#ff7b72}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,sans-serif;padding:16px}\
main{width:100%;max-width:380px;background:var(--card);border:1px solid var(--border);\
border-radius:8px;padding:24px}\
h1{font-size:1.25rem;margin:0 0 16px}\
p{margin:0 0 12px}\
.muted{color:var(--muted)}\
label{display:block;font-weight:600;margin-bottom:4px}\
input{width:100%;font:inherit;padding:8px 10px;border:1px solid var(--border);border-radius:6px;\
background:var(--bg);color:var(--fg)}\
button{margin-top:16px;width:100%;font:inherit;font-weight:600;padding:10px;border:0;\
border-radius:6px;background:var(--accent);color:#fff;cursor:pointer}\
a{color:var(--accent)}\
ul{padding-left:20px;margin:0 0 12px}\
.error{color:var(--error);font-weight:600}";

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `head_extra` and `body` are HTML already escaped.
fn document(title: &str, head_extra: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\">\
<meta name=\"referrer\" content=\"same-origin\">{head_extra}\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>\n",
        title = escape(title),
    )
}

/// An HTML response with the dashboard's security headers: never cached, never framed.
pub(crate) fn respond(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The sign-in form, posting to `{prefix}/login`, with `error` above it when there is one.
pub(crate) fn login(prefix: &str, error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    document(
        "Sign in · Jobs dashboard",
        "",
        &format!(
            "<h1>Jobs dashboard</h1>{error}\
<form method=\"post\" action=\"{prefix}/login\">\
<label for=\"token\">Admin token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
required autofocus>\
<button type=\"submit\">Sign in</button></form>",
            prefix = escape(prefix),
        ),
    )
}

/// The page at `{prefix}/` while the dashboard's page is not built: how to build it, the queues,
/// the API's entry points and, with a session (`csrf_token`), a sign-out form. The session's
/// CSRF token is also in `<meta name="csrf-token">`.
pub(crate) fn not_built(
    prefix: &str,
    queues: &[String],
    csrf_token: Option<&str>,
    root: &std::path::Path,
) -> String {
    let prefix = escape(prefix);
    let queues: String = queues
        .iter()
        .map(|q| format!("<li>{}</li>", escape(q)))
        .collect();
    let (meta, sign_out) = csrf_token.map_or_else(Default::default, |csrf| {
        let csrf = escape(csrf);
        (
            format!("<meta name=\"csrf-token\" content=\"{csrf}\">"),
            format!(
                "<form method=\"post\" action=\"{prefix}/logout\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<button type=\"submit\">Sign out</button></form>"
            ),
        )
    });
    document(
        "Jobs dashboard",
        &meta,
        &format!(
            "<h1>Jobs dashboard</h1>\
<p>The dashboard's page has not been built yet. Build it from the workspace root \
(Node.js 20.19 or newer), then reload:</p><p><code>{command}</code></p>\
<p class=\"muted\">It is served from <code>{root}</code>; set <code>{env}</code> to serve \
another directory.</p>\
<p>Queues:</p><ul>{queues}</ul>\
<p>API: <a href=\"{prefix}/api/queues\">counts</a> · \
<a href=\"{prefix}/api/failed\">failed jobs</a></p>{sign_out}",
            command = escape(crate::frontend::BUILD_COMMAND),
            root = escape(&root.display().to_string()),
            env = crate::frontend::FRONTEND_DIR_ENV,
        ),
    )
}

/// The page of a disabled dashboard, saying why.
pub(crate) fn disabled(reason: &str) -> String {
    document(
        "Jobs dashboard disabled",
        "",
        &format!("<h1>Jobs dashboard disabled</h1><p>{}</p>", escape(reason)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let page = login("/a\"b", Some("<script>"));
        assert!(page.contains("action=\"/a&quot;b/login\""));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
