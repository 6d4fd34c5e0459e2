//! Serves the built Rustforge documentation site.
//!
//! The site lives in `core-docs/frontend/` (Vite, React, Tailwind) and is built into
//! `core-docs/frontend/dist` with:
//!
//! ```sh
//! cd core-docs/frontend && npm install && npm run build
//! ```
//!
//! [`router`] serves that directory so an application can mount the docs next to its API. The
//! site uses hash routing (`/docs/#/caching`) and relative asset paths, so it works under any
//! prefix:
//!
//! ```
//! use axum::Router;
//!
//! let app: Router = Router::new().nest_service("/docs", core_docs::router());
//! # let _ = app;
//! ```
//!
//! Until the site has been built, every page answers with a short HTML page that says how to
//! build it. The directory is found next to this crate's sources (fixed at compile time) unless
//! [`DOCS_DIR_ENV`] names another one at run time; [`router_with_dir`] takes it explicitly.
//!
//! Only files inside the directory are ever served: `..`, `.` and hidden segments, backslashes,
//! NUL bytes and symbolic links that lead outside it are refused with 404, and only `GET` and
//! `HEAD` are answered. A checked file is sent by tower-http's [`ServeDir`] (so `Range`,
//! `If-Modified-Since` and `HEAD` work as usual), typed by [`content_type`].

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

/// The environment variable that overrides where [`router`] looks for the built site.
pub const DOCS_DIR_ENV: &str = "RUSTFORGE_DOCS_DIR";

/// Where `npm run build` writes the site: `core-docs/frontend/dist` in this crate's source tree.
pub const DEFAULT_DOCS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/frontend/dist");

/// The command that builds the site, from the workspace root.
pub const BUILD_COMMAND: &str = "cd core-docs/frontend && npm install && npm run build";

/// The docs site as a router, for the application to mount with
/// `Router::nest_service("/docs", core_docs::router())` (`nest_service` also routes `/docs/`,
/// which the page's relative asset paths need; `/docs` itself is redirected there).
///
/// It serves the directory named by [`DOCS_DIR_ENV`] when that is set, else
/// [`DEFAULT_DOCS_DIR`]; the variable is read once, here. See [`router_with_dir`].
pub fn router() -> Router {
    router_with_dir(docs_dir())
}

/// The docs site served from `dir`, a directory holding the built site's `index.html` and
/// `assets/`.
///
/// The directory is looked at on every request, so a site built after the server started is
/// served without a restart; while `dir/index.html` is missing, the router answers with a page
/// that says how to build the site.
pub fn router_with_dir(dir: impl Into<PathBuf>) -> Router {
    let root = dir.into();
    let files = ServeDir::new(&root).append_index_html_on_directories(false);
    let site = Arc::new(Site { root, files });
    Router::new().fallback(serve).with_state(site)
}

/// The directory [`router`] serves: [`DOCS_DIR_ENV`] when set and not empty, else
/// [`DEFAULT_DOCS_DIR`].
pub fn docs_dir() -> PathBuf {
    resolve_docs_dir(std::env::var_os(DOCS_DIR_ENV))
}

/// The directory to serve given the value of [`DOCS_DIR_ENV`] (`None` when unset).
pub fn resolve_docs_dir(env_value: Option<OsString>) -> PathBuf {
    match env_value {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_DOCS_DIR),
    }
}

struct Site {
    root: PathBuf,
    /// Sends the files that [`serve`] has checked.
    files: ServeDir,
}

async fn serve(State(site): State<Arc<Site>>, original: OriginalUri, req: Request) -> Response {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let path = req.uri().path();
    // Mounted at `/docs`, a request for `/docs` arrives as `/`: the browser must be sent to
    // `/docs/` first, or the page's relative asset paths would resolve against `/`.
    let original_path = original.path();
    if (path.is_empty() || path == "/") && !original_path.ends_with('/') {
        let mut location = format!("{original_path}/");
        if let Some(query) = original.query() {
            location.push('?');
            location.push_str(query);
        }
        return redirect(&location);
    }
    let Some(segments) = safe_segments(path) else {
        return not_found();
    };
    let built = tokio::fs::metadata(site.root.join("index.html"))
        .await
        .is_ok_and(|m| m.is_file());
    if !built {
        if segments.is_empty() || segments == ["index.html"] {
            return not_built_response(&site.root, head);
        }
        return not_found();
    }
    let relative: PathBuf = if segments.is_empty() {
        PathBuf::from("index.html")
    } else {
        segments.iter().collect()
    };
    let Some((file, inside)) = contained_file(&site.root, &relative).await else {
        return not_found();
    };
    // ServeDir opens exactly the checked file: its path inside the directory, symbolic links
    // resolved, each segment escaped.
    let Some(uri) = encoded_uri(&inside) else {
        return not_found();
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let Ok(response) = site
        .files
        .clone()
        .oneshot(Request::from_parts(parts, body))
        .await;
    if response.status() == StatusCode::NOT_FOUND {
        return not_found();
    }
    let mut response = response.map(Body::new);
    let immutable = segments.first().is_some_and(|s| s == "assets");
    set_headers(&mut response, &file, immutable);
    response
}

/// `/a/b.js` for the relative path `a/b.js`, every byte but letters and digits escaped.
fn encoded_uri(relative: &Path) -> Option<Uri> {
    let mut path = String::new();
    for component in relative.components() {
        let Component::Normal(segment) = component else {
            return None;
        };
        path.push('/');
        path.extend(utf8_percent_encode(segment.to_str()?, NON_ALPHANUMERIC));
    }
    path.parse().ok()
}

/// The path's segments, percent-decoded, or `None` when any segment could leave the directory
/// or name a hidden file, or the path is not UTF-8. Empty segments (`a//b`, a trailing `/`) are
/// dropped. `percent-encoding` keeps a malformed escape (`%zz`) as it is, so a `%` left after
/// decoding is refused, together with the `%` that `%25` names: a built site has no such names.
fn safe_segments(path: &str) -> Option<Vec<String>> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        if segment.is_empty() {
            continue;
        }
        if segment.starts_with('.')
            || segment.contains(['\\', '\0', ':', '%'])
            || segment.chars().any(char::is_control)
        {
            return None;
        }
        segments.push(segment.to_owned());
    }
    Some(segments)
}

/// `root/relative` when it is a regular file whose real path (symbolic links resolved) is inside
/// the real `root`: that real path, and the same relative to the real `root`.
async fn contained_file(root: &Path, relative: &Path) -> Option<(PathBuf, PathBuf)> {
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let file = tokio::fs::canonicalize(root.join(relative)).await.ok()?;
    let inside = file.strip_prefix(&root).ok()?.to_path_buf();
    let metadata = tokio::fs::metadata(&file).await.ok()?;
    metadata.is_file().then_some((file, inside))
}

/// The `Content-Type` for a file of the site, by extension: core-db's
/// [`content_type`](core_db::storage::content_type), which stored files are served with too.
///
/// ```
/// use std::path::Path;
///
/// assert_eq!(core_docs::content_type(Path::new("assets/index.js")), "text/javascript; charset=utf-8");
/// assert_eq!(core_docs::content_type(Path::new("logo.PNG")), "image/png");
/// assert_eq!(core_docs::content_type(Path::new("notes")), "application/octet-stream");
/// ```
pub fn content_type(path: &Path) -> std::borrow::Cow<'static, str> {
    core_db::storage::content_type(&path.to_string_lossy())
}

/// The headers of every file the site sends: its type, how long it may be cached, and no
/// sniffing.
fn set_headers(response: &mut Response, path: &Path, immutable: bool) {
    let cache = if immutable {
        // Vite puts a content hash in every file name under assets/.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let headers = response.headers_mut();
    // A MIME type (with `; charset=utf-8`) is visible ASCII, always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&content_type(path)) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The page that says how to build the site, while it is not built.
fn not_built_response(root: &Path, head: bool) -> Response {
    let html = not_built_page(root);
    let length = html.len();
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(html))
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    set_headers(&mut response, Path::new("index.html"), false);
    response
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => not_found(),
    }
}

fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "Not found").into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The page served while the site has not been built.
fn not_built_page(root: &Path) -> String {
    let root = escape_html(&root.display().to_string());
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rustforge docs: not built yet</title>
<style>
  body {{ font: 16px/1.6 system-ui, sans-serif; max-width: 42rem; margin: 4rem auto; padding: 0 1rem; color: #1f2937; }}
  code, pre {{ font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }}
  pre {{ background: #111827; color: #f9fafb; padding: 1rem; border-radius: .5rem; overflow-x: auto; }}
</style>
</head>
<body>
<h1>The documentation site has not been built yet</h1>
<p>Build it from the workspace root (Node.js 20.19 or newer):</p>
<pre><code>{BUILD_COMMAND}</code></pre>
<p>Then reload this page. The site is served from <code>{root}</code>; set
<code>{DOCS_DIR_ENV}</code> to serve another directory.</p>
</body>
</html>
"#
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_refuse_traversal_and_hidden_files() {
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/.env",
            "/a/.git/config",
            "/a%5c..%5cb",
            "/a%00b",
            "/c:/x",
            "/%zz",
            "/%ff",
        ] {
            assert_eq!(safe_segments(bad), None, "{bad}");
        }
        assert_eq!(
            safe_segments("/assets//index-abc.js"),
            Some(vec!["assets".to_owned(), "index-abc.js".to_owned()])
        );
        assert_eq!(safe_segments("/"), Some(vec![]));
        assert_eq!(
            safe_segments("/a%20b.txt"),
            Some(vec!["a b.txt".to_owned()])
        );
    }

    #[test]
    fn a_percent_left_after_decoding_is_refused() {
        assert_eq!(safe_segments("/100%25.txt"), None);
        assert_eq!(safe_segments("/a%4"), None);
        assert_eq!(
            safe_segments("/assets%2Fx.js"),
            Some(vec!["assets".to_owned(), "x.js".to_owned()])
        );
    }

    #[test]
    fn env_value_overrides_the_default_dir() {
        assert_eq!(resolve_docs_dir(None), PathBuf::from(DEFAULT_DOCS_DIR));
        assert_eq!(
            resolve_docs_dir(Some(OsString::new())),
            PathBuf::from(DEFAULT_DOCS_DIR)
        );
        assert_eq!(
            resolve_docs_dir(Some(OsString::from("/srv/docs"))),
            PathBuf::from("/srv/docs")
        );
    }
}
