//! The contract's checks of history: what a room keeps, how it pages, and what `recover`
//! replays and vouches for.

use rookery::{
    domain::{MessageId, SessionId},
    protocol::HistoryQuery,
};

use super::{HISTORY_LEN, Harness, message_ids, unique_room, user_name};

/// Rooms are independent, and history returns exactly what was delivered, in the same order.
pub async fn history_matches_delivery_per_room(h: &Harness) {
    let (a, b) = (unique_room("a"), unique_room("b"));
    h.listen(&a).await;
    h.listen(&b).await;
    for n in 0..6 {
        h.publish(if n % 2 == 0 { &a } else { &b }, "alice", &n.to_string()).await;
    }
    for room in [&a, &b] {
        let delivered = message_ids(&h.events.wait_for(room, 3).await);
        let history = h.engine.history(room, HistoryQuery::default()).await.expect("history");
        assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), delivered);
        assert!(history.iter().all(|m| &m.room == room));
    }
}

/// `after`, `before` and `limit` select the documented page, always in id order.
pub async fn history_pages_in_id_order(h: &Harness) {
    let room = unique_room("pages");
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(h.publish(&room, "alice", &n.to_string()).await);
    }
    let page = |before: Option<usize>, after: Option<usize>, limit: usize| {
        let query = HistoryQuery { before: before.map(|i| ids[i]), after: after.map(|i| ids[i]), limit };
        let engine = h.engine.clone();
        let room = room.clone();
        async move {
            let found = engine.history(&room, query).await.expect("history");
            found.iter().map(|m| m.body.parse::<usize>().expect("body")).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, None, 50).await, (0..10).collect::<Vec<_>>());
    assert_eq!(page(None, None, 3).await, vec![7, 8, 9], "newest first page");
    assert_eq!(page(None, Some(2), 3).await, vec![3, 4, 5], "forward from after");
    assert_eq!(page(Some(5), None, 2).await, vec![3, 4], "newest before before");
    assert_eq!(page(Some(5), Some(2), 50).await, vec![3, 4], "strictly between");
    assert_eq!(page(None, Some(9), 50).await, Vec::<usize>::new());
    let empty = h.engine.history(&unique_room("none"), HistoryQuery::default()).await;
    assert_eq!(empty.expect("history").len(), 0);
}

/// History keeps the newest `HISTORY_LEN` messages, and up to a trim step more: past that it is
/// trimmed back to exactly `HISTORY_LEN` (see `engine::history_trim_step`).
pub async fn history_is_bounded(h: &Harness) {
    let room = unique_room("bounded");
    let step = rookery::engine::history_trim_step(HISTORY_LEN);
    assert!(step > 0, "the contract's history trims in steps");
    let kept = || async {
        let query = HistoryQuery { limit: 500, ..HistoryQuery::default() };
        h.engine.history(&room, query).await.expect("history").iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let mut ids = Vec::new();
    for n in 0..HISTORY_LEN + step {
        ids.push(h.publish(&room, "alice", &n.to_string()).await);
    }
    assert_eq!(kept().await, ids, "up to a step past the length, nothing is trimmed");
    ids.push(h.publish(&room, "alice", "one more").await);
    assert_eq!(kept().await, ids[step + 1..].to_vec(), "one more: back to exactly the length");
    let trimmed = h.engine.recover(&room, Some(ids[step])).await.expect("recover");
    assert_eq!(trimmed.trimmed_through, Some(ids[step]), "the newest trimmed id is known");
    for n in 0..step {
        ids.push(h.publish(&room, "alice", &format!("then {n}")).await);
    }
    assert_eq!(kept().await, ids[step + 1..].to_vec(), "and it grows by a step again");
}

/// `recover` replays what follows `since` and says whether anything was trimmed in between.
pub async fn recover_replays_after_since(h: &Harness) {
    let room = unique_room("recover");
    let fresh = h.engine.recover(&room, None).await.expect("recover");
    assert_eq!((fresh.last_id, fresh.recovered, fresh.messages.len()), (None, true, 0));

    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(h.publish(&room, "alice", &n.to_string()).await);
    }
    let plain = h.engine.recover(&room, None).await.expect("recover");
    assert_eq!((plain.last_id, plain.messages.len()), (Some(ids[4]), 0));

    let resumed = h.engine.recover(&room, Some(ids[1])).await.expect("recover");
    assert!(resumed.recovered);
    assert_eq!(resumed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..].to_vec());
    assert_eq!(resumed.last_id, Some(ids[4]));
    let everything = h.engine.recover(&room, Some(MessageId::default())).await.expect("recover");
    assert_eq!(everything.messages.len(), 5, "0-0 asks for everything");
    // A position the history does not hold (lost in a Redis failover, or made up) cannot be
    // vouched for: what followed it is unknown.
    let unknown = MessageId::new(ids[4].millis() + 60_000, 0);
    let lost = h.engine.recover(&room, Some(unknown)).await.expect("recover");
    assert_eq!((lost.recovered, lost.messages.len(), lost.last_id), (false, 0, Some(ids[4])));
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    ids.push(h.publish(&room, "alice", "later").await);
    let hole = MessageId::new(ids[4].millis() + 1, 0);
    assert!(hole < ids[5], "ids are milliseconds apart");
    let between = h.engine.recover(&room, Some(hole)).await.expect("recover");
    assert_eq!((between.recovered, between.messages.len()), (false, 1), "no message has {hole}: one may be lost");

    // 26 messages in all: with the contract's trim step (2), the 23rd and the 26th trim back to
    // exactly HISTORY_LEN, so the newest HISTORY_LEN are what is retained now.
    assert_eq!(rookery::engine::history_trim_step(HISTORY_LEN), 2);
    for n in 5..HISTORY_LEN + 5 {
        ids.push(h.publish(&room, "alice", &n.to_string()).await);
    }
    assert_eq!(ids.len(), 26);
    let partial = h.engine.recover(&room, Some(ids[1])).await.expect("recover");
    assert!(!partial.recovered, "messages after since were trimmed");
    assert_eq!(partial.messages.len(), HISTORY_LEN, "what is retained is still replayed");
    assert_eq!(partial.messages.first().map(|m| m.id), Some(ids[ids.len() - HISTORY_LEN]));
    let edge = h.engine.recover(&room, Some(ids[ids.len() - HISTORY_LEN])).await;
    assert!(edge.expect("recover").recovered, "since at the oldest retained id loses nothing");
    let trimmed_end = h.engine.recover(&room, Some(ids[ids.len() - HISTORY_LEN - 1])).await;
    assert!(trimmed_end.expect("recover").recovered, "since at the newest trimmed id loses nothing");
    let everything = h.engine.recover(&room, Some(MessageId::default())).await.expect("recover");
    assert!(!everything.recovered, "0-0 asks for everything, and some was trimmed");
}

/// The ends of the id space are ordinary bounds: nothing is after the last id or before `0-0`,
/// and a join resuming from the last id replays nothing (and cannot be vouched for: no message
/// has that id).
pub async fn history_and_recover_take_the_extreme_ids(h: &Harness) {
    let room = unique_room("extremes");
    let id = h.publish(&room, "alice", "only").await;
    let (first, last) = (MessageId::new(0, 0), MessageId::new(u64::MAX, u64::MAX));
    let page = |after: Option<MessageId>, before: Option<MessageId>| {
        let (engine, room) = (h.engine.clone(), room.clone());
        async move {
            let query = HistoryQuery { after, before, limit: 500 };
            engine.history(&room, query).await.expect("history").iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(Some(last), None).await, vec![]);
    assert_eq!(page(None, Some(first)).await, vec![]);
    assert_eq!(page(Some(last), Some(first)).await, vec![]);
    assert_eq!(page(Some(first), Some(last)).await, vec![id]);
    assert_eq!(page(Some(first), None).await, vec![id]);
    assert_eq!(page(None, Some(last)).await, vec![id]);
    let recovery = h.engine.recover(&room, Some(last)).await.expect("recover");
    assert_eq!((recovery.messages.len(), recovery.last_id, recovery.recovered), (0, Some(id), false));
    let recovery = h.engine.recover(&room, Some(first)).await.expect("recover");
    assert_eq!(recovery.messages.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    let session = SessionId::random();
    let (_, joined) = h.engine.join_and_recover(&room, &user_name("bob"), session, Some(last)).await.expect("join");
    assert_eq!((joined.messages.len(), joined.last_id), (0, Some(id)));
    h.engine.leave(&room, &user_name("bob"), session).await.expect("leave");
}
