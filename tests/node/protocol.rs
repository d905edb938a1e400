//! Every protocol frame and its reply, presence, ordering and resume.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Client, Endpoint, spawn_app};

#[actix_web::test]
async fn welcome_announces_session_user_node_and_limits() {
    let app = spawn_app(&[("ROOKERY_HEARTBEAT_MS", "15000"), ("ROOKERY_MAX_ROOMS_PER_SESSION", "7")]).await;
    let client = app.client("alice").await;
    let welcome = &client.welcome;
    assert!(welcome["session"].as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()), "{welcome}");
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["node"], "test-node");
    assert_eq!(welcome["heartbeat_ms"], 15000);
    assert_eq!(
        welcome["limits"],
        json!({"max_frame_bytes":65536,"max_body_bytes":16384,"rate_per_sec":20,"burst":40,"max_rooms":7})
    );
    let anonymous = Client::connect(&app.ws_url("")).await;
    let name = anonymous.welcome["user"].as_str().unwrap_or_default().to_owned();
    assert!(name.starts_with("anon-") && name.len() == 13, "{name}");
}

#[actix_web::test]
async fn join_lists_members_and_announces_a_user_once() {
    let app = spawn_app(&[]).await;
    let mut alice = app.client("alice").await;
    let joined = alice.join("lobby").await;
    assert_eq!(joined["members"], json!([{"user":"alice","sessions":1}]));
    assert_eq!(joined["last_id"], Value::Null);
    assert!(joined.get("recovered").is_none(), "recovered only with since");

    let mut bob = app.client("bob").await;
    let joined = bob.join("lobby").await;
    assert_eq!(joined["members"], json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]));
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"lobby","event":"join","user":"bob"}));

    let mut bob_tab = app.client("bob").await;
    let joined = bob_tab.join("lobby").await;
    assert_eq!(joined["members"], json!([{"user":"alice","sessions":1},{"user":"bob","sessions":2}]));
    alice.expect_silence(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_room_over_the_presence_limit_counts_members_and_announces_nothing() {
    let app = spawn_app(&[("ROOKERY_PRESENCE_MAX_USERS", "2")]).await;
    let mut alice = app.client("alice").await;
    let joined = alice.join("hall").await;
    assert_eq!((joined["member_count"].clone(), joined["presence"].clone()), (json!(1), json!(true)));
    let mut bob = app.client("bob").await;
    bob.join("hall").await;
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"hall","event":"join","user":"bob"}));

    let mut carol = app.client("carol").await;
    let joined = carol.join("hall").await;
    assert_eq!(joined["members"], json!([]), "{joined}");
    assert_eq!((joined["member_count"].clone(), joined["presence"].clone()), (json!(3), json!(false)));
    let left = bob.request(json!({"type": "leave", "room": "hall"})).await;
    assert_eq!(left["type"], "left");
    alice.expect_silence(Duration::from_millis(300)).await;
    // Messages still reach everyone.
    carol.say("hall", "hi").await;
    let (message, before) = alice.recv_until("message").await;
    assert_eq!((message["body"].as_str(), before), (Some("hi"), vec![]));
}

#[actix_web::test]
async fn send_acks_and_delivers_to_every_member_including_the_sender() {
    let app = spawn_app(&[]).await;
    let (mut alice, mut bob) = (app.client("alice").await, app.client("bob").await);
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.recv_until("presence").await;
    alice.send(json!({"type":"send","room":"lobby","body":"hi","ref":"s1"})).await;
    let mut frames = [alice.recv().await, alice.recv().await];
    frames.sort_by_key(|f| f["type"].as_str().map(str::to_owned));
    let (ack, own) = (&frames[0], &frames[1]);
    assert_eq!(
        (ack["type"].as_str(), ack["ref"].as_str(), ack["room"].as_str()),
        (Some("ack"), Some("s1"), Some("lobby"))
    );
    let message = bob.recv().await;
    assert_eq!(&message, own, "the sender gets the same frame as everyone");
    assert_eq!(message["id"], ack["id"]);
    assert_eq!((message["user"].as_str(), message["body"].as_str()), (Some("alice"), Some("hi")));
    let id = message["id"].as_str().expect("id");
    let ts = message["ts"].as_u64().expect("ts");
    assert!(id.starts_with(&format!("{ts}-")), "ts is the id's time: {id} {ts}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    assert!(now.abs_diff(ts) < 10_000);
}

#[actix_web::test]
async fn leave_and_disconnect_announce_the_last_session_only() {
    let app = spawn_app(&[]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let (mut bob, mut bob_tab) = (app.client("bob").await, app.client("bob").await);
    bob.join("lobby").await;
    bob_tab.join("lobby").await;
    alice.recv_until("presence").await;

    let left = bob.request(json!({"type":"leave","room":"lobby"})).await;
    assert_eq!(left["type"], "left");
    assert_eq!(left["room"], "lobby");
    alice.expect_silence(Duration::from_millis(300)).await;
    let not_joined = bob.request(json!({"type":"leave","room":"lobby"})).await;
    assert_eq!(not_joined["code"], "not_joined");

    drop(bob_tab);
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"lobby","event":"leave","user":"bob"}));
    let (members, _) = (alice.join("lobby").await["members"].clone(), ());
    assert_eq!(members, json!([{"user":"alice","sessions":1}]));
}

#[actix_web::test]
async fn history_pages_in_id_order() {
    let app = spawn_app(&[]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(alice.say("lobby", &n.to_string()).await);
    }
    let bodies = |reply: &Value| -> Vec<String> {
        reply["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let all = alice.request(json!({"type":"history","room":"lobby"})).await;
    assert_eq!(all["type"], "history");
    assert_eq!(bodies(&all), ["0", "1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(all["messages"][0]["type"], "message");
    assert_eq!(all["messages"][0]["id"], ids[0].as_str());
    let newest = alice.request(json!({"type":"history","room":"lobby","limit":2})).await;
    assert_eq!(bodies(&newest), ["6", "7"]);
    let forward = alice.request(json!({"type":"history","room":"lobby","after":ids[1],"limit":3})).await;
    assert_eq!(bodies(&forward), ["2", "3", "4"]);
    let back = alice.request(json!({"type":"history","room":"lobby","before":ids[5],"limit":2})).await;
    assert_eq!(bodies(&back), ["3", "4"]);
    let elsewhere = alice.request(json!({"type":"history","room":"empty"})).await;
    assert_eq!(elsewhere["messages"], json!([]));
}

#[actix_web::test]
async fn ping_gets_pong_with_ref() {
    let app = spawn_app(&[]).await;
    let mut alice = app.client("alice").await;
    alice.send(json!({"type":"ping","ref":"p"})).await;
    assert_eq!(alice.recv().await, json!({"type":"pong","ref":"p"}));
    alice.send(json!({"type":"ping"})).await;
    assert_eq!(alice.recv().await, json!({"type":"pong"}));
}

#[actix_web::test]
async fn concurrent_senders_are_seen_in_one_order_by_everyone() {
    let app = spawn_app(&[]).await;
    let mut observers = Vec::new();
    for n in 0..2 {
        let mut observer = app.client(&format!("watcher{n}")).await;
        observer.join("busy").await;
        observers.push(observer);
    }
    let mut senders = Vec::new();
    for n in 0..3 {
        let mut sender = app.client(&format!("sender{n}")).await;
        sender.join("busy").await;
        senders.push(sender);
    }
    let sends = senders.iter_mut().enumerate().map(|(n, sender)| async move {
        for i in 0..30 {
            sender.send(json!({"type":"send","room":"busy","body":format!("{n}:{i}")})).await;
        }
    });
    futures_util::future::join_all(sends).await;
    let mut orders = Vec::new();
    for observer in &mut observers {
        let mut seen = Vec::new();
        while seen.len() < 90 {
            let frame = observer.recv().await;
            if frame["type"] == "message" {
                seen.push((
                    frame["id"].as_str().unwrap_or("").to_owned(),
                    frame["body"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        orders.push(seen);
    }
    assert_eq!(orders[0], orders[1], "every member sees one order");
    let ids: Vec<(u64, u64)> = orders[0]
        .iter()
        .map(|(id, _)| {
            let (ms, seq) = id.split_once('-').expect("id");
            (ms.parse().expect("ms"), seq.parse().expect("seq"))
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    for n in 0..3 {
        let own: Vec<usize> =
            orders[0].iter().filter_map(|(_, b)| b.strip_prefix(&format!("{n}:"))?.parse().ok()).collect();
        assert_eq!(own, (0..30).collect::<Vec<_>>(), "each sender's messages keep their order");
    }
    let history = observers[0].request(json!({"type":"history","room":"busy","limit":500})).await;
    let listed: Vec<String> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(listed, orders[0].iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), "history has the same order");
}

#[actix_web::test]
async fn join_since_replays_missed_messages_then_joined() {
    let app = spawn_app(&[("ROOKERY_HISTORY_LEN", "5")]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(alice.say("lobby", &n.to_string()).await);
    }

    let mut bob = app.client("bob").await;
    bob.send(json!({"type":"join","room":"lobby","since":ids[1]})).await;
    let (joined, replayed) = bob.recv_until("joined").await;
    assert_eq!(
        replayed.iter().map(|m| m["id"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        [ids[2].as_str(), ids[3].as_str()]
    );
    assert!(replayed.iter().all(|m| m["type"] == "message"));
    assert_eq!((joined["recovered"].as_bool(), joined["last_id"].as_str()), (Some(true), Some(ids[3].as_str())));

    for n in 4..10 {
        ids.push(alice.say("lobby", &n.to_string()).await);
    }
    let mut carol = app.client("carol").await;
    carol.send(json!({"type":"join","room":"lobby","since":ids[1]})).await;
    let (joined, replayed) = carol.recv_until("joined").await;
    assert_eq!(joined["recovered"], false, "since is older than the retained history");
    let bodies: Vec<&str> = replayed.iter().map(|m| m["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, ["5", "6", "7", "8", "9"], "what is retained is still replayed");

    let live = alice.say("lobby", "after").await;
    let next = carol.recv().await;
    assert_eq!((next["id"].as_str(), next["body"].as_str()), (Some(live.as_str()), Some("after")));
}
