//! HTTP errors: a status and a JSON body `{"code": "...", "message": "..."}`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

use crate::{engine::EngineError, protocol::ErrorCode};

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden_origin() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden_origin", "this Origin may not connect")
    }

    pub fn over_limit() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "over_limit",
            "this node holds as many connections as it may; try another node or later",
        )
    }

    pub fn draining() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "this node is shutting down; connect to another node")
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request did not arrive in time")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let status = match error {
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::NoAnswer(_) | EngineError::NotReplicated(_) => StatusCode::GATEWAY_TIMEOUT,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, ErrorCode::from(&error).as_str(), error.client_message())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"code": self.code, "message": self.message}))
    }
}
