//! The server API under `/api/v1`, for backends: publish into a room, read its members and
//! history. Every call needs `Authorization: Bearer <ROOKERY_API_KEY>`; with no key configured
//! the API is off and says how to turn it on.

use actix_web::{
    Error, HttpRequest, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{ApiError, NodeData};
use crate::{
    domain::{RoomName, UserName},
    engine::NewMessage,
    node::Node,
    protocol::{HistoryQuery, MessageList, idempotency_key},
};

/// Counts every API error answer by status.
pub async fn count_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let node = req.app_data::<NodeData>().cloned();
    let response = next.call(req).await?;
    let status = response.status();
    if let Some(node) = node.filter(|_| status.is_client_error() || status.is_server_error()) {
        node.metrics.api_error(status.as_u16());
    }
    Ok(response)
}

fn authorize(req: &HttpRequest, node: &Node) -> Result<(), ApiError> {
    let Some(key) = &node.settings.api_key else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "api_disabled",
            "the server API is off: set ROOKERY_API_KEY on the node to enable it",
        ));
    };
    let presented = super::bearer_token(req.headers());
    // Constant time over the bytes, so response timing does not reveal how much of the key a
    // guess got right (only a length mismatch answers early, and the length is no secret).
    if presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(key.expose_secret().as_bytes()))) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("send `Authorization: Bearer <ROOKERY_API_KEY>`"))
    }
}

fn room_of(path: &web::Path<String>) -> Result<RoomName, ApiError> {
    RoomName::parse(path.as_str()).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[derive(Deserialize)]
struct PostMessage {
    #[serde(default = "system_user")]
    user: String,
    body: String,
}

/// The largest request body the API reads (a JSON post of a `max_body_bytes` body fits).
const MAX_REQUEST_BYTES: usize = 256 << 10;

fn system_user() -> String {
    "system".to_owned()
}

/// A known API path with a method it does not serve: 405, with the methods it does.
pub async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).json(json!({
        "code": "method_not_allowed",
        "message": format!("this path answers {allow}"),
    }))
}

/// `POST /api/v1/rooms/{room}/messages` `{"user":"system","body":"..."}` -> 201 `{"id":"..."}`.
pub async fn post_message(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    node: NodeData,
) -> Result<HttpResponse, ApiError> {
    // From the head alone, before reading a byte of the body.
    authorize(&req, &node)?;
    let room = room_of(&path)?;
    let body = super::pending::read_body(&req, payload, MAX_REQUEST_BYTES).await?;
    let post: PostMessage = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"user\":\"...\",\"body\":\"...\"}}: {e}")))?;
    let user = UserName::parse(&post.user).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if post.body.len() > node.settings.max_body_bytes {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is over max_body_bytes"));
    }
    let key = req.headers().get("Idempotency-Key").map(|value| value.to_str().map(str::to_owned));
    let key = key
        .transpose()
        .map_err(|_| ApiError::bad_request("`Idempotency-Key` must be visible ASCII"))
        .and_then(|key| idempotency_key(key).map_err(|e| ApiError::bad_request(format!("`Idempotency-Key` {e}"))))?;
    let id = node.engine.publish(NewMessage { room, user, body: post.body, trace: String::new(), key }).await?;
    node.metrics.messages_published.inc();
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

/// `GET /api/v1/rooms/{room}/members` -> `{"room":"...","members":[{"user","sessions"}]}`.
pub async fn list_members(req: HttpRequest, path: web::Path<String>, node: NodeData) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let room = room_of(&path)?;
    let members = node.engine.members(&room).await?;
    Ok(HttpResponse::Ok().json(json!({ "room": room, "members": members })))
}

#[derive(Deserialize)]
struct HistoryParams {
    after: Option<String>,
    before: Option<String>,
    limit: Option<u64>,
}

/// `GET /api/v1/rooms/{room}/messages?after=&before=&limit=` -> `{"room":"...","messages":[...]}`.
pub async fn list_messages(
    req: HttpRequest,
    path: web::Path<String>,
    node: NodeData,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let room = room_of(&path)?;
    let params = web::Query::<HistoryParams>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = |name: &str, raw: &Option<String>| {
        raw.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|e| ApiError::bad_request(format!("`{name}`: {e}"))))
            .transpose()
    };
    let query = HistoryQuery {
        after: id("after", &params.after)?,
        before: id("before", &params.before)?,
        limit: match params.limit {
            None => HistoryQuery::default().limit,
            Some(limit) => HistoryQuery::checked_limit(limit).map_err(ApiError::bad_request)?,
        },
    };
    let messages = node.engine.history(&room, query).await?;
    Ok(HttpResponse::Ok().json(json!({ "room": room, "messages": MessageList(&messages) })))
}
