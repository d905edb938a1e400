//! HTTP and handshake conformance: every error is JSON, wrong methods get 405 with `Allow`, the
//! bearer scheme is case-insensitive, and upgrades that RFC 6455 forbids are refused.

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Endpoint, TestApp, WAIT, http, http_text, spawn_app};

/// Sends `request` as it is and returns the node's whole answer: status line and headers, and
/// the body as JSON.
async fn exchange(app: &TestApp, request: &[u8]) -> (String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    // The node may reset a connection whose request it did not read whole: keep what came.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("answered in time");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

fn status(head: &str) -> u16 {
    head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[actix_web::test]
async fn errors_of_the_http_layer_are_json() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "k")]).await;
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
    let over_body = "POST /api/v1/rooms/x/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\
                     Content-Length: 300000\r\n\r\n{";
    for (request, expected, code) in [
        (&b"GARBAGE \x01\r\n\r\n"[..], 400, "bad_request"),
        (huge.as_bytes(), 431, "headers_too_large"),
        (over_body.as_bytes(), 413, "too_large"),
    ] {
        let (head, body) = exchange(&app, request).await;
        assert_eq!(status(&head), expected, "{head}");
        assert_eq!(body["code"].as_str(), Some(code), "{head}\r\n\r\n{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    // A client's malformed request is counted (and logged at debug, not as an error).
    let (_, metrics) = http_text(&app, "GET", "/metrics", &[], None).await;
    assert!(metrics.contains(r#"rookery_http_client_errors_total{kind="malformed"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"rookery_http_client_errors_total{kind="head_too_large"} 1"#), "{metrics}");
}

#[actix_web::test]
async fn wrong_methods_on_api_paths_get_405_with_allow() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "k")]).await;
    for (request, allow) in [
        ("DELETE /api/v1/rooms/x/messages", "GET, POST"),
        ("PUT /api/v1/rooms/x/messages", "GET, POST"),
        ("POST /api/v1/rooms/x/members", "GET"),
    ] {
        let raw = format!("{request} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n");
        let (head, body) = exchange(&app, raw.as_bytes()).await;
        assert_eq!(status(&head), 405, "{request}: {head}");
        assert!(head.to_ascii_lowercase().contains(&format!("\r\nallow: {}", allow.to_ascii_lowercase())), "{head}");
        assert_eq!(body["code"].as_str(), Some("method_not_allowed"), "{body}");
    }
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive_on_the_api() {
    let app = spawn_app(&[("ROOKERY_API_KEY", "k3y")]).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} k3y");
        let (status, body) = http(&app, "GET", "/api/v1/rooms/x/members", &[("Authorization", &auth)], None).await;
        assert_eq!(status, 200, "{scheme}: {body}");
    }
}

#[actix_web::test]
async fn upgrades_rfc_6455_forbids_are_refused() {
    let app = spawn_app(&[("ROOKERY_ALLOWED_ORIGINS", "https://good.example")]).await;
    let upgrade = |version: &str, extra: &str| {
        format!(
            "GET /ws?user=a {version}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
    };
    let key2 = "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n";
    let origins = "Origin: https://good.example\r\nOrigin: https://evil.example\r\n";
    for (request, expected, code) in [
        (upgrade("HTTP/1.0", ""), 400, "bad_request"),
        (upgrade("HTTP/1.1", key2), 400, "bad_request"),
        (upgrade("HTTP/1.1", origins), 403, "forbidden_origin"),
    ] {
        let (head, body) = exchange(&app, request.as_bytes()).await;
        assert_eq!((status(&head), body["code"].as_str()), (expected, Some(code)), "{request}: {head}");
    }
    let mut stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
    stream.write_all(upgrade("HTTP/1.1", "Origin: https://good.example\r\n").as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(WAIT, stream.read_exact(&mut head)).await.expect("answered").expect("read");
    assert_eq!(&head, b"HTTP/1.1 101", "one good Origin and one key still upgrade");
}
