//! One trace per message across nodes: an OTLP/HTTP receiver inside the test collects what two
//! real nodes (child processes, configured by the standard `OTEL_*` variables) export.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use prost::Message as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::{
    helpers::{Client, Endpoint},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Span {
    node: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
    links: Vec<String>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

/// An OTLP/HTTP (protobuf) trace receiver on a free port.
async fn otlp_receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let collected = spans.clone();
    let server = HttpServer::new(move || {
        let collected = collected.clone();
        App::new().app_data(web::PayloadConfig::new(16 << 20)).route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let collected = collected.clone();
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return HttpResponse::BadRequest().finish();
                    };
                    let mut out = collected.lock().expect("spans");
                    for resource_spans in request.resource_spans {
                        let resource = pairs(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
                        let node = resource
                            .iter()
                            .find(|(k, _)| k == "service.instance.id")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                out.push(Span {
                                    node: node.clone(),
                                    name: span.name,
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent_span_id: hex(&span.parent_span_id),
                                    attributes: pairs(&span.attributes),
                                    links: span.links.iter().map(|l| hex(&l.span_id)).collect(),
                                });
                            }
                        }
                    }
                    HttpResponse::Ok().content_type("application/x-protobuf").finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind the receiver");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (port, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until the collected spans satisfy `done`; returns them.
async fn spans_until(spans: &Arc<Mutex<Vec<Span>>>, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = spans.lock().expect("spans").clone();
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "no {what} in {now:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find<'a>(spans: &'a [Span], name: &str, node: &str, trace: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.name == name && s.node == node && s.trace_id == trace)
}

const HANDSHAKE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HANDSHAKE_PARENT: &str = "00f067aa0ba902b7";
const MESSAGE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const MESSAGE_PARENT: &str = "b7ad6b7169203331";

#[actix_web::test]
async fn one_message_is_one_trace_from_the_senders_socket_to_every_receiving_socket() {
    let (receiver, spans) = otlp_receiver().await;
    let redis = RedisServer::start();
    let (url, endpoint) = (redis.url(), format!("http://127.0.0.1:{receiver}"));
    let vars = |id| {
        [
            ("ROOKERY_REDIS_URL", url.clone()),
            ("ROOKERY_NODE_ID", String::from(id)),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ]
    };
    let start = |id| {
        let vars = vars(id);
        async move { NodeProcess::start(&vars.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await }
    };
    let (a, b) = (start("node-a").await, start("node-b").await);

    let mut bob = b.client("bob").await;
    bob.join("lobby").await;
    let mut request = a.ws_url("?user=alice").into_client_request().expect("request");
    let handshake_parent = format!("00-{HANDSHAKE_TRACE}-{HANDSHAKE_PARENT}-01");
    request.headers_mut().insert("traceparent", handshake_parent.parse().expect("header"));
    let mut alice = Client::connect_request(request).await.expect("connect");
    alice.join("lobby").await;
    let message_parent = format!("00-{MESSAGE_TRACE}-{MESSAGE_PARENT}-01");
    alice.send(json!({"type":"send","room":"lobby","body":"traced","ref":"t1","traceparent":message_parent})).await;
    let (delivered, _) = bob.recv_until("message").await;
    assert_eq!(delivered["body"], "traced");
    alice.send_raw(tungstenite::Message::Close(None)).await;

    let spans = spans_until(&spans, "complete trace", |spans| {
        find(spans, "ws.send", "node-b", MESSAGE_TRACE).is_some()
            && spans.iter().any(|s| s.name == "ws.close" && s.node == "node-a")
    })
    .await;

    // The sender's node: the frame's span continues the client's context; the publish is its child.
    let receive = find(&spans, "ws.receive", "node-a", MESSAGE_TRACE).expect("ws.receive on node-a");
    assert_eq!(receive.parent_span_id, MESSAGE_PARENT);
    assert_eq!((receive.attribute("rookery.frame"), receive.attribute("rookery.ref")), (Some("send"), Some("t1")));
    let publish = find(&spans, "room.publish", "node-a", MESSAGE_TRACE).expect("room.publish on node-a");
    assert_eq!(publish.parent_span_id, receive.span_id);
    assert_eq!(publish.attribute("db.system"), Some("redis"));
    let id = delivered["id"].as_str().expect("id");
    assert_eq!(publish.attribute("rookery.message_id"), Some(id));

    // The receiver's node: the delivery continues the publish, read from the bus entry.
    let deliver = find(&spans, "bus.deliver", "node-b", MESSAGE_TRACE).expect("bus.deliver on node-b");
    assert_eq!(deliver.parent_span_id, publish.span_id);
    assert_eq!((deliver.attribute("rookery.room"), deliver.attribute("rookery.message_id")), (Some("lobby"), Some(id)));
    assert_eq!(deliver.attribute("rookery.local_members"), Some("1"));
    let send = find(&spans, "ws.send", "node-b", MESSAGE_TRACE).expect("ws.send on node-b");
    assert_eq!(send.parent_span_id, deliver.span_id);

    // The handshake took the client's header as its parent; the close span records the code
    // and links back to the handshake.
    let handshake = find(&spans, "ws.handshake", "node-a", HANDSHAKE_TRACE).expect("ws.handshake on node-a");
    assert_eq!(handshake.parent_span_id, HANDSHAKE_PARENT);
    assert_eq!(handshake.attribute("enduser.id"), Some("alice"));
    assert!(receive.links.contains(&handshake.span_id), "ws.receive links to the handshake");
    let close = spans.iter().find(|s| s.name == "ws.close" && s.node == "node-a").expect("ws.close");
    assert_eq!(close.attribute("websocket.close.code"), Some("1000"));
    assert_eq!(close.attribute("rookery.closed_by"), Some("client"));
    assert_eq!(close.attribute("rookery.messages_published"), Some("1"));
    assert!(close.links.contains(&handshake.span_id), "ws.close links to the handshake");
}

#[actix_web::test]
async fn json_log_lines_carry_the_session_and_trace_context_but_no_message_bodies() {
    let redis = RedisServer::start();
    let log = std::env::temp_dir().join(format!("rookery-log-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let (url, endpoint) = (redis.url(), "http://127.0.0.1:9".to_owned());
    let vars = [
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", "node-a"),
        ("ROOKERY_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        // Traces go nowhere (nothing listens there): chat must not notice.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
    ];
    let a = NodeProcess::start_logging(&vars, Some(log.clone())).await;
    let mut request = a.ws_url("?user=alice").into_client_request().expect("request");
    request
        .headers_mut()
        .insert("traceparent", format!("00-{HANDSHAKE_TRACE}-{HANDSHAKE_PARENT}-01").parse().expect("header"));
    let mut alice = Client::connect_request(request).await.expect("connect");
    alice.join("lobby").await;
    let message_parent = format!("00-{MESSAGE_TRACE}-{MESSAGE_PARENT}-01");
    let ack =
        alice.request(json!({"type":"send","room":"lobby","body":"a secret body","traceparent":message_parent})).await;
    assert_eq!(ack["type"], "ack");
    let session = alice.welcome["session"].as_str().expect("session").to_owned();
    drop(a);

    let text = std::fs::read_to_string(&log).expect("read the log");
    let _ = std::fs::remove_file(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(!text.contains("a secret body"), "a message body was logged");
    let started = lines.iter().find(|l| l["message"] == "session started").expect("a `session started` line");
    assert_eq!(
        (started["session"].as_str(), started["user"].as_str(), started["node"].as_str()),
        (Some(session.as_str()), Some("alice"), Some("node-a"))
    );
    assert_eq!(started["trace_id"], HANDSHAKE_TRACE, "the handshake's trace");
    let frame = lines
        .iter()
        .find(|l| l["message"] == "frame received" && l["frame"] == "send")
        .expect("a `frame received` line for the send");
    assert_eq!(
        (frame["session"].as_str(), frame["user"].as_str(), frame["room"].as_str()),
        (Some(session.as_str()), Some("alice"), Some("lobby"))
    );
    assert_eq!(frame["trace_id"], MESSAGE_TRACE, "the frame's own trace");
    assert_eq!(frame["span_id"].as_str().map(str::len), Some(16));
    assert_eq!(frame["level"], "DEBUG");
}

#[actix_web::test]
async fn an_unsupported_otlp_protocol_stops_the_node_with_a_clear_error() {
    let (status, stderr) = NodeProcess::refuses_to_start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported"), "{stderr}");
}
