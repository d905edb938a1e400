//! Idempotent sends: a client may give a `send` a key, and a retry with the same key in the same
//! room within the window is answered with the id stored the first time instead of being stored
//! again. This is what makes a retry safe after an answer that could not say whether the message
//! was stored (`timeout`). The Redis engine keeps each key in Redis as a string that expires with
//! the window, in its publish function; this is the same bookkeeping for the in-memory engine,
//! which also caps a room's keys so one process's memory stays bounded (in Redis, memory is the
//! keyed send rate times the window, and an operator's to size).

use std::collections::{HashMap, VecDeque};

use crate::domain::MessageId;

/// The longest key a client may give, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

/// How many keys a room remembers at most on the in-memory engine; past it the oldest are
/// forgotten first, so memory is bounded however fast a room's senders go.
pub const KEYS_PER_ROOM: usize = 10_000;

/// One room's remembered keys.
#[derive(Default)]
pub struct SentKeys {
    ids: HashMap<String, MessageId>,
    /// Keys in the order they were stored, with when (ms).
    order: VecDeque<(u64, String)>,
}

impl SentKeys {
    /// The id stored with `key`, if the room still remembers it at `now_ms`.
    pub fn find(&mut self, key: &str, now_ms: u64, window_ms: u64) -> Option<MessageId> {
        self.forget_older_than(now_ms.saturating_sub(window_ms));
        self.ids.get(key).copied()
    }

    /// Remembers that `key` stored `id` at `now_ms`.
    pub fn remember(&mut self, key: String, id: MessageId, now_ms: u64) {
        self.ids.insert(key.clone(), id);
        self.order.push_back((now_ms, key));
        while self.order.len() > KEYS_PER_ROOM {
            self.forget_oldest();
        }
    }

    fn forget_older_than(&mut self, oldest_kept_ms: u64) {
        while self.order.front().is_some_and(|(at, _)| *at < oldest_kept_ms) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.ids.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_keys_for_the_window_and_at_most_keys_per_room() {
        let mut keys = SentKeys::default();
        let id = MessageId::new(1_000, 0);
        keys.remember("a".into(), id, 1_000);
        assert_eq!(keys.find("a", 1_500, 1_000), Some(id));
        assert_eq!(keys.find("b", 1_500, 1_000), None);
        assert_eq!(keys.find("a", 2_001, 1_000), None, "forgotten after the window");
        for n in 0..=KEYS_PER_ROOM {
            keys.remember(n.to_string(), id, 3_000);
        }
        assert_eq!(keys.find("0", 3_000, 1_000), None, "the oldest went first");
        assert_eq!(keys.find("1", 3_000, 1_000), Some(id));
        assert_eq!(keys.order.len(), KEYS_PER_ROOM);
    }
}
