//! The cluster under failures: concurrent senders on three nodes, nodes killed with SIGKILL,
//! restarted with the same id, paused with SIGSTOP, and Redis stopped and started again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    helpers::{Client, Endpoint, TestApp, http, http_text, spawn_app, wait_ready},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer, id: &str) -> TestApp {
    let url = redis.url();
    spawn_app(&[("ROOKERY_REDIS_URL", &url), ("ROOKERY_NODE_ID", id), ("ROOKERY_API_KEY", "k")]).await
}

async fn process(redis: &RedisServer, id: &str, vars: &[(&str, &str)]) -> NodeProcess {
    let url = redis.url();
    let mut all = vec![("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", id), ("ROOKERY_API_KEY", "k")];
    all.extend_from_slice(vars);
    NodeProcess::start(&all).await
}

/// A client of `node` that has joined the lobby.
async fn in_lobby(node: &impl Endpoint, user: &str) -> Client {
    let mut client = node.client(user).await;
    client.join("lobby").await;
    client
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["id"].as_str().unwrap_or_default().to_owned()).collect()
}

fn id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or_default();
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Asserts the ids strictly increase: one order, no duplicates.
fn assert_strictly_increasing(ids: &[String], who: &str) {
    for pair in ids.windows(2) {
        assert!(id_order(&pair[0]) < id_order(&pair[1]), "{who}: {} then {}", pair[0], pair[1]);
    }
}

/// The room's members as the API reports them: user -> sessions.
async fn members(node: &impl Endpoint, room: &str) -> Value {
    let (status, body) =
        http(node, "GET", &format!("/api/v1/rooms/{room}/members"), &[("Authorization", "Bearer k")], None).await;
    assert_eq!(status, 200, "{body}");
    body["members"].clone()
}

/// Sends `count` messages without waiting in between; returns the acked ids in order, and the
/// message frames that arrived meanwhile.
async fn send_burst(client: &mut Client, room: &str, prefix: &str, count: usize) -> (Vec<String>, Vec<Value>) {
    for n in 0..count {
        client
            .send(json!({"type":"send","room":room,"body":format!("{prefix} {n}"),"ref":format!("{prefix}-{n}")}))
            .await;
    }
    let (mut acked, mut messages) = (Vec::new(), Vec::new());
    while acked.len() < count {
        let frame = client.recv().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "ack" {
            acked.push(frame["id"].as_str().unwrap_or_default().to_owned());
        } else if frame["type"] == "message" {
            messages.push(frame);
        }
    }
    (acked, messages)
}

#[actix_web::test]
async fn three_nodes_with_concurrent_senders_deliver_one_order_that_matches_history() {
    let redis = RedisServer::start();
    let nodes = [node(&redis, "n1").await, node(&redis, "n2").await, node(&redis, "n3").await];
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut sender = node.client(&format!("sender{i}")).await;
        sender.join("lobby").await;
        senders.push(sender);
        let mut listener = node.client(&format!("listener{i}")).await;
        listener.join("lobby").await;
        listeners.push(listener);
    }
    const EACH: usize = 30;
    let sending = senders.iter_mut().enumerate().map(|(i, sender)| async move {
        let (acked, _) = send_burst(sender, "lobby", &format!("from {i}"), EACH).await;
        (acked, sender)
    });
    let results = futures_util::future::join_all(sending).await;
    let mut acked: Vec<String> = results.iter().flat_map(|(acked, _)| acked.clone()).collect();
    acked.sort_by_key(|id| id_order(id));

    let mut sequences = Vec::new();
    for listener in listeners.iter_mut() {
        let (messages, _) = listener.messages(3 * EACH).await;
        sequences.push(ids(&messages));
    }
    let history = listeners[0].request(json!({"type":"history","room":"lobby","limit":100})).await;
    let history = ids(history["messages"].as_array().expect("history"));
    assert_eq!(history, acked, "history holds every acked message, in id order");
    for (i, sequence) in sequences.iter().enumerate() {
        assert_eq!(sequence, &history, "listener {i} saw history's order");
    }
}

/// The nodes with an inbox (and so a consumer group) on any shard: a reaped node has none.
async fn bus_groups(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis.connection().await;
    let mut groups = Vec::new();
    for shard in 0..rookery::settings::DEFAULT_BUS_SHARDS {
        let prefix = format!("rookery:{{s{shard}}}:inbox:");
        let inboxes: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("KEYS");
        for inbox in inboxes {
            let infos: Vec<redis::Value> =
                match redis::cmd("XINFO").arg("GROUPS").arg(&inbox).query_async(&mut conn).await {
                    Ok(infos) => infos,
                    // Reaped between KEYS and XINFO.
                    Err(error) if error.to_string().contains("no such key") => continue,
                    Err(error) => panic!("XINFO GROUPS {inbox}: {error}"),
                };
            let node = inbox.trim_start_matches(&prefix);
            assert_eq!(infos.len(), 1, "{node}'s inbox has exactly its own group");
            groups.push(node.to_owned());
        }
    }
    groups
}

#[actix_web::test]
async fn a_killed_nodes_clients_resume_elsewhere_and_survivors_announce_its_users_leave() {
    const TTL_MS: u64 = 2500;
    let ttl = TTL_MS.to_string();
    let redis = RedisServer::start();
    let mut a = process(&redis, "node-a", &[("ROOKERY_NODE_TTL_MS", &ttl)]).await;
    let b = process(&redis, "node-b", &[("ROOKERY_NODE_TTL_MS", &ttl)]).await;
    let mut alice = in_lobby(&a, "alice").await;
    let _carol = in_lobby(&a, "carol").await;
    let mut bob = in_lobby(&b, "bob").await;

    // Bob and Alice send; Alice keeps what she has seen, as a client would.
    let (mut acked, _) = send_burst(&mut bob, "lobby", "bob", 5).await;
    let (alice_acked, mut seen) = send_burst(&mut alice, "lobby", "alice", 5).await;
    acked.extend(alice_acked);
    seen.extend(alice.messages(10 - seen.len()).await.0);
    let last_seen = ids(&seen).last().cloned().expect("alice saw messages");

    // Node A dies mid-conversation; Bob keeps sending.
    assert!(bus_groups(&redis).await.iter().any(|g| g == "node-a"), "node-a has its groups before it dies");
    a.kill();
    let killed = Instant::now();
    acked.extend(send_burst(&mut bob, "lobby", "bob after", 5).await.0);

    // Alice resumes on B and ends up with every acked message, once each, in order.
    let mut alice = b.client("alice").await;
    alice.send(json!({"type":"join","room":"lobby","since":last_seen})).await;
    let (joined, replayed) = alice.recv_until("joined").await;
    assert_eq!(joined["recovered"], true);
    let mut received: Vec<String> =
        seen.iter().chain(&replayed).map(|m| m["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_strictly_increasing(&received, "alice");
    received.retain(|id| acked.contains(id));
    acked.sort_by_key(|id| id_order(id));
    assert_eq!(received, acked, "alice has every acked message");

    // Carol does not come back: the survivors announce her leave within the TTL. Alice still
    // has a session, so no leave is announced for her.
    loop {
        let frame = bob.recv().await;
        if frame["type"] == "presence" && frame["event"] == "leave" {
            assert_eq!(frame["user"], "carol", "only carol left: {frame}");
            break;
        }
    }
    let elapsed = killed.elapsed();
    assert!(elapsed < Duration::from_millis(TTL_MS), "leave announced after {elapsed:?}");

    // The dead node's groups are gone and presence is right.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bus_groups(&redis).await.iter().any(|g| g == "node-a") {
        assert!(Instant::now() < deadline, "node-a's groups were not reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bus_groups(&redis).await.iter().any(|g| g == "node-b"));
    let (_, metrics) = http_text(&b, "GET", "/metrics", &[], None).await;
    assert!(metrics.lines().any(|l| l == "rookery_reaped_nodes_total 1"), "{metrics}");
    assert_eq!(members(&b, "lobby").await, json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]));
}

#[actix_web::test]
async fn a_node_restarted_with_the_same_id_delivers_its_backlog_without_duplicates() {
    let redis = RedisServer::start();
    let mut a = process(&redis, "node-a", &[]).await;
    let b = process(&redis, "node-b", &[]).await;
    let mut dave = in_lobby(&a, "dave").await;
    let mut bob = in_lobby(&b, "bob").await;
    let (mut acked, _) = send_burst(&mut bob, "lobby", "before", 5).await;
    let (seen, _) = dave.messages(5).await;
    let last_seen = ids(&seen).last().cloned().expect("dave saw messages");

    // A dies; what Bob sends meanwhile waits in A's groups.
    a.kill();
    acked.extend(send_burst(&mut bob, "lobby", "while down", 5).await.0);
    a.restart().await;
    // The restart ended the previous run's sessions: Dave's old one is gone from presence.
    let (leave, _) = bob.recv_until("presence").await;
    assert_eq!((leave["event"].as_str(), leave["user"].as_str()), (Some("leave"), Some("dave")));

    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.pending("node-a").await > 0 {
        assert!(Instant::now() < deadline, "the restarted node left entries unacknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut dave = a.client("dave").await;
    dave.send(json!({"type":"join","room":"lobby","since":last_seen})).await;
    let (_, replayed) = dave.recv_until("joined").await;
    acked.extend(send_burst(&mut bob, "lobby", "after", 5).await.0);
    let (live, _) = dave.messages(5).await;
    let received: Vec<String> =
        seen.iter().chain(&replayed).chain(&live).filter_map(|m| m["id"].as_str().map(str::to_owned)).collect();
    assert_strictly_increasing(&received, "dave");
    assert_eq!(received, acked, "dave has every acked message exactly once");
    dave.expect_silence(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_paused_node_does_not_slow_the_others_and_delivers_its_backlog_when_it_resumes() {
    let redis = RedisServer::start();
    let a = process(&redis, "node-a", &[]).await;
    let (b, c) = (process(&redis, "node-b", &[]).await, process(&redis, "node-c", &[]).await);
    let mut alice = in_lobby(&a, "alice").await;
    let mut bob = in_lobby(&b, "bob").await;
    let mut carol = in_lobby(&c, "carol").await;

    a.pause();
    let mut acked = Vec::new();
    for n in 0..10 {
        let started = Instant::now();
        let id = bob.say("lobby", &format!("while a sleeps {n}")).await;
        let (message, _) = carol.recv_until("message").await;
        assert_eq!(message["id"].as_str(), Some(id.as_str()));
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "a round trip took {took:?} while node-a was paused");
        acked.push(id);
    }
    a.resume();
    let (backlog, _) = alice.messages(10).await;
    assert_eq!(ids(&backlog), acked, "alice gets the backlog, in order, once");
}

#[actix_web::test]
async fn a_node_paused_past_the_ttl_is_reaped_then_restores_its_sessions_and_catches_up() {
    let redis = RedisServer::start();
    let ttl = [("ROOKERY_NODE_TTL_MS", "1500")];
    let a = process(&redis, "node-a", &ttl).await;
    let b = process(&redis, "node-b", &ttl).await;
    let mut alice = in_lobby(&a, "alice").await;
    let mut bob = in_lobby(&b, "bob").await;

    assert!(bus_groups(&redis).await.iter().any(|g| g == "node-a"), "node-a has its groups before it pauses");
    a.pause();
    let (leave, _) = bob.recv_until("presence").await;
    assert_eq!((leave["event"].as_str(), leave["user"].as_str()), (Some("leave"), Some("alice")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while bus_groups(&redis).await.iter().any(|g| g == "node-a") {
        assert!(Instant::now() < deadline, "node-a was not reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (acked, _) = send_burst(&mut bob, "lobby", "while a was gone", 5).await;
    a.resume();

    // Alice stayed connected: her node puts her back in the room and catches up from history.
    let (join, _) = bob.recv_until("presence").await;
    assert_eq!((join["event"].as_str(), join["user"].as_str()), (Some("join"), Some("alice")));
    let (caught_up, others) = alice.messages(5).await;
    assert_eq!(ids(&caught_up), acked);
    assert!(others.iter().all(|f| f["type"] != "gap"), "history still held everything: {others:?}");
    let id = bob.say("lobby", "after").await;
    let (message, _) = alice.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()), "delivery goes on through recreated groups");
    assert_eq!(members(&b, "lobby").await, json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]));
}

#[actix_web::test]
async fn a_node_behind_the_bus_retention_catches_up_from_history_and_reports_the_gap() {
    let redis = RedisServer::start();
    let vars = [("ROOKERY_BUS_RETENTION_MS", "1000"), ("ROOKERY_HISTORY_LEN", "3")];
    let a = process(&redis, "node-a", &vars).await;
    let b = process(&redis, "node-b", &vars).await;
    let mut alice = in_lobby(&a, "alice").await;
    let mut bob = in_lobby(&b, "bob").await;
    let (first, _) = send_burst(&mut bob, "lobby", "seen", 1).await;
    let (seen, _) = alice.messages(1).await;
    assert_eq!(ids(&seen), first);

    a.pause();
    let (acked, _) = send_burst(&mut bob, "lobby", "while a sleeps", 6).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    a.resume();

    // Only the last three are still in history. A read that was in flight when the node
    // stopped may still deliver the first; the rest is reported as a gap after the last message
    // alice got, and what history holds is delivered.
    let (gap, before_gap) = alice.recv_until("gap").await;
    let before_gap: Vec<Value> = before_gap.into_iter().filter(|f| f["type"] == "message").collect();
    assert!(before_gap.len() <= 1, "{before_gap:?}");
    let last_before = ids(&seen).into_iter().chain(ids(&before_gap)).last();
    assert_eq!(gap, json!({"type":"gap","room":"lobby","after":last_before}));
    let (delivered, _) = alice.messages(3).await;
    assert_eq!(ids(&delivered), acked[3..]);
    let (_, metrics) = http_text(&a, "GET", "/metrics", &[], None).await;
    assert!(metrics.lines().any(|l| l == "rookery_gaps_total 1"), "{metrics}");
}

/// Sends until the node acks (Redis is coming back); returns the frames that came meanwhile.
async fn send_until_acked(client: &mut Client, room: &str, body: &str) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut frames = Vec::new();
    loop {
        // A `timeout` may have been stored: the retry goes with the same key.
        client.send(json!({"type":"send","room":room,"body":body,"ref":"retry","key":body})).await;
        loop {
            let frame = client.recv().await;
            if frame["ref"] == "retry" {
                if frame["type"] == "ack" {
                    return (frame["id"].as_str().unwrap_or_default().to_owned(), frames);
                }
                assert!(matches!(frame["code"].as_str(), Some("unavailable" | "timeout")), "{frame}");
                break;
            }
            frames.push(frame);
        }
        assert!(Instant::now() < deadline, "the node never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two nodes with Alice on A and Bob on B in the lobby; Bob sends `count` messages, Alice sees
/// them, then Redis is killed and Alice's next send is refused. Returns the acked ids.
async fn chatting_until_redis_dies(
    redis: &mut RedisServer,
    count: usize,
) -> (TestApp, TestApp, Client, Client, Vec<String>) {
    let (a, b) = (node(redis, "node-a").await, node(redis, "node-b").await);
    let mut alice = in_lobby(&a, "alice").await;
    let mut bob = in_lobby(&b, "bob").await;
    let (acked, own) = send_burst(&mut bob, "lobby", "before", count).await;
    let (seen, _) = alice.messages(count).await;
    assert_eq!(ids(&seen), acked);
    // Both nodes have delivered everything (bob's copies come through node-b's inbox), so each
    // has the same last message when Redis dies.
    bob.messages(count - own.len()).await;

    redis.kill();
    // Refused (`unavailable`) once the node knows the connection is gone; `timeout` when the
    // send met the connection as it broke (it cannot tell whether Redis got it).
    let reply = alice.request(json!({"type":"send","room":"lobby","body":"lost","key":"lost-1"})).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert!(matches!(reply["code"].as_str(), Some("unavailable" | "timeout")), "{reply}");
    assert_eq!(alice.request(json!({"type":"ping"})).await["type"], "pong", "the connection stays open");
    (a, b, alice, bob, acked)
}

#[actix_web::test]
async fn redis_restarted_with_its_data_loses_no_acked_message_and_reports_no_gap() {
    let mut redis = RedisServer::start_durable();
    let (a, _b, mut alice, mut bob, before) = chatting_until_redis_dies(&mut redis, 3).await;
    let (status, ready) = http(&a, "GET", "/readyz", &[], None).await;
    assert_eq!((status, ready["status"].as_str()), (503, Some("unavailable")));

    redis.restart();
    let (id, mut frames) = send_until_acked(&mut alice, "lobby", "back").await;
    let mut acked = vec![id];
    // Bob's node meets Redis back on its own connection: its first send may be answered
    // `timeout` (sent, or not, on the connection Redis closed), and is sent again with its key.
    acked.push(send_until_acked(&mut bob, "lobby", "bob back").await.0);
    acked.extend(send_burst(&mut bob, "lobby", "after", 2).await.0);
    let already = frames.iter().filter(|f| f["type"] == "message").count();
    let (messages, others) = alice.messages(acked.len() - already).await;
    frames.extend(others);
    frames.extend(messages);
    assert!(frames.iter().all(|f| f["type"] != "gap"), "nothing was lost: {frames:?}");
    let got = ids(&frames.iter().filter(|f| f["type"] == "message").cloned().collect::<Vec<_>>());
    assert_eq!(got, acked, "alice has every acked message once, in order");
    let history = bob.request(json!({"type":"history","room":"lobby"})).await;
    let all: Vec<String> = before.into_iter().chain(acked).collect();
    assert_eq!(ids(history["messages"].as_array().expect("history")), all, "no acked message was lost");
    assert_eq!(members(&a, "lobby").await, json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]));
    wait_ready(&a).await;
}

#[actix_web::test]
async fn redis_restarted_empty_is_reported_as_a_gap_and_the_cluster_serves_again() {
    let mut redis = RedisServer::start();
    let (a, _b, mut alice, mut bob, acked) = chatting_until_redis_dies(&mut redis, 2).await;
    redis = RedisServer::start_on(redis.port);

    // Each node reports that the room's messages after the last one it delivered are lost.
    let (gap, _) = alice.recv_until("gap").await;
    assert_eq!(gap, json!({"type":"gap","room":"lobby","after":acked[1]}));
    let (gap, _) = bob.recv_until("gap").await;
    assert_eq!(gap["after"], acked[1].as_str());

    // The nodes wrote their sessions and presence back, and delivery works across nodes.
    wait_ready(&a).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while members(&a, "lobby").await != json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]) {
        assert!(Instant::now() < deadline, "presence was not restored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (id, _) = send_until_acked(&mut bob, "lobby", "back").await;
    loop {
        let (message, _) = alice.recv_until("message").await;
        if message["id"] == id.as_str() {
            break;
        }
    }
    drop(redis);
}

#[actix_web::test]
async fn two_nodes_starting_at_once_on_an_empty_redis_both_come_up() {
    let redis = RedisServer::start();
    let (a, b) = futures_util::join!(node(&redis, "node-a"), node(&redis, "node-b"));
    let mut alice = in_lobby(&a, "alice").await;
    let mut bob = in_lobby(&b, "bob").await;
    let id = bob.say("lobby", "hello").await;
    let (message, _) = alice.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()));
}

#[actix_web::test]
async fn a_node_far_behind_the_bus_is_not_ready_until_it_catches_up() {
    let redis = RedisServer::start();
    let vars = [("ROOKERY_BUS_READ_COUNT", "1"), ("ROOKERY_READY_MAX_LAG_MS", "200")];
    let a = process(&redis, "node-a", &vars).await;
    a.pause();
    // A backlog published straight into the schema's function while the node sleeps.
    let mut conn = redis.connection().await;
    let room = "backlog";
    let shard = rookery::engine::redis::Keys::new(rookery::settings::DEFAULT_BUS_SHARDS)
        .shard(&rookery::domain::RoomName::parse(room).expect("room"));
    // As if node-a served the room: its events go to node-a's inbox.
    let mut pipe = redis::pipe();
    pipe.cmd("HSET").arg(format!("rookery:{{s{shard}}}:nodes:{room}")).arg("node-a").arg(1).ignore();
    for n in 0..3000 {
        pipe.cmd("FCALL")
            .arg("rookery_v1_publish")
            .arg(4)
            .arg(format!("rookery:{{s{shard}}}:history:{room}"))
            .arg(format!("rookery:{{s{shard}}}:trimmed:{room}"))
            .arg(format!("rookery:{{s{shard}}}:nodes:{room}"))
            .arg(format!("rookery:{{s{shard}}}:events:{room}"))
            .arg(room)
            .arg("loader")
            .arg(format!("entry {n}"))
            .arg(10)
            .arg(600_000)
            .arg("")
            .arg(format!("rookery:{{s{shard}}}:inbox:"))
            .arg(0)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("publish the backlog");
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.resume();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = http(&a, "GET", "/readyz", &[], None).await;
        if status == 503 {
            assert!(body["reason"].as_str().unwrap_or_default().contains("behind"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the node never reported its lag");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(&a, "GET", "/readyz", &[], None).await.0 != 200 {
        assert!(Instant::now() < deadline, "the node never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(redis.pending("node-a").await, 0);
}
