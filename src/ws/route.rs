//! `GET /ws` and `GET /ws/echo`: admission (origin, connection limit, credentials), then the
//! upgrade. Refusals are plain HTTP errors with a JSON body; nothing is upgraded.

use actix::Actor;
use actix_web::{HttpRequest, HttpResponse, body::MessageBody, http::header, web};
use serde::Deserialize;

use super::{
    connection::{Connection, Socket},
    echo::EchoSession,
    frame_guard::{FrameGuard, Verdict},
    outbound::Outbound,
    reader::FrameReader,
    session::Session,
};
use tracing::Instrument;

use crate::{
    auth::{AuthError, Authenticator},
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

/// Upgrades a chat connection, inside a `ws.handshake` span whose parent is the client's
/// `traceparent` (header, else query parameter).
pub async fn chat_socket(req: HttpRequest, body: web::Payload, node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HandshakeQuery>::from_query(req.query_string()).ok();
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .or_else(|| query.as_ref().and_then(|q| q.traceparent.as_deref()));
    let span = tracing::info_span!(
        "ws.handshake",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = "GET",
        url.path = req.path(),
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
    let result = handshake(&req, body, &node, &span).instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

async fn handshake(req: &HttpRequest, body: web::Payload, node: &web::Data<Node>, span: &tracing::Span) -> Result<HttpResponse, ApiError> {
    let slot = admit(req, node)?;
    let query = web::Query::<HandshakeQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = bearer_token(req).or(query.token.as_deref());
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
    let (response, socket) = upgrade(req, body, node)?;
    let connection = Connection::new(socket, node);
    Session::new(session, identity, node.clone(), connection, slot, traces::span_context(span)).start();
    node.metrics.connection_opened("ok");
    Ok(response)
}

/// Upgrades a conformance-test connection that echoes every message.
pub async fn echo_socket(req: HttpRequest, body: web::Payload, node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let slot = admit(&req, &node)?;
    let (response, socket) = upgrade(&req, body, &node)?;
    EchoSession::new(Connection::new(socket, &node), slot).start();
    node.metrics.connection_opened("ok");
    Ok(response)
}

/// The origin check and a connection slot.
fn admit(req: &HttpRequest, node: &Node) -> Result<ConnectionSlot, ApiError> {
    if let (Some(allowed), Some(origin)) = (&node.settings.allowed_origins, req.headers().get(header::ORIGIN)) {
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

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Performs the handshake. The response body is the connection's outbound queue; its bytes
/// are read through a [`FrameGuard`].
fn upgrade(req: &HttpRequest, body: web::Payload, node: &Node) -> Result<(HttpResponse, Socket), ApiError> {
    let mut response = actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket handshake: {e}")))?;
    let settings = &node.settings;
    let (outbound, body_out) = Outbound::new(settings.outbound_queue_frames, settings.outbound_queue_bytes);
    let response = response.message_body(body_out.boxed()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let verdict = Verdict::default();
    let guarded = FrameGuard::new(body, settings.max_frame_bytes, verdict.clone());
    let frames = FrameReader::new(guarded, settings.max_frame_bytes, verdict);
    Ok((response.into(), Socket { outbound, frames }))
}
