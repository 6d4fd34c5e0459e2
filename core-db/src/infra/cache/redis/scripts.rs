//! The Lua scripts of the Redis driver, one `.lua` file each (in `scripts/`), with the order of
//! their KEYS and ARGV. Each runs atomically in one round trip; the `*_ANNOUNCED` scripts and those
//! taking a channel also `PUBLISH` the change for the tiered driver, in the same step.

use std::sync::LazyLock;

use ::redis::Script;

/// The script in `scripts/{file}`, built (and hashed) on first use.
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(include_str!(concat!("scripts/", $file))))
    };
}

/// KEYS: value, key's tags, key's generation, generation counter. ARGV: key, tag prefix, '1' to
/// return the value, [channel, message]. Moves the key's generation on when a claim registered
/// one.
pub(super) static DELETE: LazyLock<Script> = script!("delete.lua");

/// An announced `SET` (optionally `NX`), for the tiered driver: the write and its `PUBLISH` in one
/// step. KEYS: value. ARGV: value, TTL in ms ('0': none), '1' for NX, channel, message. Returns 1
/// when it stored (and announced), 0 when NX found the key taken.
pub(super) static PUT_ANNOUNCED: LazyLock<Script> = script!("put_announced.lua");

/// An announced bulk write. KEYS: the values. ARGV: TTL in ms ('0': none), channel, message, then
/// the value of each key.
pub(super) static PUT_MANY_ANNOUNCED: LazyLock<Script> = script!("put_many_announced.lua");

/// KEYS: value, key's tags, tag index. ARGV: value, TTL in ms ('0': none), key, tag prefix,
/// channel ('': do not announce), message, then the tags.
pub(super) static SET_WITH_TAGS: LazyLock<Script> = script!("set_with_tags.lua");

/// KEYS: tag index, generation counter. ARGV: tag prefix, key-tags prefix, value prefix, channel
/// ('': do not announce), origin, tag-generation prefix, then the tags. Moves on the generation
/// of every tag a claim registered, then announces the removed keys in the tiered driver's
/// format.
pub(super) static INVALIDATE_TAGS: LazyLock<Script> = script!("invalidate_tags.lua");

/// KEYS: the tag's sorted set. ARGV: key-tags prefix, value prefix, the tag. Returns the keys
/// that carry the tag and hold a value, pruning members that expired or lost the tag.
pub(super) static KEYS_BY_TAG: LazyLock<Script> = script!("keys_by_tag.lua");

/// KEYS: tag index. ARGV: tag prefix, key-tags prefix, value prefix. Returns every tag carried
/// by at least one key that holds a value, pruning the index on the way.
pub(super) static LIST_TAGS: LazyLock<Script> = script!("list_tags.lua");

/// KEYS: the values to delete. ARGV: value prefix, key-tags prefix, tag prefix, tag index,
/// [channel, origin]. With a channel, announces the batch's keys in the tiered driver's format
/// (each batch its own keys: the other processes evict exactly those, not their whole prefix once
/// per batch).
pub(super) static FLUSH_BATCH: LazyLock<Script> = script!("flush_batch.lua");

/// KEYS: the counter. ARGV: by, TTL in ms ('-1': leave the expiry alone, '0': delete),
/// [channel, message].
pub(super) static INCREMENT_EX: LazyLock<Script> = script!("increment_ex.lua");

/// KEYS: the lock. ARGV: the owner token. Deletes the lock only when the token owns it;
/// returns 1 when it did, 0 otherwise.
pub(super) static LOCK_RELEASE: LazyLock<Script> = script!("lock_release.lua");

/// KEYS: value, `remember` lock, generation counter, key's generation, then each tag's
/// generation. ARGV: owner token, lock TTL in ms, '1' to treat a value equal to `ARGV[4]` as
/// missing, that value, generation TTL in ms. Returns {1, value} when the key holds a value;
/// otherwise {2, seen, generations…} when this token took the lock and {0, seen, generations…}
/// when another owner holds it, `seen` being the ignored value (or nil) and the generations
/// those of the key and tags, registered (created from the counter when missing) for the TTL.
pub(super) static CLAIM: LazyLock<Script> = script!("claim.lua");

/// KEYS: value, generation counter, key's generation, then each tag's generation. ARGV:
/// generation TTL in ms. Returns {value or nil, generations…}, registered as by [`CLAIM`].
pub(super) static FENCE: LazyLock<Script> = script!("fence.lua");

/// A fenced `remember` write. KEYS: value, key's tags, tag index, flexible stamp, key's
/// generation, then each tag's generation. ARGV: value, TTL in ms ('0': none), key, tag prefix,
/// channel ('': do not announce), message, mode ('p' put, 't' tagged, 'f' flexible), '1' when
/// the fence saw a value, that value, the stamp, the key's generation, each tag's generation,
/// then the tags. Writes (and announces) only if the key still holds what the fence saw and no
/// generation moved; returns 1 when it wrote, 0 otherwise.
pub(super) static FILL: LazyLock<Script> = script!("fill.lua");
