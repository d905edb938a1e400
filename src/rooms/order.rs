//! One room's events back in the order Redis numbered them.
//!
//! A room's events reach this node by two ways: the events of the other nodes' sessions (and
//! every presence change) through the node's inbox, read by one consumer in order; and the
//! messages this node's own sessions publish, straight from the publish's reply, on whichever
//! worker thread sent it (BENCHMARKS.md, change 23). The two ways race, so Redis numbers every
//! event of a room (`seq`, one counter per room, raised by the call that stores the event) and
//! this node hands them on by number: an event that comes before a lower number waits here
//! until that number has come.
//!
//! Where the numbers start for this node is what its local joins were told: the events
//! numbered up to a join came before it. While the room's first local joins are still waiting
//! for their answers the room holds everything, then starts after the lowest number they were
//! told, so every one of them gets every event after its join.
//!
//! A number that does not come in time (a publish whose answer was lost, a presence event the
//! inbox trimmed), or that so many events wait for that the room is crowded, sends the room to
//! a catch-up: the node reads the room's history and the room's latest number in one call,
//! delivers the messages it had not, and goes on after that number; a message whose answer
//! comes later still was among them. Only a room whose waiting events fill their bound gives
//! up without a catch-up, after a `gap`. Redis numbering anew after it lost its data starts at
//! the catch-up that follows; a new message numbered below the last one (a failover to a
//! replica that lacked the newest writes) starts the numbering anew from it.

use std::{collections::BTreeMap, time::Instant};

use crate::{domain::MessageId, engine::BusEvent};

/// With this many events waiting in a room, the room is caught up without waiting longer.
pub const CROWDED: usize = 1024;

/// At most this many events wait in one room: one more gives up on the missing numbers, after
/// a `gap` (the room's events came faster than a catch-up could fill the missing ones).
pub const FULL: usize = 16 * 1024;

/// What a local join was told: the number of the room's latest event, and the room's newest
/// message then. What came up to them came before the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPoint {
    pub seq: u64,
    pub newest: Option<MessageId>,
}

/// The numbering of one room's events on this node.
#[derive(Default)]
pub struct EventOrder {
    /// The number of the last event handed on; `None` until the room's start is known.
    last: Option<u64>,
    /// Local joins not yet answered while the start is not known, and the lowest point the
    /// answered ones were told.
    joins_waiting: usize,
    lowest_join: Option<JoinPoint>,
    /// Numbering starts over (Redis lost its data): the start is what the next catch-up reads.
    restarted: bool,
    /// Events that came before a lower number, by number.
    waiting: BTreeMap<u64, BusEvent>,
    /// Since when something waits.
    since: Option<Instant>,
}

impl EventOrder {
    /// A room whose first local member is joining.
    pub fn joining() -> Self {
        Self { joins_waiting: 1, ..Self::default() }
    }

    /// A room whose events up to number `seq` are known to have come before.
    pub fn after(seq: u64) -> Self {
        Self { last: Some(seq), ..Self::default() }
    }

    /// Another local join of the room: it only matters while the start is not known.
    pub fn another_join(&mut self) {
        if self.last.is_none() {
            self.joins_waiting += 1;
        }
    }

    /// A local join was answered with where the room stood (`None`: it failed, it was never
    /// answered, or the engine does not number events). Once the room's first joins are all
    /// answered, the room starts after the lowest point: `delivered` (the room's newest message
    /// delivered) is raised to that point's newest message, so a message from before it, read
    /// late from the inbox while the node was still listed for the room, is not taken for new.
    /// Returns what can now be handed on, in order.
    pub fn joined(&mut self, point: Option<JoinPoint>, delivered: &mut MessageId) -> Vec<BusEvent> {
        if self.last.is_some() || self.joins_waiting == 0 {
            return Vec::new();
        }
        self.joins_waiting -= 1;
        if let Some(point) = point
            && self.lowest_join.is_none_or(|lowest| point.seq < lowest.seq)
        {
            self.lowest_join = Some(point);
        }
        if self.joins_waiting > 0 || self.restarted {
            return Vec::new();
        }
        match self.lowest_join.take() {
            // What waited from before the joins is before every one of them.
            Some(start) => {
                if let Some(newest) = start.newest {
                    *delivered = (*delivered).max(newest);
                }
                self.start_after(start.seq)
            }
            // No join was told a number: the first event waiting starts the room.
            None => self.give_up(),
        }
    }

    /// A catch-up read the room's history up to event number `seq` (read with the history, in
    /// one call): every message numbered up to it was delivered, or reported lost with a `gap`.
    /// What waits above it follows in order. After a restart, the numbering starts there.
    pub fn caught_up(&mut self, seq: u64) -> Vec<BusEvent> {
        self.restarted = false;
        self.joins_waiting = 0;
        self.lowest_join = None;
        // An own message numbered after the read may have been handed on before its answer.
        let ready = self.start_after(self.last.map_or(seq, |last| last.max(seq)));
        if !self.waiting.is_empty() {
            // What still waits, waits for a number the catch-up did not read: from now.
            self.since = Some(Instant::now());
        }
        ready
    }

    /// Event number `seq` came; `seen` when it is a message this node already delivered (a
    /// catch-up read it first, or the inbox gave it again). Returns what can now be handed on,
    /// in order (empty when it waits, or when its number was passed): a message seen is still
    /// handed on in its place, for its number, and the directory drops it by its id.
    pub fn admit(&mut self, seq: u64, event: BusEvent, seen: bool) -> Vec<BusEvent> {
        let Some(last) = self.last else {
            if self.joins_waiting > 0 || self.restarted {
                return self.wait(seq, event);
            }
            // Nothing tells where the room starts (its joins were not told): here.
            self.last = Some(seq.saturating_sub(1));
            return self.admit(seq, event, seen);
        };
        if seq <= last {
            return match event {
                // A new message with a number already passed: the counter lost its newest
                // raises (a failover to a replica without them), so numbering goes on from it.
                BusEvent::Message(_) if !seen => {
                    let mut ready = self.give_up();
                    self.last = Some(seq);
                    ready.push(event);
                    ready
                }
                // Read twice (an inbox entry re-read after a reconnect), or given up on.
                _ => Vec::new(),
            };
        }
        if seq > last + 1 {
            return self.wait(seq, event);
        }
        self.last = Some(seq);
        let mut ready = vec![event];
        ready.extend(self.ready());
        ready
    }

    /// Numbering starts over (Redis lost its data): events wait for the catch-up that follows,
    /// which says where the room stands. Returns what waited, in order.
    pub fn restart(&mut self) -> Vec<BusEvent> {
        let ready = self.give_up();
        self.last = None;
        self.restarted = true;
        ready
    }

    /// Since when an event waits, if one does.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.since
    }

    /// So many events wait that the room is to be caught up now.
    pub fn is_crowded(&self) -> bool {
        self.waiting.len() >= CROWDED
    }

    /// No more events may wait: the next gives up on the missing numbers.
    pub fn is_full(&self) -> bool {
        self.waiting.len() >= FULL
    }

    /// Stops waiting for the missing numbers: hands on everything waiting, in order, and goes on
    /// after the highest.
    pub fn give_up(&mut self) -> Vec<BusEvent> {
        self.since = None;
        self.joins_waiting = 0;
        self.lowest_join = None;
        let waiting = std::mem::take(&mut self.waiting);
        if let Some((&highest, _)) = waiting.last_key_value() {
            self.last = Some(self.last.map_or(highest, |last| last.max(highest)));
        }
        waiting.into_values().collect()
    }

    /// Goes on after number `start`: what waits up to it is dropped, what follows it is handed
    /// on as far as the numbers run without a gap.
    fn start_after(&mut self, start: u64) -> Vec<BusEvent> {
        self.last = Some(start);
        self.waiting = self.waiting.split_off(&(start + 1));
        self.ready()
    }

    fn wait(&mut self, seq: u64, event: BusEvent) -> Vec<BusEvent> {
        self.waiting.insert(seq, event);
        self.since.get_or_insert_with(Instant::now);
        Vec::new()
    }

    /// The waiting events that follow the last one handed on without a gap.
    fn ready(&mut self) -> Vec<BusEvent> {
        let mut ready = Vec::new();
        while let Some(last) = self.last
            && let Some(event) = self.waiting.remove(&(last + 1))
        {
            self.last = Some(last + 1);
            ready.push(event);
        }
        if !ready.is_empty() && !self.waiting.is_empty() {
            // What still waits, waits for another number: from now.
            self.since = Some(Instant::now());
        }
        if self.waiting.is_empty() {
            self.since = None;
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Message, MessageId, PresenceChange, PresenceKind, RoomName, UserName};

    fn room() -> RoomName {
        RoomName::parse("lobby").unwrap_or_else(|_| unreachable!("a valid name"))
    }

    fn message(n: u64) -> BusEvent {
        BusEvent::Message(Arc::new(Message {
            room: room(),
            id: MessageId::new(1_000, n),
            user: UserName::parse("bob").unwrap_or_else(|_| unreachable!("a valid name")),
            body: n.to_string(),
            trace: String::new(),
        }))
    }

    fn presence() -> BusEvent {
        BusEvent::Presence(PresenceChange {
            room: room(),
            user: UserName::parse("carol").unwrap_or_else(|_| unreachable!("a valid name")),
            kind: PresenceKind::Join,
        })
    }

    /// A local join answered with number `seq` (and no newest message).
    fn join(order: &mut EventOrder, seq: Option<u64>) -> Vec<BusEvent> {
        order.joined(seq.map(|seq| JoinPoint { seq, newest: None }), &mut MessageId::default())
    }

    /// The bodies of the messages handed on, `p` for a presence event.
    fn bodies(events: Vec<BusEvent>) -> Vec<String> {
        events
            .into_iter()
            .map(|event| match event {
                BusEvent::Message(message) => message.body.clone(),
                _ => "p".to_owned(),
            })
            .collect()
    }

    #[test]
    fn events_wait_for_the_lower_numbers_and_follow_them_in_order() {
        let mut order = EventOrder::joining();
        assert!(join(&mut order, Some(4)).is_empty());
        assert_eq!(bodies(order.admit(5, message(5), false)), ["5"]);
        assert!(order.admit(7, message(7), false).is_empty(), "6 has not come");
        assert!(order.admit(8, presence(), false).is_empty());
        assert!(order.waiting_since().is_some());
        assert_eq!(bodies(order.admit(6, message(6), false)), ["6", "7", "p"]);
        assert!(order.waiting_since().is_none());
        assert!(order.admit(8, presence(), false).is_empty(), "a presence event read twice is dropped");
    }

    #[test]
    fn a_message_already_delivered_still_takes_its_place_in_the_numbering() {
        let mut order = EventOrder::after(5);
        assert!(order.admit(7, message(7), false).is_empty());
        // A catch-up delivered 6 first: it is handed on for its number (the directory drops it
        // by its id), and 7 follows.
        assert_eq!(bodies(order.admit(6, message(6), true)), ["6", "7"]);
        assert!(order.admit(6, message(6), true).is_empty(), "seen, and its number passed: dropped");
        assert_eq!(bodies(order.admit(8, message(8), false)), ["8"]);
    }

    #[test]
    fn the_room_starts_after_the_lowest_number_its_first_joins_were_told() {
        let mut order = EventOrder::joining();
        order.another_join();
        assert!(order.admit(3, message(3), false).is_empty(), "the start is not known yet");
        assert!(order.admit(5, message(5), false).is_empty());
        assert!(join(&mut order, Some(4)).is_empty(), "one join is still unanswered");
        // The second join was answered before the first, and was told a lower number: what
        // came after it is handed on, what came before is not.
        assert_eq!(bodies(join(&mut order, Some(2))), ["3"]);
        assert_eq!(bodies(order.admit(4, message(4), false)), ["4", "5"]);
        order.another_join();
        assert!(join(&mut order, Some(9)).is_empty(), "a join into a started room changes nothing");
        assert_eq!(bodies(order.admit(6, message(6), false)), ["6"]);
    }

    #[test]
    fn a_catch_up_goes_on_after_the_number_it_read_and_a_late_answer_finds_its_place_passed() {
        let mut order = EventOrder::after(4);
        assert!(order.admit(6, message(6), false).is_empty(), "5 has not come (its answer was lost)");
        assert!(order.admit(8, message(8), false).is_empty());
        // The catch-up read the history up to 6: 5 and 6 were delivered from it.
        assert!(order.caught_up(6).is_empty(), "8 still waits for 7");
        assert!(order.waiting_since().is_some());
        assert_eq!(bodies(order.admit(7, message(7), false)), ["7", "8"]);
        assert!(order.admit(5, message(5), true).is_empty(), "the late answer: delivered by the catch-up");
        // A catch-up that read less than what was handed on since does not go back.
        assert!(order.caught_up(3).is_empty());
        assert_eq!(bodies(order.admit(9, message(9), false)), ["9"]);
    }

    #[test]
    fn a_room_is_crowded_then_full_as_events_pile_up_behind_a_missing_number() {
        let mut order = EventOrder::after(0);
        for n in 2..=CROWDED as u64 + 1 {
            assert!(order.admit(n, message(n), false).is_empty());
        }
        assert!(order.is_crowded() && !order.is_full());
        for n in CROWDED as u64 + 2..=FULL as u64 + 1 {
            order.admit(n, message(n), false);
        }
        assert!(order.is_full());
        assert_eq!(order.give_up().len(), FULL);
        assert_eq!(bodies(order.admit(FULL as u64 + 2, message(9), false)), ["9"], "it goes on after the highest");
    }

    #[test]
    fn a_failed_join_lets_the_next_event_start_the_room_and_a_restart_waits_for_the_catch_up() {
        let mut order = EventOrder::joining();
        assert!(order.admit(7, message(7), false).is_empty());
        assert_eq!(bodies(join(&mut order, None)), ["7"]);
        assert_eq!(bodies(order.admit(8, message(8), false)), ["8"]);
        assert!(order.restart().is_empty());
        // Redis numbers from 1 again; the catch-up after the loss says it stands at 1.
        assert!(order.admit(2, message(2), false).is_empty());
        assert_eq!(bodies(order.caught_up(1)), ["2"]);
        // A new message numbered below the last: the counter went back, it starts anew.
        assert!(order.admit(4, message(4), false).is_empty());
        assert_eq!(bodies(order.admit(1, message(1), false)), ["4", "1"]);
        assert_eq!(bodies(order.admit(2, message(2), false)), ["2"]);
        assert!(order.admit(2, presence(), false).is_empty(), "a presence event read twice is dropped");
    }
}
