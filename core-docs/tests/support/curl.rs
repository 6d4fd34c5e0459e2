//! The curl commands the site shows (`snippets/shell/requests.sh`), turned into the requests
//! curl would send, so a test sends exactly what a reader would type to the snippet's router.
//!
//! Only what the pages use is understood; anything else (an unknown option, a shell variable, a
//! URL that curl would glob without `-g`) fails the test rather than being guessed at.

use axum::body::Body;
use axum::http::Request;

/// The requests of region `name` of `snippets/shell/requests.sh`, in order. `files` gives the
/// content of each file a `-F field=@file` uploads.
pub fn requests(name: &str, files: &[(&str, &[u8])]) -> Vec<Request<Body>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/snippets/shell/requests.sh");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let commands = commands(&region(&text, name));
    assert!(!commands.is_empty(), "{path}: region {name} has no command");
    commands
        .iter()
        .map(|command| parse(command, files).unwrap_or_else(|e| panic!("{path}: `{command}`: {e}")))
        .collect()
}

/// The single request of region `name`.
pub fn request(name: &str) -> Request<Body> {
    let mut all = requests(name, &[]);
    assert_eq!(all.len(), 1, "region {name} has one command");
    all.remove(0)
}

/// The lines between `# region: NAME` and `# endregion: NAME`, without marker lines.
pub fn region(text: &str, name: &str) -> String {
    let marker = |line: &str, kind: &str| {
        line.trim()
            .strip_prefix('#')
            .and_then(|rest| rest.trim().strip_prefix(kind))
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|rest| rest.trim().to_owned())
    };
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if marker(line, "region").as_deref() == Some(name) {
            inside = true;
        } else if marker(line, "endregion").as_deref() == Some(name) {
            return lines.join("\n");
        } else if inside && marker(line, "region").is_none() && marker(line, "endregion").is_none()
        {
            lines.push(line);
        }
    }
    panic!("no region {name} (or no endregion)");
}

/// The commands of a shell text: continuation lines joined, comments and blank lines dropped.
pub fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "a command ends with `\\`: {current}");
    out
}

/// Splits a command line into words as the shell does, for the quoting the pages use: single
/// quotes, double quotes (with `\"` and `\\`), backslash escapes. Expansions (`$`, backquotes)
/// and globs are refused, as is an unquoted `#` (a comment after the command).
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c @ ('$' | '`')) => return Err(format!("`{c}` expands in \"…\"")),
                        Some(c) => w.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                let next = chars.next().ok_or("a trailing backslash")?;
                word.get_or_insert_with(String::new).push(next);
            }
            '$' | '`' | '*' | '?' | '[' | '|' | '&' | ';' | '<' | '>' | '(' | ')' => {
                return Err(format!("unquoted `{c}`"));
            }
            '#' if word.is_none() => break,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

/// The request `curl` sends for `command` (a `curl …` line): method, path and query, headers
/// (with curl's `accept: */*` and `host`), and the body of `-d` or `-F`.
pub fn parse(command: &str, files: &[(&str, &[u8])]) -> Result<Request<Body>, String> {
    let words = words(command)?;
    let (program, args) = words.split_first().ok_or("an empty command")?;
    if program != "curl" {
        return Err(format!("`{program}` is not curl"));
    }
    let mut method: Option<String> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut data: Option<String> = None;
    let mut form: Vec<(String, String)> = Vec::new();
    let mut globoff = false;
    let mut url: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |option: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{option} needs a value"))
        };
        match arg.as_str() {
            "-X" | "--request" => method = Some(value(arg)?),
            "-H" | "--header" => {
                let header = value(arg)?;
                let (name, v) = header
                    .split_once(':')
                    .ok_or_else(|| format!("header `{header}` has no `:`"))?;
                headers.push((name.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            "-d" | "--data" | "--data-raw" => data = Some(value(arg)?),
            "-F" | "--form" => {
                let field = value(arg)?;
                let (name, v) = field
                    .split_once('=')
                    .ok_or_else(|| format!("form field `{field}` has no `=`"))?;
                form.push((name.to_owned(), v.to_owned()));
            }
            "--max-time" | "-m" => {
                value(arg)?;
            }
            "-g" | "--globoff" => globoff = true,
            "-sg" | "-gs" => globoff = true,
            // Output options: they change what curl prints, not what it sends.
            "-s" | "--silent" | "-S" | "--show-error" | "-sS" | "-f" | "--fail" | "-i"
            | "--include" | "-N" | "--no-buffer" | "-fsS" | "-sN" => {}
            option if option.starts_with('-') => return Err(format!("unknown option {option}")),
            positional => {
                if url.replace(positional.to_owned()).is_some() {
                    return Err("two URLs".into());
                }
            }
        }
    }
    let url = url.ok_or("no URL")?;
    if !globoff && url.contains(['[', ']', '{', '}']) {
        return Err(format!(
            "curl reads `[…]` and `{{…}}` in {url} as a glob pattern (and fails); add -g"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(&url)
        .strip_prefix("localhost:3000")
        .ok_or_else(|| format!("{url} is not on localhost:3000, where the example app serves"))?;
    let target = if rest.is_empty() { "/" } else { rest };

    let mut body = Vec::new();
    if let Some(data) = data {
        if !form.is_empty() {
            return Err("both -d and -F".into());
        }
        method.get_or_insert_with(|| "POST".into());
        if !headers.iter().any(|(name, _)| name == "content-type") {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        body = data.into_bytes();
    } else if !form.is_empty() {
        method.get_or_insert_with(|| "POST".into());
        let boundary = "------------------------rustforgedocs";
        for (name, value) in &form {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            if let Some(file) = value.strip_prefix('@') {
                let content = files
                    .iter()
                    .find(|(f, _)| *f == file)
                    .map(|(_, content)| *content)
                    .ok_or_else(|| format!("the test gives no content for {file}"))?;
                // curl's guess from the extension, for the types the pages upload.
                let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
                    Some("png") => "image/png",
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("txt") => "text/plain",
                    _ => "application/octet-stream",
                };
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(content);
            } else {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        headers.push((
            "content-type".into(),
            format!("multipart/form-data; boundary={boundary}"),
        ));
    }
    let mut builder = Request::builder()
        .method(method.as_deref().unwrap_or("GET"))
        .uri(target)
        .header("host", "localhost:3000");
    if !headers.iter().any(|(name, _)| name == "accept") {
        builder = builder.header("accept", "*/*");
    }
    for (name, value) in &headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(body)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_lines_become_requests() {
        let request = parse(
            r#"curl -s -X POST localhost:3000/a -H 'content-type: application/json' -d '{"x": 1}'"#,
            &[],
        )
        .expect("parses");
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri(), "/a");
        assert_eq!(request.headers()["content-type"], "application/json");

        let request = parse("curl -sg 'localhost:3000/b?filter[x]=1'", &[]).expect("parses");
        assert_eq!(request.uri(), "/b?filter[x]=1");

        for wrong in [
            "curl -s 'localhost:3000/b?filter[x]=1'",
            "curl -s localhost:3000/b -H \"authorization: Bearer $KEY\"",
            "curl --unknown localhost:3000/",
            "curl -s example.com/",
            "wget localhost:3000/",
        ] {
            assert!(parse(wrong, &[]).is_err(), "{wrong}");
        }
    }
}
