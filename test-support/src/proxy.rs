//! A fault-injection TCP proxy for tests: put it between a client and Redis or PostgreSQL, then
//! black-hole, stall, delay, cut or reset the traffic in the middle of an operation.
//!
//! [`FaultProxy::start`] listens on a free port of `127.0.0.1` and forwards every connection it
//! accepts to the upstream address. The client uses the proxy through its normal URL
//! ([`FaultProxy::url`] rewrites the host and port of any `scheme://…` URL), so the code under test
//! needs no change. On command, and for the live connections as well as the ones that follow:
//!
//! | [`Fault`] | what the proxy does with the bytes of that [`Direction`] |
//! |---|---|
//! | [`Fault::Pass`] | forwards them (the default) |
//! | [`Fault::BlackHole`] | reads and discards them: the sender's writes succeed, nothing arrives |
//! | [`Fault::Stall`] | stops reading: they wait in the proxy and the kernel buffers, and are delivered in order once the fault is lifted |
//! | [`Fault::Delay`] | forwards each chunk after the given delay |
//! | [`Fault::CutAfter`] | forwards that many more bytes on each connection, then closes it (FIN both ways) |
//! | [`Fault::ResetAfter`] | the same, then resets it (RST both ways) |
//!
//! [`FaultProxy::drop_connections`] and [`FaultProxy::reset_connections`] end the live
//! connections at once; [`FaultProxy::refuse`] resets new ones as soon as they arrive;
//! [`FaultProxy::heal`] lifts every fault. Dropping the proxy closes its listener and every
//! connection.
//!
//! ```no_run
//! use std::time::Duration;
//! use test_support::proxy::{Direction, Fault, FaultProxy};
//!
//! # async fn example() -> std::io::Result<()> {
//! let proxy = FaultProxy::start("127.0.0.1:6379").await?;
//! let url = proxy.url("redis://127.0.0.1:6379/0"); // redis://127.0.0.1:{proxy port}/0
//! let client = redis::Client::open(url).unwrap();
//! // … start the code under test on `client` …
//!
//! // The server's replies vanish: the client waits, then (if it is well written) times out.
//! proxy.set(Direction::Downstream, Fault::BlackHole);
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! proxy.heal();
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, lookup_host};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which way the bytes a [`Fault`] applies to travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (requests).
    Upstream,
    /// From the server to the client (replies).
    Downstream,
    /// Both ways.
    Both,
}

/// What the proxy does with the bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward them.
    #[default]
    Pass,
    /// Read and discard them: the sender sees its writes succeed, the receiver gets nothing.
    /// The stream is corrupted for good: what was discarded never arrives.
    BlackHole,
    /// Hold them: stop reading until the fault is lifted, then deliver everything in order.
    Stall,
    /// Forward each chunk after this delay.
    Delay(Duration),
    /// Forward this many more bytes on each connection (counted from when the fault is set, or
    /// from the connection's start), then close the connection both ways.
    CutAfter(u64),
    /// Like [`Fault::CutAfter`], then reset the connection (RST) instead of closing it.
    ResetAfter(u64),
}

/// How a connection ends when the proxy ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Live,
    Close,
    Reset,
}

#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    up: Fault,
    down: Fault,
    /// Bumped on every change of `up`, so a pump restarts its byte budget for a new cut.
    up_generation: u64,
    /// The same for `down`.
    down_generation: u64,
}

struct Shared {
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    refuse: std::sync::atomic::AtomicBool,
    conns: Mutex<Vec<watch::Sender<End>>>,
    live: AtomicUsize,
    accepted: AtomicUsize,
}

/// A TCP proxy on `127.0.0.1` that injects faults into the connections it forwards. See the
/// [module documentation](self).
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("faults", &*self.shared.faults.borrow())
            .field("connections", &self.connections())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`, resolved once now) on a free port of
    /// `127.0.0.1`. Must be called inside a Tokio runtime; the proxy's tasks run on it.
    ///
    /// # Errors
    /// When `upstream` does not resolve or no port can be bound.
    pub async fn start(upstream: &str) -> io::Result<Self> {
        let upstream = lookup_host(upstream).await?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{upstream} did not resolve"),
            )
        })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (faults, _) = watch::channel(Faults::default());
        let shared = Arc::new(Shared {
            upstream,
            faults,
            refuse: std::sync::atomic::AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            shared,
            addr,
            accept,
        })
    }

    /// Starts a proxy to the host and port of `url` (`redis://…`, `postgres://…`): the same as
    /// [`FaultProxy::start`] with the URL's `host:port`.
    ///
    /// # Errors
    /// When the URL names no host and port, or as [`FaultProxy::start`].
    pub async fn for_url(url: &str) -> io::Result<Self> {
        let (_, authority, _) = split_url(url).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the URL names no host:port")
        })?;
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        Self::start(host_port).await
    }

    /// The proxy's address (`127.0.0.1:{port}`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The upstream address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// `url` with its host and port replaced by the proxy's; user, password, path and query are
    /// kept. `redis://:pw@10.0.0.5:6379/2` becomes `redis://:pw@127.0.0.1:{port}/2`. A URL without
    /// `scheme://` is returned as `127.0.0.1:{port}`.
    pub fn url(&self, url: &str) -> String {
        match split_url(url) {
            Some((scheme, authority, rest)) => {
                let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
                match userinfo {
                    Some(u) => format!("{scheme}://{u}@{}{rest}", self.addr),
                    None => format!("{scheme}://{}{rest}", self.addr),
                }
            }
            None => self.addr.to_string(),
        }
    }

    /// Applies `fault` to the bytes travelling in `direction`, on the live connections and on
    /// those that follow, until [`FaultProxy::heal`] or the next `set` for that direction.
    pub fn set(&self, direction: Direction, fault: Fault) {
        self.shared.faults.send_modify(|f| {
            if matches!(direction, Direction::Upstream | Direction::Both) {
                f.up = fault;
                f.up_generation += 1;
            }
            if matches!(direction, Direction::Downstream | Direction::Both) {
                f.down = fault;
                f.down_generation += 1;
            }
        });
    }

    /// The faults in force, upstream and downstream.
    pub fn faults(&self) -> (Fault, Fault) {
        let f = *self.shared.faults.borrow();
        (f.up, f.down)
    }

    /// Lifts every fault and stops refusing connections. Stalled bytes are delivered; what a
    /// black hole discarded stays lost.
    pub fn heal(&self) {
        self.shared.refuse.store(false, Ordering::SeqCst);
        self.set(Direction::Both, Fault::Pass);
    }

    /// While `true`, new connections are accepted and reset at once (the client sees
    /// "connection reset"); live ones are untouched.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Closes every live connection (FIN to both sides). New connections are still accepted.
    pub fn drop_connections(&self) {
        self.end_all(End::Close);
    }

    /// Resets every live connection (RST to both sides). New connections are still accepted.
    pub fn reset_connections(&self) {
        self.end_all(End::Reset);
    }

    fn end_all(&self, how: End) {
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        for c in conns {
            let _ = c.send(how);
        }
    }

    /// How many connections are open through the proxy now.
    pub fn connections(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// How many connections the proxy has accepted since it started (refused ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.end_all(End::Close);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `scheme://authority/rest` → (scheme, authority, "/rest" with query), or `None`.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let (end_tx, end_rx) = watch::channel(End::Live);
        {
            let mut conns = lock(&shared.conns);
            conns.retain(|c| !c.is_closed());
            conns.push(end_tx);
        }
        shared.live.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            connection(client, &shared, end_rx).await;
            shared.live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn connection(mut client: TcpStream, shared: &Shared, mut end: watch::Receiver<End>) {
    let _ = client.set_nodelay(true);
    let mut server = match TcpStream::connect(shared.upstream).await {
        Ok(s) => s,
        Err(_) => {
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let how = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let (end_up_tx, mut end_up) = watch::channel(End::Live);
        let up = pump(cr, sw, shared.faults.subscribe(), true, end_up_tx.clone());
        let down = pump(sr, cw, shared.faults.subscribe(), false, end_up_tx);
        let both = async {
            let (a, b) = tokio::join!(up, down);
            // Both directions finished by themselves (EOF each way): a normal close.
            a.max_end(b)
        };
        tokio::select! {
            how = both => how,
            r = end.wait_for(|e| *e != End::Live) => r.map_or(End::Close, |e| *e),
            r = end_up.wait_for(|e| *e != End::Live) => r.map_or(End::Close, |e| *e),
        }
    };
    if how == End::Reset {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    } else {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
    }
}

trait MaxEnd {
    fn max_end(self, other: Self) -> End;
}

impl MaxEnd for End {
    fn max_end(self, other: End) -> End {
        match (self, other) {
            (End::Reset, _) | (_, End::Reset) => End::Reset,
            _ => End::Close,
        }
    }
}

/// Copies `from` → `to` under the faults of one direction. Returns when `from` reaches EOF (after
/// shutting `to`'s write side) or a cut ends the connection (signalled on `cut` too, so the other
/// direction stops at once).
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut faults: watch::Receiver<Faults>,
    upstream: bool,
    cut: watch::Sender<End>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let pick = |f: &Faults| if upstream { f.up } else { f.down };
    let generation_of = |f: &Faults| {
        if upstream {
            f.up_generation
        } else {
            f.down_generation
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut generation = u64::MAX;
    let mut sent_since: u64 = 0;
    loop {
        // Don't read while stalled: the bytes stay with the sender (and the kernel).
        if pick(&faults.borrow_and_update()) == Fault::Stall
            && faults.wait_for(|f| pick(f) != Fault::Stall).await.is_err()
        {
            return End::Close;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return End::Close;
                }
                Ok(n) => n,
            },
            // A stall set while we wait to read takes effect at once.
            changed = faults.changed() => {
                if changed.is_err() { return End::Close; }
                continue;
            }
        };
        let chunk = &buf[..n];
        loop {
            let f = *faults.borrow_and_update();
            if generation_of(&f) != generation {
                generation = generation_of(&f);
                sent_since = 0;
            }
            match pick(&f) {
                Fault::Pass => {
                    if to.write_all(chunk).await.is_err() {
                        return End::Close;
                    }
                }
                Fault::BlackHole => {}
                Fault::Stall => {
                    // Hold this chunk until the stall is lifted, then look again.
                    if faults.changed().await.is_err() {
                        return End::Close;
                    }
                    continue;
                }
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    if to.write_all(chunk).await.is_err() {
                        return End::Close;
                    }
                }
                Fault::CutAfter(limit) | Fault::ResetAfter(limit) => {
                    let room = limit.saturating_sub(sent_since);
                    let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
                    if take > 0 && to.write_all(&chunk[..take]).await.is_err() {
                        return End::Close;
                    }
                    sent_since += take as u64;
                    if take < chunk.len() || sent_since >= limit {
                        let _ = to.flush().await;
                        let how = if matches!(pick(&f), Fault::ResetAfter(_)) {
                            End::Reset
                        } else {
                            End::Close
                        };
                        let _ = cut.send(how);
                        return how;
                    }
                }
            }
            break;
        }
    }
}
