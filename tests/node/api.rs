//! HTTP: health, readiness, metrics, the server API, JSON errors.

use serde_json::json;

use crate::helpers::{Endpoint, http, http_text, spawn_app};

const KEY: (&str, &str) = ("Authorization", "Bearer sekrit");

#[actix_web::test]
async fn health_and_readiness_answer_json() {
    let app = spawn_app(&[]).await;
    assert_eq!(http(&app, "GET", "/healthz", &[], None).await, (200, json!({"status":"ok"})));
    let (status, ready) = http(&app, "GET", "/readyz", &[], None).await;
    assert_eq!((status, ready["status"].as_str(), ready["engine"].as_str()), (200, Some("ready"), Some("memory")));
    let (status, missing) = http(&app, "GET", "/nope", &[], None).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));
    let (status, page) = http_text(&app, "GET", "/", &[], None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>rookery</title>"));
}

#[actix_web::test]
async fn the_server_api_is_off_without_a_key_and_checks_it() {
    let app = spawn_app(&[]).await;
    let (status, body) = http(&app, "GET", "/api/v1/rooms/lobby/members", &[], None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("api_disabled")));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("ROOKERY_API_KEY")));

    let app = spawn_app(&[("ROOKERY_API_KEY", "sekrit")]).await;
    let (status, body) =
        http(&app, "GET", "/api/v1/rooms/lobby/members", &[("Authorization", "Bearer wrong")], None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
}

#[actix_web::test]
async fn posted_messages_are_delivered_and_listed() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "sekrit"), ("ROOKERY_MAX_BODY_BYTES", "100")]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let (status, created) =
        http(&app, "POST", "/api/v1/rooms/lobby/messages", &[KEY], Some(json!({"user":"system","body":"welcome"})))
            .await;
    assert_eq!(status, 201, "{created}");
    let message = alice.recv().await;
    assert_eq!(
        (message["type"].as_str(), message["user"].as_str(), message["body"].as_str()),
        (Some("message"), Some("system"), Some("welcome"))
    );
    assert_eq!(message["id"], created["id"]);

    let (status, members) = http(&app, "GET", "/api/v1/rooms/lobby/members", &[KEY], None).await;
    assert_eq!((status, members), (200, json!({"room":"lobby","members":[{"user":"alice","sessions":1}]})));

    let first = created["id"].as_str().expect("id").to_owned();
    for n in 0..3 {
        alice.say("lobby", &n.to_string()).await;
    }
    let (status, page) =
        http(&app, "GET", &format!("/api/v1/rooms/lobby/messages?after={first}&limit=2"), &[KEY], None).await;
    assert_eq!(status, 200);
    let bodies: Vec<&str> =
        page["messages"].as_array().expect("messages").iter().map(|m| m["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, ["0", "1"]);

    let bad = [
        ("POST", "/api/v1/rooms/bad%20room/messages", Some(json!({"body":"x"})), 400, "bad_request"),
        ("POST", "/api/v1/rooms/lobby/messages", Some(json!({"nobody":1})), 400, "bad_request"),
        ("POST", "/api/v1/rooms/lobby/messages", Some(json!({"body":"x".repeat(101)})), 413, "too_large"),
        ("GET", "/api/v1/rooms/lobby/messages?limit=501", None, 400, "bad_request"),
        ("GET", "/api/v1/rooms/lobby/messages?after=yesterday", None, 400, "bad_request"),
    ];
    for (method, path, body, status, code) in bad {
        let (got, error) = http(&app, method, path, &[KEY], body).await;
        assert_eq!((got, error["code"].as_str()), (status, Some(code)), "{method} {path}");
    }
    let metrics = app.node.metrics.render();
    assert!(metrics.contains("rookery_api_errors_total{status=\"400\"} 4"), "{metrics}");
}

#[actix_web::test]
async fn metrics_count_traffic() {
    let app = spawn_app(&[]).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    alice.say("lobby", "one").await;
    alice.say("lobby", "two").await;
    alice.send_text("garbage").await;
    alice.recv_until("error").await;
    // The ack can come before the room's fan-out (which counts deliveries) has run.
    app.eventually("both fan-outs", |node| node.metrics.render().contains("rookery_deliveries_total 2\n")).await;
    app.eventually("both writes", |node| node.metrics.render().contains("rookery_delivery_latency_seconds_count 2\n"))
        .await;
    let (status, text) = http_text(&app, "GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    for line in [
        "rookery_connections 1",
        "rookery_rooms 1",
        "rookery_connections_opened_total{result=\"ok\"} 1",
        "rookery_frames_received_total{type=\"send\"} 2",
        "rookery_frames_received_total{type=\"join\"} 1",
        "rookery_frames_received_total{type=\"invalid\"} 1",
        "rookery_error_frames_total{code=\"bad_request\"} 1",
        "rookery_messages_published_total 2",
        "rookery_deliveries_total 2",
        // Alice's join (a presence event) and the two messages.
        "rookery_bus_events_total{outcome=\"delivered\"} 3",
        "rookery_delivery_latency_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}
