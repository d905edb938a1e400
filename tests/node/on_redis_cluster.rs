//! Real nodes on a real Redis Cluster (`ROOKERY_REDIS_CLUSTER_NODES`): one server across nodes,
//! rooms spread over every primary, a dead node reaped, a dead primary replaced by its replica.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rookery::{domain::RoomName, engine::redis::Keys};
use serde_json::json;

use crate::{
    helpers::{Endpoint, TestApp, http, spawn_app, wait_ready},
    node_process::NodeProcess,
    redis_cluster::{RedisCluster, cli},
};

async fn cluster(primaries: usize, replicas: usize) -> RedisCluster {
    tokio::task::spawn_blocking(move || RedisCluster::start(primaries, replicas)).await.expect("start the cluster")
}

async fn node(cluster: &RedisCluster, id: &str) -> TestApp {
    node_with(cluster, id, &[]).await
}

async fn node_with(cluster: &RedisCluster, id: &str, vars: &[(&str, &str)]) -> TestApp {
    let seeds = cluster.seeds();
    let mut all =
        vec![("ROOKERY_REDIS_CLUSTER_NODES", seeds.as_str()), ("ROOKERY_NODE_ID", id), ("ROOKERY_API_KEY", "k")];
    all.extend_from_slice(vars);
    spawn_app(&all).await
}

#[actix_web::test]
async fn nodes_on_a_redis_cluster_act_as_one_server_and_spread_rooms_over_every_primary() {
    let cluster = cluster(3, 0).await;
    let (a, b) = (node(&cluster, "node-a").await, node(&cluster, "node-b").await);
    let (mut alice, mut bob) = (a.client("alice").await, b.client("bob").await);
    let rooms: Vec<String> = (0..24).map(|n| format!("room-{n}")).collect();
    let mut first_ids = Vec::new();
    for room in &rooms {
        alice.join(room).await;
        let joined = bob.join(room).await;
        assert_eq!(joined["members"], json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]), "{room}");
        let (presence, _) = alice.recv_until("presence").await;
        assert_eq!(presence, json!({"type":"presence","room":room,"event":"join","user":"bob"}));
        let id = alice.say(room, "first").await;
        let (message, _) = bob.recv_until("message").await;
        assert_eq!((message["room"].as_str(), message["id"].as_str()), (Some(room.as_str()), Some(id.as_str())));
        first_ids.push(id);
    }
    // Bob answers in every room; Alice gets each answer once (rooms on different shards
    // arrive in any order; each room keeps its own).
    let mut answers = std::collections::BTreeMap::new();
    for room in &rooms {
        answers.insert(room.clone(), bob.say(room, "second").await);
    }
    let mut got = std::collections::BTreeMap::new();
    while got.len() < rooms.len() {
        let (message, _) = alice.recv_until("message").await;
        if message["body"] == "second" {
            let room = message["room"].as_str().unwrap_or_default().to_owned();
            assert!(got.insert(room, message["id"].as_str().unwrap_or_default().to_owned()).is_none(), "{message}");
        }
    }
    assert_eq!(got, answers);

    // A client on the other node resumes each room after its first message.
    let mut carol = a.client("carol").await;
    for (room, first) in rooms.iter().zip(&first_ids) {
        carol.send(json!({"type":"join","room":room,"since":first})).await;
        let (joined, replayed) = carol.recv_until("joined").await;
        assert_eq!(joined["recovered"], true, "{room}");
        let replayed: Vec<&str> = replayed.iter().map(|m| m["body"].as_str().unwrap_or_default()).collect();
        assert_eq!(replayed, ["second"], "{room}");
    }

    // The rooms' histories are on every primary, each in the slot of its shard.
    let keys = Keys::new(rookery::settings::DEFAULT_CLUSTER_BUS_SHARDS);
    let mut holders = BTreeSet::new();
    for room in &rooms {
        let key = keys.history(&RoomName::parse(room).expect("a room name"));
        let slot = cluster.ask("CLUSTER", &["KEYSLOT", &key]);
        let primary = cluster.primary_of(&key);
        let count = cli(primary, &["CLUSTER", "COUNTKEYSINSLOT", &slot]).unwrap_or_default();
        assert!(count.parse::<u32>().unwrap_or(0) >= 1, "{key} is not in slot {slot} of {primary}");
        holders.insert(primary);
    }
    assert_eq!(holders.len(), 3, "rooms landed on {holders:?} of {:?}", cluster.primary_ports());

    let (status, members) =
        http(&b, "GET", "/api/v1/rooms/room-0/members", &[("Authorization", "Bearer k")], None).await;
    assert_eq!((status, members["members"].as_array().map(Vec::len)), (200, Some(3)));
    let (status, _) = http(&a, "GET", "/readyz", &[], None).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_killed_node_on_a_redis_cluster_is_reaped_and_its_users_leave() {
    const TTL_MS: u64 = 2500;
    let (cluster, ttl) = (cluster(3, 0).await, TTL_MS.to_string());
    let seeds = cluster.seeds();
    let vars = |id| {
        vec![
            ("ROOKERY_REDIS_CLUSTER_NODES", seeds.as_str()),
            ("ROOKERY_NODE_ID", id),
            ("ROOKERY_NODE_TTL_MS", ttl.as_str()),
        ]
    };
    let mut a = NodeProcess::start(&vars("node-a")).await;
    let b = NodeProcess::start(&vars("node-b")).await;
    let mut carol = a.client("carol").await;
    let mut bob = b.client("bob").await;
    for room in ["lobby", "ops", "dm-carol-bob"] {
        carol.join(room).await;
        bob.join(room).await;
    }
    let id = carol.say("ops", "before").await;
    assert_eq!(bob.recv_until("message").await.0["id"], id.as_str());

    a.kill();
    let killed = Instant::now();
    let mut left = BTreeSet::new();
    while left.len() < 3 {
        let frame = bob.recv().await;
        if frame["type"] == "presence" && frame["event"] == "leave" {
            assert_eq!(frame["user"], "carol", "{frame}");
            left.insert(frame["room"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(killed.elapsed() < Duration::from_millis(TTL_MS), "leaves announced after {:?}", killed.elapsed());
    // Bob alone is left in each room, and his node still serves them.
    let mut dave = b.client("dave").await;
    let joined = dave.join("ops").await;
    assert_eq!(joined["members"], json!([{"user":"bob","sessions":1},{"user":"dave","sessions":1}]));
}

/// With `ROOKERY_REDIS_MIN_REPLICAS=1` an ack means a replica has the message, so the replica
/// that takes over has everything acked. The old primary comes back as its replica, and sends
/// are acked again.
#[actix_web::test]
async fn a_killed_primary_is_replaced_by_its_replica_and_loses_nothing_acked() {
    let cluster = cluster(3, 1).await;
    let replicated = [("ROOKERY_REDIS_MIN_REPLICAS", "1")];
    let a = node_with(&cluster, "node-a", &replicated).await;
    let b = node_with(&cluster, "node-b", &replicated).await;
    let (mut alice, mut bob) = (a.client("alice").await, b.client("bob").await);
    alice.join("lobby").await;
    bob.join("lobby").await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(alice.say_until_acked("lobby", &format!("before {n}"), &format!("b-{n}")).await);
    }

    let history = Keys::new(rookery::settings::DEFAULT_CLUSTER_BUS_SHARDS).history(&RoomName::parse("lobby").unwrap());
    let primary = cluster.primary_of(&history);
    let mut cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.kill(primary);
        cluster.wait_for_failover();
        cluster
    })
    .await
    .expect("failover");
    assert!(!cluster.primary_ports().contains(&primary));
    assert_ne!(cluster.primary_of(&history), primary, "a replica took over the lobby's slot");
    // The new primary has no replica until the old one comes back as one.
    let refused = alice.request(json!({"type":"send","room":"lobby","body":"after","key":"a-1"})).await;
    assert_eq!(refused["type"], "error", "{refused}");
    cluster = tokio::task::spawn_blocking(move || {
        cluster.restart(primary);
        cluster
    })
    .await
    .expect("restart the old primary");

    // Sends are acked again, reach the other node once, and nothing acked was lost.
    acked.push(alice.say_until_acked("lobby", "after", "a-1").await);
    bob.expect_exactly_acked("lobby", &acked).await;
    wait_ready(&a).await;
    wait_ready(&b).await;
    drop(cluster);
}

/// Without `ROOKERY_REDIS_MIN_REPLICAS`, a message acked while the replica was cut off is lost
/// when the primary dies: the nodes that delivered it report a `gap`, and a resume from it is
/// not vouched for. Never silent.
#[actix_web::test]
async fn a_message_a_failover_lost_is_reported_as_a_gap() {
    let cluster = cluster(3, 1).await;
    let (a, b) = (node(&cluster, "node-a").await, node(&cluster, "node-b").await);
    let (mut alice, mut bob) = (a.client("alice").await, b.client("bob").await);
    alice.join("lobby").await;
    bob.join("lobby").await;
    let kept = alice.say("lobby", "kept").await;
    assert_eq!(bob.recv_until("message").await.0["id"], kept.as_str());

    // The replica freezes, and the primary stores more than the socket buffers between them
    // hold (about 10 MB on loopback; the filler is kept small so the replica is frozen for well
    // under the cluster's node timeout, and is not itself marked failed): what it stores next stays in its own output buffer, and it dies before the replica
    // thaws. The replica never gets that message.
    let history = Keys::new(rookery::settings::DEFAULT_CLUSTER_BUS_SHARDS).history(&RoomName::parse("lobby").unwrap());
    let primary = cluster.primary_of(&history);
    let replica = cluster.replica_of(primary);
    cluster.wait_for_replication(primary, replica);
    cluster.signal(replica, "-STOP");
    let filler = history.replace("history:lobby", "filler");
    let filled = tokio::task::spawn_blocking(move || fill(primary, &filler, 24 << 20)).await.expect("fill");
    assert!(filled, "the primary took the filler");
    let lost = alice.say("lobby", "lost").await;
    assert_eq!(bob.recv_until("message").await.0["id"], lost.as_str(), "delivered before the primary died");
    let mut cluster = cluster;
    cluster.kill(primary);
    cluster.signal(replica, "-CONT");
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_for_failover();
        cluster
    })
    .await
    .expect("failover");
    assert_eq!(cluster.primary_of(&history), replica);

    let (gap, _) = bob.recv_until("gap").await;
    assert_eq!((gap["room"].as_str(), gap["after"].as_str()), (Some("lobby"), Some(lost.as_str())), "{gap}");
    let mut carol = b.client("carol").await;
    for (since, vouched) in [(&lost, false), (&kept, true)] {
        carol.send(json!({"type":"join","room":"lobby","since":since})).await;
        let (joined, _) = carol.recv_until("joined").await;
        assert_eq!(joined["recovered"], vouched, "since {since}: {joined}");
        carol.request(json!({"type":"leave","room":"lobby"})).await;
    }
    drop(cluster);
}

/// Sets `key` on the server on `port` to `bytes` bytes; true when it answered OK.
fn fill(port: u16, key: &str, bytes: usize) -> bool {
    use std::io::Write;
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "-x", "SET", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&vec![b'x'; bytes]);
    }
    let output = child.wait_with_output().expect("redis-cli output");
    String::from_utf8_lossy(&output.stdout).trim() == "OK"
}

/// Slots move (`redis-cli --cluster reshard`) while messages flow through a room on one of
/// them: every acked message reaches the other node once, in order, and is stored once.
#[actix_web::test]
async fn messages_flow_through_a_slot_migration_without_loss_or_duplicates() {
    let cluster = cluster(3, 0).await;
    let (a, b) = (node(&cluster, "node-a").await, node(&cluster, "node-b").await);
    // A room on the shard whose tag has the lowest slot of the first primary's range, so moving
    // the first few hundred slots of that primary moves it.
    let keys = Keys::new(rookery::settings::DEFAULT_CLUSTER_BUS_SHARDS);
    let room = (0..)
        .map(|n| format!("moving-{n}"))
        .find(|name| keys.shard(&RoomName::parse(name).unwrap()) == 14)
        .expect("a room on shard 14");
    let history = keys.history(&RoomName::parse(&room).unwrap());
    let slot: u16 = cluster.ask("CLUSTER", &["KEYSLOT", &history]).parse().expect("a slot");
    assert!(slot < 400, "shard 14's tag is on slot {slot}");
    let from = cluster.primary_of(&history);
    let to = *cluster.primary_ports().iter().find(|&&port| port != from).expect("another primary");

    let (mut alice, mut bob) = (a.client("alice").await, b.client("bob").await);
    alice.join(&room).await;
    bob.join(&room).await;
    let sender = {
        let room = room.clone();
        actix_web::rt::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..150 {
                acked.push(alice.say_until_acked(&room, &format!("m{n}"), &format!("k{n}")).await);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            acked
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.reshard(from, to, slot + 1);
        cluster
    })
    .await
    .expect("reshard");
    assert_eq!(cluster.primary_of(&history), to, "the room's slot moved");
    assert!(!sender.is_finished(), "messages were still flowing when the slots had moved");
    let acked = sender.await.expect("the sender");

    bob.expect_exactly_acked(&room, &acked).await;
    drop(cluster);
}
