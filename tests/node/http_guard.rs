//! Unfinished HTTP requests: the server API refuses a bad key before reading a body, a request
//! (head or body) that does not arrive in time ends its connection, and connections that never
//! finish their request are bounded apart from sessions, so they lock no one out.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Endpoint, TestApp, WAIT, http, spawn_app};

const STALLED_POST: &str = "POST /api/v1/rooms/x/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";

/// Opens a connection and sends `bytes`, nothing more.
async fn send_raw(app: &TestApp, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
    stream.write_all(bytes.as_bytes()).await.expect("write");
    stream
}

/// Everything the node sends until it closes the connection; panics if it keeps it open past `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> String {
    let mut response = Vec::new();
    let read = tokio::time::timeout(wait, stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the node kept the connection open; it sent {:?}", String::from_utf8_lossy(&response));
    String::from_utf8_lossy(&response).into_owned()
}

#[actix_web::test]
async fn the_api_refuses_a_bad_key_before_the_body_arrives() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "sekrit")]).await;
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let mut stream = send_raw(&app, &format!("{STALLED_POST}{auth}\r\n{{")).await;
        let response = read_until_closed(&mut stream, WAIT).await;
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        assert!(response.contains(r#""code":"unauthorized""#), "{response}");
    }
}

#[actix_web::test]
async fn a_request_that_does_not_arrive_in_time_ends_its_connection() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "sekrit"), ("ROOKERY_REQUEST_TIMEOUT_MS", "1000")]).await;
    // (Not shorter: actix-http times the first head from a clock it updates every 500 ms.)
    // A body that stops: answered 408 (or simply closed), well before anything else would.
    let mut body = send_raw(&app, &format!("{STALLED_POST}Authorization: Bearer sekrit\r\n\r\n{{")).await;
    let response = read_until_closed(&mut body, WAIT).await;
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 408"), "{response}");
    // The second request head of a kept-alive connection, which actix-http never times out.
    let mut kept = send_raw(&app, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost:").await;
    let response = read_until_closed(&mut kept, WAIT).await;
    assert_eq!(response.matches("HTTP/1.1 200").count(), 1, "{response}");
    let (_, metrics) = crate::helpers::http_text(&app, "GET", "/metrics", &[], None).await;
    assert!(metrics.contains(r#"rookery_http_pending_closed_total{reason="timeout"} 2"#), "{metrics}");
    app.eventually("no pending requests", |node| node.pending.count() == 0).await;
}

#[actix_web::test]
async fn unfinished_requests_lock_out_neither_new_clients_nor_sessions() {
    let app = spawn_app(&[("ROOKERY_MAX_CONNECTIONS", "2"), ("ROOKERY_MAX_PENDING_REQUESTS", "16")]).await;
    let mut session = app.client("alice").await;
    session.join("lobby").await;
    // More unfinished requests than the server would ever accept connections (sessions, pending
    // requests and its margin together): the oldest make room for the newest.
    let mut stalled = Vec::new();
    for i in 0..1100 {
        let head = if i % 2 == 0 { "GET /healthz HTTP/1.1\r\nHost:" } else { STALLED_POST };
        stalled.push(send_raw(&app, head).await);
    }
    let (status, _) = http(&app, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 200);
    let mut bob = app.client("bob").await;
    bob.join("lobby").await;
    session.say("lobby", "still here").await;
    let (messages, _) = bob.messages(1).await;
    assert_eq!(messages[0]["body"], "still here");
    assert!(app.node.pending.count() <= 16, "{} pending", app.node.pending.count());
    let (_, metrics) = crate::helpers::http_text(&app, "GET", "/metrics", &[], None).await;
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"rookery_http_pending_closed_total{reason="evicted"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(evicted.is_some_and(|n| n >= 1000), "{metrics}");
    drop(stalled);
}
