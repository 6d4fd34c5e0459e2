//! The Redis queue's Lua scripts: one `.lua` file per command under `scripts/`, loaded with
//! `include_str!`, and one typed wrapper per script whose fields name its KEYS and ARGV in the
//! order the script reads them. Nothing patches script text at run time: every value a script
//! needs is an argument.
//!
//! Helpers shared by several scripts (`scripts/lib/clock.lua`: the server's clock;
//! `scripts/lib/entry.lua`: grouped entries) are prepended at compile time with `concat!`.

use std::sync::{Arc, LazyLock};

use core_db::infra::redis_connection::SharedConn;
use redis::{FromRedisValue, RedisResult, Script, ScriptInvocation};

/// Defines `$source`, a script's full text (the listed files, in order, under `scripts/`), and
/// `$name`, the script compiled (its SHA1 computed) on first use.
macro_rules! script {
    ($name:ident, $source:ident, $($file:literal),+) => {
        const $source: &str = concat!($(include_str!(concat!("scripts/", $file))),+);
        static $name: LazyLock<Script> = LazyLock::new(|| Script::new($source));
    };
}

script!(CLAIM, CLAIM_LUA, "lib/clock.lua", "claim.lua");
script!(
    ENQUEUE,
    ENQUEUE_LUA,
    "lib/clock.lua",
    "lib/entry.lua",
    "enqueue.lua"
);
script!(
    PROMOTE,
    PROMOTE_LUA,
    "lib/clock.lua",
    "lib/entry.lua",
    "promote.lua"
);
script!(RECOVER, RECOVER_LUA, "lib/clock.lua", "recover.lua");
script!(RETRY, RETRY_LUA, "lib/clock.lua", "retry.lua");
script!(FINISH, FINISH_LUA, "lib/entry.lua", "finish.lua");
script!(EXTEND, EXTEND_LUA, "lib/clock.lua", "extend.lua");
script!(RELEASE, RELEASE_LUA, "lib/clock.lua", "release.lua");
const UNLOCK_LUA: &str = concat!(include_str!("scripts/unlock.lua"),);
static UNLOCK: LazyLock<Script> = LazyLock::new(|| Script::new(UNLOCK_LUA));

/// One script call: its invocation with the KEYS and ARGV in the script's order.
pub(super) trait LuaCall {
    /// What the script replies.
    type Reply: FromRedisValue;

    /// The prepared call.
    fn invocation(&self) -> ScriptInvocation<'static>;

    /// Runs the script on `conn` (loading it first if the server does not know it). A reply
    /// that does not fit the script's replaces the shared connection
    /// ([`SharedConn::checked`]).
    async fn run(&self, conn: &mut SharedConn) -> RedisResult<Self::Reply> {
        let reply = self.invocation().invoke_async(conn).await;
        conn.checked(reply)
    }
}

/// `claim.lua`: leases up to `max` jobs (a lost claim's first, then the processing list, then
/// ready). Replies `(taken over, envelopes)`.
pub(super) struct Claim<'a> {
    pub(super) processing: &'a str,
    pub(super) ready: &'a str,
    pub(super) leases: &'a str,
    pub(super) claimed: &'a str,
    pub(super) max: usize,
    pub(super) lease_ms: u64,
    pub(super) token: &'a str,
    pub(super) lost_tokens: &'a [String],
}

impl LuaCall for Claim<'_> {
    type Reply = (usize, Vec<String>);

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = CLAIM.prepare_invoke();
        inv.key(self.processing)
            .key(self.ready)
            .key(self.leases)
            .key(self.claimed)
            .arg(self.max)
            .arg(self.lease_ms)
            .arg(self.token);
        for lost in self.lost_tokens {
            inv.arg(lost);
        }
        inv
    }
}

/// When an [`Enqueue`]d job becomes ready.
#[derive(Debug, Clone, Copy)]
pub(super) enum EnqueueAt {
    /// Now (a grouped job behind its group's running one).
    Now,
    /// After this many milliseconds of the server's clock.
    In(u64),
    /// At this Unix time in milliseconds.
    At(i64),
}

/// `enqueue.lua`: queues one job, grouped, delayed or unique. Replies 1, or 0 when the unique
/// key was taken.
pub(super) struct Enqueue<'a> {
    pub(super) ready: &'a str,
    pub(super) delayed: &'a str,
    pub(super) delayed_grouped: &'a str,
    pub(super) groups: &'a str,
    pub(super) group_list: &'a str,
    pub(super) unique_key: &'a str,
    pub(super) grouped_waiting: &'a str,
    pub(super) envelope: &'a str,
    pub(super) at: EnqueueAt,
    /// `""` for none.
    pub(super) group: &'a str,
    pub(super) id: &'a str,
    /// 0 for no unique key.
    pub(super) unique_ttl_ms: u64,
}

impl LuaCall for Enqueue<'_> {
    type Reply = i64;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let (mode, ms) = match self.at {
            EnqueueAt::Now => ("now", 0i64),
            EnqueueAt::In(ms) => ("in", i64::try_from(ms).unwrap_or(i64::MAX / 4)),
            EnqueueAt::At(t) => ("at", t),
        };
        let mut inv = ENQUEUE.prepare_invoke();
        inv.key(self.ready)
            .key(self.delayed)
            .key(self.delayed_grouped)
            .key(self.groups)
            .key(self.group_list)
            .key(self.unique_key)
            .key(self.grouped_waiting)
            .arg(self.envelope)
            .arg(mode)
            .arg(ms)
            .arg(self.group)
            .arg(self.id)
            .arg(self.unique_ttl_ms);
        inv
    }
}

/// `promote.lua`: moves due delayed jobs to ready. Replies `(moved, ms until the next due job
/// or -1, unreadable grouped entries released)`.
pub(super) struct Promote<'a> {
    pub(super) delayed: &'a str,
    pub(super) ready: &'a str,
    pub(super) delayed_grouped: &'a str,
    pub(super) groups: &'a str,
    pub(super) grouped_waiting: &'a str,
    pub(super) limit: usize,
    pub(super) group_prefix: &'a str,
}

impl LuaCall for Promote<'_> {
    type Reply = (i64, i64, u64);

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = PROMOTE.prepare_invoke();
        inv.key(self.delayed)
            .key(self.ready)
            .key(self.delayed_grouped)
            .key(self.groups)
            .key(self.grouped_waiting)
            .arg(self.limit)
            .arg(self.group_prefix);
        inv
    }
}

/// `recover.lua`: moves expired leases and dead workers' processing lists back to ready.
/// Replies how many jobs moved.
pub(super) struct Recover<'a> {
    pub(super) leases: &'a str,
    pub(super) ready: &'a str,
    pub(super) workers: &'a str,
    pub(super) limit: usize,
    pub(super) processing_prefix: &'a str,
    pub(super) claimed_prefix: &'a str,
}

impl LuaCall for Recover<'_> {
    type Reply = u64;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = RECOVER.prepare_invoke();
        inv.key(self.leases)
            .key(self.ready)
            .key(self.workers)
            .arg(self.limit)
            .arg(self.processing_prefix)
            .arg(self.claimed_prefix);
        inv
    }
}

/// `retry.lua`: ends a lease and schedules the next attempt. Replies 1, or 0 when the lease was
/// gone.
pub(super) struct Retry<'a> {
    pub(super) leases: &'a str,
    pub(super) delayed: &'a str,
    pub(super) old_envelope: &'a str,
    pub(super) new_envelope: &'a str,
    pub(super) delay_ms: u64,
}

impl LuaCall for Retry<'_> {
    type Reply = i64;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = RETRY.prepare_invoke();
        inv.key(self.leases)
            .key(self.delayed)
            .arg(self.old_envelope)
            .arg(self.new_envelope)
            .arg(self.delay_ms);
        inv
    }
}

/// `finish.lua`: ends a lease, keeps a failure record, starts the group's next job. Replies
/// `(1, or 0 when the lease was gone; unreadable group entries released)`.
pub(super) struct Finish<'a> {
    pub(super) leases: &'a str,
    pub(super) ready: &'a str,
    pub(super) groups: &'a str,
    pub(super) group_list: &'a str,
    pub(super) pending: &'a str,
    pub(super) grouped_waiting: &'a str,
    pub(super) envelope: &'a str,
    /// `""` for none.
    pub(super) group: &'a str,
    pub(super) id: &'a str,
    /// `""` for none.
    pub(super) record: &'a str,
}

impl LuaCall for Finish<'_> {
    type Reply = (i64, u64);

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = FINISH.prepare_invoke();
        inv.key(self.leases)
            .key(self.ready)
            .key(self.groups)
            .key(self.group_list)
            .key(self.pending)
            .key(self.grouped_waiting)
            .arg(self.envelope)
            .arg(self.group)
            .arg(self.id)
            .arg(self.record);
        inv
    }
}

/// `extend.lua`: extends leases and the worker's heartbeat. Replies the 1-based positions of
/// the envelopes no longer leased.
pub(super) struct Extend<'a> {
    pub(super) leases: &'a str,
    pub(super) workers: &'a str,
    pub(super) lease_ms: u64,
    pub(super) worker: &'a str,
    pub(super) envelopes: &'a [Arc<str>],
}

impl LuaCall for Extend<'_> {
    type Reply = Vec<usize>;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = EXTEND.prepare_invoke();
        inv.key(self.leases)
            .key(self.workers)
            .arg(self.lease_ms)
            .arg(self.worker);
        for env in self.envelopes {
            inv.arg(env.as_bytes());
        }
        inv
    }
}

/// `release.lua`: puts back a worker's processing list and a lost claim's jobs. Replies 1.
pub(super) struct Release<'a> {
    pub(super) processing: &'a str,
    pub(super) ready: &'a str,
    pub(super) workers: &'a str,
    pub(super) claimed: &'a str,
    pub(super) leases: &'a str,
    pub(super) worker: &'a str,
    pub(super) heartbeat_ms: u64,
    pub(super) lost_tokens: &'a [String],
}

impl LuaCall for Release<'_> {
    type Reply = i64;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = RELEASE.prepare_invoke();
        inv.key(self.processing)
            .key(self.ready)
            .key(self.workers)
            .key(self.claimed)
            .key(self.leases)
            .arg(self.worker)
            .arg(self.heartbeat_ms);
        for token in self.lost_tokens {
            inv.arg(token);
        }
        inv
    }
}

/// `unlock.lua`: deletes a lock only if it still holds `token`. Replies 1 when deleted.
pub(super) struct Unlock<'a> {
    pub(super) lock: &'a str,
    pub(super) token: &'a str,
}

impl LuaCall for Unlock<'_> {
    type Reply = i64;

    fn invocation(&self) -> ScriptInvocation<'static> {
        let mut inv = UNLOCK.prepare_invoke();
        inv.key(self.lock).arg(self.token);
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCK: &str = include_str!("scripts/lib/clock.lua");

    /// The highest `NAME[i]` index a script reads (`KEYS` or `ARGV`).
    fn highest(source: &str, name: &str) -> usize {
        let pat = format!("{name}[");
        source
            .match_indices(&pat)
            .filter_map(|(i, _)| {
                let rest = &source[i + pat.len()..];
                rest[..rest.find(']')?].parse::<usize>().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether a script reads a variable number of ARGV (`for i = n, #ARGV`).
    fn variadic(source: &str) -> Option<usize> {
        let i = source.find(", #ARGV do")?;
        let head = &source[..i];
        let start = head.rfind("= ")? + 2;
        head[start..].trim().parse().ok()
    }

    /// The number of keys and arguments of a prepared invocation (its `Debug` reports counts).
    fn counts(inv: &ScriptInvocation<'_>) -> (usize, usize) {
        let text = format!("{inv:?}");
        let read = |field: &str| -> usize {
            let at = text.find(&format!("{field}: ")).expect("field in Debug") + field.len() + 2;
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().expect("a count")
        };
        (read("keys"), read("args"))
    }

    /// Asserts that `inv` passes exactly the KEYS `source` reads, and its ARGV: exactly the
    /// fixed ones, plus `extra` for a script that loops over the rest.
    fn check(name: &str, source: &str, inv: &ScriptInvocation<'_>, extra: usize) {
        let (keys, args) = counts(inv);
        assert_eq!(keys, highest(source, "KEYS"), "{name}: KEYS passed vs read");
        match variadic(source) {
            Some(first) => {
                assert!(
                    highest(source, "ARGV") < first,
                    "{name}: fixed ARGV before the loop"
                );
                assert_eq!(args, first - 1 + extra, "{name}: ARGV passed vs read");
            }
            None => assert_eq!(args, highest(source, "ARGV"), "{name}: ARGV passed vs read"),
        }
    }

    #[test]
    fn every_wrapper_passes_the_keys_and_arguments_its_script_reads() {
        let lost = vec!["t1".to_owned(), "t2".to_owned()];
        let envs: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b"), Arc::from("c")];
        let claim = Claim {
            processing: "p",
            ready: "r",
            leases: "l",
            claimed: "c",
            max: 10,
            lease_ms: 30_000,
            token: "t",
            lost_tokens: &lost,
        };
        check("claim", CLAIM_LUA, &claim.invocation(), lost.len());
        for at in [EnqueueAt::Now, EnqueueAt::In(5), EnqueueAt::At(1)] {
            let enqueue = Enqueue {
                ready: "r",
                delayed: "d",
                delayed_grouped: "dg",
                groups: "g",
                group_list: "gl",
                unique_key: "u",
                grouped_waiting: "gw",
                envelope: "{}",
                at,
                group: "",
                id: "1",
                unique_ttl_ms: 0,
            };
            check("enqueue", ENQUEUE_LUA, &enqueue.invocation(), 0);
        }
        let promote = Promote {
            delayed: "d",
            ready: "r",
            delayed_grouped: "dg",
            groups: "g",
            grouped_waiting: "gw",
            limit: 1000,
            group_prefix: "g:",
        };
        check("promote", PROMOTE_LUA, &promote.invocation(), 0);
        let recover = Recover {
            leases: "l",
            ready: "r",
            workers: "w",
            limit: 1000,
            processing_prefix: "p:",
            claimed_prefix: "c:",
        };
        check("recover", RECOVER_LUA, &recover.invocation(), 0);
        let retry = Retry {
            leases: "l",
            delayed: "d",
            old_envelope: "a",
            new_envelope: "b",
            delay_ms: 100,
        };
        check("retry", RETRY_LUA, &retry.invocation(), 0);
        let finish = Finish {
            leases: "l",
            ready: "r",
            groups: "g",
            group_list: "gl",
            pending: "fp",
            grouped_waiting: "gw",
            envelope: "a",
            group: "g1",
            id: "1",
            record: "",
        };
        check("finish", FINISH_LUA, &finish.invocation(), 0);
        let extend = Extend {
            leases: "l",
            workers: "w",
            lease_ms: 30_000,
            worker: "w1",
            envelopes: &envs,
        };
        check("extend", EXTEND_LUA, &extend.invocation(), envs.len());
        let release = Release {
            processing: "p",
            ready: "r",
            workers: "w",
            claimed: "c",
            leases: "l",
            worker: "w1",
            heartbeat_ms: 3000,
            lost_tokens: &lost,
        };
        check("release", RELEASE_LUA, &release.invocation(), lost.len());
        let unlock = Unlock {
            lock: "k",
            token: "t",
        };
        check("unlock", UNLOCK_LUA, &unlock.invocation(), 0);
    }

    #[test]
    fn scripts_read_the_clock_only_through_the_shared_helper() {
        for source in [
            CLAIM_LUA,
            ENQUEUE_LUA,
            PROMOTE_LUA,
            RECOVER_LUA,
            RETRY_LUA,
            EXTEND_LUA,
            RELEASE_LUA,
        ] {
            assert!(source.starts_with(CLOCK), "the clock helper comes first");
            assert_eq!(source.matches("redis.call('TIME')").count(), 1);
            assert!(source.contains("now_ms()"));
        }
        for source in [FINISH_LUA, UNLOCK_LUA] {
            assert!(!source.contains("now_ms"));
        }
    }

    /// Every script is valid Lua as Redis sees it: loading it (`SCRIPT LOAD` compiles it)
    /// succeeds.
    #[tokio::test]
    async fn every_script_compiles_on_the_server() {
        let Some(redis) = test_support::redis("scripts_compile").await else {
            return;
        };
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for script in [
            &*CLAIM, &*ENQUEUE, &*PROMOTE, &*RECOVER, &*RETRY, &*FINISH, &*EXTEND, &*RELEASE,
            &*UNLOCK,
        ] {
            let sha = script.load_async(&mut conn).await.unwrap();
            assert_eq!(sha, script.get_hash());
        }
    }
}
