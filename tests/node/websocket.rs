//! RFC 6455 behaviour: close codes, fragmentation, the close handshake, the echo endpoint.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Endpoint, RawSocket, http, spawn_app};

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

async fn raw(app: &crate::helpers::TestApp) -> RawSocket {
    let mut socket = RawSocket::connect(app, "/ws?user=raw").await;
    let (opcode, welcome) = socket.read_frame().await.expect("welcome");
    assert_eq!(opcode, TEXT);
    assert!(String::from_utf8_lossy(&welcome).contains("\"welcome\""));
    socket
}

#[actix_web::test]
async fn binary_messages_close_with_1003() {
    let app = spawn_app(&[]).await;
    let mut client = app.client("alice").await;
    client.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(client.expect_close().await.0, 1003);
}

#[actix_web::test]
async fn invalid_utf8_closes_with_1007_whole_or_fragmented() {
    let app = spawn_app(&[]).await;
    let mut socket = raw(&app).await;
    socket.frame(FIN | TEXT, &[b'{', 0xC3, 0x28, b'}']).await;
    assert_eq!(socket.expect_close_code().await, 1007);

    let mut socket = raw(&app).await;
    socket.frame(TEXT, &[b'"', 0xE2, 0x82]).await;
    socket.frame(FIN | CONTINUATION, &[0xFF, b'"']).await;
    assert_eq!(socket.expect_close_code().await, 1007);
}

#[actix_web::test]
async fn invalid_utf8_in_a_fragment_closes_with_1007_before_the_message_ends() {
    let app = spawn_app(&[("ROOKERY_ECHO_ENDPOINT", "true")]).await;
    // "κόσμε", then a fragment that cuts a character in two (still fine), then one with a
    // surrogate (0xED 0xA0 0x80), which no later byte can make valid.
    let mut socket = RawSocket::connect(&app, "/ws/echo").await;
    socket.frame(TEXT, "κόσμε".as_bytes()).await;
    socket.frame(CONTINUATION, &[0xCE]).await;
    socket.frame(CONTINUATION, &[0xBA, 0xED, 0xA0, 0x80]).await;
    // The third fragment, which would end the message, is never sent.
    assert_eq!(socket.expect_close_code().await, 1007);

    // The same inside one frame sent in pieces: refused before the frame has fully arrived.
    let mut socket = RawSocket::connect(&app, "/ws/echo").await;
    let frame = RawSocket::encode(FIN | TEXT, &[b'a', 0xED, 0xA0, 0x80, b'b', b'c', b'd']);
    socket.bytes(&frame[..frame.len() - 3]).await;
    assert_eq!(socket.expect_close_code().await, 1007);

    // A character split over fragments is valid, and so is the message.
    let mut socket = RawSocket::connect(&app, "/ws/echo").await;
    socket.frame(TEXT, &[b'a', 0xE2, 0x82]).await;
    socket.frame(FIN | CONTINUATION, &[0xAC, b'b']).await;
    assert_eq!(socket.read_frame().await, Some((TEXT, "a€b".as_bytes().to_vec())), "echoed whole");
}

#[actix_web::test]
async fn messages_over_max_frame_bytes_close_with_1009() {
    let app = spawn_app(&[("ROOKERY_MAX_FRAME_BYTES", "1024")]).await;
    let mut socket = raw(&app).await;
    socket.frame(FIN | TEXT, &vec![b'a'; 1025]).await;
    assert_eq!(socket.expect_close_code().await, 1009);

    let mut socket = raw(&app).await;
    socket.frame(TEXT, &vec![b'a'; 600]).await;
    socket.frame(FIN | CONTINUATION, &vec![b'a'; 600]).await;
    assert_eq!(socket.expect_close_code().await, 1009, "fragments count as one message");

    // A header announcing 1 GiB is refused at once, without waiting for (or buffering) the data.
    let mut socket = raw(&app).await;
    let mut header = vec![FIN | TEXT, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    socket.bytes(&header).await;
    assert_eq!(socket.expect_close_code().await, 1009);
}

#[actix_web::test]
async fn protocol_violations_close_with_1002() {
    let app = spawn_app(&[]).await;
    type Frames = Vec<(u8, Vec<u8>)>;
    let cases: [(&str, Frames); 5] = [
        ("reserved bits", vec![(FIN | 0x40 | TEXT, b"{}".to_vec())]),
        ("unknown opcode", vec![(FIN | 0x3, b"x".to_vec())]),
        ("control frame over 125 bytes", vec![(FIN | PING, vec![0; 126])]),
        ("fragmented control frame", vec![(PING, b"x".to_vec())]),
        ("continuation without a start", vec![(FIN | CONTINUATION, b"x".to_vec())]),
    ];
    for (what, frames) in cases {
        let mut socket = raw(&app).await;
        for (first, payload) in frames {
            socket.frame(first, &payload).await;
        }
        assert_eq!(socket.expect_close_code().await, 1002, "{what}");
    }
}

#[actix_web::test]
async fn fragmented_messages_are_reassembled() {
    let app = spawn_app(&[]).await;
    let mut socket = raw(&app).await;
    let frame = json!({"type":"ping","ref":"frag"}).to_string();
    let (a, rest) = frame.as_bytes().split_at(5);
    let (b, c) = rest.split_at(7);
    socket.frame(TEXT, a).await;
    socket.frame(FIN | PING, b"mid").await;
    socket.frame(CONTINUATION, b).await;
    socket.frame(FIN | CONTINUATION, c).await;
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let (opcode, payload) = socket.read_frame().await.expect("reply");
        replies.push((opcode, String::from_utf8_lossy(&payload).to_string()));
    }
    assert!(replies.contains(&(0xA, "mid".to_owned())), "the interleaved ping is answered: {replies:?}");
    assert!(replies.contains(&(TEXT, r#"{"type":"pong","ref":"frag"}"#.to_owned())), "{replies:?}");
}

#[actix_web::test]
async fn close_handshake_is_answered_and_the_server_drops_the_connection() {
    let app = spawn_app(&[]).await;
    let mut socket = raw(&app).await;
    socket.frame(FIN | CLOSE, &1000u16.to_be_bytes()).await;
    assert_eq!(socket.expect_close_code().await, 1000);
    socket.expect_eof().await;

    let mut socket = raw(&app).await;
    socket.frame(FIN | BINARY, b"no").await;
    assert_eq!(socket.expect_close_code().await, 1003);
    socket.expect_eof().await;
}

#[actix_web::test]
async fn echo_endpoint_is_off_by_default_and_echoes_when_on() {
    let app = spawn_app(&[]).await;
    let (status, body) = http(&app, "GET", "/ws/echo", &[], None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    let app = spawn_app(&[("ROOKERY_ECHO_ENDPOINT", "true"), ("ROOKERY_MAX_FRAME_BYTES", "1024")]).await;
    let mut socket = RawSocket::connect(&app, "/ws/echo").await;
    socket.frame(FIN | TEXT, "héllo".as_bytes()).await;
    assert_eq!(socket.read_frame().await, Some((TEXT, "héllo".as_bytes().to_vec())));
    socket.frame(BINARY, &[1, 2]).await;
    socket.frame(FIN | CONTINUATION, &[3]).await;
    assert_eq!(socket.read_frame().await, Some((BINARY, vec![1, 2, 3])));
    socket.frame(FIN | PING, b"p").await;
    assert_eq!(socket.read_frame().await, Some((0xA, b"p".to_vec())));
    socket.frame(FIN | TEXT, &vec![b'a'; 1025]).await;
    assert_eq!(socket.expect_close_code().await, 1009, "the same limits as /ws");
}

#[actix_web::test]
async fn a_stopping_node_closes_sessions_with_1012() {
    let app = spawn_app(&[]).await;
    let (mut alice, mut bob) = (app.client("alice").await, app.client("bob").await);
    alice.join("lobby").await;
    app.node.request_shutdown();
    assert_eq!(alice.expect_close().await, (1012, "server restarting".to_owned()));
    assert_eq!(bob.expect_close().await.0, 1012);
    app.eventually("sessions to end", |node| node.connection_count() == 0).await;
}

#[actix_web::test]
async fn frames_sent_right_behind_the_handshake_are_read() {
    let app = spawn_app(&[]).await;
    let ping = RawSocket::encode(FIN | TEXT, json!({"type":"ping","ref":"early"}).to_string().as_bytes());
    let mut socket = RawSocket::connect_sending(&app, "/ws?user=eager", &ping).await;
    let (_, welcome) = socket.read_frame().await.expect("welcome");
    assert!(String::from_utf8_lossy(&welcome).contains("\"welcome\""));
    let (_, pong) = socket.read_frame().await.expect("pong");
    let pong: serde_json::Value = serde_json::from_slice(&pong).expect("json");
    assert_eq!((pong["type"].as_str(), pong["ref"].as_str()), (Some("pong"), Some("early")));
}

#[actix_web::test]
async fn upgrades_off_the_websocket_paths_get_404_and_plain_requests_to_them_400() {
    let app = spawn_app(&[]).await;
    let upgrade =
        [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")];
    for path in ["/nowhere", "/healthz", "/ws/echo"] {
        let (status, body) = http(&app, "GET", path, &upgrade, None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (status, body) = http(&app, "GET", "/ws?user=plain", &[], None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("not a WebSocket handshake")), "{body}");
    let (status, body) = http(&app, "POST", "/ws", &upgrade, None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
}
