//! Limits and backpressure: abuse, heartbeats, rates, sizes, rooms, slow consumers.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Endpoint, RawSocket, TestApp, WAIT, http, http_text, metric, spawn_app};

#[actix_web::test]
async fn bad_requests_get_errors_and_ten_in_a_minute_close_with_1008() {
    let app = spawn_app(&[]).await;
    let mut client = app.client("alice").await;
    let bad = [
        "not json".to_owned(),
        json!({"type":"warp","ref":"1"}).to_string(),
        json!({"type":"join","room":"no spaces","ref":"2"}).to_string(),
        json!({"type":"send","room":"lobby","ref":"3"}).to_string(),
    ];
    for text in &bad {
        client.send_text(text).await;
        let reply = client.recv().await;
        assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("bad_request")), "{text}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let pong = client.request(json!({"type":"ping"})).await;
    assert_eq!(pong["type"], "pong", "the connection stays open after errors");
    let not_joined = client.request(json!({"type":"send","room":"lobby","body":"x"})).await;
    assert_eq!(not_joined["code"], "not_joined", "other codes do not count");
    for _ in 0..5 {
        client.send_text("{").await;
        assert_eq!(client.recv().await["code"], "bad_request");
    }
    client.send_text("{").await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1008);
}

#[actix_web::test]
async fn body_size_rate_and_room_limits_answer_with_errors() {
    let app = spawn_app(&[
        ("ROOKERY_MAX_BODY_BYTES", "10"),
        ("ROOKERY_RATE_PER_SEC", "1"),
        ("ROOKERY_RATE_BURST", "3"),
        ("ROOKERY_MAX_ROOMS_PER_SESSION", "2"),
    ])
    .await;
    let mut client = app.client("alice").await;
    client.join("a").await;
    client.join("b").await;
    let over = client.request(json!({"type":"join","room":"c"})).await;
    assert_eq!(over["code"], "room_limit");
    let again = client.request(json!({"type":"join","room":"a"})).await;
    assert_eq!(again["type"], "joined", "rejoining a room does not count twice");

    let large = client.request(json!({"type":"send","room":"a","body":"x".repeat(11)})).await;
    assert_eq!(large["code"], "too_large");
    let mut codes = Vec::new();
    for _ in 0..4 {
        let reply = client.request(json!({"type":"send","room":"a","body":"ok"})).await;
        codes.push(reply["code"].as_str().unwrap_or(reply["type"].as_str().unwrap_or("")).to_owned());
    }
    assert_eq!(codes, ["ack", "ack", "ack", "rate_limited"]);
    let history = client.request(json!({"type":"history","room":"a"})).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(3), "rejected messages were not published");
}

#[actix_web::test]
async fn silent_peers_are_closed_after_three_heartbeats() {
    let app = spawn_app(&[("ROOKERY_HEARTBEAT_MS", "200")]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    // The raw socket never answers the server's pings.
    let mut silent = RawSocket::connect(&app, "/ws?user=ghost").await;
    silent.read_frame().await.expect("welcome");
    silent.frame(0x81, json!({"type":"join","room":"lobby"}).to_string().as_bytes()).await;
    assert_eq!(alice.recv().await["event"], "join");
    // Alice keeps reading, so her client answers pings; the ghost never does.
    let started = std::time::Instant::now();
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"lobby","event":"leave","user":"ghost"}));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(silent.expect_close_code().await, 1001);
    alice.expect_silence(Duration::from_millis(1500)).await;
    assert_eq!(alice.request(json!({"type":"ping"})).await["type"], "pong");
}

#[actix_web::test]
async fn a_slow_consumer_is_closed_with_1013_and_the_room_goes_on() {
    let app = spawn_app(&[("ROOKERY_OUTBOUND_QUEUE_FRAMES", "64"), ("ROOKERY_API_KEY", "key")]).await;
    let mut fast = app.client("fast").await;
    fast.join("firehose").await;
    let mut slow = RawSocket::connect(&app, "/ws?user=slow").await;
    slow.read_frame().await.expect("welcome");
    slow.frame(0x81, json!({"type":"join","room":"firehose"}).to_string().as_bytes()).await;
    assert_eq!(fast.recv().await["event"], "join");
    // The slow client reads nothing from here on; the server API publishes.
    let body = "x".repeat(16 * 1024);
    let total = 600;
    let mut received = 0;
    let mut slow_left = false;
    let publisher = app.clone();
    let posting = actix_web::rt::spawn(async move {
        for _ in 0..total {
            let post = json!({"user":"sender","body":body});
            let auth = [("Authorization", "Bearer key")];
            let (status, _) = http(&publisher, "POST", "/api/v1/rooms/firehose/messages", &auth, Some(post)).await;
            assert_eq!(status, 201);
        }
    });
    while received < total {
        let frame = fast.recv().await;
        match frame["type"].as_str() {
            Some("message") => received += 1,
            Some("presence") if frame["user"] == "slow" && frame["event"] == "leave" => slow_left = true,
            _ => {}
        }
    }
    if !slow_left {
        let (presence, _) = fast.recv_until("presence").await;
        assert_eq!((presence["user"].as_str(), presence["event"].as_str()), (Some("slow"), Some("leave")));
    }
    posting.await.expect("publisher");
    assert_eq!(slow.expect_close_code().await, 1013, "after what was already in flight");
    assert!(app.node.metrics.render().contains("rookery_closes_total{code=\"1013\"} 1"));
}

#[actix_web::test]
async fn a_peer_that_stops_reading_is_reset_a_heartbeat_after_its_session_ends() {
    let app = spawn_app(&[
        ("ROOKERY_HEARTBEAT_MS", "1000"),
        ("ROOKERY_OUTBOUND_QUEUE_FRAMES", "16"),
        ("ROOKERY_API_KEY", "key"),
    ])
    .await;
    let mut stuck = RawSocket::connect_with_receive_buffer(&app, "/ws?user=stuck", 4096).await;
    stuck.read_frame().await.expect("welcome");
    stuck.frame(0x81, json!({"type":"join","room":"lobby"}).to_string().as_bytes()).await;
    stuck.read_frame().await.expect("joined");
    // From here the peer reads nothing: its small window and the node's send buffer fill, the
    // queue fills behind them, and the session closes with 1013, its close frame stuck too.
    let body = "x".repeat(16 * 1024);
    let closed = "rookery_closes_total{code=\"1013\"} 1";
    for _ in 0..2000 {
        if app.node.metrics.render().contains(closed) {
            break;
        }
        let post = json!({"user":"sender","body":body});
        let (status, _) =
            http(&app, "POST", "/api/v1/rooms/lobby/messages", &[("Authorization", "Bearer key")], Some(post)).await;
        assert_eq!(status, 201);
    }
    assert!(app.node.metrics.render().contains(closed), "the session closed as a slow consumer");
    let since_close = std::time::Instant::now();
    while !app.node.metrics.render().contains("rookery_connections_reset_total 1") {
        assert!(since_close.elapsed() < WAIT, "the connection was not reset");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // At most a heartbeat for the connection to notice the session is gone, and one to flush.
    assert!(since_close.elapsed() < Duration::from_millis(2500), "reset after {:?}", since_close.elapsed());
    stuck.expect_eof().await;
}

/// 270 messages of 16,000 bytes (about 4.3 MB, over the 4 MiB outbound queue) posted through
/// the API.
async fn room_of_large_messages(app: &TestApp) -> Vec<String> {
    let body = "x".repeat(16_000);
    let mut ids = Vec::new();
    for _ in 0..270 {
        let headers = [("Authorization", "Bearer k")];
        let (status, posted) =
            http(app, "POST", "/api/v1/rooms/big/messages", &headers, Some(json!({"body": body}))).await;
        assert_eq!(status, 201, "{posted}");
        ids.push(posted["id"].as_str().unwrap_or_default().to_owned());
    }
    ids
}

#[actix_web::test]
async fn a_replay_larger_than_the_outbound_queue_is_written_as_it_drains() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "k")]).await;
    let ids = room_of_large_messages(&app).await;
    let mut client = app.client("late").await;
    client.send(json!({"type":"join","room":"big","since":"0-0","ref":"j"})).await;
    let (replayed, others) = client.messages(ids.len()).await;
    let got: Vec<&str> = replayed.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(got, ids, "every message, in order, before anything else");
    assert!(others.is_empty(), "{others:?}");
    let joined = client.recv().await;
    assert_eq!((joined["type"].as_str(), joined["ref"].as_str()), (Some("joined"), Some("j")), "{joined}");
    // Live messages still come after the replay, and the connection stays open.
    let id = client.say("big", "after").await;
    let (live, _) = client.recv_until("message").await;
    assert_eq!(live["id"].as_str(), Some(id.as_str()));
}

#[actix_web::test]
async fn a_history_page_larger_than_the_outbound_queue_is_cut_and_says_so() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "k")]).await;
    let ids = room_of_large_messages(&app).await;
    let mut client = app.client("reader").await;
    // Page back from the newest with limit 300, then again from each page's oldest message.
    let mut seen: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut ask = json!({"type":"history","room":"big","limit":300});
        if let Some(before) = &before {
            ask["before"] = json!(before);
        }
        let page = client.request(ask).await;
        assert_eq!(page["type"], "history", "{page}");
        let page_ids: Vec<String> = page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        if page_ids.is_empty() {
            break;
        }
        let truncated = page["truncated"] == true;
        before = page_ids.first().cloned();
        seen.splice(0..0, page_ids);
        if !truncated {
            break;
        }
    }
    assert_eq!(seen, ids, "the cut pages together are the whole history");
}

#[actix_web::test]
async fn sessions_that_never_read_are_closed_largest_first_when_the_node_is_over_its_outbound_budget() {
    const BUDGET: usize = 24 << 20;
    let budget = BUDGET.to_string();
    // Queues big enough that each session could hold its pages whole (64 MiB each).
    let vars = [
        ("ROOKERY_API_KEY", "k"),
        ("ROOKERY_OUTBOUND_BUDGET_BYTES", &budget),
        ("ROOKERY_OUTBOUND_QUEUE_BYTES", "67108864"),
    ];
    let app = spawn_app(&vars).await;
    room_of_large_messages(&app).await;
    // Six clients each ask three times for the room's 270 messages of 16 KB (4.3 MB a page) and
    // read none of it: what the sockets do not absorb, about 9 MB each, stays on the node.
    let mut stalled = Vec::new();
    for n in 0..6 {
        let mut socket = RawSocket::connect_with_receive_buffer(&app, &format!("/ws?user=stalled-{n}"), 4096).await;
        let ask = json!({"type":"history","room":"big","limit":300}).to_string();
        for _ in 0..3 {
            socket.frame(0x81, ask.as_bytes()).await;
        }
        stalled.push(socket);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let page = loop {
        let (_, page) = http_text(&app, "GET", "/metrics", &[], None).await;
        let value = |series| metric(&page, series).unwrap_or(-1.0);
        if value("rookery_outbound_evictions_total") >= 1.0
            && value("rookery_outbound_bytes") <= BUDGET as f64
            && value("rookery_connections") + value("rookery_outbound_evictions_total") == 6.0
        {
            break page;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node stayed over its budget:\n{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let held = metric(&page, "rookery_outbound_bytes").unwrap_or(-1.0);
    assert!(held > 0.0 && held <= BUDGET as f64, "{held} bytes held");
    assert!(metric(&page, "rookery_connections").unwrap_or(0.0) >= 1.0, "not every session was closed");
    // An evicted session hears 1013 when its socket has room for the close frame, or is reset.
    // Everyone else is served.
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    alice.say("lobby", "still here").await;
    drop(stalled);
}
