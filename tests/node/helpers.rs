//! Test harness: a real node on a free port (`spawn_app`), a JSON WebSocket client, a raw-frame
//! client for protocol violations, and a minimal HTTP/1.1 client.

use std::{collections::HashMap, net::TcpListener, sync::Arc, time::Duration};

use actix_web::web;
use futures_util::{SinkExt, StreamExt};
use rookery::{
    engine::{Delivery, Engine},
    node::Node,
    settings::Settings,
    startup::Application,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::frame::coding::CloseCode},
};

pub const WAIT: Duration = Duration::from_secs(5);

/// A node running in this test's actix system.
#[derive(Clone)]
pub struct TestApp {
    pub port: u16,
    pub node: web::Data<Node>,
}

/// Starts a node with test defaults overridden by `vars`; its engine is the one the settings
/// pick (Redis with `ROOKERY_REDIS_URL`, else memory).
pub async fn spawn_app(vars: &[(&str, &str)]) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let app = Application::with_listener(test_settings(vars), listener).await.expect("build the node");
    run(app)
}

/// Starts a node on the engine `make_engine` builds.
pub async fn spawn_app_with(
    vars: &[(&str, &str)],
    make_engine: impl FnOnce(&Settings, Arc<dyn Delivery>) -> Arc<dyn Engine>,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    run(Application::with_engine(test_settings(vars), listener, make_engine).expect("build the node"))
}

fn run(app: Application) -> TestApp {
    let (port, node) = (app.port(), app.node());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp { port, node }
}

fn test_settings(vars: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("ROOKERY_WORKERS", "1"),
        ("ROOKERY_NODE_ID", "test-node"),
        ("ROOKERY_LOG_FORMAT", "pretty"),
        ("ROOKERY_BIND", "127.0.0.1:0"),
        ("ROOKERY_DRAIN_DELAY_MS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::from_vars(&env).expect("test settings")
}

/// Anything serving a node on a local port: a node in this test, or one in a child process.
pub trait Endpoint {
    fn port(&self) -> u16;

    fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws{query}", self.port())
    }

    /// Connects as `user` and reads the welcome frame.
    async fn client(&self, user: &str) -> Client {
        Client::connect(&self.ws_url(&format!("?user={user}"))).await
    }
}

impl Endpoint for TestApp {
    fn port(&self) -> u16 {
        self.port
    }
}

impl TestApp {
    /// Waits until `check` holds for the node, or fails naming `what`.
    pub async fn eventually(&self, what: &str, check: impl Fn(&Node) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check(&self.node) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A WebSocket client speaking the JSON protocol.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Self::connect_request(url.into_client_request().expect("request")).await.expect("connect")
    }

    pub async fn connect_request(
        request: tungstenite::handshake::client::Request,
    ) -> Result<Client, tungstenite::Error> {
        let (ws, _) = connect_async(request).await?;
        let mut client = Client { ws, welcome: Value::Null };
        client.welcome = client.recv().await;
        assert_eq!(client.welcome["type"], "welcome", "first frame is welcome");
        Ok(client)
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next JSON frame (pings and pongs are skipped).
    pub async fn recv(&mut self) -> Value {
        match self.next_frame(WAIT).await {
            Some(Message::Text(text)) => serde_json::from_str(&text).expect("json frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame other than ping/pong within `wait`; `None` when nothing came.
    async fn next_frame(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Message::Close(None)),
                Ok(Some(Err(e))) => panic!("websocket error: {e}"),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message))) => return Some(message),
            }
        }
    }

    /// Frames until one of `kind` arrives; returns it and the ones before it.
    pub async fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Reads frames until `count` `message` frames arrived; returns them, and the other frames.
    pub async fn messages(&mut self, count: usize) -> (Vec<Value>, Vec<Value>) {
        let (mut messages, mut others) = (Vec::new(), Vec::new());
        while messages.len() < count {
            let frame = self.recv().await;
            if frame["type"] == "message" { messages.push(frame) } else { others.push(frame) }
        }
        (messages, others)
    }

    /// Sends `frame` with a `ref` and returns the reply carrying it. Frames that arrive before
    /// the reply are discarded, the sender's own copy of a message included (it may come before
    /// its ack): read those with `recv`/`recv_until` instead.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let reference = uuid::Uuid::new_v4().to_string();
        frame["ref"] = json!(reference);
        self.send(frame).await;
        loop {
            let reply = self.recv().await;
            if reply["ref"] == json!(reference) {
                return reply;
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        let joined = self.request(json!({"type": "join", "room": room})).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        joined
    }

    /// Sends a message until the node acks it (its engine is coming back); returns the id.
    pub async fn say_when_back(&mut self, room: &str, body: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let reply = self.request(json!({"type": "send", "room": room, "body": body})).await;
            if reply["type"] == "ack" {
                return reply["id"].as_str().unwrap_or_default().to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "sends never worked again: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a message with idempotency key `key` until the node acks it (a retry with the key
    /// stores nothing new); returns the id.
    pub async fn say_until_acked(&mut self, room: &str, body: &str, key: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let reply = self.request(json!({"type": "send", "room": room, "body": body, "key": key})).await;
            if reply["type"] == "ack" {
                return reply["id"].as_str().unwrap_or_default().to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "never acked: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ids of the next `count` messages, skipping other frames.
    pub async fn message_ids(&mut self, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            let (message, _) = self.recv_until("message").await;
            ids.push(message["id"].as_str().unwrap_or_default().to_owned());
        }
        ids
    }

    /// The ids of the room's history (up to 500), oldest first.
    pub async fn history_ids(&mut self, room: &str) -> Vec<String> {
        let page = self.request(json!({"type": "history", "room": room, "limit": 500})).await;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        messages.iter().map(|m| m["id"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// Asserts that the next messages this client gets are exactly `acked`, once each and in
    /// order, and that the room's history holds exactly them: nothing acked was lost or doubled.
    pub async fn expect_exactly_acked(&mut self, room: &str, acked: &[String]) {
        assert_eq!(self.message_ids(acked.len()).await, acked, "every acked message once, in order");
        assert_eq!(self.history_ids(room).await, acked, "every acked message stored once");
    }

    /// Sends a message and returns its acked id.
    pub async fn say(&mut self, room: &str, body: &str) -> String {
        let ack = self.request(json!({"type": "send", "room": room, "body": body})).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack["id"].as_str().expect("id").to_owned()
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next_frame(WAIT).await {
                Some(Message::Close(Some(frame))) => return (u16::from(frame.code), frame.reason.to_string()),
                Some(Message::Close(None)) => return (CloseCode::Status.into(), String::new()),
                Some(_) => continue,
                None => panic!("the server did not close the connection"),
            }
        }
    }

    /// Asserts that nothing but pings arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.next_frame(wait).await {
            panic!("expected silence, got {frame:?}");
        }
    }
}

/// A WebSocket connection driven byte by byte, for frames no careful client library would send.
pub struct RawSocket {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawSocket {
    pub async fn connect(app: &TestApp, path: &str) -> RawSocket {
        let stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
        Self::handshake(stream, path, &[]).await
    }

    /// Connects and sends `early` in the same write as the handshake request, before the
    /// server has answered it.
    pub async fn connect_sending(app: &TestApp, path: &str, early: &[u8]) -> RawSocket {
        let stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
        Self::handshake(stream, path, early).await
    }

    /// Connects with a receive buffer of about `bytes`: a peer whose window fills at once
    /// when it stops reading.
    pub async fn connect_with_receive_buffer(app: &TestApp, path: &str, bytes: u32) -> RawSocket {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let stream = socket.connect(([127, 0, 0, 1], app.port()).into()).await.expect("connect");
        Self::handshake(stream, path, &[]).await
    }

    async fn handshake(mut stream: TcpStream, path: &str, early: &[u8]) -> RawSocket {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(early);
        stream.write_all(&request).await.expect("handshake");
        let mut socket = RawSocket { stream, buffer: Vec::new() };
        let head_end = loop {
            if let Some(end) = socket.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(socket.fill().await > 0, "connection closed during the handshake");
        };
        let head = String::from_utf8_lossy(&socket.buffer[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        socket.buffer.drain(..head_end);
        socket
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await.expect("read timed out").unwrap_or(0);
        self.buffer.extend_from_slice(&chunk[..n]);
        n
    }

    /// Writes one masked frame with the given first byte (FIN, RSV, opcode) and payload.
    pub async fn frame(&mut self, first: u8, payload: &[u8]) {
        self.stream.write_all(&Self::encode(first, payload)).await.expect("write frame");
    }

    /// One masked client frame.
    pub fn encode(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![first];
        match payload.len() {
            n @ 0..=125 => bytes.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        bytes
    }

    /// Writes raw bytes (e.g. a frame header that announces more than is sent).
    pub async fn bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame from the server: (opcode, payload).
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buffer.len() >= 2 {
                let (len, header) = match self.buffer[1] & 0x7F {
                    126 if self.buffer.len() >= 4 => (u16::from_be_bytes([self.buffer[2], self.buffer[3]]) as usize, 4),
                    127 if self.buffer.len() >= 10 => {
                        (u64::from_be_bytes(self.buffer[2..10].try_into().expect("8 bytes")) as usize, 10)
                    }
                    n @ 0..=125 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buffer.len() >= header + len {
                    let opcode = self.buffer[0] & 0x0F;
                    let payload = self.buffer[header..header + len].to_vec();
                    self.buffer.drain(..header + len);
                    return Some((opcode, payload));
                }
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// Reads frames until a close frame; returns its code.
    pub async fn expect_close_code(&mut self) -> u16 {
        while let Some((opcode, payload)) = self.read_frame().await {
            if opcode == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
        panic!("connection ended without a close frame");
    }

    /// Waits for the server to close the TCP connection; panics after `WAIT`.
    pub async fn expect_eof(&mut self) {
        loop {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("the server kept the TCP connection open"),
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// Waits until the node's `/readyz` answers 200.
pub async fn wait_ready(node: &impl Endpoint) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while http(node, "GET", "/readyz", &[], None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the node never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.1 request; returns the status and the body parsed as JSON (or as a string).
pub async fn http(
    app: &impl Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = http_text(app, method, path, headers, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn http_text(
    app: &impl Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port())).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("response timed out").expect("read");
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of the metric line that starts with `series `, or `None` when no line does (so a
/// renamed metric fails the checks instead of reading as 0).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.parse().ok())
}

/// Freezes process `pid` (SIGSTOP) and returns once every thread of it has stopped: `kill` only
/// queues the signal, and a thread may still run for a moment, long enough to take what a test
/// sends right after. Linux only (it reads /proc).
pub fn freeze(pid: u32) {
    let status = std::process::Command::new("kill").arg("-STOP").arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -STOP {pid} failed");
    // A thread's state follows its name's closing parenthesis (the name may hold any).
    let state = |stat: String| stat.rfind(')').and_then(|end| stat[end + 1..].trim_start().chars().next());
    let stopped = || {
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        threads
            .flatten()
            .all(|thread| std::fs::read_to_string(thread.path().join("stat")).ok().and_then(state) == Some('T'))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !stopped() {
        assert!(std::time::Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
