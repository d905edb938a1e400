//! A join's replay, written as the outbound queue drains, and history pages cut to fit it.
//!
//! A join with `since` may replay hundreds of large messages: queued at once they overflowed the
//! session's outbound queue, and the session was closed (1013) before the client got any of
//! them, on every reconnect. So the replay and the `joined` reply wait here and go into the queue
//! while it is less than half full (the other half stays for the session's other rooms); the
//! room's live events stay held in the inbox until the replay is written, so they still come
//! after it. A history page is one frame, so it cannot be split: a page over half the queue is
//! cut to fit and says so (`truncated`), and the client asks again from its edge.

use std::{collections::VecDeque, time::Duration};

use bytestring::ByteString;

use crate::domain::{Message, MessageId, RoomName};

/// How often a replay that does not fit looks again for room in the queue.
pub const RETRY: Duration = Duration::from_millis(5);

/// The share of the queue (in frames and bytes) a replay may fill: one in two.
pub const QUEUE_SHARE: usize = 2;

/// A joined room whose replay is still being written.
pub struct Replay {
    pub room: RoomName,
    /// The replayed messages, then the `joined` reply.
    pub frames: VecDeque<ByteString>,
    /// Everything up to this id was replayed or predates the join: held events at or below it
    /// are dropped when the replay is done.
    pub join_point: Option<MessageId>,
}

/// The session's replays, in the order of their joins.
#[derive(Default)]
pub struct Replays {
    queue: VecDeque<Replay>,
    /// A retry is scheduled on the session's context.
    pub scheduled: bool,
}

impl Replays {
    pub fn push(&mut self, replay: Replay) {
        self.queue.push_back(replay);
    }

    /// The replay being written, if any.
    pub fn front_mut(&mut self) -> Option<&mut Replay> {
        self.queue.front_mut()
    }

    pub fn pop_front(&mut self) -> Option<Replay> {
        self.queue.pop_front()
    }

    /// Forgets the replay of a room the session left.
    pub fn forget(&mut self, room: &RoomName) {
        self.queue.retain(|replay| &replay.room != room);
    }

    /// Whether `room` still has a replay to write (its live events stay held meanwhile).
    pub fn pending(&self, room: &RoomName) -> bool {
        self.queue.iter().any(|replay| &replay.room == room)
    }
}

/// The longest run of `messages` (in id order) whose page fits in `max_bytes`: from the oldest
/// when paging forward (`from_oldest`), else the newest. Returns the run and whether it was cut.
pub fn fit_page(messages: &[Message], max_bytes: usize, from_oldest: bool) -> (&[Message], bool) {
    // A message's frame is its body, user, room and id, with about 80 bytes of JSON around them.
    let size = |message: &Message| message.body.len() + message.user.as_str().len() + message.room.as_str().len() + 96;
    let mut total = 0;
    let mut fits = |message: &&Message| {
        total += size(message);
        total <= max_bytes
    };
    let kept = if from_oldest {
        messages.iter().take_while(&mut fits).count()
    } else {
        messages.iter().rev().take_while(&mut fits).count()
    };
    // One message always goes, however large: the page must move the client on.
    let kept = kept.max(1).min(messages.len());
    let page = if from_oldest { &messages[..kept] } else { &messages[messages.len() - kept..] };
    (page, kept < messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{UserName, now_ms};

    fn messages(count: u64, body_bytes: usize) -> Vec<Message> {
        (0..count)
            .map(|seq| Message {
                room: RoomName::parse("r").unwrap_or_else(|_| unreachable!("a valid name")),
                id: MessageId::new(now_ms(), seq),
                user: UserName::parse("u").unwrap_or_else(|_| unreachable!("a valid name")),
                body: "x".repeat(body_bytes),
                trace: String::new(),
            })
            .collect()
    }

    #[test]
    fn pages_are_cut_from_the_far_end_to_fit() {
        let all = messages(10, 1_000);
        let (page, cut) = fit_page(&all, 3_500, true);
        assert_eq!((page.len(), cut, page[0].id), (3, true, all[0].id), "paging forward keeps the oldest");
        let (page, cut) = fit_page(&all, 3_500, false);
        assert_eq!((page.len(), cut, page[2].id), (3, true, all[9].id), "paging back keeps the newest");
        assert_eq!(fit_page(&all, 1_000_000, true), (&all[..], false));
        assert_eq!(fit_page(&all, 10, false).0.len(), 1, "one message always goes, however large");
    }
}
