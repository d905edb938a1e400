//! Draining a node on SIGTERM: readiness off at once, sessions closed with 1012 at the drain
//! rate, the bus acknowledged, exit 0; users who reconnect elsewhere are never announced as
//! leaving; a second SIGTERM exits at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    helpers::{Client, Endpoint, http},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

#[actix_web::test]
async fn sigterm_drains_sessions_at_the_drain_rate_and_exits_0() {
    let redis = RedisServer::start();
    let url = redis.url();
    let vars = [
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", "node-a"),
        ("ROOKERY_DRAIN_DELAY_MS", "500"),
        ("ROOKERY_DRAIN_RATE", "20"),
    ];
    let mut a = NodeProcess::start(&vars).await;
    let mut clients = Vec::new();
    for n in 0..10 {
        let mut client = a.client(&format!("user{n}")).await;
        client.join("lobby").await;
        clients.push(client);
    }
    clients[0].say("lobby", "before the drain").await;

    let signalled = Instant::now();
    a.terminate();
    // Every client waits for its close while the HTTP checks run, so each close is timed when
    // it comes.
    let closes = futures_util::future::join_all(clients.iter_mut().map(|client| async move {
        let (code, reason) = client.expect_close().await;
        assert_eq!((code, reason.as_str()), (1012, "server restarting"));
        signalled.elapsed()
    }));
    let checks = async {
        // The signal reaches the node's handler a moment after `kill` returns: ask until it has
        // (the drain delay bounds "at once" below).
        let answered = loop {
            let (status, ready) = http(&a, "GET", "/readyz", &[], None).await;
            if (status, ready["status"].as_str()) == (503, Some("draining")) {
                break signalled.elapsed();
            }
            assert_eq!(status, 200, "{ready}");
            assert!(signalled.elapsed() < Duration::from_millis(450), "readiness stayed on after SIGTERM");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let upgrade = [
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let (status, refused) = http(&a, "GET", "/ws?user=late", &upgrade, None).await;
        assert_eq!((status, refused["code"].as_str()), (503, Some("draining")), "new upgrades are refused");
        answered
    };
    let (closed_at, answered) = futures_util::join!(closes, checks);
    assert!(answered < Duration::from_millis(450), "readiness turned off before any session closed: {answered:?}");
    let (first, last) =
        (closed_at.iter().min().copied().unwrap_or_default(), closed_at.iter().max().copied().unwrap_or_default());
    assert!(first >= Duration::from_millis(450), "sessions waited for the drain delay: {first:?}");
    // Ten sessions at 20 per second: the last closes about 450 ms after the first.
    assert!(last - first >= Duration::from_millis(350), "closes were spread out: {closed_at:?}");

    let status = a.exit_status(Duration::from_secs(10)).await.expect("the node exits");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(redis.pending("node-a").await, 0, "what the node read was acknowledged");
}

#[actix_web::test]
async fn users_who_reconnect_elsewhere_are_not_announced_and_the_others_leave_within_the_ttl() {
    let redis = RedisServer::start();
    let url = redis.url();
    let vars = |id| {
        [
            ("ROOKERY_REDIS_URL", url.as_str()),
            ("ROOKERY_NODE_ID", id),
            ("ROOKERY_DRAIN_DELAY_MS", "0"),
            ("ROOKERY_NODE_TTL_MS", "2000"),
            ("ROOKERY_API_KEY", "k"),
        ]
    };
    let mut a = NodeProcess::start(&vars("node-a")).await;
    let b = NodeProcess::start(&vars("node-b")).await;
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    let mut carol = a.client("carol").await;
    carol.join("lobby").await;
    let mut bob = b.client("bob").await;
    bob.join("lobby").await;
    let last_seen = bob.say("lobby", "hello").await;

    a.terminate();
    assert_eq!(alice.expect_close().await.0, 1012);
    assert_eq!(carol.expect_close().await.0, 1012);
    // Alice reconnects to another node and resumes; Carol does not come back.
    let mut alice = b.client("alice").await;
    alice.send(json!({"type":"join","room":"lobby","since":last_seen})).await;
    alice.recv_until("joined").await;
    assert!(a.exit_status(Duration::from_secs(10)).await.is_some_and(|s| s.success()));

    let deadline = Instant::now() + Duration::from_secs(5);
    let leave = loop {
        let frame = bob.recv().await;
        if frame["type"] == "presence" {
            break frame;
        }
        assert!(Instant::now() < deadline, "no presence event");
    };
    assert_eq!(leave, json!({"type":"presence","room":"lobby","event":"leave","user":"carol"}), "only carol leaves");
    bob.expect_silence(Duration::from_millis(500)).await;
    let (_, members) = http(&b, "GET", "/api/v1/rooms/lobby/members", &[("Authorization", "Bearer k")], None).await;
    assert_eq!(members["members"], json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]));
}

#[actix_web::test]
async fn a_second_sigterm_exits_at_once() {
    let mut a = NodeProcess::start(&[("ROOKERY_DRAIN_DELAY_MS", "20000")]).await;
    let _client: Client = a.client("alice").await;
    a.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.exit_status(Duration::ZERO).await.is_none(), "still draining after the first signal");
    a.terminate();
    let status = a.exit_status(Duration::from_secs(2)).await.expect("the second signal ends the process");
    assert!(!status.success(), "a forced exit is not a clean one: {status:?}");
}
