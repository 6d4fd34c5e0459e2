//! Standard Webhooks signing checked against a second implementation written from the spec, and
//! the sender against real receivers on `127.0.0.1`: what each answer becomes, timeouts, refusals
//! by the SSRF guard, connecting to the checked address, and TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use core_web::ssrf::{Class, Guard, Refused, StaticResolver};
use core_web::webhook::{self, Attempt, Message, Outcome, Secret, Sender, WebhookError, rustls};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use test_support::{Direction, Fault, FaultProxy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

// ---------------------------------------------------------------------------------------------
// A second implementation, from the spec's text: HMAC-SHA-256 keyed by the base64-decoded part
// of the secret after "whsec_", over "{id}.{timestamp}.{body}", base64, prefixed "v1,".

fn spec_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(&content);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1614265330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn signed_headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ] {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn the_spec_known_answer_is_reproduced_by_sign_and_by_the_second_implementation() {
    let secret = Secret::parse(SPEC_SECRET).unwrap();
    assert_eq!(
        webhook::sign(&secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_SIGNATURE
    );
    assert_eq!(
        spec_signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_SIGNATURE
    );
    let headers = signed_headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
    assert_eq!(
        webhook::verify(&secret, &headers, SPEC_BODY, SPEC_TIMESTAMP, 300),
        Ok(())
    );
}

#[test]
fn sign_agrees_with_the_second_implementation_on_random_secrets_and_bodies() {
    for i in 0..50usize {
        let secret = Secret::generate();
        let body: Vec<u8> = (0..i * 7).map(|b| ((b * 31) ^ i) as u8).collect();
        let id = format!("msg_{i}");
        let timestamp = 1_700_000_000 + i as i64 * 977;
        let ours = webhook::sign(&secret, &id, timestamp, &body);
        assert_eq!(ours, spec_signature(secret.expose(), &id, timestamp, &body));
        let headers = signed_headers(&id, &timestamp.to_string(), &ours);
        assert_eq!(
            webhook::verify(&secret, &headers, &body, timestamp, 0),
            Ok(())
        );
    }
}

#[test]
fn verify_rejects_what_was_not_signed_by_this_secret_at_this_time() {
    let secret = Secret::parse(SPEC_SECRET).unwrap();
    let other = Secret::generate();
    let ok = signed_headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
    let now = SPEC_TIMESTAMP;

    // Body, id or timestamp changed; another secret.
    assert_eq!(
        webhook::verify(&secret, &ok, br#"{"test": 2432232315}"#, now, 300),
        Err(WebhookError::NoMatchingSignature)
    );
    let other_id = signed_headers("msg_other", "1614265330", SPEC_SIGNATURE);
    assert_eq!(
        webhook::verify(&secret, &other_id, SPEC_BODY, now, 300),
        Err(WebhookError::NoMatchingSignature)
    );
    let other_time = signed_headers(SPEC_ID, "1614265331", SPEC_SIGNATURE);
    assert_eq!(
        webhook::verify(&secret, &other_time, SPEC_BODY, now, 300),
        Err(WebhookError::NoMatchingSignature)
    );
    assert_eq!(
        webhook::verify(&other, &ok, SPEC_BODY, now, 300),
        Err(WebhookError::NoMatchingSignature)
    );

    // Replays and clocks: outside the tolerance either way.
    assert_eq!(
        webhook::verify(&secret, &ok, SPEC_BODY, now + 300, 300),
        Ok(())
    );
    assert_eq!(
        webhook::verify(&secret, &ok, SPEC_BODY, now - 300, 300),
        Ok(())
    );
    assert_eq!(
        webhook::verify(&secret, &ok, SPEC_BODY, now + 301, 300),
        Err(WebhookError::TimestampTooOld)
    );
    assert_eq!(
        webhook::verify(&secret, &ok, SPEC_BODY, now - 301, 300),
        Err(WebhookError::TimestampTooNew)
    );

    // Missing or malformed headers.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut headers = ok.clone();
        headers.remove(name);
        assert_eq!(
            webhook::verify(&secret, &headers, SPEC_BODY, now, 300),
            Err(WebhookError::MissingHeader(name))
        );
    }
    let bad_time = signed_headers(SPEC_ID, "yesterday", SPEC_SIGNATURE);
    assert_eq!(
        webhook::verify(&secret, &bad_time, SPEC_BODY, now, 300),
        Err(WebhookError::InvalidTimestamp)
    );
    for junk in [
        "",
        "v1,",
        "v1,!!!",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v2,abc",
    ] {
        let headers = signed_headers(SPEC_ID, "1614265330", junk);
        assert_eq!(
            webhook::verify(&secret, &headers, SPEC_BODY, now, 300),
            Err(WebhookError::NoMatchingSignature),
            "{junk:?}"
        );
    }
    // A truncated signature must not match as a prefix.
    let truncated = signed_headers(SPEC_ID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJE");
    assert!(webhook::verify(&secret, &truncated, SPEC_BODY, now, 300).is_err());
}

#[test]
fn verify_accepts_any_one_of_several_signatures() {
    let secret = Secret::parse(SPEC_SECRET).unwrap();
    let old = Secret::generate();
    let old_sig = webhook::sign(&old, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
    // During a rotation the sender signs with both; other versions (v1a: ed25519) are skipped.
    let list = format!("v1a,bm90IGNoZWNrZWQ= {old_sig}  {SPEC_SIGNATURE} v1,garbage");
    let headers = signed_headers(SPEC_ID, "1614265330", &list);
    assert_eq!(
        webhook::verify(&secret, &headers, SPEC_BODY, SPEC_TIMESTAMP, 300),
        Ok(())
    );
    assert_eq!(
        webhook::verify(&old, &headers, SPEC_BODY, SPEC_TIMESTAMP, 300),
        Ok(())
    );
    let only_old = signed_headers(SPEC_ID, "1614265330", &old_sig);
    assert_eq!(
        webhook::verify(&secret, &only_old, SPEC_BODY, SPEC_TIMESTAMP, 300),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn generated_secrets_are_whsec_and_24_random_bytes() {
    let a = Secret::generate();
    let b = Secret::generate();
    assert_ne!(a.expose(), b.expose());
    for secret in [&a, &b] {
        let text = secret.expose();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(text.len(), "whsec_".len() + 32);
        assert_eq!(BASE64.decode(&text[6..]).unwrap().len(), 24);
        let again = Secret::parse(text).unwrap();
        assert_eq!(again.expose(), text);
        assert_eq!(
            webhook::sign(&again, "m", 1, b"x"),
            webhook::sign(secret, "m", 1, b"x")
        );
    }
}

#[test]
fn secrets_that_are_not_whsec_base64_of_24_to_64_bytes_are_refused() {
    assert_eq!(
        Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
        WebhookError::SecretPrefix
    );
    assert_eq!(Secret::parse("").unwrap_err(), WebhookError::SecretPrefix);
    assert_eq!(
        Secret::parse("whsec_not base64!").unwrap_err(),
        WebhookError::SecretEncoding
    );
    assert_eq!(
        Secret::parse(&format!("whsec_{}", BASE64.encode([7u8; 16]))).unwrap_err(),
        WebhookError::SecretLength { len: 16 }
    );
    assert_eq!(
        Secret::parse(&format!("whsec_{}", BASE64.encode([7u8; 65]))).unwrap_err(),
        WebhookError::SecretLength { len: 65 }
    );
    assert!(Secret::parse(&format!("whsec_{}", BASE64.encode([7u8; 64]))).is_ok());
    assert_eq!(
        "whsec_".parse::<Secret>().unwrap_err(),
        WebhookError::SecretLength { len: 0 }
    );
    let message = WebhookError::SecretLength { len: 16 }.to_string();
    assert!(message.contains("24 to 64 bytes"), "{message}");
}

#[test]
fn debug_never_shows_the_key() {
    let secret = Secret::parse(SPEC_SECRET).unwrap();
    let shown = format!("{secret:?} {:?}", vec![secret.clone()]);
    assert!(!shown.contains("MfKQ9r8G"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
    let sender = format!("{:?}", Sender::new(Guard::new()));
    assert!(sender.contains("Sender"), "{sender}");
}

// ---------------------------------------------------------------------------------------------
// Receivers on 127.0.0.1: a minimal HTTP/1.1 server (plain or TLS) that records each request and
// answers with a fixed response.

#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The TLS server name the client asked for.
    sni: Option<String>,
}

struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(response: String) -> Self {
        Self::start_on("127.0.0.1:0", response, None).await
    }

    async fn start_on(bind: &str, response: String, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(bind).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let received = received.clone();
            let accepted = accepted.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let received = received.clone();
                    let response = response.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => serve(stream, None, &response, &received).await,
                            Some(acceptor) => {
                                let Ok(stream) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let sni = stream.get_ref().1.server_name().map(str::to_owned);
                                serve(stream, sni, &response, &received).await;
                            }
                        }
                    });
                }
            }
        });
        Self {
            addr,
            received,
            accepted,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads one request (head and `content-length` body), records it, writes `response`, closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    sni: Option<String>,
    response: &str,
    received: &Mutex<Vec<Received>>,
) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    received.lock().unwrap().push(Received {
        request_line,
        headers,
        body,
        sni,
    });
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn reply(status: &str, headers: &[&str], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    out
}

fn ok() -> String {
    reply("200 OK", &[], "ok")
}

fn local_guard() -> Guard {
    Guard::new().allow(["127.0.0.0/8".parse().unwrap()])
}

const BODY: &[u8] = br#"{"type":"job.succeeded","data":{"job_id":"9343595d"}}"#;

fn message() -> Message<'static> {
    Message {
        id: "msg_2VYkqXrM5JzKcMx9",
        timestamp: 1_764_000_000,
        body: BODY,
    }
}

/// Every error an attempt reports is short and free of the secret and the signature.
fn assert_clean(attempt: &Attempt, secret: &Secret) {
    let shown = format!("{attempt:?}");
    let signature = webhook::sign(secret, message().id, message().timestamp, message().body);
    assert!(!shown.contains(secret.expose()), "{shown}");
    assert!(!shown.contains(&secret.expose()[6..]), "{shown}");
    assert!(!shown.contains(&signature[3..]), "{shown}");
    if let Outcome::Retry { error, .. } = &attempt.outcome {
        assert!(error.len() < 120, "{error}");
    }
}

fn retry_error(attempt: &Attempt) -> &str {
    match &attempt.outcome {
        Outcome::Retry { error, .. } => error,
        other => panic!("expected Retry, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_200_is_delivered_with_signed_headers_the_receiver_can_verify() {
    let receiver = Receiver::start(ok()).await;
    let secret = Secret::generate();
    let attempt = Sender::new(local_guard())
        .send(&receiver.url("/hooks/in?tenant=7"), &secret, &message())
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert_eq!(attempt.status, Some(200));

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(got.request_line, "POST /hooks/in?tenant=7 HTTP/1.1");
    assert_eq!(got.body, BODY);
    let h = &got.headers;
    assert_eq!(h["host"], receiver.addr.to_string().as_str());
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["webhook-id"], "msg_2VYkqXrM5JzKcMx9");
    assert_eq!(h["webhook-timestamp"], "1764000000");
    assert_eq!(
        h["user-agent"],
        concat!("Rustforge-Webhooks/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        h["webhook-signature"],
        spec_signature(secret.expose(), "msg_2VYkqXrM5JzKcMx9", 1_764_000_000, BODY).as_str()
    );
    assert_eq!(
        webhook::verify(&secret, h, &got.body, 1_764_000_100, 300),
        Ok(())
    );
    assert_clean(&attempt, &secret);
}

#[tokio::test]
async fn the_user_agent_can_be_set() {
    let receiver = Receiver::start(ok()).await;
    let attempt = Sender::new(local_guard())
        .with_user_agent("ForgeRun/2 (+https://forgerun.example)")
        .with_user_agent("bad\nvalue")
        .send(&receiver.url("/"), &Secret::generate(), &message())
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert_eq!(
        receiver.received()[0].headers["user-agent"],
        "ForgeRun/2 (+https://forgerun.example)"
    );
}

#[tokio::test]
async fn statuses_become_outcomes() {
    let secret = Secret::generate();
    let sender = Sender::new(local_guard());
    let cases = [
        (reply("204 No Content", &[], ""), Outcome::Delivered, 204),
        (
            reply("500 Internal Server Error", &[], "boom"),
            Outcome::Retry {
                retry_after: None,
                error: "HTTP 500".to_owned(),
            },
            500,
        ),
        (
            reply("503 Service Unavailable", &["retry-after: 7"], ""),
            Outcome::Retry {
                retry_after: Some(Duration::from_secs(7)),
                error: "HTTP 503".to_owned(),
            },
            503,
        ),
        (
            reply("429 Too Many Requests", &["retry-after: 999999"], ""),
            Outcome::Retry {
                retry_after: Some(webhook::MAX_RETRY_AFTER),
                error: "HTTP 429".to_owned(),
            },
            429,
        ),
        (
            reply("400 Bad Request", &[], ""),
            Outcome::Retry {
                retry_after: None,
                error: "HTTP 400".to_owned(),
            },
            400,
        ),
        (reply("410 Gone", &[], ""), Outcome::Gone, 410),
    ];
    for (response, expected, status) in cases {
        let receiver = Receiver::start(response).await;
        let attempt = sender.send(&receiver.url("/in"), &secret, &message()).await;
        assert_eq!(attempt.outcome, expected, "{status}");
        assert_eq!(attempt.status, Some(status));
        assert_eq!(receiver.received().len(), 1, "{status}");
        assert_clean(&attempt, &secret);
    }
}

#[tokio::test]
async fn a_receiver_that_hangs_up_or_answers_garbage_is_retried() {
    let secret = Secret::generate();
    let sender = Sender::new(local_guard());
    let huge_header = format!("x-filler: {}", "a".repeat(256 * 1024));
    for (response, expected) in [
        (String::new(), "connection closed before the response"),
        (
            "HTTP/1.1 200 OK\r\ncontent-le".to_owned(),
            "connection closed before the response",
        ),
        ("SMTP ready\r\n\r\n".to_owned(), "malformed HTTP response"),
        (
            reply("200 OK", &[&huge_header], ""),
            "response headers too large",
        ),
    ] {
        let receiver = Receiver::start(response).await;
        let attempt = sender.send(&receiver.url("/"), &secret, &message()).await;
        assert!(
            matches!(&attempt.outcome, Outcome::Retry { error, .. } if error == expected),
            "expected {expected:?}, got {attempt:?}"
        );
        assert_eq!(attempt.status, None);
        assert_eq!(receiver.received().len(), 1);
        assert_clean(&attempt, &secret);
    }
}

#[tokio::test]
async fn a_200_whose_body_never_ends_is_still_delivered() {
    // The receiver answers 200 and announces a body it never finishes sending: the attempt is
    // delivered (the answer came), reading the body only costs the time left.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&[b'x'; 200 * 1024]).await;
            held.push(stream);
        }
    });
    let attempt = Sender::new(local_guard())
        .with_timeout(Duration::from_millis(300))
        .send(&format!("http://{addr}/"), &Secret::generate(), &message())
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(attempt.status, Some(200));
    server.abort();
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let target = Receiver::start(ok()).await;
    let location = format!("location: {}", target.url("/elsewhere"));
    let redirecting = Receiver::start(reply("302 Found", &[&location], "")).await;
    let secret = Secret::generate();
    let attempt = Sender::new(local_guard())
        .send(&redirecting.url("/in"), &secret, &message())
        .await;
    assert_eq!(attempt.status, Some(302));
    assert_eq!(retry_error(&attempt), "redirect (302) not followed");
    assert_eq!(redirecting.received().len(), 1);
    assert_eq!(target.accepted.load(Ordering::SeqCst), 0);
    assert!(target.received().is_empty());
    assert_clean(&attempt, &secret);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_cut_off_at_the_timeout() {
    // The request reaches the receiver; its answer is held up on the way back.
    let receiver = Receiver::start(ok()).await;
    let proxy = FaultProxy::start(&receiver.addr.to_string()).await.unwrap();
    proxy.set(Direction::Downstream, Fault::Delay(Duration::from_secs(60)));
    let secret = Secret::generate();
    let sender = Sender::new(local_guard()).with_timeout(Duration::from_millis(300));
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send(&format!("http://{}/in", proxy.addr()), &secret, &message()),
    )
    .await
    .expect("the sender's own timeout ends the call");
    assert_eq!(retry_error(&attempt), "timed out after 300ms");
    assert_eq!(attempt.status, None);
    assert!(
        attempt.duration >= Duration::from_millis(300),
        "{attempt:?}"
    );
    assert_eq!(receiver.received().len(), 1, "the request went through");
    assert_clean(&attempt, &secret);
}

#[tokio::test]
async fn a_receiver_that_accepts_and_never_reads_is_cut_off_at_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let sender = Sender::new(local_guard()).with_timeout(Duration::from_millis(300));
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send(&format!("http://{addr}/"), &Secret::generate(), &message()),
    )
    .await
    .expect("the sender's own timeout ends the call");
    assert_eq!(retry_error(&attempt), "timed out after 300ms");
    holder.abort();
}

#[tokio::test]
async fn a_receiver_that_never_accepts_is_cut_off_at_the_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let _filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    let probe = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(probe.is_err(), "the accept queue is full: connecting hangs");
    let sender = Sender::new(local_guard()).with_timeout(Duration::from_millis(300));
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send(&format!("http://{addr}/"), &Secret::generate(), &message()),
    )
    .await
    .expect("the sender's own timeout ends the call");
    assert_eq!(retry_error(&attempt), "timed out after 300ms");
    drop(listener);
}

#[tokio::test]
async fn a_closed_port_is_retried_without_waiting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let sender = Sender::new(local_guard()).with_timeout(Duration::from_secs(30));
    let attempt = sender
        .send(&format!("http://{addr}/"), &Secret::generate(), &message())
        .await;
    assert_eq!(retry_error(&attempt), "connection refused");
    assert_eq!(attempt.status, None);
}

#[tokio::test]
async fn loopback_is_refused_unless_allowed() {
    let receiver = Receiver::start(ok()).await;
    let attempt = Sender::new(Guard::new())
        .send(&receiver.url("/"), &Secret::generate(), &message())
        .await;
    assert!(
        matches!(
            attempt.outcome,
            Outcome::Refused(Refused::Forbidden {
                class: Class::Loopback,
                ..
            })
        ),
        "{attempt:?}"
    );
    assert_eq!(attempt.status, None);
    assert_eq!(receiver.accepted.load(Ordering::SeqCst), 0);
    for url in [
        "ftp://example.com/",
        "https://user:pw@example.com/",
        "not a url",
    ] {
        let attempt = Sender::new(Guard::new())
            .send(url, &Secret::generate(), &message())
            .await;
        assert!(
            matches!(attempt.outcome, Outcome::Refused(_)),
            "{url}: {attempt:?}"
        );
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_before_any_connection() {
    let receiver = Receiver::start(ok()).await;
    let proxy = FaultProxy::start(&receiver.addr.to_string()).await.unwrap();
    let resolver = StaticResolver::new().with("hooks.test", ["127.0.0.1".parse().unwrap()]);
    let attempt = Sender::new(Guard::new().with_resolver(resolver))
        .send(
            &format!("http://hooks.test:{}/in", proxy.port()),
            &Secret::generate(),
            &message(),
        )
        .await;
    assert!(
        matches!(
            attempt.outcome,
            Outcome::Refused(Refused::Forbidden {
                class: Class::Loopback,
                ..
            })
        ),
        "{attempt:?}"
    );
    tokio::task::yield_now().await;
    assert_eq!(proxy.accepted(), 0);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried() {
    let attempt = Sender::new(Guard::new().with_resolver(StaticResolver::new()))
        .send("https://nowhere.test/in", &Secret::generate(), &message())
        .await;
    assert_eq!(retry_error(&attempt), "nowhere.test does not resolve");
}

#[tokio::test]
async fn a_name_is_reached_at_the_address_the_guard_checked_with_its_own_host_header() {
    // "hooks.test" exists only in the guard's resolver: the system resolver knows nothing of
    // it, so the connection can only have gone to the address the guard checked.
    let receiver = Receiver::start(ok()).await;
    let resolver = StaticResolver::new().with("hooks.test", ["127.0.0.1".parse().unwrap()]);
    let port = receiver.addr.port();
    let attempt = Sender::new(local_guard().with_resolver(resolver.clone()))
        .send(
            &format!("http://hooks.test:{port}/in"),
            &Secret::generate(),
            &message(),
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].headers["host"],
        format!("hooks.test:{port}").as_str()
    );

    // Rebinding: the name now points at an address the guard forbids; nothing is sent.
    resolver.set("hooks.test", ["10.0.0.7".parse().unwrap()]);
    let attempt = Sender::new(local_guard().with_resolver(resolver))
        .send(
            &format!("http://hooks.test:{port}/in"),
            &Secret::generate(),
            &message(),
        )
        .await;
    assert!(
        matches!(
            attempt.outcome,
            Outcome::Refused(Refused::Forbidden {
                class: Class::Private,
                ..
            })
        ),
        "{attempt:?}"
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn the_checked_addresses_are_tried_in_order_until_one_accepts() {
    // 127.0.0.2 has nothing on the port (refused); 127.0.0.1 has the receiver.
    let receiver = Receiver::start(ok()).await;
    let resolver = StaticResolver::new().with(
        "hooks.test",
        ["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()],
    );
    let attempt = Sender::new(local_guard().with_resolver(resolver))
        .send(
            &format!("http://hooks.test:{}/", receiver.addr.port()),
            &Secret::generate(),
            &message(),
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn an_address_that_never_accepts_does_not_use_up_the_attempt() {
    // 127.0.0.2 has a listener with a full accept queue (connecting hangs) on the receiver's port.
    let receiver = Receiver::start(ok()).await;
    let port = receiver.addr.port();
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, 2], port)))
        .unwrap();
    let hung = socket.listen(0).unwrap();
    let _filler = tokio::net::TcpStream::connect(hung.local_addr().unwrap())
        .await
        .unwrap();
    let resolver = StaticResolver::new().with(
        "hooks.test",
        ["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()],
    );
    let attempt = Sender::new(local_guard().with_resolver(resolver))
        .with_timeout(Duration::from_secs(2))
        .send(
            &format!("http://hooks.test:{port}/"),
            &Secret::generate(),
            &message(),
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(receiver.received().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// TLS: a receiver with a certificate for "hooks.test" issued by a test CA (tests/fixtures).

const TEST_CA: &[u8] = include_bytes!("fixtures/webhook/ca.der");
const TEST_CERT: &[u8] = include_bytes!("fixtures/webhook/hooks.test.der");
const TEST_KEY: &[u8] = include_bytes!("fixtures/webhook/hooks.test.key.der");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_acceptor() -> TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(TEST_KEY.to_vec()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(TEST_CERT.to_vec())], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn trusting_test_ca() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(TEST_CA.to_vec()))
        .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn tls_receiver() -> (Receiver, StaticResolver) {
    let receiver = Receiver::start_on("127.0.0.1:0", ok(), Some(tls_acceptor())).await;
    let resolver = StaticResolver::new()
        .with("hooks.test", ["127.0.0.1".parse().unwrap()])
        .with("other.test", ["127.0.0.1".parse().unwrap()]);
    (receiver, resolver)
}

#[tokio::test]
async fn https_is_delivered_to_a_trusted_certificate_for_the_url_host() {
    let (receiver, resolver) = tls_receiver().await;
    let secret = Secret::generate();
    let port = receiver.addr.port();
    let attempt = Sender::new(local_guard().with_resolver(resolver))
        .with_tls_config(trusting_test_ca())
        .send(
            &format!("https://hooks.test:{port}/in"),
            &secret,
            &message(),
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sni.as_deref(), Some("hooks.test"));
    assert_eq!(
        got[0].headers["host"],
        format!("hooks.test:{port}").as_str()
    );
    assert_eq!(
        webhook::verify(
            &secret,
            &got[0].headers,
            &got[0].body,
            message().timestamp,
            0
        ),
        Ok(())
    );
}

#[tokio::test]
async fn https_refuses_a_certificate_for_another_name_or_from_an_unknown_issuer() {
    let (receiver, resolver) = tls_receiver().await;
    let port = receiver.addr.port();
    let secret = Secret::generate();
    // The certificate is for hooks.test, not other.test.
    let attempt = Sender::new(local_guard().with_resolver(resolver.clone()))
        .with_tls_config(trusting_test_ca())
        .send(
            &format!("https://other.test:{port}/in"),
            &secret,
            &message(),
        )
        .await;
    let error = retry_error(&attempt);
    assert!(error.starts_with("TLS handshake failed"), "{error}");
    assert_clean(&attempt, &secret);
    // The system's roots do not know the test CA (or there are none on this machine).
    let attempt = Sender::new(local_guard().with_resolver(resolver))
        .send(
            &format!("https://hooks.test:{port}/in"),
            &secret,
            &message(),
        )
        .await;
    let error = retry_error(&attempt);
    assert!(
        error.starts_with("TLS handshake failed") || error.contains("root certificates"),
        "{error}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn https_to_a_plain_http_receiver_fails_cleanly() {
    // A server that answers in plain HTTP at once, whatever it is sent.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(ok().as_bytes()).await;
        }
    });
    let secret = Secret::generate();
    let attempt = Sender::new(local_guard())
        .with_tls_config(trusting_test_ca())
        .send(
            &format!("https://127.0.0.1:{}/", addr.port()),
            &secret,
            &message(),
        )
        .await;
    let error = retry_error(&attempt);
    assert!(error.starts_with("TLS handshake failed"), "{error}");
    assert_eq!(attempt.status, None);
    assert_clean(&attempt, &secret);
    server.abort();
}
