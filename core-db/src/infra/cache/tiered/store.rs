//! The tiered driver's [`Store`] operations: reads try L1 then L2, changes go to L2 and then to
//! this L1 (see the [driver's docs](super)).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::TieredStore;
use super::coherence::Ticket;
use crate::infra::cache::Expiry;
use crate::infra::cache::store::{Claim, Fence, Fill, FlightLimits, Store};
use crate::{Error, Result};

impl Store for TieredStore {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let counters = &self.inner.counters;
        if self.l1_on()
            && let Some(value) = self.inner.l1.get(key).await?
        {
            counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(value));
        }
        if !self.l2_on() {
            counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let promote = self.inner.config.promote_to_l1 && self.l1_on();
        let ticket = promote.then(|| self.coherence().ticket(key));
        let found = if promote {
            self.inner.l2.get_with_expiry(key).await?
        } else {
            self.inner.l2.get(key).await?.map(|v| (v, Expiry::Missing))
        };
        match found {
            Some((value, expiry)) => {
                counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                if let Some(ticket) = ticket {
                    self.promote(key, &value, expiry, ticket).await;
                }
                Ok(Some(value))
            }
            None => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.put(key, value, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        if let Err(e) = self.inner.l2.put(key, value, ttl).await {
            return self.change_failed(&[key], e).await;
        }
        self.after_write(&pairs, ttl, &before).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool> {
        if !self.l2_on() {
            return self.inner.l1.add(key, value, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        let stored = match self.inner.l2.add(key, value, ttl).await {
            Ok(stored) => stored,
            Err(e) => return self.change_failed(&[key], e).await,
        };
        if stored {
            self.after_write(&pairs, ttl, &before).await;
        }
        Ok(stored)
    }

    async fn pull(&self, key: &str) -> Result<Option<String>> {
        if !self.l2_on() {
            return self.inner.l1.pull(key).await;
        }
        let value = match self.inner.l2.pull(key).await {
            Ok(value) => value,
            Err(e) => return self.change_failed(&[key], e).await,
        };
        self.evict_local(&[key]).await;
        Ok(value)
    }

    async fn del(&self, key: &str) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.del(key).await;
        }
        if let Err(e) = self.inner.l2.del(key).await {
            return self.change_failed(&[key], e).await;
        }
        self.evict_local(&[key]).await;
        Ok(())
    }

    async fn has(&self, key: &str) -> Result<bool> {
        if self.l1_on() && self.inner.l1.has(key).await? {
            return Ok(true);
        }
        if !self.l2_on() {
            return Ok(false);
        }
        self.inner.l2.has(key).await
    }

    async fn expiry(&self, key: &str) -> Result<Expiry> {
        if self.l2_on() {
            self.inner.l2.expiry(key).await
        } else {
            self.inner.l1.expiry(key).await
        }
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        if !self.l2_on() {
            return self.inner.l1.increment(key, by, ttl).await;
        }
        let value = match self.inner.l2.increment(key, by, ttl).await {
            Ok(value) => value,
            // Not an integer, or an overflow: Redis refused, nothing changed.
            Err(e @ Error::InvalidValue { .. }) => return Err(e),
            Err(e) => return self.change_failed(&[key], e).await,
        };
        self.evict_local(&[key]).await;
        Ok(value)
    }

    async fn many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let counters = &self.inner.counters;
        let mut out: Vec<Option<String>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = Vec::new();
        if self.l1_on() {
            for (i, key) in keys.iter().enumerate() {
                match self.inner.l1.get(key).await? {
                    Some(value) => out[i] = Some(value),
                    None => missing.push(i),
                }
            }
        } else {
            missing.extend(0..keys.len());
        }
        counters
            .l1_hits
            .fetch_add((keys.len() - missing.len()) as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(out);
        }
        if !self.l2_on() {
            counters
                .misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            return Ok(out);
        }
        let wanted: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let promote = self.inner.config.promote_to_l1 && self.l1_on();
        let tickets: Vec<Ticket> = if promote {
            wanted
                .iter()
                .map(|key| self.coherence().ticket(key))
                .collect()
        } else {
            Vec::new()
        };
        let found: Vec<Option<(String, Expiry)>> = if promote {
            self.inner.l2.many_with_expiry(&wanted).await?
        } else {
            self.inner
                .l2
                .many(&wanted)
                .await?
                .into_iter()
                .map(|v| v.map(|v| (v, Expiry::Missing)))
                .collect()
        };
        for (n, (&i, hit)) in missing.iter().zip(found).enumerate() {
            match hit {
                Some((value, expiry)) => {
                    counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                    if promote {
                        self.promote(keys[i], &value, expiry, tickets[n]).await;
                    }
                    out[i] = Some(value);
                }
                None => {
                    counters.misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(out)
    }

    async fn put_many(&self, pairs: &[(&str, &str)], ttl: Option<Duration>) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.put_many(pairs, ttl).await;
        }
        let before = self.tickets(pairs);
        if let Err(e) = self.inner.l2.put_many(pairs, ttl).await {
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
            return self.change_failed(&keys, e).await;
        }
        self.after_write(pairs, ttl, &before).await;
        Ok(())
    }

    async fn flush_prefix(&self, prefix: &str) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.flush_prefix(prefix).await;
        }
        if let Err(e) = self.inner.l2.flush_prefix(prefix).await {
            return self.prefix_change_failed(prefix, e).await;
        }
        if self.inner.config.enable_l1 {
            self.coherence().bump_all();
            self.inner.l1.flush_prefix(prefix).await?;
        }
        Ok(())
    }

    async fn set_with_tags(
        &self,
        key: &str,
        value: &str,
        tags: &[&str],
        ttl: Option<Duration>,
    ) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.set_with_tags(key, value, tags, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        if let Err(e) = self.inner.l2.set_with_tags(key, value, tags, ttl).await {
            return self.change_failed(&[key], e).await;
        }
        self.after_write(&pairs, ttl, &before).await;
        Ok(())
    }

    async fn invalidate_tags(&self, tags: &[&str]) -> Result<Vec<String>> {
        if !self.l2_on() {
            return self.inner.l1.invalidate_tags(tags).await;
        }
        let removed = match self.inner.l2.invalidate_tags(tags).await {
            Ok(removed) => removed,
            // Which keys it removed is unknown: every L1 drops everything.
            Err(e) => return self.prefix_change_failed("", e).await,
        };
        if !removed.is_empty() {
            let keys: Vec<&str> = removed.iter().map(String::as_str).collect();
            self.evict_local(&keys).await;
        }
        Ok(removed)
    }

    async fn keys_by_tag(&self, tag: &str) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.keys_by_tag(tag).await
        } else {
            self.inner.l1.keys_by_tag(tag).await
        }
    }

    async fn tags_for_key(&self, key: &str) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.tags_for_key(key).await
        } else {
            self.inner.l1.tags_for_key(key).await
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.list_tags().await
        } else {
            self.inner.l1.list_tags().await
        }
    }

    async fn lock_acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        if self.l2_on() {
            self.inner.l2.lock_acquire(name, token, ttl).await
        } else {
            self.inner.l1.lock_acquire(name, token, ttl).await
        }
    }

    async fn lock_release(&self, name: &str, token: &str) -> Result<bool> {
        if self.l2_on() {
            self.inner.l2.lock_release(name, token).await
        } else {
            self.inner.l1.lock_release(name, token).await
        }
    }

    async fn claim(
        &self,
        key: &str,
        lock: &str,
        token: &str,
        lock_ttl: Duration,
        ignore: Option<&str>,
        tags: &[&str],
    ) -> Result<Claim> {
        if self.l2_on() {
            self.inner
                .l2
                .claim(key, lock, token, lock_ttl, ignore, tags)
                .await
        } else {
            self.inner
                .l1
                .claim(key, lock, token, lock_ttl, ignore, tags)
                .await
        }
    }

    async fn fence(&self, key: &str, tags: &[&str]) -> Result<Fence> {
        if self.l2_on() {
            self.inner.l2.fence(key, tags).await
        } else {
            self.inner.l1.fence(key, tags).await
        }
    }

    async fn fill(
        &self,
        key: &str,
        value: &str,
        fill: Fill<'_>,
        ttl: Option<Duration>,
        fence: &Fence,
    ) -> Result<bool> {
        if !self.l2_on() {
            return self.inner.l1.fill(key, value, fill, ttl, fence).await;
        }
        let mut pairs = vec![(key, value)];
        if let Fill::Flexible { stamp_key, stamp } = fill {
            pairs.push((stamp_key, stamp));
        }
        let before = self.tickets(&pairs);
        match self.inner.l2.fill(key, value, fill, ttl, fence).await {
            // L2 refused: nothing changed anywhere, and this L1 is left alone.
            Ok(false) => Ok(false),
            Ok(true) => {
                self.after_write(&pairs, ttl, &before).await;
                Ok(true)
            }
            Err(e) => {
                let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
                self.change_failed(&keys, e).await
            }
        }
    }

    fn flight_limits(&self) -> FlightLimits {
        if self.l2_on() {
            self.inner.l2.flight_limits()
        } else {
            self.inner.l1.flight_limits()
        }
    }
}
