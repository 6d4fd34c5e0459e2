//! The bus. The behaviour every driver must have is written once (`cases`) and run on the memory
//! driver (two clones of one bus) and on Redis (two buses on one prefix: two processes) by
//! `suite!`. Then what only Redis does: one pub/sub connection for every subscription,
//! `UNSUBSCRIBE` when the last subscription goes, and a `Gap` after a cut, an outage, a black
//! hole or a stall, with messages flowing again afterwards. Redis runs need Redis at `REDIS_URL`;
//! without it they print one SKIPPED line (or fail under `RUSTFORGE_REQUIRE_SERVICES=1`).

use std::time::{Duration, Instant};

use core_db::Error;
use core_db::bus::{Bus, BusDriver, BusOptions, Message, Subscription};
use test_support::proxy::{Direction, Fault, FaultProxy};

/// How long a test waits for a message that must arrive (one Redis round trip, or a reconnection
/// after a fault) before it calls it lost: only has to tell "arrives" from "never arrives" on a
/// machine busy compiling.
const BOUND: Duration = Duration::from_secs(10);

/// Each subscription's buffer in these tests.
const CAPACITY: usize = 16;

fn options() -> BusOptions {
    BusOptions::new().capacity(CAPACITY)
}

/// The next message on `sub`; fails after [`BOUND`] or when the bus is gone.
async fn next(sub: &mut Subscription) -> Message {
    match tokio::time::timeout(BOUND, sub.recv()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("{sub:?}: the bus is gone"),
        Err(_) => panic!("{sub:?}: nothing within {BOUND:?}"),
    }
}

/// The next message on `sub`, which must be a payload: returned as text.
async fn payload(sub: &mut Subscription) -> String {
    match next(sub).await {
        Message::Payload(bytes) => String::from_utf8(bytes.to_vec()).expect("UTF-8 payload"),
        Message::Gap => panic!("{sub:?}: a gap where a payload was expected"),
    }
}

mod cases {
    use super::*;

    /// A message published on one handle reaches every subscription to its channel, on the
    /// other handle and on its own.
    pub async fn a_message_reaches_every_subscriber(a: Bus, b: Bus) {
        let mut first = b.subscribe("job:1").await.unwrap();
        let mut second = b.subscribe("job:1").await.unwrap();
        let mut own = a.subscribe("job:1").await.unwrap();
        a.publish("job:1", "event 1").await.unwrap();
        assert_eq!(payload(&mut first).await, "event 1");
        assert_eq!(payload(&mut second).await, "event 1");
        assert_eq!(payload(&mut own).await, "event 1");
    }

    /// A subscription hears its own channel only.
    pub async fn channels_are_isolated(a: Bus, b: Bus) {
        let mut x = b.subscribe("x").await.unwrap();
        let mut y = b.subscribe("y").await.unwrap();
        let mut prefixed = b.subscribe("x:1").await.unwrap();
        a.publish("x", "for x").await.unwrap();
        a.publish("y", "for y").await.unwrap();
        a.publish("x:1", "for x:1").await.unwrap();
        // Each channel's first message is its own: nothing of the others came in between.
        assert_eq!(payload(&mut x).await, "for x");
        assert_eq!(payload(&mut y).await, "for y");
        assert_eq!(payload(&mut prefixed).await, "for x:1");
        a.publish("x", "x again").await.unwrap();
        a.publish("y", "y again").await.unwrap();
        assert_eq!(payload(&mut y).await, "y again");
        assert_eq!(payload(&mut x).await, "x again");
    }

    /// `subscribe` returns once the subscription is in force: a message published right after
    /// it returns is received, every time (on Redis: the `SUBSCRIBE` was confirmed first).
    pub async fn a_publish_right_after_subscribe_is_received(a: Bus, b: Bus) {
        for i in 0..50 {
            let channel = format!("fresh:{i}");
            let mut sub = b.subscribe(&channel).await.unwrap();
            a.publish(&channel, format!("m{i}")).await.unwrap();
            assert_eq!(payload(&mut sub).await, format!("m{i}"));
        }
    }

    /// Payloads are bytes, delivered whole (empty, binary, large) and in publishing order.
    pub async fn payloads_arrive_whole_and_in_order(a: Bus, b: Bus) {
        let mut sub = b.subscribe("bytes").await.unwrap();
        let payloads: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0, 159, 146, 150, 255],
            "ünïcödé ✓".as_bytes().to_vec(),
            vec![7; 1 << 20],
        ];
        for p in &payloads {
            a.publish("bytes", p.clone()).await.unwrap();
        }
        for p in &payloads {
            assert_eq!(next(&mut sub).await, Message::Payload(p.clone().into()));
        }
        for i in 0..CAPACITY {
            a.publish("bytes", i.to_string()).await.unwrap();
        }
        for i in 0..CAPACITY {
            assert_eq!(payload(&mut sub).await, i.to_string());
        }
    }

    /// A subscription that does not read falls behind: it gets a `Gap`, then the newest
    /// messages, and goes on. Meanwhile publishing and the other subscription never wait.
    pub async fn a_slow_subscriber_gets_a_gap_and_holds_nobody_up(a: Bus, b: Bus) {
        let mut slow = b.subscribe("busy").await.unwrap();
        let mut fast = b.subscribe("busy").await.unwrap();
        let total = 3 * CAPACITY;
        for i in 0..total {
            a.publish("busy", i.to_string()).await.unwrap();
            assert_eq!(payload(&mut fast).await, i.to_string());
        }
        assert_eq!(next(&mut slow).await, Message::Gap);
        // Then what its buffer kept: the newest messages, in order, ending with the last one.
        let mut kept = Vec::new();
        while kept.last() != Some(&(total - 1)) {
            let n: usize = payload(&mut slow).await.parse().unwrap();
            kept.push(n);
        }
        assert!(kept.len() <= CAPACITY, "{kept:?}");
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
        // And it goes on.
        a.publish("busy", "after").await.unwrap();
        assert_eq!(payload(&mut slow).await, "after");
        assert_eq!(payload(&mut fast).await, "after");
    }

    /// Dropping a subscription and subscribing again, many times and fast, leaves a working
    /// subscription (on Redis: `UNSUBSCRIBE` and `SUBSCRIBE` of one channel racing).
    pub async fn resubscribing_after_a_drop_works(a: Bus, b: Bus) {
        for i in 0..20 {
            let sub = b.subscribe("churn").await.unwrap();
            if i % 2 == 0 {
                drop(sub);
            } else {
                let again = b.subscribe("churn").await.unwrap();
                drop(sub);
                drop(again);
            }
        }
        let mut sub = b.subscribe("churn").await.unwrap();
        a.publish("churn", "still here").await.unwrap();
        assert_eq!(payload(&mut sub).await, "still here");
    }

    /// Publishing where nobody listens is fine; empty channel names are refused on both sides.
    pub async fn publish_without_subscribers_and_empty_names(a: Bus, b: Bus) {
        a.publish("nobody", "hello?").await.unwrap();
        assert!(matches!(
            a.publish("", "x").await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            b.subscribe("").await,
            Err(Error::InvalidKey { .. })
        ));
    }

    /// `recv` returns `None` once every handle on the subscription's bus is dropped, and not
    /// before; a subscription does not keep its bus alive.
    pub async fn subscriptions_end_when_their_bus_is_dropped(a: Bus, b: Bus) {
        let mut sub = b.subscribe("ending").await.unwrap();
        a.publish("ending", "last").await.unwrap();
        assert_eq!(payload(&mut sub).await, "last");
        let other_handle = b.clone();
        drop(b);
        // A clone still holds the bus.
        a.publish("ending", "clone alive").await.unwrap();
        assert_eq!(payload(&mut sub).await, "clone alive");
        drop(other_handle);
        drop(a); // the memory pair's `a` is a clone of the same bus
        let end = tokio::time::timeout(BOUND, sub.recv()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let bus = super::Bus::memory_with(super::options());
                    assert_eq!(bus.driver(), super::BusDriver::Memory);
                    super::cases::$case(bus.clone(), bus).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("bus::redis::", stringify!($case))).await else { return };
                    let a = super::Bus::redis_with(&r.url, r.prefix.clone(), super::options()).await.expect("connect");
                    let b = super::Bus::redis_with(&r.url, r.prefix.clone(), super::options()).await.expect("connect");
                    assert_eq!(b.driver(), super::BusDriver::Redis);
                    super::cases::$case(a, b).await;
                }
            )*
        }
    };
}

suite!(
    a_message_reaches_every_subscriber,
    channels_are_isolated,
    a_publish_right_after_subscribe_is_received,
    payloads_arrive_whole_and_in_order,
    a_slow_subscriber_gets_a_gap_and_holds_nobody_up,
    resubscribing_after_a_drop_works,
    publish_without_subscribers_and_empty_names,
    subscriptions_end_when_their_bus_is_dropped,
);

// ---------------------------------------------------------------------------------------------
// Redis only
// ---------------------------------------------------------------------------------------------

/// The timeout of the buses that go through a fault proxy: short, so faults are noticed fast.
const FAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// A bus on `r` (the other "process", which reaches Redis directly), and one through a fault
/// proxy with [`FAULT_TIMEOUT`].
async fn through_proxy(r: &test_support::TestRedis) -> (Bus, Bus, FaultProxy) {
    let proxy = FaultProxy::for_url(&r.url).await.expect("proxy");
    let direct = Bus::redis_with(&r.url, r.prefix.clone(), options())
        .await
        .expect("connect");
    let proxied = Bus::redis_with(
        &proxy.url(&r.url),
        r.prefix.clone(),
        options().timeout(FAULT_TIMEOUT),
    )
    .await
    .expect("connect through the proxy");
    (direct, proxied, proxy)
}

/// How many connections are subscribed to the Redis channel `{prefix}:bus:{channel}`.
async fn numsub(r: &test_support::TestRedis, channel: &str) -> i64 {
    let mut conn = r.connection().await;
    let key = format!("{}:bus:{channel}", r.prefix);
    let counts: Vec<(String, i64)> = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    counts.first().map_or(0, |(_, n)| *n)
}

/// Waits until `check` holds; fails after [`BOUND`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < BOUND, "{what} within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `text` on `channel` from `bus` and checks that `sub` hears it next: the
/// subscription works again after a fault.
async fn hears_again(bus: &Bus, sub: &mut Subscription, channel: &str, text: &str) {
    bus.publish(channel, text.to_owned()).await.unwrap();
    assert_eq!(payload(sub).await, text);
}

/// Publishing and subscribing on `bus`, whose Redis cannot be reached: both fail (the
/// subscription with a timeout), each within about its timeout.
async fn fails_in_bounded_time(bus: &Bus, channel: &str) {
    let started = Instant::now();
    let published = bus.publish(channel, "nowhere").await;
    assert!(published.is_err(), "{published:?}");
    let subscribed = bus.subscribe(channel).await;
    assert!(
        matches!(subscribed, Err(Error::Timeout { .. })),
        "{subscribed:?}"
    );
    assert!(
        started.elapsed() < 2 * FAULT_TIMEOUT + Duration::from_secs(1),
        "failing took {:?}",
        started.elapsed()
    );
}

/// However many subscriptions a bus holds, it uses one pub/sub connection (plus the one it
/// publishes on), and every subscription hears its channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pubsub_connection_carries_every_subscription() {
    let Some(r) = test_support::redis("one_pubsub_connection_carries_every_subscription").await
    else {
        return;
    };
    let (direct, proxied, proxy) = through_proxy(&r).await;
    let mut subs = Vec::new();
    for i in 0..200 {
        subs.push(
            proxied
                .subscribe(&format!("job:{}", i % 100))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        proxy.accepted(),
        2,
        "one publishing and one pub/sub connection"
    );
    assert_eq!(proxy.connections(), 2);
    for i in [0, 57, 99] {
        assert_eq!(numsub(&r, &format!("job:{i}")).await, 1, "job:{i}");
    }
    direct.publish("job:57", "event").await.unwrap();
    assert_eq!(payload(&mut subs[57]).await, "event");
    assert_eq!(payload(&mut subs[157]).await, "event");
}

/// The Redis channel stays subscribed while a subscription to it lives in the process, and is
/// unsubscribed when the last one is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_subscription_unsubscribes() {
    let Some(r) = test_support::redis("dropping_the_last_subscription_unsubscribes").await else {
        return;
    };
    let a = Bus::redis(&r.url, r.prefix.clone()).await.unwrap();
    let b = Bus::redis(&r.url, r.prefix.clone()).await.unwrap();
    let first = b.subscribe("job:9").await.unwrap();
    let mut second = b.subscribe("job:9").await.unwrap();
    assert_eq!(numsub(&r, "job:9").await, 1);

    drop(first);
    // The other subscription still hears (a round trip after the drop)…
    a.publish("job:9", "one left").await.unwrap();
    assert_eq!(payload(&mut second).await, "one left");
    assert_eq!(numsub(&r, "job:9").await, 1);

    // …and once it goes too, Redis no longer sends the channel to this process.
    drop(second);
    eventually("UNSUBSCRIBE of job:9", async || {
        numsub(&r, "job:9").await == 0
    })
    .await;

    // Subscribing again works.
    let mut again = b.subscribe("job:9").await.unwrap();
    assert_eq!(numsub(&r, "job:9").await, 1);
    a.publish("job:9", "back").await.unwrap();
    assert_eq!(payload(&mut again).await, "back");
}

/// The pub/sub connection is cut: every subscription gets a `Gap` once the bus has reconnected
/// and subscribed again, then hears new messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_gives_a_gap_then_messages_flow_again() {
    let Some(r) =
        test_support::redis("a_cut_connection_gives_a_gap_then_messages_flow_again").await
    else {
        return;
    };
    let (direct, proxied, proxy) = through_proxy(&r).await;
    let mut x = proxied.subscribe("x").await.unwrap();
    let mut y = proxied.subscribe("y").await.unwrap();
    direct.publish("x", "before").await.unwrap();
    assert_eq!(payload(&mut x).await, "before");

    proxy.drop_connections();
    assert_eq!(next(&mut x).await, Message::Gap);
    assert_eq!(next(&mut y).await, Message::Gap);
    hears_again(&direct, &mut x, "x", "after").await;
    hears_again(&direct, &mut y, "y", "after").await;
    // The publishing connection comes back too (the first call after the cut may fail, as it
    // finds the connection gone).
    eventually("a publish after the cut", async || {
        proxied.publish("x", "from the proxied side").await.is_ok()
    })
    .await;
    assert_eq!(payload(&mut x).await, "from the proxied side");
}

/// Redis is unreachable for a while (connections refused): publishing and subscribing fail
/// within the timeout instead of hanging; what was published meanwhile is lost for this bus,
/// and its subscriptions get a `Gap` (not the lost message) once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_ends_with_a_gap() {
    let Some(r) = test_support::redis("an_outage_fails_fast_and_ends_with_a_gap").await else {
        return;
    };
    let (direct, proxied, proxy) = through_proxy(&r).await;
    let mut sub = proxied.subscribe("job:1").await.unwrap();

    proxy.refuse(true);
    proxy.drop_connections();
    direct.publish("job:1", "missed").await.unwrap();

    fails_in_bounded_time(&proxied, "job:2").await;

    proxy.refuse(false);
    assert_eq!(next(&mut sub).await, Message::Gap);
    hears_again(&direct, &mut sub, "job:1", "after").await;
    let mut second = proxied.subscribe("job:2").await.unwrap();
    hears_again(&direct, &mut second, "job:2", "job 2").await;
}

/// The pub/sub connection goes silent under `fault` while its socket stays open, and a message is
/// published meanwhile. Only the heartbeat can notice: the bus gives up on the connection and
/// tries to reconnect (into the fault); once the fault is lifted, the subscription gets a `Gap`
/// and hears again.
async fn a_silent_connection_ends_with_a_gap(test: &str, direction: Direction, fault: Fault) {
    let Some(r) = test_support::redis(test).await else {
        return;
    };
    let (direct, proxied, proxy) = through_proxy(&r).await;
    let mut sub = proxied.subscribe("job:1").await.unwrap();
    let accepted = proxy.accepted();

    proxy.set(direction, fault);
    direct.publish("job:1", "during the fault").await.unwrap();
    // The heartbeat gives up within the timeout plus a ping interval; then the bus reconnects.
    eventually("a reconnection attempt", async || {
        proxy.accepted() > accepted
    })
    .await;
    proxy.heal();

    assert_eq!(next(&mut sub).await, Message::Gap);
    hears_again(&direct, &mut sub, "job:1", "after").await;
}

/// A black hole: nothing arrives and nothing closes (no RST, no FIN); without the heartbeat the
/// subscription would wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_noticed_by_the_heartbeat() {
    a_silent_connection_ends_with_a_gap(
        "a_black_holed_connection_is_noticed_by_the_heartbeat",
        Direction::Both,
        Fault::BlackHole,
    )
    .await;
}

/// A stall: what Redis sends waits in the network. Without the heartbeat the message would
/// arrive late on the old connection once the stall ends, with nothing to say it was late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_is_noticed_by_the_heartbeat() {
    a_silent_connection_ends_with_a_gap(
        "a_stalled_connection_is_noticed_by_the_heartbeat",
        Direction::Downstream,
        Fault::Stall,
    )
    .await;
}

/// A bus on a Redis that does not answer fails in bounded time: connecting to a closed port,
/// and publishing or subscribing through a black hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_errors_in_bounded_time() {
    let Some(r) = test_support::redis("an_unreachable_redis_errors_in_bounded_time").await else {
        return;
    };
    // A port nobody listens on: the proxy's, once the proxy is gone.
    let closed = {
        let proxy = FaultProxy::for_url(&r.url).await.unwrap();
        proxy.url(&r.url)
    };
    let started = Instant::now();
    let connected = Bus::redis_with(&closed, "app", options().timeout(FAULT_TIMEOUT)).await;
    assert!(connected.is_err(), "{connected:?}");
    assert!(started.elapsed() < 2 * FAULT_TIMEOUT + Duration::from_secs(1));

    let (_direct, proxied, proxy) = through_proxy(&r).await;
    proxy.set(Direction::Both, Fault::BlackHole);
    fails_in_bounded_time(&proxied, "job:1").await;

    // Healed, the same bus works.
    proxy.heal();
    let mut sub = None;
    eventually("a subscription after healing", async || {
        sub = proxied.subscribe("job:1").await.ok();
        sub.is_some()
    })
    .await;
    let mut sub = sub.unwrap();
    eventually("a publish after healing", async || {
        proxied.publish("job:1", "healed").await.is_ok()
    })
    .await;
    assert_eq!(payload(&mut sub).await, "healed");
}

#[tokio::test]
async fn from_url_picks_the_driver() {
    let memory = Bus::from_url("memory://", "app").await.unwrap();
    assert_eq!(memory.driver(), BusDriver::Memory);
    assert!(matches!(
        Bus::from_url("nats://localhost", "app").await,
        Err(Error::Config(_))
    ));
    let Some(r) = test_support::redis("from_url_picks_the_driver").await else {
        return;
    };
    let redis = Bus::from_url(&r.url, r.prefix.clone()).await.unwrap();
    assert_eq!(redis.driver(), BusDriver::Redis);
    assert!(format!("{redis:?}").contains(&r.prefix));
    assert!(matches!(
        Bus::redis(&r.url, "").await,
        Err(Error::Config(_))
    ));
}
