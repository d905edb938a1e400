//! Error codes of `error` frames and the WebSocket close codes a node uses.

use serde::Serialize;

use crate::engine::EngineError;

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, unknown type, bad name or id, missing or mistyped field.
    BadRequest,
    /// `send` to a room the session has not joined.
    NotJoined,
    /// The session's credentials do not allow this room.
    Forbidden,
    /// `body` is over `max_body_bytes`.
    TooLarge,
    /// The session's token bucket for `send` is empty; the message was not published.
    RateLimited,
    /// The session is already in `max_rooms` rooms.
    RoomLimit,
    /// The engine cannot store or read right now; nothing was published.
    Unavailable,
    /// The engine was asked but did not answer in time: a `send` may have been stored. A retry
    /// with the same `key` is stored once.
    Timeout,
    /// A `send` was stored, but fewer Redis replicas than the node asks for
    /// (`ROOKERY_REDIS_MIN_REPLICAS`) confirmed it in time: a failover may lose it. A retry with
    /// the same `key` stores nothing new and is acked once the replicas have it.
    NotReplicated,
    /// A bug or an unexpected failure on the node.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        Self::BadRequest,
        Self::NotJoined,
        Self::Forbidden,
        Self::TooLarge,
        Self::RateLimited,
        Self::RoomLimit,
        Self::Unavailable,
        Self::Timeout,
        Self::NotReplicated,
        Self::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NotJoined => "not_joined",
            Self::Forbidden => "forbidden",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::RoomLimit => "room_limit",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::NotReplicated => "not_replicated",
            Self::Internal => "internal",
        }
    }
}

impl From<&EngineError> for ErrorCode {
    /// The code a failed engine call is answered with, on `/ws` and on the server API alike.
    fn from(error: &EngineError) -> Self {
        match error {
            EngineError::Unavailable(_) => Self::Unavailable,
            EngineError::NoAnswer(_) => Self::Timeout,
            EngineError::NotReplicated(_) => Self::NotReplicated,
            EngineError::Internal(_) => Self::Internal,
        }
    }
}

/// WebSocket close codes (RFC 6455 section 7.4.1) as rookery uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the client asked to close, or the session ended normally.
    Normal,
    /// 1001: the peer stopped answering heartbeats.
    GoingAway,
    /// 1002: a WebSocket protocol violation (reserved bits, bad opcode, bad control frame, ...).
    Protocol,
    /// 1003: a binary message on `/ws`, which speaks text only.
    Unsupported,
    /// 1007: a text message that is not valid UTF-8.
    InvalidPayload,
    /// 1008: policy: the token expired, or too many `bad_request` frames.
    Policy,
    /// 1009: a message (all its fragments together) over `max_frame_bytes`.
    TooBig,
    /// 1011: an internal error on the node.
    Internal,
    /// 1012: the node is restarting or draining; reconnect (to any node) and resume.
    Restart,
    /// 1013: slow consumer: the session's outbound queue was full.
    TryAgainLater,
    /// 1006: never sent; counts connections that ended without a close frame.
    Abnormal,
}

impl CloseCode {
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::Protocol => 1002,
            Self::Unsupported => 1003,
            Self::InvalidPayload => 1007,
            Self::Policy => 1008,
            Self::TooBig => 1009,
            Self::Internal => 1011,
            Self::Restart => 1012,
            Self::TryAgainLater => 1013,
            Self::Abnormal => 1006,
        }
    }
}
