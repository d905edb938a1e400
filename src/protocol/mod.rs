//! Wire protocol v1: the JSON frames a client and a node exchange, with no I/O.
//!
//! `client` parses and validates inbound text frames into [`ClientFrame`]s; `server` encodes the
//! frames a node sends; `codes` holds the error codes and WebSocket close codes. The contract is
//! documented for users in `docs/protocol.md`; keep the two in step.

mod client;
mod codes;
mod server;

pub use client::{ClientFrame, FrameError, HistoryQuery, Request, idempotency_key, parse_client_frame};
pub use codes::{CloseCode, ErrorCode};
pub use server::{Limits, MessageList, ServerFrame, encode_message};

/// The largest `limit` a history request may ask for.
pub const MAX_HISTORY_LIMIT: usize = 500;
/// The `limit` of a history request that gives none.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// The longest `ref` a client may attach to a frame.
pub const MAX_REF_LEN: usize = 64;
