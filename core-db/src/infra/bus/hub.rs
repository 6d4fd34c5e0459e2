//! The local fan-out both drivers share: one bounded broadcast channel per channel that has
//! subscriptions in this process, with its subscription count.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::Message;

/// The channels this process subscribes to. The memory driver publishes straight into it; the
/// Redis driver's listener delivers what Redis sends.
pub(super) struct Hub {
    /// Each subscription's buffer: a subscription that falls this far behind gets a
    /// [`Message::Gap`] and skips ahead.
    capacity: usize,
    channels: Mutex<HashMap<String, Channel>>,
}

struct Channel {
    sender: broadcast::Sender<Message>,
    subscriptions: usize,
    /// The driver's connection was lost since these subscriptions were confirmed: they get a
    /// [`Message::Gap`] once it is back ([`Hub::resubscribed`]).
    missed: bool,
}

impl Hub {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more subscription on `key`: its receiver. `first` runs (under the hub's lock, so in
    /// order with [`Hub::leave`]'s `last`) when `key` had none.
    pub(super) fn join(&self, key: &str, first: impl FnOnce()) -> broadcast::Receiver<Message> {
        let mut channels = self.lock();
        let channel = match channels.entry(key.to_owned()) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => {
                first();
                slot.insert(Channel {
                    sender: broadcast::channel(self.capacity).0,
                    subscriptions: 0,
                    missed: false,
                })
            }
        };
        channel.subscriptions += 1;
        channel.sender.subscribe()
    }

    /// One subscription on `key` fewer; `last` runs (under the hub's lock) when it was the last.
    pub(super) fn leave(&self, key: &str, last: impl FnOnce()) {
        let mut channels = self.lock();
        let Some(channel) = channels.get_mut(key) else {
            return;
        };
        channel.subscriptions = channel.subscriptions.saturating_sub(1);
        if channel.subscriptions == 0 {
            channels.remove(key);
            last();
        }
    }

    /// Hands `message` to every subscription on `key` (none: dropped). Never waits: a
    /// subscription whose buffer is full loses its oldest message and gets a gap.
    pub(super) fn deliver(&self, key: &str, message: Message) {
        if let Some(channel) = self.lock().get(key) {
            // Err only when every receiver is gone, between a drop and its `leave`.
            let _ = channel.sender.send(message);
        }
    }

    /// The driver's connection is gone: every subscription may miss messages from now on.
    pub(super) fn lost(&self) {
        for channel in self.lock().values_mut() {
            channel.missed = true;
        }
    }

    /// The driver's connection is back and every channel subscribed again: the subscriptions
    /// that lived through the loss get a [`Message::Gap`].
    pub(super) fn resubscribed(&self) {
        for channel in self.lock().values_mut() {
            if std::mem::take(&mut channel.missed) {
                let _ = channel.sender.send(Message::Gap);
            }
        }
    }
}
