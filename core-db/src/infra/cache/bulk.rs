//! Many keys at once: bulk reads and writes, and deleting by key prefix.

use super::{Cache, check_key};
use crate::Result;

impl Cache {
    /// The values at `keys`, in order, in one round trip. An empty slice returns an empty vector
    /// without asking the backend.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in keys {
            check_key(key)?;
        }
        store_call!(self, s => s.many(keys))
    }

    /// Stores every pair without expiry, in one round trip (`MSET` on Redis). An empty slice
    /// does nothing.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn put_many(&self, pairs: &[(&str, &str)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        for (key, _) in pairs {
            check_key(key)?;
        }
        store_call!(self, s => s.put_many(pairs, None))
    }

    /// Deletes exactly the cache keys that start with the literal `prefix` (`""` deletes every
    /// key of this cache), with their tags.
    ///
    /// On Redis it walks `{app}:cache:{prefix}*` with `SCAN` (glob characters in either prefix
    /// escaped) and deletes with `UNLINK` in small batches, so Redis keeps serving other clients;
    /// it never uses `KEYS` or `FLUSHDB` and never touches a key outside `{app}:cache:`.
    ///
    /// # Errors
    /// As [`Cache::get`]; keys deleted before a failure stay deleted.
    pub async fn flush_prefix(&self, prefix: &str) -> Result<()> {
        store_call!(self, s => s.flush_prefix(prefix))
    }
}
