//! The in-process driver: the Redis driver's structures, in a mutex per queue name.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Claimer, Driver, Push, QueueDriver, QueueStats, RunningJob, When};
use crate::envelope::now_ms;
use crate::error::Result;

#[derive(Clone, Default)]
pub(crate) struct MemoryDriver {
    queues: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

#[derive(Default)]
pub(crate) struct Slot {
    state: Mutex<State>,
    notify: Notify,
}

/// A delayed job: its envelope and, for a grouped job that still has to be admitted into its
/// group, `(group, id)`.
type DelayedEntry = (Arc<str>, Option<(String, String)>);

#[derive(Default)]
struct State {
    ready: VecDeque<Arc<str>>,
    leases: HashMap<Arc<str>, i64>,
    delayed: BTreeMap<(i64, u64), DelayedEntry>,
    active: HashMap<String, String>,
    groups: HashMap<String, VecDeque<(Arc<str>, String)>>,
    unique: HashMap<String, i64>,
    pending: VecDeque<String>,
    pending_lock_until: i64,
    pending_lock_token: String,
    seq: u64,
}

fn lock(slot: &Slot) -> MutexGuard<'_, State> {
    slot.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl State {
    /// Admits a grouped job: straight to ready when its group is idle, else behind the group.
    fn admit(&mut self, env: Arc<str>, group: String, id: String) -> bool {
        match self.active.entry(group) {
            Entry::Occupied(slot) => {
                let group = slot.key().clone();
                self.groups.entry(group).or_default().push_back((env, id));
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(id);
                self.ready.push_back(env);
                true
            }
        }
    }

    /// The group's running job `id` has finished: start the next one, or free the group.
    fn advance(&mut self, group: &str, id: &str) -> bool {
        if self.active.get(group).map(String::as_str) != Some(id) {
            return false;
        }
        let next = self.groups.get_mut(group).and_then(VecDeque::pop_front);
        match next {
            Some((env, next_id)) => {
                if self.groups.get(group).is_some_and(VecDeque::is_empty) {
                    self.groups.remove(group);
                }
                self.active.insert(group.to_owned(), next_id);
                self.ready.push_back(env);
                true
            }
            None => {
                self.active.remove(group);
                false
            }
        }
    }

    fn delay(&mut self, due: i64, entry: DelayedEntry) {
        self.seq += 1;
        let seq = self.seq;
        self.delayed.insert((due, seq), entry);
    }
}

impl MemoryDriver {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn slot(&self, queue: &str) -> Arc<Slot> {
        let mut map = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get(queue) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        map.insert(queue.to_owned(), slot.clone());
        slot
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn kind(&self) -> QueueDriver {
        QueueDriver::Memory
    }

    async fn push(&self, queue: &str, push: Push) -> Result<bool> {
        let slot = self.slot(queue);
        let now = now_ms();
        let woke = {
            let mut st = lock(&slot);
            if let Some((key, ttl)) = &push.unique {
                match st.unique.get(key) {
                    Some(&until) if until > now => return Ok(false),
                    _ => {
                        st.unique.retain(|_, until| *until > now);
                        st.unique.insert(key.clone(), now + ms(*ttl).max(1));
                    }
                }
            }
            let env: Arc<str> = push.env.into();
            match push.when {
                When::Now => match push.group {
                    Some(group) => st.admit(env, group, push.id),
                    None => {
                        st.ready.push_back(env);
                        true
                    }
                },
                when => {
                    let due = match when {
                        When::In(delay) => now + ms(delay),
                        When::At(at) => at,
                        When::Now => now,
                    };
                    let admit = push.group.map(|g| (g, push.id));
                    st.delay(due, (env, admit));
                    false
                }
            }
        };
        if woke {
            slot.notify.notify_waiters();
        }
        Ok(true)
    }

    async fn push_many(&self, queue: &str, envs: Vec<String>) -> Result<()> {
        let slot = self.slot(queue);
        {
            let mut st = lock(&slot);
            st.ready.extend(envs.into_iter().map(Arc::from));
        }
        slot.notify.notify_waiters();
        Ok(())
    }

    async fn claimer(
        &self,
        queue: &str,
        _worker: &str,
        _lease: Duration,
    ) -> Result<Box<dyn Claimer>> {
        Ok(Box::new(MemoryClaimer {
            slot: self.slot(queue),
        }))
    }

    async fn ack(&self, queue: &str, envs: &[Arc<str>]) -> Result<()> {
        let slot = self.slot(queue);
        let mut st = lock(&slot);
        for env in envs {
            st.leases.remove(env);
        }
        Ok(())
    }

    async fn finish(
        &self,
        queue: &str,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) -> Result<bool> {
        let slot = self.slot(queue);
        let woke = {
            let mut st = lock(&slot);
            if st.leases.remove(env).is_none() {
                return Ok(false);
            }
            if let Some(record) = record {
                st.pending.push_back(record.to_owned());
            }
            group.is_some_and(|(g, id)| st.advance(g, id))
        };
        if woke {
            slot.notify.notify_waiters();
        }
        Ok(true)
    }

    async fn retry(
        &self,
        queue: &str,
        old: &Arc<str>,
        new: String,
        delay: Duration,
    ) -> Result<bool> {
        let slot = self.slot(queue);
        let mut st = lock(&slot);
        if st.leases.remove(old).is_none() {
            return Ok(false);
        }
        let due = now_ms() + ms(delay);
        st.delay(due, (new.into(), None));
        Ok(true)
    }

    /// Extends the leases of `envs`; returns those no longer leased.
    async fn extend(
        &self,
        queue: &str,
        _worker: &str,
        envs: &[Arc<str>],
        lease: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let slot = self.slot(queue);
        let deadline = now_ms() + ms(lease);
        let mut st = lock(&slot);
        let mut lost = Vec::new();
        for env in envs {
            match st.leases.get_mut(env) {
                Some(d) => *d = deadline,
                None => lost.push(env.clone()),
            }
        }
        Ok(lost)
    }

    /// Moves due delayed jobs to ready; returns how long until the next one is due.
    async fn promote(&self, queue: &str) -> Result<Option<Duration>> {
        let slot = self.slot(queue);
        let now = now_ms();
        let (moved, next) = {
            let mut st = lock(&slot);
            let mut moved = 0usize;
            while let Some(entry) = st.delayed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (env, admit) = entry.remove();
                moved += 1;
                match admit {
                    Some((group, id)) => {
                        st.admit(env, group, id);
                    }
                    None => st.ready.push_back(env),
                }
            }
            let next = st.delayed.first_key_value().map(|((due, _), _)| *due - now);
            (moved, next)
        };
        if moved > 0 {
            slot.notify.notify_waiters();
        }
        Ok(next.map(|ms| Duration::from_millis(ms.max(0) as u64)))
    }

    /// Moves jobs whose lease expired back to the front of ready.
    async fn recover(&self, queue: &str) -> Result<u64> {
        let slot = self.slot(queue);
        let now = now_ms();
        let n = {
            let mut st = lock(&slot);
            let expired: Vec<Arc<str>> = st
                .leases
                .iter()
                .filter(|(_, d)| **d <= now)
                .map(|(e, _)| e.clone())
                .collect();
            for env in &expired {
                st.leases.remove(env);
                st.ready.push_front(env.clone());
            }
            expired.len() as u64
        };
        if n > 0 {
            slot.notify.notify_waiters();
        }
        Ok(n)
    }

    /// Takes the pending-failures lock for `ttl` with a fresh token; `None` when it is held.
    async fn lock_pending(&self, queue: &str, ttl: Duration) -> Result<Option<String>> {
        let slot = self.slot(queue);
        let now = now_ms();
        let mut st = lock(&slot);
        if st.pending_lock_until > now {
            return Ok(None);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        st.pending_lock_until = now + ms(ttl);
        st.pending_lock_token = token.clone();
        Ok(Some(token))
    }

    /// Releases the pending-failures lock if it is still held with `token`.
    async fn unlock_pending(&self, queue: &str, token: &str) -> Result<()> {
        let slot = self.slot(queue);
        let mut st = lock(&slot);
        if st.pending_lock_token == token {
            st.pending_lock_until = 0;
            st.pending_lock_token.clear();
        }
        Ok(())
    }

    async fn pending_failures(&self, queue: &str, max: usize) -> Result<Vec<String>> {
        let slot = self.slot(queue);
        let st = lock(&slot);
        Ok(st.pending.iter().take(max).cloned().collect())
    }

    async fn remove_pending(&self, queue: &str, record: &str) -> Result<()> {
        let slot = self.slot(queue);
        let mut st = lock(&slot);
        if let Some(i) = st.pending.iter().position(|r| r == record) {
            st.pending.remove(i);
        }
        Ok(())
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let slot = self.slot(queue);
        let st = lock(&slot);
        Ok(QueueStats {
            ready: st.ready.len() as u64,
            delayed: st.delayed.len() as u64,
            in_flight: st.leases.len() as u64,
            grouped_waiting: st.groups.values().map(|g| g.len() as u64).sum(),
            pending_failures: st.pending.len() as u64,
        })
    }

    async fn running(&self, queue: &str, limit: usize) -> Result<Vec<RunningJob>> {
        let slot = self.slot(queue);
        let mut leased: Vec<(i64, Arc<str>)> = {
            let st = lock(&slot);
            st.leases.iter().map(|(env, d)| (*d, env.clone())).collect()
        };
        leased.sort();
        Ok(leased
            .iter()
            .filter_map(|(deadline, env)| RunningJob::from_lease(queue, env, *deadline))
            .take(limit)
            .collect())
    }
}

/// Claims from one queue of the in-process driver, waiting on its notifier when empty.
pub(crate) struct MemoryClaimer {
    slot: Arc<Slot>,
}

#[async_trait]
impl Claimer for MemoryClaimer {
    async fn claim(
        &mut self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.slot);
                if !st.ready.is_empty() {
                    let n = max.min(st.ready.len());
                    let until = now_ms() + ms(lease);
                    let jobs: Vec<Arc<str>> = st.ready.drain(..n).collect();
                    for env in &jobs {
                        st.leases.insert(env.clone(), until);
                    }
                    return Ok(jobs);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn release(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leased entry that is not a job envelope is not listed, nor counted towards the limit.
    #[tokio::test]
    async fn running_skips_a_leased_entry_that_is_not_an_envelope() {
        let driver = MemoryDriver::new();
        let env = |id: &str| {
            format!(r#"{{"id":"{id}","job":"j","queue":"q","data":null,"attempt":1,"at":5}}"#)
        };
        driver
            .push_many("q", vec!["not json".to_owned(), env("a"), env("b")])
            .await
            .unwrap();
        let mut claimer = driver
            .claimer("q", "w", Duration::from_secs(30))
            .await
            .unwrap();
        let claimed = claimer
            .claim(3, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        let running = driver.running("q", 10).await.unwrap();
        let ids: Vec<&str> = running.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{running:?}");
        assert!(ids.contains(&"a") && ids.contains(&"b"));
        assert_eq!(running[0].attempt, 2);
        assert_eq!(
            running[0].dispatched_at.map(|t| t.timestamp_millis()),
            Some(5)
        );
        assert_eq!(driver.running("q", 1).await.unwrap().len(), 1);
    }
}
