//! The rooms to catch up: those whose numbered events wait for a lower number (see `order`),
//! and those a publish asked to be checked. The engine's bus consumer takes the overdue ones
//! off this list, reads their history, and tells the directory where each stands.
//!
//! A room is listed when its events start waiting, not on every event, so the list's lock is
//! taken once per wait; a room whose wait ended by itself is dropped when the list is next
//! read.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use crate::{domain::RoomName, engine::CatchUpFrom};

#[derive(Default)]
pub struct WaitingRooms {
    rooms: Mutex<HashMap<RoomName, Wait>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    since: Instant,
    /// Asked to be checked (a publish of this node's got no answer): caught up even if nothing
    /// waits, since its message may be stored and in no inbox of this node's.
    check: bool,
    /// So many events wait that the room is caught up without waiting longer.
    crowded: bool,
}

impl WaitingRooms {
    /// `room`'s events wait since `since`.
    pub fn wait(&self, room: &RoomName, since: Instant, crowded: bool) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        match rooms.get_mut(room) {
            Some(wait) => {
                wait.crowded |= crowded;
                if !wait.check {
                    wait.since = since;
                }
            }
            None => {
                rooms.insert(room.clone(), Wait { since, check: false, crowded });
            }
        }
    }

    /// `room` is to be caught up once the time a call may take has passed.
    pub fn check_soon(&self, room: &RoomName) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        rooms.entry(room.clone()).and_modify(|wait| wait.check = true).or_insert(Wait {
            since: now,
            check: true,
            crowded: false,
        });
    }

    /// Takes off the list, and returns, the rooms to catch up now: the crowded ones, those asked
    /// to be checked before `before`, and those whose events still wait since before it.
    /// `room_now` tells a room's catch-up position and since when its events wait (`None`: it
    /// has no local members now); it is called without the list's lock held.
    pub fn take_overdue(
        &self,
        before: Instant,
        room_now: impl Fn(&RoomName) -> Option<(CatchUpFrom, Option<Instant>)>,
    ) -> Vec<CatchUpFrom> {
        let candidates: Vec<(RoomName, Wait)> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms
                .iter()
                .filter(|(_, wait)| wait.crowded || wait.since < before)
                .map(|(room, wait)| (room.clone(), *wait))
                .collect()
        };
        let mut overdue = Vec::new();
        for (name, wait) in candidates {
            let now = room_now(&name);
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            // Changed meanwhile (asked to be checked again): it stays for the next round.
            let unchanged = rooms.get(&name) == Some(&wait);
            match now {
                Some((position, waits)) if wait.crowded || wait.check || waits.is_some_and(|since| since < before) => {
                    if unchanged {
                        rooms.remove(&name);
                    }
                    overdue.push(position);
                }
                // It waits again, since later.
                Some((_, Some(since))) => {
                    if let Some(listed) = rooms.get_mut(&name).filter(|listed| !listed.check) {
                        listed.since = since;
                    }
                }
                _ => {
                    if unchanged {
                        rooms.remove(&name);
                    }
                }
            }
        }
        overdue
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::MessageId;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap_or_else(|_| unreachable!("a valid name"))
    }

    fn position(room: &RoomName) -> CatchUpFrom {
        CatchUpFrom { room: room.clone(), after: MessageId::new(1, 0), delivered: true }
    }

    #[test]
    fn a_room_is_overdue_when_it_still_waits_is_crowded_or_was_asked_to_be_checked() {
        let list = WaitingRooms::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(2);
        let (quiet, stuck, crowded, checked) = (room("quiet"), room("stuck"), room("crowded"), room("checked"));
        list.wait(&quiet, start, false);
        list.wait(&stuck, start, false);
        list.wait(&crowded, later, true);
        std::thread::sleep(Duration::from_millis(5));
        list.check_soon(&checked);
        let before = start + Duration::from_millis(1);
        // `quiet`'s wait ended by itself; `checked` was asked after `before`.
        let room_now = |name: &RoomName| {
            let waits = (name == &stuck || name == &crowded).then_some(start);
            Some((position(name), waits))
        };
        let mut overdue: Vec<String> =
            list.take_overdue(before, room_now).into_iter().map(|p| p.room.to_string()).collect();
        overdue.sort();
        assert_eq!(overdue, ["crowded", "stuck"]);
        let overdue = list.take_overdue(Instant::now() + Duration::from_secs(1), room_now);
        assert_eq!(overdue.iter().map(|p| p.room.as_str()).collect::<Vec<_>>(), ["checked"]);
        assert!(list.take_overdue(Instant::now() + Duration::from_secs(9), room_now).is_empty(), "all taken off");
    }
}
