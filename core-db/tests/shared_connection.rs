//! `SharedConnection` when a reply is lost while the connection stays busy: the request whose
//! reply was lost takes the next reply, and every later request the one after its own, for as
//! long as requests keep coming, so no request ever times out. A reply that does not fit its
//! request ends it: the connection is replaced and the replies fit again.

use std::time::Duration;

use core_db::SharedConnection;
use redis::aio::ConnectionManagerConfig;
use test_support::proxy::{Direction, Fault, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_on_a_busy_connection_does_not_shift_the_replies_for_ever() {
    let Some(r) = test_support::redis("shared_connection_lost_reply").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&r.url).await.unwrap();
    let client = redis::Client::open(proxy.url(&r.url)).unwrap();
    // Requests that follow one another closely never reach this: only the last request made on
    // the shifted connection (its reply was handed to the one before) waits for it.
    let config = ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(2)));
    let shared = SharedConnection::connect(client, config, "test")
        .await
        .unwrap();
    let counter = format!("{}:counter", r.prefix);
    let list = format!("{}:list", r.prefix);
    let mut conn = shared.get();
    let _: () = redis::cmd("RPUSH")
        .arg(&list)
        .arg("a")
        .arg("b")
        .query_async(&mut conn)
        .await
        .unwrap();

    // One request whose reply is lost (it waits on its own task).
    proxy.set(Direction::Downstream, Fault::BlackHole);
    let mut lost_conn = shared.get();
    let lost_list = list.clone();
    let lost = tokio::spawn(async move {
        redis::cmd("LRANGE")
            .arg(&lost_list)
            .arg(0)
            .arg(-1)
            .query_async::<Vec<String>>(&mut lost_conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.heal();

    // Requests of two shapes keep coming from two tasks at once, each through a fresh handle and
    // `checked`, so that there is always a later request to hand a reply to.
    let traffic = |first_incr: bool| {
        let shared = shared.clone();
        let (counter, list) = (counter.clone(), list.clone());
        async move {
            let mut misfits = 0;
            for i in 0..40 {
                let mut c = shared.get();
                if (i % 2 == 0) == first_incr {
                    let n = redis::cmd("INCR")
                        .arg(&counter)
                        .query_async::<i64>(&mut c)
                        .await;
                    misfits += usize::from(c.checked(n).is_err());
                } else {
                    let items = redis::cmd("LRANGE")
                        .arg(&list)
                        .arg(0)
                        .arg(-1)
                        .query_async::<Vec<String>>(&mut c)
                        .await;
                    misfits +=
                        usize::from(!matches!(c.checked(items), Ok(items) if items == ["a", "b"]));
                }
            }
            misfits
        }
    };
    let (a, b) = tokio::join!(traffic(true), traffic(false));
    let misfits = a + b;
    assert!(
        shared.generation() >= 1,
        "the connection whose replies no longer fit was replaced"
    );
    assert!(
        misfits <= 3,
        "{misfits} misfit replies: the shift outlived the replacement"
    );

    // The replies fit again: an increment and a read of the counter agree.
    let mut c = shared.get();
    let after: i64 = redis::cmd("INCR")
        .arg(&counter)
        .query_async(&mut c)
        .await
        .unwrap();
    let read: i64 = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(after, read);
    lost.abort();
}
