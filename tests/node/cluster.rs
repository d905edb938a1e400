//! Several real nodes on one real Redis act as one chat server.

use serde_json::json;

use crate::{
    helpers::{Client, Endpoint, TestApp, http, http_text, metric, spawn_app},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer, id: &str) -> TestApp {
    let url = redis.url();
    spawn_app(&[("ROOKERY_REDIS_URL", &url), ("ROOKERY_NODE_ID", id), ("ROOKERY_API_KEY", "k")]).await
}

#[actix_web::test]
async fn clients_on_different_nodes_share_rooms_presence_and_history() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    let mut bob = b.client("bob").await;
    assert_eq!((alice.welcome["node"].as_str(), bob.welcome["node"].as_str()), (Some("node-a"), Some("node-b")));

    alice.join("lobby").await;
    let joined = bob.join("lobby").await;
    assert_eq!(
        joined["members"],
        json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]),
        "members are cluster-wide"
    );
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"lobby","event":"join","user":"bob"}));

    let id = alice.say("lobby", "hello from a").await;
    let (message, _) = bob.recv_until("message").await;
    assert_eq!((message["id"].as_str(), message["body"].as_str()), (Some(id.as_str()), Some("hello from a")));
    let history = bob.request(json!({"type":"history","room":"lobby"})).await;
    assert_eq!(history["messages"][0]["id"], id.as_str());

    let (status, members) =
        http(&a, "GET", "/api/v1/rooms/lobby/members", &[("Authorization", "Bearer k")], None).await;
    assert_eq!((status, members["members"].as_array().map(Vec::len)), (200, Some(2)));
    let (status, _) = http(&a, "GET", "/readyz", &[], None).await;
    assert_eq!(status, 200);

    drop(bob);
    let (leave, _) = alice.recv_until("presence").await;
    assert_eq!(leave, json!({"type":"presence","room":"lobby","event":"leave","user":"bob"}));
}

#[actix_web::test]
async fn a_client_resumes_on_another_node_without_losing_messages() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    let mut carol = b.client("carol").await;
    carol.join("lobby").await;
    let last_seen = carol.say("lobby", "before").await;
    drop(carol);
    for n in 0..3 {
        alice.say("lobby", &format!("missed {n}")).await;
    }
    let mut carol = Client::connect(&a.ws_url("?user=carol")).await;
    carol.send(json!({"type":"join","room":"lobby","since":last_seen})).await;
    let (joined, replayed) = carol.recv_until("joined").await;
    let bodies: Vec<&str> = replayed.iter().map(|m| m["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, ["missed 0", "missed 1", "missed 2"]);
    assert_eq!(joined["recovered"], true);
}

#[actix_web::test]
async fn each_session_has_an_expiring_record_in_redis_from_connect_to_disconnect() {
    let redis = RedisServer::start();
    let a = node(&redis, "node-a").await;
    let mut conn = redis.connection().await;
    let alice = a.client("alice").await;
    let session = alice.welcome["session"].as_str().expect("session id").to_owned();
    let key = format!("rookery:{{nnode-a}}:session:{session}");
    let index = "rookery:{nnode-a}:sessions";

    let record: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.expect("HGETALL");
    assert_eq!(
        (record["user"].as_str(), record["node"].as_str(), record["rooms"].as_str()),
        ("alice", "node-a", ""),
        "written at connect"
    );
    let connected_at: u64 = record["connected_at"].parse().expect("connected_at");
    let last_seen: u64 = record["last_seen"].parse().expect("last_seen");
    assert!(connected_at > 1_700_000_000_000 && last_seen >= connected_at - 1000, "{record:?}");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.expect("PTTL");
    assert!(ttl > 0 && ttl <= 45_000, "the record expires unless refreshed (3 node TTLs): {ttl}");

    let mut alice = alice;
    alice.join("lobby").await;
    alice.join("dev").await;
    let rooms: String = redis::cmd("HGET").arg(&key).arg("rooms").query_async(&mut conn).await.expect("HGET");
    assert_eq!(rooms, "dev lobby");
    let entry: String = redis::cmd("HGET").arg(index).arg(&session).query_async(&mut conn).await.expect("HGET");
    assert_eq!(entry, "alice dev lobby", "the node's index covers the session's rooms");
    alice.request(json!({"type":"leave","room":"dev"})).await;
    let rooms: String = redis::cmd("HGET").arg(&key).arg("rooms").query_async(&mut conn).await.expect("HGET");
    assert_eq!(rooms, "lobby");

    drop(alice);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let exists: (bool, bool) = redis::pipe()
            .cmd("EXISTS")
            .arg(&key)
            .cmd("HEXISTS")
            .arg(index)
            .arg(&session)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        if exists == (false, false) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the record outlived the session: {exists:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn nodes_reach_redis_over_tls_and_refuse_a_server_they_cannot_verify() {
    let redis = RedisServer::start_tls();
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let ca = format!("{}/tests/fixtures/tls/ca.pem", env!("CARGO_MANIFEST_DIR"));
    let a = NodeProcess::start(&[
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", "node-a"),
        ("SSL_CERT_FILE", ca.as_str()),
    ])
    .await;
    let b = NodeProcess::start(&[
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", "node-b"),
        ("SSL_CERT_FILE", ca.as_str()),
    ])
    .await;
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    let mut bob = b.client("bob").await;
    bob.join("lobby").await;
    let id = bob.say("lobby", "over tls").await;
    let (message, _) = alice.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()));

    // Without the CA the server's certificate cannot be verified: the node refuses to start.
    let empty = std::env::temp_dir().join(format!("rookery-no-ca-{}.pem", redis.port));
    std::fs::write(&empty, "").expect("write an empty CA file");
    let (status, stderr) = NodeProcess::refuses_to_start(&[
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", "node-c"),
        ("SSL_CERT_FILE", empty.to_str().unwrap_or_default()),
    ]);
    let _ = std::fs::remove_file(&empty);
    assert!(!status.success());
    assert!(stderr.starts_with("rookery: cannot reach Redis"), "{stderr}");
}

#[actix_web::test]
async fn metrics_show_redis_latency_bus_outcomes_and_delivery_latency_on_every_node() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    let mut bob = b.client("bob").await;
    bob.join("lobby").await;
    for n in 0..3 {
        bob.say("lobby", &format!("m{n}")).await;
    }
    for _ in 0..3 {
        alice.recv_until("message").await;
    }
    a.eventually("three writes on node-a", |node| {
        metric(&node.metrics.render(), "rookery_delivery_latency_seconds_count") == Some(3.0)
    })
    .await;
    let (status, on_a) = http_text(&a, "GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    let on_b = b.node.metrics.render();
    assert_eq!(metric(&on_b, "rookery_redis_command_seconds_count{operation=\"publish\"}"), Some(3.0), "{on_b}");
    // Node A published nothing: a label set never observed is not exported, or reads 0.
    let published_on_a = metric(&on_a, "rookery_redis_command_seconds_count{operation=\"publish\"}");
    assert!(matches!(published_on_a, None | Some(0.0)), "{on_a}");
    assert_eq!(metric(&on_a, "rookery_redis_command_seconds_count{operation=\"join\"}"), Some(1.0), "{on_a}");
    // Node A got the three messages and bob's join from the bus, and had alice to hand them to.
    let delivered = metric(&on_a, "rookery_bus_events_total{outcome=\"delivered\"}");
    assert!(delivered.is_some_and(|n| n >= 4.0), "{on_a}");
    // Latency is measured from the id's timestamp: a local round trip is far under a second.
    assert_eq!(metric(&on_a, "rookery_delivery_latency_seconds_bucket{le=\"1.024\"}"), Some(3.0), "{on_a}");
    for zero in ["rookery_gaps_total", "rookery_reaped_nodes_total"] {
        assert!(on_a.lines().any(|l| l == format!("{zero} 0")), "missing {zero} in {on_a}");
    }
    let last_shard = format!("rookery_bus_pending{{shard=\"{}\"}} 0", rookery::settings::DEFAULT_BUS_SHARDS - 1);
    a.eventually("pending gauges", |node| node.metrics.render().contains(&last_shard)).await;
    assert!(on_a.contains("rookery_bus_lag_milliseconds{shard=\"0\"} 0"), "{on_a}");
}

#[actix_web::test]
async fn ids_at_the_ends_of_the_id_space_are_answered_as_the_memory_engine_does() {
    let redis = RedisServer::start();
    let a = node(&redis, "node-a").await;
    let (mut alice, mut bob) = (a.client("alice").await, a.client("bob").await);
    alice.join("edge").await;
    alice.say("edge", "one").await;
    let last = "18446744073709551615-18446744073709551615";
    let joined = bob.request(json!({"type":"join","room":"edge","since":last})).await;
    // No message has that id: the node cannot vouch for what followed it.
    assert_eq!((joined["type"].as_str(), joined["recovered"].as_bool()), (Some("joined"), Some(false)), "{joined}");
    for query in [json!({"after": last}), json!({"before": "0-0"})] {
        let mut frame = json!({"type":"history","room":"edge"});
        frame.as_object_mut().expect("object").extend(query.as_object().expect("object").clone());
        let page = bob.request(frame).await;
        assert_eq!((page["type"].as_str(), page["messages"].as_array().map(Vec::len)), (Some("history"), Some(0)));
    }
    let (status, page) =
        http(&a, "GET", "/api/v1/rooms/edge/messages?before=0-0", &[("Authorization", "Bearer k")], None).await;
    assert_eq!((status, page["messages"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    // Alice saw bob join, and nothing else: no leave of a join that failed.
    let (presence, _) = alice.recv_until("presence").await;
    assert_eq!((presence["event"].as_str(), presence["user"].as_str()), (Some("join"), Some("bob")));
    alice.expect_silence(std::time::Duration::from_millis(300)).await;
}

/// A join that fails inside Redis fails before the session is added: the other members see
/// neither a join nor a leave of it.
#[actix_web::test]
async fn a_join_that_fails_in_redis_is_never_announced() {
    let redis = RedisServer::start();
    let a = node(&redis, "node-a").await;
    let (mut alice, mut bob) = (a.client("alice").await, a.client("bob").await);
    alice.join("w").await;
    // The room's history is broken (a string where a stream belongs): reading the replay fails.
    let history = rookery::engine::redis::Keys::new(rookery::settings::DEFAULT_BUS_SHARDS)
        .history(&rookery::domain::RoomName::parse("w").expect("a room"));
    let mut conn = redis.connection().await;
    let () = redis::cmd("SET").arg(&history).arg("not a stream").query_async(&mut conn).await.expect("SET");
    let failed = bob.request(json!({"type":"join","room":"w"})).await;
    assert_eq!((failed["type"].as_str(), failed["code"].as_str()), (Some("error"), Some("internal")), "{failed}");
    alice.expect_silence(std::time::Duration::from_millis(500)).await;
    let (status, members) = http(&a, "GET", "/api/v1/rooms/w/members", &[("Authorization", "Bearer k")], None).await;
    assert_eq!((status, members["members"].clone()), (200, json!([{"user":"alice","sessions":1}])));
    // Repaired, the same join goes through and is announced once.
    let () = redis::cmd("DEL").arg(&history).query_async(&mut conn).await.expect("DEL");
    bob.join("w").await;
    let (presence, _) = alice.recv_until("presence").await;
    assert_eq!((presence["event"].as_str(), presence["user"].as_str()), (Some("join"), Some("bob")));
}
