//! Outbound webhooks signed the [Standard Webhooks](https://www.standardwebhooks.com/) way, and a
//! sender hardened against server-side request forgery.
//!
//! **Signing.** Every message carries three headers: `webhook-id` (unique per message, the same
//! on every retry, so receivers can drop duplicates), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA-256 of `{id}.{timestamp}.{body}` keyed by
//! the secret's decoded bytes ([`sign`]). A [`Secret`] is `whsec_` and base64 of 24 random bytes
//! ([`Secret::generate`]); show it to the client once, store it, and [`Secret::parse`] it back.
//! [`verify`] is the receiver's side: it accepts any one of several space-separated
//! signatures (so a secret can be rotated), compares in constant time, and rejects timestamps
//! outside a tolerance (replays).
//!
//! **Sending.** [`Sender::send`] POSTs one [`Message`] and says what became of it
//! ([`Attempt`], [`Outcome`]): delivered on a 2xx, gone on a 410, to be retried on anything else
//! (redirects are not followed), refused when the URL is not allowed. It checks the URL with the
//! [`ssrf::Guard`](crate::ssrf::Guard) at every send and connects to the addresses the guard
//! checked, never to the name again, so a name that resolves to a public address at registration
//! and to `127.0.0.1` later (DNS rebinding) cannot reach the server's own network. One timeout
//! (15 s by default) covers resolving, connecting, the TLS handshake, sending and the response
//! headers; at most 64 KiB of the response body is read, then the connection is closed.
//!
//! HTTP/1.1 only; `https` by rustls (ring) against the system's root certificates, or the
//! roots of [`Sender::with_tls_config`].
//!
//! ```
//! use core_web::webhook::{self, Message, Secret};
//!
//! let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let signature = webhook::sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! // The receiver's check.
//! let message = Message { id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body };
//! let headers = message.headers(&secret).unwrap();
//! assert!(webhook::verify(&secret, &headers, body, 1614265330 + 10, 300).is_ok());
//! assert!(webhook::verify(&secret, &headers, b"{}", 1614265330, 300).is_err());
//! ```
//!
//! Sending (the receiver here is public, so the default guard lets it through):
//!
//! ```no_run
//! # async fn example() {
//! use core_web::ssrf::Guard;
//! use core_web::webhook::{Message, Outcome, Secret, Sender};
//!
//! let sender = Sender::new(Guard::new());
//! let secret = Secret::generate();
//! let message = Message { id: "msg_2b1f", timestamp: 1_700_000_000, body: br#"{"type":"job.succeeded"}"# };
//! let attempt = sender.send("https://hooks.example.com/in", &secret, &message).await;
//! match attempt.outcome {
//!     Outcome::Delivered => {}
//!     Outcome::Gone => { /* disable the webhook */ }
//!     Outcome::Retry { retry_after, error } => { /* schedule another attempt */ }
//!     Outcome::Refused(why) => { /* tell the client the URL is not allowed */ }
//! }
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::{Host, Position, Url};

use crate::ssrf::{Guard, Refused};

/// The rustls crate the sender uses, for [`Sender::with_tls_config`].
pub use tokio_rustls::rustls;

/// The `webhook-id` header: the message's id, the same on every attempt.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// The `webhook-timestamp` header: when the message was sent, in Unix seconds.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// The `webhook-signature` header: space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// What a secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// The fewest key bytes a [`Secret`] may have (the spec's lower bound).
pub const MIN_SECRET_BYTES: usize = 24;
/// The most key bytes a [`Secret`] may have (the spec's upper bound).
pub const MAX_SECRET_BYTES: usize = 64;
/// How many key bytes [`Secret::generate`] draws.
const GENERATED_SECRET_BYTES: usize = 24;

/// How much of a response body [`Sender::send`] reads before closing the connection.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// The longest `Retry-After` [`Sender::send`] passes on: one hour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

type HmacSha256 = Hmac<Sha256>;

/// Why a secret or a received webhook was rejected. Messages never show a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The secret does not start with `whsec_`.
    #[error("the webhook secret must start with \"whsec_\"")]
    SecretPrefix,
    /// The part after `whsec_` is not standard base64.
    #[error("the webhook secret is not valid base64 after \"whsec_\"")]
    SecretEncoding,
    /// The secret decodes to too few or too many bytes.
    #[error(
        "the webhook secret must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len}"
    )]
    SecretLength {
        /// How many bytes it decodes to.
        len: usize,
    },
    /// A `webhook-*` header is missing (or is not visible ASCII).
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("the webhook-timestamp header is not a Unix timestamp")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance allows (a replay, or a clock far behind).
    #[error("the webhook timestamp is too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance allows.
    #[error("the webhook timestamp is too far in the future")]
    TimestampTooNew,
    /// No `v1` signature in `webhook-signature` matches the message.
    #[error("no webhook signature matches")]
    NoMatchingSignature,
}

/// A webhook signing secret: `whsec_` followed by base64 of 24 to 64 key bytes.
///
/// `Debug` shows no part of the key. [`expose`](Self::expose) gives the `whsec_` string, to show
/// to the client once and to store.
#[derive(Clone)]
pub struct Secret {
    text: String,
    key: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_<redacted>)")
    }
}

impl Secret {
    /// A new secret: `whsec_` and base64 of 24 bytes from the operating system's random source
    /// (38 characters in all).
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rand::Rng::fill(&mut rand::rng(), key.as_mut_slice());
        let text = format!("{SECRET_PREFIX}{}", BASE64.encode(&key));
        Self { text, key }
    }

    /// Reads a secret written by [`expose`](Self::expose) (or by another Standard Webhooks
    /// implementation): `whsec_` and standard base64 of 24 to 64 bytes. Surrounding whitespace
    /// is ignored.
    ///
    /// # Errors
    /// [`WebhookError::SecretPrefix`], [`WebhookError::SecretEncoding`] or
    /// [`WebhookError::SecretLength`].
    pub fn parse(s: &str) -> Result<Self, WebhookError> {
        let s = s.trim();
        let encoded = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookError::SecretPrefix)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| WebhookError::SecretEncoding)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(WebhookError::SecretLength { len: key.len() });
        }
        Ok(Self {
            text: s.to_owned(),
            key,
        })
    }

    /// The `whsec_…` string: show it to the client once, store it, read it back with
    /// [`parse`](Self::parse). Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    fn mac(&self, msg_id: &str, timestamp: i64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac
    }
}

impl std::str::FromStr for Secret {
    type Err = WebhookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `webhook-signature` value for a message: `v1,` and the base64 HMAC-SHA-256 of
/// `{msg_id}.{timestamp}.{body}`, keyed by the secret's decoded bytes.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac(msg_id, timestamp);
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Checks a received webhook: `webhook-id`, `webhook-timestamp` and `webhook-signature` from
/// `headers`, the raw `body` as received (before any JSON parsing), `now` in Unix seconds.
///
/// Passes when the timestamp is within `tolerance_secs` of `now` either way (the spec suggests
/// 5 minutes: 300) and any one `v1,` signature of the space-separated list matches. Signatures
/// are compared in constant time; entries of other versions are skipped.
///
/// # Errors
/// [`WebhookError::MissingHeader`], [`WebhookError::InvalidTimestamp`],
/// [`WebhookError::TimestampTooOld`], [`WebhookError::TimestampTooNew`] or
/// [`WebhookError::NoMatchingSignature`].
pub fn verify(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingHeader(name))
    };
    let msg_id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::InvalidTimestamp)?;
    let tolerance = tolerance_secs.max(0);
    if timestamp < now.saturating_sub(tolerance) {
        return Err(WebhookError::TimestampTooOld);
    }
    if timestamp > now.saturating_add(tolerance) {
        return Err(WebhookError::TimestampTooNew);
    }
    let mut mac = secret.mac(msg_id, timestamp);
    mac.update(body);
    let matched = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|sig| BASE64.decode(sig).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matched {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

/// One webhook message: its id (the same on every attempt), when it was sent (Unix seconds; the
/// spec wants the time of this attempt) and the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Unique per message (such as `msg_` and a UUID); receivers drop repeats by it.
    pub id: &'a str,
    /// Unix seconds, signed with the body.
    pub timestamp: i64,
    /// The JSON body, sent as is.
    pub body: &'a [u8],
}

impl Message<'_> {
    /// The three `webhook-*` headers for this message signed with `secret`.
    ///
    /// # Errors
    /// When the id is not a valid header value (control characters, non-ASCII).
    pub fn headers(&self, secret: &Secret) -> Result<HeaderMap, http::header::InvalidHeaderValue> {
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(WEBHOOK_ID, HeaderValue::from_str(self.id)?);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(self.timestamp));
        let signature = sign(secret, self.id, self.timestamp, self.body);
        let mut signature = HeaderValue::from_str(&signature)?;
        signature.set_sensitive(true);
        headers.insert(WEBHOOK_SIGNATURE, signature);
        Ok(headers)
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx within the timeout.
    Delivered,
    /// The receiver answered 410 Gone: it wants no more messages. Disable the webhook.
    Gone,
    /// Not delivered; try again later. Any other status (3xx too: redirects are not followed),
    /// a timeout, a connection or TLS error, a name that does not resolve now.
    Retry {
        /// The receiver's `Retry-After` (seconds or an HTTP date), at most
        /// [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
        /// What went wrong, short: `"HTTP 500"`, `"timed out after 15s"`,
        /// `"connection refused"`, `"redirect (302) not followed"`. Never the secret nor the
        /// signature.
        error: String,
    },
    /// The URL or one of its addresses is not allowed by the guard: nothing was sent. Not worth
    /// retrying until the URL or the guard changes.
    Refused(Refused),
}

/// One delivery attempt: its [`Outcome`], the status the receiver answered (if it answered) and
/// how long the attempt took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What became of it.
    pub outcome: Outcome,
    /// The response status, when a response came.
    pub status: Option<u16>,
    /// From the call to its end (the guard's check included).
    pub duration: Duration,
}

/// Sends webhooks: one POST per call, over a connection of its own to an address the
/// [`Guard`] checked at that moment. Cheap to clone.
#[derive(Clone)]
#[must_use]
pub struct Sender {
    guard: Guard,
    timeout: Duration,
    user_agent: HeaderValue,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("guard", &self.guard)
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("custom_tls", &self.tls.is_some())
            .finish()
    }
}

/// The sender's error before it becomes an [`Outcome`].
enum Failure {
    Refused(Refused),
    Retry(String),
}

impl Sender {
    /// How long one attempt may take by default: 15 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

    /// A sender that checks every URL with `guard`, with the default timeout, the default
    /// user agent (`Rustforge-Webhooks/<version>`) and the system's root certificates.
    pub fn new(guard: Guard) -> Self {
        Self {
            guard,
            timeout: Self::DEFAULT_TIMEOUT,
            user_agent: HeaderValue::from_static(concat!(
                "Rustforge-Webhooks/",
                env!("CARGO_PKG_VERSION")
            )),
            tls: None,
        }
    }

    /// The whole attempt (resolving, connecting, TLS, sending, the response headers) must end
    /// within `timeout`, or it is a [`Outcome::Retry`] "timed out after …".
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `user-agent` header. A value that is not a valid header value (control characters)
    /// is ignored and the previous one kept.
    pub fn with_user_agent(mut self, ua: &str) -> Self {
        match HeaderValue::from_str(ua) {
            Ok(value) => self.user_agent = value,
            Err(_) => tracing::warn!("webhook user agent ignored: not a valid header value"),
        }
        self
    }

    /// TLS settings for `https` URLs instead of rustls with ring and the system's root
    /// certificates: a private CA, client certificates. The ALPN list is replaced by
    /// `http/1.1`, the only protocol the sender speaks.
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(Arc::new(config));
        self
    }

    /// The timeout of one attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `message` to `url`, signed with `secret`, and says what became of it. Never
    /// panics, never takes (much) longer than the timeout; see [`Outcome`] for what each result
    /// means.
    ///
    /// The URL is checked by the guard now, and the connection goes to the addresses it
    /// checked, tried in order until one accepts. Headers: `content-type: application/json`,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, `user-agent`, `host` (the URL's
    /// host and port), `connection: close`.
    pub async fn send(&self, url: &str, secret: &Secret, message: &Message<'_>) -> Attempt {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let exchanged =
            tokio::time::timeout_at(deadline, self.exchange(url, secret, message, deadline)).await;
        let (outcome, status) = match exchanged {
            Err(_) => (retry(self.timed_out()), None),
            Ok(Err(Failure::Refused(why))) => (Outcome::Refused(why), None),
            Ok(Err(Failure::Retry(error))) => (retry(error), None),
            Ok(Ok((status, headers))) => (outcome_of(status, &headers), Some(status.as_u16())),
        };
        Attempt {
            outcome,
            status,
            duration: started.elapsed(),
        }
    }

    fn timed_out(&self) -> String {
        format!(
            "timed out after {}",
            humantime::format_duration(self.timeout)
        )
    }

    /// Checks, connects, sends and returns the response's status and headers. The response body
    /// is drained (bounded, until `deadline`) before returning.
    async fn exchange(
        &self,
        url: &str,
        secret: &Secret,
        message: &Message<'_>,
        deadline: Instant,
    ) -> Result<(StatusCode, HeaderMap), Failure> {
        let (url, addrs) = match self.guard.check(url).await {
            Ok(checked) => checked,
            // A name that does not resolve now may resolve later: not a verdict on the URL.
            Err(why @ Refused::Unresolvable { .. }) => return Err(Failure::Retry(why.to_string())),
            Err(why) => return Err(Failure::Refused(why)),
        };
        let request = build_request(&url, secret, message, &self.user_agent)?;
        let tcp = connect(&addrs, deadline).await?;
        if url.scheme() == "https" {
            let config = match &self.tls {
                Some(config) => config.clone(),
                None => default_tls().map_err(|e| Failure::Retry(e.to_owned()))?,
            };
            let name = server_name(&url)?;
            let tls = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Retry(format!("TLS handshake failed: {}", tls_error(&e))))?;
            http1_exchange(tls, request, deadline).await
        } else {
            http1_exchange(tcp, request, deadline).await
        }
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        retry_after: None,
        error,
    }
}

/// The outcome a response with `status` and `headers` stands for.
fn outcome_of(status: StatusCode, headers: &HeaderMap) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    if status == StatusCode::GONE {
        return Outcome::Gone;
    }
    let error = if status.is_redirection() {
        format!("redirect ({}) not followed", status.as_u16())
    } else {
        format!("HTTP {}", status.as_u16())
    };
    Outcome::Retry {
        retry_after: retry_after(headers, SystemTime::now()),
        error,
    }
}

/// `Retry-After` as a delay: delay-seconds or an HTTP date (a date past is no delay), at most
/// [`MAX_RETRY_AFTER`]. `None` when absent or unreadable.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only an overflow fails, and that is longer than the cap anyway.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

fn build_request(
    url: &Url,
    secret: &Secret,
    message: &Message<'_>,
    user_agent: &HeaderValue,
) -> Result<Request<Full<Bytes>>, Failure> {
    let invalid = |what: &str| Failure::Retry(format!("{what} is not a valid header value"));
    let signed = message
        .headers(secret)
        .map_err(|_| invalid("the message id"))?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let host = HeaderValue::from_str(&host).map_err(|_| invalid("the host"))?;
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let target = if target.is_empty() { "/" } else { target };
    let mut request = Request::post(target)
        .body(Full::new(Bytes::copy_from_slice(message.body)))
        .map_err(|_| Failure::Retry("the URL's path is not a valid request target".to_owned()))?;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(message.body.len()));
    headers.insert(USER_AGENT, user_agent.clone());
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    headers.extend(signed);
    Ok(request)
}

/// Connects to the first of `addrs` that accepts. Each address but the last gets an equal share
/// of the time left, so one that never answers does not use up the attempt.
async fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Failure> {
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let others = addrs.len() - i - 1;
        let connected = if others == 0 {
            // The last one has all the time left: the attempt's own timeout ends it.
            TcpStream::connect(addr).await
        } else {
            let left = deadline.saturating_duration_since(Instant::now());
            let share = left / u32::try_from(others + 1).unwrap_or(u32::MAX);
            tokio::time::timeout(share, TcpStream::connect(addr))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        };
        match connected {
            Ok(stream) => {
                // Only latency is affected if this fails.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(connect_error(&e)),
        }
    }
    Err(Failure::Retry(
        last.unwrap_or_else(|| "no address to connect to".to_owned()),
    ))
}

fn connect_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        _ => format!("connection failed: {e}"),
    }
}

fn server_name(url: &Url) -> Result<ServerName<'static>, Failure> {
    match url.host() {
        Some(Host::Domain(name)) => ServerName::try_from(name.to_owned())
            .map_err(|_| Failure::Retry("the host is not a valid TLS server name".to_owned())),
        Some(Host::Ipv4(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
        Some(Host::Ipv6(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
        None => Err(Failure::Refused(Refused::NoHost)),
    }
}

/// A TLS error in a few words.
fn tls_error(e: &std::io::Error) -> String {
    use rustls::CertificateError as Cert;
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return connect_error(e);
    };
    let short = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "certificate not valid for this host"
            }
            Cert::UnknownIssuer => "certificate issuer not trusted",
            Cert::Expired | Cert::ExpiredContext { .. } => "certificate expired",
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => "certificate not valid yet",
            Cert::Revoked => "certificate revoked",
            _ => "invalid certificate",
        },
        rustls::Error::InvalidMessage(_) => "not a TLS server",
        rustls::Error::AlertReceived(_) => "the receiver refused the handshake",
        rustls::Error::PeerIncompatible(_) => "no TLS version or cipher in common",
        _ => return tls.to_string().chars().take(80).collect(),
    };
    short.to_owned()
}

/// rustls with ring and the system's root certificates, loaded once per process.
fn default_tls() -> Result<Arc<rustls::ClientConfig>, &'static str> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, &'static str>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no trusted root certificates on this system");
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|_| "TLS is not available")?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// Sends `request` over `io` as HTTP/1.1, returns the response's status and headers after
/// reading at most [`MAX_RESPONSE_BODY`] of its body (until `deadline`).
async fn http1_exchange<S>(
    io: S,
    request: Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<(StatusCode, HeaderMap), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_BODY)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| Failure::Retry(http_error(&e)))?;
    // The connection is driven here, not spawned: it ends with this call, whatever happens.
    let mut conn = std::pin::pin!(conn);
    let mut response = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        response = &mut response => response.map_err(|e| Failure::Retry(http_error(&e)))?,
        ended = &mut conn => {
            // The connection can end right after handing over the response (`connection:
            // close`): the response, if one came, is waiting.
            match (response.await, ended) {
                (Ok(response), _) => response,
                (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(Failure::Retry(http_error(&e))),
            }
        }
    };
    let (parts, mut body) = response.into_parts();
    // Read (and drop) a bounded part of the body, so a receiver that writes its answer before
    // reading is not cut off mid-write; a slow or endless body only costs the time left.
    let drain = async {
        let mut read = 0usize;
        while read < MAX_RESPONSE_BODY {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let drive = async {
        tokio::select! {
            () = drain => {},
            _ = &mut conn => {},
        }
    };
    let _ = tokio::time::timeout_at(deadline, drive).await;
    Ok((parts.status, parts.headers))
}

fn http_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return "connection closed before the response".to_owned();
    }
    if e.is_parse_too_large() {
        return "response headers too large".to_owned();
    }
    if e.is_parse() {
        return "malformed HTTP response".to_owned();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return connect_error(io);
        }
        source = inner.source();
    }
    format!("HTTP error: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let read = |v: &str| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(read("7"), Some(Duration::from_secs(7)));
        assert_eq!(read(" 0 "), Some(Duration::ZERO));
        assert_eq!(read("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(read("99999999999999999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            read("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        // The two obsolete date forms a receiver may still send.
        assert_eq!(
            read("Sunday, 06-Nov-94 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            read("Sun Nov  6 08:50:07 1994"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(read("Mon, 07 Nov 1994 08:49:37 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(read("-5"), None);
        assert_eq!(read("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let none = HeaderMap::new();
        assert_eq!(outcome_of(StatusCode::OK, &none), Outcome::Delivered);
        assert_eq!(
            outcome_of(StatusCode::NO_CONTENT, &none),
            Outcome::Delivered
        );
        assert_eq!(outcome_of(StatusCode::GONE, &none), Outcome::Gone);
        for (status, error) in [
            (StatusCode::MOVED_PERMANENTLY, "redirect (301) not followed"),
            (StatusCode::NOT_MODIFIED, "redirect (304) not followed"),
            (StatusCode::NOT_FOUND, "HTTP 404"),
            (StatusCode::TOO_MANY_REQUESTS, "HTTP 429"),
            (StatusCode::BAD_GATEWAY, "HTTP 502"),
        ] {
            assert_eq!(
                outcome_of(status, &none),
                Outcome::Retry {
                    retry_after: None,
                    error: error.to_owned()
                }
            );
        }
        let limited = headers(&[("retry-after", "120")]);
        assert_eq!(
            outcome_of(StatusCode::TOO_MANY_REQUESTS, &limited),
            Outcome::Retry {
                retry_after: Some(Duration::from_secs(120)),
                error: "HTTP 429".to_owned()
            }
        );
    }

    #[test]
    fn the_request_carries_the_signed_headers_and_the_host() {
        let secret = Secret::generate();
        let message = Message {
            id: "msg_1",
            timestamp: 1_700_000_000,
            body: b"{}",
        };
        let ua = HeaderValue::from_static("ua/1");
        for (url, host, target) in [
            (
                "http://hooks.test:8080/in?x=1#frag",
                "hooks.test:8080",
                "/in?x=1",
            ),
            ("https://hooks.test/", "hooks.test", "/"),
            ("https://hooks.test:443", "hooks.test", "/"),
            ("http://[::1]:81/a", "[::1]:81", "/a"),
        ] {
            let url = Url::parse(url).unwrap();
            let Ok(request) = build_request(&url, &secret, &message, &ua) else {
                panic!("{url} builds");
            };
            assert_eq!(request.uri(), target, "{url}");
            let h = request.headers();
            assert_eq!(h[HOST], host, "{url}");
            assert_eq!(h[CONTENT_TYPE], "application/json");
            assert_eq!(h[CONTENT_LENGTH], "2");
            assert_eq!(h[USER_AGENT], "ua/1");
            assert_eq!(h[WEBHOOK_ID], "msg_1");
            assert_eq!(h[WEBHOOK_TIMESTAMP], "1700000000");
            assert_eq!(
                h[WEBHOOK_SIGNATURE],
                sign(&secret, "msg_1", 1_700_000_000, b"{}").as_str()
            );
        }
        let bad = Message {
            id: "msg\n1",
            ..message
        };
        let url = Url::parse("http://hooks.test/").unwrap();
        assert!(matches!(
            build_request(&url, &secret, &bad, &ua),
            Err(Failure::Retry(e)) if e == "the message id is not a valid header value"
        ));
    }
}
