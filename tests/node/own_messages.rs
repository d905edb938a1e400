//! A node's own messages: the publishing node delivers them to its members from the publish's
//! answer, and no inbox of its own holds them; they and what its inbox brings reach its members
//! in the room's one order. Real nodes on a real redis-server, real WebSocket clients.

use serde_json::json;

use rookery::{
    domain::{RoomName, UserName},
    engine::{
        NewMessage,
        redis::{Keys, MessageStore},
    },
    settings::DEFAULT_BUS_SHARDS,
};

use crate::{
    helpers::{Client, TestApp, metric, spawn_app},
    redis_server::RedisServer,
    routing::{entries_read, ids, inbox_len, joined, node},
};

fn overdue(node: &TestApp) -> f64 {
    metric(&node.node.metrics.render(), "rookery_bus_events_total{outcome=\"overdue\"}").unwrap_or(0.0)
}

/// Two nodes on one Redis, with alice and bob on node-a and carol and dave on node-b, all four
/// in `room`. Bind every field: a node dropped stops.
struct TwoNodes {
    a: TestApp,
    alice: Client,
    bob: Client,
    carol: Client,
    dave: Client,
    _b: TestApp,
}

async fn two_nodes(redis: &RedisServer, room: &str) -> TwoNodes {
    let (a, b) = (node(redis, "node-a").await, node(redis, "node-b").await);
    let (alice, bob) = (joined(&a, "alice", room).await, joined(&a, "bob", room).await);
    let (carol, dave) = (joined(&b, "carol", room).await, joined(&b, "dave", room).await);
    TwoNodes { a, alice, bob, carol, dave, _b: b }
}

#[actix_web::test]
async fn own_messages_go_to_no_inbox_of_the_node_and_reach_its_members_in_the_rooms_order() {
    let redis = RedisServer::start();
    let TwoNodes { a, mut alice, mut bob, mut carol, mut dave, _b } = two_nodes(&redis, "talk").await;
    // Senders on both nodes, one after the other, so the order is known.
    let mut acked = Vec::new();
    for n in 0..10 {
        acked.push(alice.say("talk", &format!("a{n}")).await);
        acked.push(carol.say("talk", &format!("c{n}")).await);
    }
    let (got, _) = bob.messages(acked.len()).await;
    assert_eq!(ids(&got), acked, "node-a's own messages and node-b's, in the room's order");
    let (got, _) = dave.messages(acked.len()).await;
    assert_eq!(ids(&got), acked);
    // node-a's inbox holds the four joins and carol's ten, none of alice's; it read them all.
    assert_eq!(inbox_len(&redis, "node-a").await, 14);
    assert_eq!(entries_read(&a), 14.0, "{}", a.node.metrics.render());
}

#[actix_web::test]
async fn a_join_on_another_node_keeps_its_place_among_the_nodes_own_messages() {
    let redis = RedisServer::start();
    // node-a reads its inbox at most every 500 ms while it reads anything: the join comes
    // through the inbox well after the answer of the message that follows it.
    let url = redis.url();
    let slow_reads =
        [("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", "node-a"), ("ROOKERY_BUS_READ_INTERVAL_MS", "500")];
    let (_a, b) = (spawn_app(&slow_reads).await, node(&redis, "node-b").await);
    let mut alice = joined(&_a, "alice", "mixed").await;
    let mut bob = joined(&_a, "bob", "mixed").await;
    let first = alice.say("mixed", "before").await;
    let _erin = joined(&b, "erin", "mixed").await;
    let second = alice.say("mixed", "after").await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let frame = bob.recv().await;
        match frame["type"].as_str() {
            Some("message") => seen.push(frame["id"].as_str().unwrap_or_default().to_owned()),
            Some("presence") if frame["user"] == "erin" => seen.push(format!("{} erin", frame["event"])),
            _ => {}
        }
    }
    assert_eq!(seen, [first, "\"join\" erin".to_owned(), second], "bob sees the room's one order");
}

#[actix_web::test]
async fn senders_on_two_nodes_at_once_reach_every_member_in_the_historys_order() {
    let redis = RedisServer::start();
    let TwoNodes { a: _a, alice, mut bob, carol, mut dave, _b } = two_nodes(&redis, "busy").await;
    // Each node's own messages come from their answers, the other's through its inbox: the two
    // race, and the members still see one order.
    const EACH: usize = 100;
    let send = |client: &'static str| {
        move |mut sender: crate::helpers::Client| async move {
            for n in 0..EACH {
                sender.say("busy", &format!("{client}{n}")).await;
            }
        }
    };
    futures_util::join!(send("a")(alice), send("c")(carol));
    let (on_a, on_b) = (bob.message_ids(2 * EACH).await, dave.message_ids(2 * EACH).await);
    let history = bob.history_ids("busy").await;
    assert_eq!(history.len(), 2 * EACH);
    assert_eq!(on_a, history, "node-a's member: each once, in the history's order");
    assert_eq!(on_b, history, "node-b's member too");
}

#[actix_web::test]
async fn a_message_whose_answer_was_lost_reaches_the_publishing_nodes_members_in_order() {
    let redis = RedisServer::start();
    let TwoNodes { a, mut alice, mut bob, mut carol, mut dave, _b } = two_nodes(&redis, "lost").await;
    // A publish of node-a's whose answer never reached it: stored, and in no inbox of node-a's.
    let store = MessageStore::new(redis.connection().await, Keys::new(DEFAULT_BUS_SHARDS), "node-a", 100, 600_000);
    let message = NewMessage {
        room: RoomName::parse("lost").expect("room"),
        user: UserName::parse("alice").expect("user"),
        body: "lost".into(),
        trace: String::new(),
        key: None,
    };
    let lost = store.publish(&message).await.expect("publish").id.to_string();
    // The next message comes to node-a through its inbox, numbered after the lost one: it
    // waits for it, until node-a catches the room up from its history.
    let after = carol.say("lost", "after").await;
    for member in [&mut bob, &mut alice] {
        let (got, _) = member.messages(2).await;
        assert_eq!(ids(&got), [lost.clone(), after.clone()], "each once, in order");
    }
    assert_eq!(overdue(&a), 1.0, "{}", a.node.metrics.render());
    // The room goes on after the number the catch-up read: the next message needs no other.
    let next = carol.say("lost", "next").await;
    let (got, _) = bob.messages(1).await;
    assert_eq!(ids(&got), std::slice::from_ref(&next));
    assert_eq!(overdue(&a), 1.0, "no second catch-up");
    let (got, _) = dave.messages(2).await;
    assert_eq!(ids(&got), [lost, after]);
    assert_eq!(dave.message_ids(1).await, [next]);
    bob.expect_silence(std::time::Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_send_answered_timeout_reaches_the_nodes_members_once_redis_stored_it() {
    let redis = RedisServer::start();
    let a = node(&redis, "node-a").await;
    let mut alice = joined(&a, "alice", "late").await;
    let mut bob = joined(&a, "bob", "late").await;
    redis.pause();
    let reply = alice.request(json!({"type": "send", "room": "late", "body": "late"})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("timeout")), "{reply}");
    // Redis carries out the publish it was sent: stored, and in no inbox. Nothing else is sent
    // in the room, so only the check a timeout asks for brings it to bob.
    redis.resume();
    let (got, _) = bob.messages(1).await;
    assert_eq!(got[0]["body"], "late");
    assert_eq!(bob.history_ids("late").await, ids(&got), "stored once, delivered once");
    assert_eq!(overdue(&a), 1.0, "{}", a.node.metrics.render());
}
