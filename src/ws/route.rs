//! Admission to `GET /ws` and `GET /ws/echo`: the origin, the connection limit, the
//! credentials and the handshake, decided on the request head alone. Refusals are plain HTTP
//! errors with a JSON body; nothing is upgraded. What is admitted is answered and run by
//! `upgrade`.

use actix_http::{RequestHead, Response};
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use opentelemetry::trace::SpanContext;
use serde::Deserialize;

use crate::{
    auth::{AuthError, Authenticator, Identity},
    domain::SessionId,
    http::ApiError,
    node::{ConnectionSlot, Node},
    telemetry::traces,
};

#[derive(Deserialize)]
struct HandshakeQuery {
    user: Option<String>,
    token: Option<String>,
    /// Browsers cannot set headers on a WebSocket, so the W3C trace context may come here.
    traceparent: Option<String>,
}

/// Who takes an admitted connection.
pub enum Admitted {
    Chat { session: SessionId, identity: Identity, slot: ConnectionSlot, handshake: SpanContext },
    Echo { slot: ConnectionSlot },
}

/// An admitted handshake: the 101 answer, and who takes the connection.
pub struct Admission {
    pub response: Response<()>,
    pub admitted: Admitted,
}

/// Admits a chat connection, inside a `ws.handshake` span whose parent is the client's
/// `traceparent` (header, else query parameter).
pub fn admit_chat(head: &RequestHead, node: &Node) -> Result<Admission, ApiError> {
    let query_string = head.uri.query().unwrap_or_default();
    let query = web::Query::<HandshakeQuery>::from_query(query_string).ok();
    let traceparent = head
        .headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .or_else(|| query.as_ref().and_then(|q| q.traceparent.as_deref()));
    let span = tracing::info_span!(
        "ws.handshake",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = "GET",
        url.path = head.uri.path(),
        rookery.node = %node.settings.node_id,
        rookery.session = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
        node = %node.settings.node_id,
        session = tracing::field::Empty,
        user = tracing::field::Empty,
        rookery.auth = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    traces::set_parent(&span, traceparent.and_then(traces::remote_context));
    traces::record_ids(&span);
    let result = span.in_scope(|| chat_handshake(head, query_string, node, &span));
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

fn chat_handshake(head: &RequestHead, query: &str, node: &Node, span: &tracing::Span) -> Result<Admission, ApiError> {
    let slot = admit(head, node)?;
    let query = web::Query::<HandshakeQuery>::from_query(query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = bearer_token(head).or(query.token.as_deref());
    let identity = node.auth.authenticate(query.user.as_deref(), token).map_err(|error| {
        node.metrics.connection_opened("unauthorized");
        span.record("rookery.auth", "refused");
        match error {
            AuthError::BadUser(_) => ApiError::bad_request(error.to_string()),
            _ => ApiError::unauthorized(error.to_string()),
        }
    })?;
    let session = SessionId::random();
    span.record("rookery.auth", if matches!(node.auth, Authenticator::Anonymous) { "anonymous" } else { "jwt" });
    // Trace attributes and the plain fields log lines carry.
    let session_text = session.to_string();
    span.record("rookery.session", session_text.as_str());
    span.record("session", session_text.as_str());
    span.record("enduser.id", identity.user.as_str());
    span.record("user", identity.user.as_str());
    let response = switching_protocols(head)?;
    Ok(Admission {
        response,
        admitted: Admitted::Chat { session, identity, slot, handshake: traces::span_context(span) },
    })
}

/// Admits a conformance-test connection that echoes every message.
pub fn admit_echo(head: &RequestHead, node: &Node) -> Result<Admission, ApiError> {
    let slot = admit(head, node)?;
    Ok(Admission { response: switching_protocols(head)?, admitted: Admitted::Echo { slot } })
}

/// `GET /ws` and `GET /ws/echo` as plain HTTP. Every request with `Upgrade: websocket` goes to
/// `upgrade` instead, so this one is refused, for the same reasons a handshake would be.
pub async fn not_upgraded(req: HttpRequest, node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let admitted = if req.path() == "/ws/echo" { admit_echo(req.head(), &node) } else { admit_chat(req.head(), &node) };
    Err(admitted.err().unwrap_or_else(|| ApiError::bad_request("not a WebSocket handshake: send Upgrade: websocket")))
}

/// The origin check and a connection slot.
fn admit(head: &RequestHead, node: &Node) -> Result<ConnectionSlot, ApiError> {
    // Two `Origin`s would let a browser-forbidden one pass behind an allowed one.
    if head.headers.get_all(header::ORIGIN).count() > 1 {
        node.metrics.connection_opened("forbidden_origin");
        return Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "forbidden_origin",
            "a request has at most one Origin",
        ));
    }
    if let (Some(allowed), Some(origin)) = (&node.settings.allowed_origins, head.headers.get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/').to_ascii_lowercase();
        if !allowed.contains(&origin) {
            node.metrics.connection_opened("forbidden_origin");
            return Err(ApiError::forbidden_origin());
        }
    }
    if node.shutdown.is_draining() {
        node.metrics.connection_opened("draining");
        return Err(ApiError::draining());
    }
    node.admit().ok_or_else(|| {
        node.metrics.connection_opened("over_limit");
        ApiError::over_limit()
    })
}

fn bearer_token(head: &RequestHead) -> Option<&str> {
    crate::http::bearer_token(&head.headers)
}

/// The 101 answer to a valid handshake.
fn switching_protocols(head: &RequestHead) -> Result<Response<()>, ApiError> {
    let not_a_handshake =
        |error: &dyn std::fmt::Display| ApiError::bad_request(format!("not a WebSocket handshake: {error}"));
    // RFC 6455 4.1: HTTP/1.1 or higher, and exactly one key (actix-http reads the first).
    if head.version < actix_http::Version::HTTP_11 {
        return Err(not_a_handshake(&"an upgrade needs HTTP/1.1"));
    }
    if head.headers.get_all(header::SEC_WEBSOCKET_KEY).count() != 1 {
        return Err(not_a_handshake(&"exactly one Sec-WebSocket-Key is required"));
    }
    actix_http::ws::handshake(head).map_err(|e| not_a_handshake(&e))?.message_body(()).map_err(|e| not_a_handshake(&e))
}
