//! Deferred acknowledgement of inbox entries.
//!
//! Under a steady trickle of small-room traffic a bus read returns one or two entries, and an
//! `XACK` after each read doubled the bus's round trips. The consumer instead gathers the ids it
//! handed over and acknowledges them together once a batch is full, once the oldest has waited
//! [`ACK_DELAY`], when a read finds nothing, and before the consumer stops. An entry that is
//! handed over but not yet acknowledged when the node dies is delivered again by the node's next
//! run (its pending entries), and the room directory and the sessions drop what they already
//! had, so deferring costs no duplicate a client can see.

use std::time::{Duration, Instant};

/// How long a handed-over entry may wait for its acknowledgement.
pub const ACK_DELAY: Duration = Duration::from_millis(50);

/// The ids handed over but not yet acknowledged, per inbox.
pub struct Acks {
    ids: Vec<Vec<String>>,
    count: usize,
    oldest: Option<Instant>,
}

impl Acks {
    pub fn new(inboxes: usize) -> Self {
        Self { ids: vec![Vec::new(); inboxes], count: 0, oldest: None }
    }

    pub fn add(&mut self, inbox: usize, id: String) {
        if let Some(ids) = self.ids.get_mut(inbox) {
            ids.push(id);
            self.count += 1;
            self.oldest.get_or_insert_with(Instant::now);
        }
    }

    /// Whether to acknowledge now: `batch` ids are waiting, or the oldest has waited long enough.
    pub fn due(&self, batch: usize) -> bool {
        self.count >= batch || self.oldest.is_some_and(|oldest| oldest.elapsed() >= ACK_DELAY)
    }

    /// How long the next read may block: no longer than the oldest waiting id may still wait.
    pub fn block_for(&self, block: Duration) -> Duration {
        match self.oldest {
            None => block,
            Some(oldest) => ACK_DELAY.saturating_sub(oldest.elapsed()).clamp(Duration::from_millis(1), block),
        }
    }

    /// The `XACK`s of every waiting id, one per inbox, as one pipeline; `None` when none waits.
    /// Clears the waiting ids.
    pub fn take_pipeline(&mut self, inboxes: &[String], group: &str) -> Option<redis::Pipeline> {
        if self.count == 0 {
            return None;
        }
        let mut pipe = redis::pipe();
        for (inbox, ids) in inboxes.iter().zip(&mut self.ids) {
            if !ids.is_empty() {
                pipe.cmd("XACK").arg(inbox).arg(group).arg(&*ids).ignore();
                ids.clear();
            }
        }
        (self.count, self.oldest) = (0, None);
        Some(pipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_batch_or_the_delay_and_acknowledges_each_inbox_once() {
        let mut acks = Acks::new(2);
        let block = Duration::from_secs(1);
        assert_eq!(acks.block_for(block), block, "nothing waits: a read may block as long as it likes");
        assert!(acks.take_pipeline(&["a".into(), "b".into()], "g").is_none());
        acks.add(0, "1-0".into());
        acks.add(1, "2-0".into());
        acks.add(1, "3-0".into());
        assert!(!acks.due(4) && acks.due(3), "three waiting: due for a batch of three, not four");
        assert!(acks.block_for(block) <= ACK_DELAY);
        let pipe = acks.take_pipeline(&["a".into(), "b".into()], "g").map(|pipe| pipe.get_packed_pipeline());
        let packed = String::from_utf8_lossy(&pipe.unwrap_or_default()).replace("\r\n", " ");
        assert_eq!(packed.matches("XACK").count(), 2, "{packed}");
        assert!(packed.contains("$1 b $1 g $3 2-0 $3 3-0"), "{packed}");
        assert!(!acks.due(1), "acknowledged ids are forgotten");
        acks.add(0, "4-0".into());
        std::thread::sleep(ACK_DELAY);
        assert!(acks.due(100), "the oldest waited long enough");
    }
}
