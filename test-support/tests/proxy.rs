//! The fault-injection proxy, tested against a local echo server (every fault, both directions)
//! and against real Redis (a client's command through the proxy, a black-holed reply, a cut).

use std::net::SocketAddr;
use std::time::Duration;

use test_support::proxy::{Direction, Fault, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Hang guard for things that must happen; never a speed assertion.
const SOON: Duration = Duration::from_secs(10);
/// How long we watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);

/// An echo server: every byte it reads is written back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn proxied_echo() -> (FaultProxy, TcpStream) {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(&echo.to_string()).await.unwrap();
    let client = TcpStream::connect(proxy.addr()).await.unwrap();
    (proxy, client)
}

async fn roundtrip(client: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    client.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    timeout(SOON, client.read_exact(&mut got))
        .await
        .expect("echo within the hang guard")
        .unwrap();
    got
}

/// Reads whatever arrives within `QUIET`; `None` when nothing does.
async fn read_quietly(client: &mut TcpStream) -> Option<std::io::Result<usize>> {
    let mut buf = [0u8; 64];
    timeout(QUIET, client.read(&mut buf)).await.ok()
}

#[tokio::test]
async fn forwards_both_ways_and_counts_connections() {
    let (proxy, mut client) = proxied_echo().await;
    assert_eq!(roundtrip(&mut client, b"hello").await, b"hello");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.connections(), 1);
    drop(client);
    let deadline = Instant::now() + SOON;
    while proxy.connections() != 0 {
        assert!(
            Instant::now() < deadline,
            "a closed client leaves no live connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn black_hole_discards_then_heal_forwards_again() {
    for dir in [Direction::Upstream, Direction::Downstream] {
        let (proxy, mut client) = proxied_echo().await;
        proxy.set(dir, Fault::BlackHole);
        client.write_all(b"lost").await.unwrap();
        assert!(
            read_quietly(&mut client).await.is_none(),
            "{dir:?}: nothing comes back"
        );
        proxy.heal();
        // What the black hole swallowed stays lost; what follows is forwarded.
        assert_eq!(roundtrip(&mut client, b"after").await, b"after", "{dir:?}");
    }
}

#[tokio::test]
async fn stall_holds_bytes_and_delivers_them_in_order_on_heal() {
    for dir in [Direction::Upstream, Direction::Downstream, Direction::Both] {
        let (proxy, mut client) = proxied_echo().await;
        proxy.set(dir, Fault::Stall);
        client.write_all(b"one-").await.unwrap();
        client.write_all(b"two").await.unwrap();
        assert!(read_quietly(&mut client).await.is_none(), "{dir:?}: held");
        proxy.heal();
        let mut got = [0u8; 7];
        timeout(SOON, client.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"one-two", "{dir:?}: delivered in order once healed");
    }
}

#[tokio::test]
async fn stall_applies_to_a_connection_already_waiting_to_read() {
    let (proxy, mut client) = proxied_echo().await;
    assert_eq!(roundtrip(&mut client, b"warm").await, b"warm");
    // The pumps are parked in read() now; the stall must still catch the next bytes.
    proxy.set(Direction::Downstream, Fault::Stall);
    client.write_all(b"held").await.unwrap();
    assert!(read_quietly(&mut client).await.is_none());
    proxy.set(Direction::Downstream, Fault::Pass);
    let mut got = [0u8; 4];
    timeout(SOON, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"held");
}

#[tokio::test]
async fn delay_holds_each_chunk_at_least_that_long() {
    let (proxy, mut client) = proxied_echo().await;
    proxy.set(
        Direction::Upstream,
        Fault::Delay(Duration::from_millis(200)),
    );
    let started = Instant::now();
    assert_eq!(roundtrip(&mut client, b"slow").await, b"slow");
    // A lower bound is a property of the fault, not a speed figure of the code under test.
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// A server that records every byte it receives and never answers.
async fn recording_server() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, out)
}

#[tokio::test]
async fn cut_after_forwards_exactly_n_bytes_then_closes() {
    let (server, seen) = recording_server().await;
    let proxy = FaultProxy::start(&server.to_string()).await.unwrap();
    proxy.set(Direction::Upstream, Fault::CutAfter(3));
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    client.write_all(b"abcdef").await.unwrap();
    let mut got = Vec::new();
    let r = timeout(SOON, client.read_to_end(&mut got))
        .await
        .expect("the cut closes the connection");
    assert!(matches!(r, Ok(0)), "a cut is a clean EOF: {r:?}");
    let deadline = Instant::now() + SOON;
    while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        *seen.lock().unwrap(),
        b"abc",
        "exactly three bytes reached the server"
    );
}

#[tokio::test]
async fn reset_after_resets_the_client() {
    let (proxy, mut client) = proxied_echo().await;
    proxy.set(Direction::Upstream, Fault::ResetAfter(0));
    client.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 8];
    let r = timeout(SOON, client.read(&mut buf)).await.unwrap();
    let err = r.expect_err("a reset is an error, not an EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_new_cut_restarts_the_byte_budget() {
    let (proxy, mut client) = proxied_echo().await;
    proxy.set(Direction::Upstream, Fault::CutAfter(4));
    assert_eq!(roundtrip(&mut client, b"ab").await, b"ab");
    // Setting the fault again starts a fresh budget of 4: "cde" fits (2 + 3 would not have).
    proxy.set(Direction::Upstream, Fault::CutAfter(4));
    let mut got = [0u8; 3];
    client.write_all(b"cde").await.unwrap();
    timeout(SOON, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"cde");
}

#[tokio::test]
async fn drop_and_reset_end_live_connections_but_not_later_ones() {
    let (proxy, mut client) = proxied_echo().await;
    // A round trip first: the proxy has registered the connection once bytes crossed it.
    assert_eq!(roundtrip(&mut client, b"up").await, b"up");
    proxy.drop_connections();
    let mut buf = Vec::new();
    let n = timeout(SOON, client.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "dropped: a clean EOF");

    let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut second, b"new").await, b"new");
    proxy.reset_connections();
    let mut one = [0u8; 1];
    let r = timeout(SOON, second.read(&mut one)).await.unwrap();
    assert_eq!(
        r.expect_err("reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn refuse_resets_new_connections_until_healed() {
    let (proxy, _client) = proxied_echo().await;
    proxy.refuse(true);
    // On loopback the reset may already fail the connect itself.
    if let Ok(mut c) = TcpStream::connect(proxy.addr()).await {
        let _ = c.write_all(b"x").await;
        let mut one = [0u8; 1];
        let r = timeout(SOON, c.read(&mut one)).await.unwrap();
        assert!(
            matches!(r, Err(_) | Ok(0)),
            "a refused connection carries nothing"
        );
    }
    assert_eq!(proxy.accepted(), 2);
    proxy.heal();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"ok").await, b"ok");
}

#[test]
fn url_rewrites_host_and_port_only() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(&echo.to_string()).await.unwrap();
        let p = proxy.port();
        assert_eq!(
            proxy.url("redis://127.0.0.1:6379/2"),
            format!("redis://127.0.0.1:{p}/2")
        );
        assert_eq!(
            proxy.url("postgres://postgres:s3cr@t@db.example:5432/app?sslmode=disable"),
            format!("postgres://postgres:s3cr@t@127.0.0.1:{p}/app?sslmode=disable")
        );
        assert_eq!(
            proxy.url("redis://:pw@localhost:6379"),
            format!("redis://:pw@127.0.0.1:{p}")
        );
        assert_eq!(proxy.url("127.0.0.1:6379"), format!("127.0.0.1:{p}"));
    });
}

// ---------------------------------------------------------------------------------------------
// Real Redis through the proxy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redis_through_the_proxy_and_a_black_holed_reply() {
    let Some(redis) = test_support::redis("proxy_redis").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let client = redis::Client::open(proxy.url(&redis.url)).unwrap();
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(500)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let key = redis.key("k");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(proxy.connections(), 1);

    // The command reaches Redis, its reply never comes back: the client times out, the write
    // happened (seen on a direct connection).
    proxy.set(Direction::Downstream, Fault::BlackHole);
    let r: redis::RedisResult<()> = redis::cmd("SET")
        .arg(&key)
        .arg("v2")
        .query_async(&mut conn)
        .await;
    assert!(r.is_err(), "the reply was black-holed: {r:?}");
    let mut direct = redis.connection().await;
    let v: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(v, "v2");
    proxy.heal();
}

#[tokio::test]
async fn redis_cut_mid_command_never_applies_half_a_command() {
    let Some(redis) = test_support::redis("proxy_redis_cut").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let client = redis::Client::open(proxy.url(&redis.url)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = redis.key("cut");
    // 10 bytes of a SET: Redis sees an incomplete command, then the connection closes.
    proxy.set(Direction::Upstream, Fault::CutAfter(10));
    let r: redis::RedisResult<()> = timeout(
        SOON,
        redis::cmd("SET").arg(&key).arg("x").query_async(&mut conn),
    )
    .await
    .expect("a cut connection fails, it does not hang");
    assert!(r.is_err());
    let mut direct = redis.connection().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    proxy.heal();
    let mut again = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("y")
        .query_async(&mut again)
        .await
        .unwrap();
    assert_eq!(proxy.accepted(), 2);
}
